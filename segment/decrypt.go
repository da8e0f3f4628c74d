package segment

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// ErrNoKey: the decryptor was not given the key for the segment's KID.
var ErrNoKey = errors.New("no key for KID")

// ErrBadSegment: the bytes are not a CMAF init or media segment this package can read.
var ErrBadSegment = errors.New("not a readable CMAF segment")

// Decryptor turns the CENC init and media segments of one track (one crypto
// period) back into clear CMAF, in memory. It never writes anything to disk.
//
// Bytes handed to a Decryptor should already have been checked against the
// signed manifest (Manifest.CheckFile): CENC has no integrity of its own, so
// unchecked ciphertext decrypts to attacker-chosen garbage.
type Decryptor struct {
	di        mp4.DecryptInfo
	clearInit []byte
	kid       [16]byte
	scheme    Scheme
}

// NewDecryptor reads an encrypted init segment. It fails with ErrBadSegment
// if init is not a single-track protected CMAF init segment.
func NewDecryptor(init []byte) (d *Decryptor, err error) {
	defer recoverParse(&err)
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSegment, err)
	}
	if f.Init == nil || len(f.Init.Moov.Traks) != 1 || f.Init.Moov.Mvex == nil {
		return nil, fmt.Errorf("%w: want a single-track fragmented init segment", ErrBadSegment)
	}
	di, err := mp4.DecryptInit(f.Init)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSegment, err)
	}
	if len(di.TrackInfos) != 1 || di.TrackInfos[0].Sinf == nil || di.TrackInfos[0].Sinf.Schi == nil || di.TrackInfos[0].Sinf.Schi.Tenc == nil {
		return nil, fmt.Errorf("%w: init segment is not protected", ErrBadSegment)
	}
	d = &Decryptor{di: di, scheme: Scheme(di.TrackInfos[0].Sinf.Schm.SchemeType)}
	copy(d.kid[:], di.TrackInfos[0].Sinf.Schi.Tenc.DefaultKID)
	var buf bytes.Buffer
	if err := f.Init.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encode clear init: %w", err)
	}
	d.clearInit = buf.Bytes()
	return d, nil
}

// KID is the default KID of the track, from the init segment's tenc box.
func (d *Decryptor) KID() [16]byte { return d.kid }

// Scheme is the track's protection scheme.
func (d *Decryptor) Scheme() Scheme { return d.scheme }

// ClearInit returns the init segment with its protection boxes removed, for
// a platform player that receives clear media.
func (d *Decryptor) ClearInit() []byte { return bytes.Clone(d.clearInit) }

// Decrypt returns the clear version of one media segment. keys maps KIDs to
// 16-byte keys; the one matching the track's KID is used, or ErrNoKey.
func (d *Decryptor) Decrypt(seg []byte, keys map[[16]byte][]byte) (out []byte, err error) {
	key, ok := keys[d.kid]
	if !ok || len(key) != 16 {
		return nil, fmt.Errorf("%w %s", ErrNoKey, hex.EncodeToString(d.kid[:]))
	}
	defer recoverParse(&err)
	f, err := mp4.DecodeFile(bytes.NewReader(seg))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSegment, err)
	}
	if len(f.Segments) != 1 || len(f.Segments[0].Fragments) == 0 {
		return nil, fmt.Errorf("%w: want one media segment", ErrBadSegment)
	}
	ms := f.Segments[0]
	if err := mp4.DecryptSegment(ms, d.di, key); err != nil {
		return nil, fmt.Errorf("%w: decrypt: %v", ErrBadSegment, err)
	}
	var buf bytes.Buffer
	buf.Grow(len(seg))
	if err := ms.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encode clear segment: %w", err)
	}
	return buf.Bytes(), nil
}

// recoverParse turns a panic inside the MP4 parser into ErrBadSegment:
// malformed boxes must never take a player down.
func recoverParse(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: parser panic: %v", ErrBadSegment, r)
	}
}
