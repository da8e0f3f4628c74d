package segment

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
)

// KeySize is the size in bytes of a CENC content key (AES-128).
const KeySize = 16

// ErrKeyMarshal: a Key was handed to a serializer. Keys never serialize.
var ErrKeyMarshal = errors.New("segment: a content key cannot be serialized")

// Key is one content key and its KID as the packager needs them.
//
// The raw key is reachable only through InsecureRawKey. Every way of printing
// a Key (String, GoString, the fmt verbs %v %+v %#v %s %q %x %X, slog through
// LogValue) shows the KID only, and JSON, text and binary marshaling fail
// with ErrKeyMarshal, so a key cannot leak through a log line, an error
// message or a debug dump by accident. It mirrors keys.ContentKey, which this
// package may not import.
//
// The zero Key is not a valid key; Pack refuses it.
type Key struct {
	kid [16]byte
	key [KeySize]byte
	ok  bool
}

// NewKey builds a Key from a KID and 16 raw key bytes, which are copied.
func NewKey(kid [16]byte, raw []byte) (Key, error) {
	if len(raw) != KeySize {
		// The length is safe to print; the bytes are not.
		return Key{}, fmt.Errorf("segment: content key %s: %d bytes, want %d (AES-128)", hex.EncodeToString(kid[:]), len(raw), KeySize)
	}
	k := Key{kid: kid, ok: true}
	copy(k.key[:], raw)
	return k, nil
}

// KID returns the key's public ID.
func (k Key) KID() [16]byte { return k.kid }

// InsecureRawKey returns a copy of the 16 raw key bytes. It is the only way
// to the key material: call it at the point of use (the encryptor) and do not
// keep, log or print the result.
func (k Key) InsecureRawKey() []byte {
	b := make([]byte, KeySize)
	copy(b, k.key[:])
	return b
}

func (k Key) valid() bool { return k.ok }

// String returns "Key{kid=<hex>}". It never includes the key.
func (k Key) String() string { return "Key{kid=" + hex.EncodeToString(k.kid[:]) + "}" }

// GoString is used by %#v; like String it shows the KID only.
func (k Key) GoString() string { return "segment." + k.String() }

// Format makes every fmt verb print String (GoString for %#v, quoted for
// %q), so %x, %v, %+v and friends cannot reach the unexported key bytes.
func (k Key) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = fmt.Fprint(f, k.GoString())
	case verb == 'q':
		_, _ = fmt.Fprint(f, strconv.Quote(k.String()))
	default:
		_, _ = fmt.Fprint(f, k.String())
	}
}

// LogValue shows the KID only, never the key.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", hex.EncodeToString(k.kid[:])))
}

// MarshalJSON refuses: a key written into JSON would end up in a file or a
// log. Export keys through the key store, never through a Key.
func (k Key) MarshalJSON() ([]byte, error) { return nil, ErrKeyMarshal }

// MarshalText refuses, for the same reason (it also covers encoding/xml, yaml
// and slog's text handler reaching for TextMarshaler).
func (k Key) MarshalText() ([]byte, error) { return nil, ErrKeyMarshal }

// MarshalBinary refuses, so encoding/gob cannot write a key either.
func (k Key) MarshalBinary() ([]byte, error) { return nil, ErrKeyMarshal }

var (
	_ fmt.Formatter  = Key{}
	_ fmt.GoStringer = Key{}
	_ slog.LogValuer = Key{}
	_ fmt.Stringer   = Key{}
)
