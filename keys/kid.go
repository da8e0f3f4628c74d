package keys

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// KID is a 16-byte key ID as carried in CENC 'tenc' and 'pssh' boxes, in
// HLS/DASH manifests and in Clear Key license requests.
//
// New KIDs are random UUIDv4 values (RFC 9562 version and variant bits set).
// A KID is public: it is never derived from the key it names, so publishing it
// reveals nothing about the key. The zero KID is never valid for a key.
type KID [16]byte

// NewKID returns a fresh random UUIDv4 KID.
func NewKID() (KID, error) {
	var k KID
	if _, err := rand.Read(k[:]); err != nil {
		return KID{}, fmt.Errorf("keys: new KID: %w", err)
	}
	k[6] = (k[6] & 0x0f) | 0x40 // version 4
	k[8] = (k[8] & 0x3f) | 0x80 // variant 10 (RFC 9562)
	return k, nil
}

// ParseKID parses a KID written either as 32 hex digits
// ("0123456789abcdef0123456789abcdef") or in UUID form with dashes
// ("01234567-89ab-cdef-0123-456789abcdef"). Upper and lower case hex are both
// accepted. Imported KIDs need not be UUIDv4, so the version bits are not checked.
func ParseKID(s string) (KID, error) {
	var k KID
	var h string
	switch len(s) {
	case 32:
		h = s
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return KID{}, fmt.Errorf("keys: parse KID %q: UUID form needs dashes at positions 8, 13, 18 and 23", s)
		}
		h = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	default:
		return KID{}, fmt.Errorf("keys: parse KID %q: want 32 hex digits or 8-4-4-4-12 UUID form, got %d characters", s, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(h)); err != nil {
		return KID{}, fmt.Errorf("keys: parse KID %q: not hex: %w", s, err)
	}
	return k, nil
}

// String returns the KID as 32 lowercase hex digits, the form used in
// key store records, ffmpeg's -decryption_key companions and logs.
func (k KID) String() string { return hex.EncodeToString(k[:]) }

// UUID returns the KID in 8-4-4-4-12 form, as DASH cenc:default_KID wants it.
func (k KID) UUID() string {
	h := k.String()
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// IsZero reports whether k is the all-zero KID, which never names a key.
func (k KID) IsZero() bool { return k == KID{} }

// MarshalText encodes the KID as 32 lowercase hex digits (JSON, TOML, flags).
func (k KID) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText accepts any form ParseKID accepts.
func (k *KID) UnmarshalText(b []byte) error {
	p, err := ParseKID(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}
