package keys

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
)

// ContentKeySize is the size in bytes of a CENC content key (AES-128).
const ContentKeySize = 16

// ContentKey is one 128-bit AES content key for one crypto period of one
// content, named by its KID.
//
// The raw key is reachable only through InsecureRawKey. Every way of printing
// a ContentKey (String, GoString, fmt verbs including %v, %+v, %#v, %x and %s,
// and slog via LogValue) shows the KID and period only, so a key cannot leak
// through a log line or an error message by accident.
//
// The zero ContentKey is not a valid key: it has the zero KID.
type ContentKey struct {
	kid    KID
	period int
	key    [ContentKeySize]byte
}

// NewContentKey returns a fresh random key with a fresh random KID for the
// given crypto period (0 for the first period; negative periods are refused).
func NewContentKey(period int) (ContentKey, error) {
	if period < 0 {
		return ContentKey{}, fmt.Errorf("keys: new content key: period %d is negative", period)
	}
	kid, err := NewKID()
	if err != nil {
		return ContentKey{}, err
	}
	c := ContentKey{kid: kid, period: period}
	if _, err := rand.Read(c.key[:]); err != nil {
		return ContentKey{}, fmt.Errorf("keys: new content key: %w", err)
	}
	return c, nil
}

// ContentKeyFromBytes builds a ContentKey from existing material, for
// importing keys made elsewhere (sealmesh pack --import). key must be exactly
// 16 bytes and is copied; kid must not be the zero KID; period must be >= 0.
func ContentKeyFromBytes(kid KID, period int, key []byte) (ContentKey, error) {
	if kid.IsZero() {
		return ContentKey{}, fmt.Errorf("keys: content key: the zero KID is not a valid key ID")
	}
	if period < 0 {
		return ContentKey{}, fmt.Errorf("keys: content key %s: period %d is negative", kid, period)
	}
	if len(key) != ContentKeySize {
		// The length is safe to print; the bytes are not.
		return ContentKey{}, fmt.Errorf("keys: content key %s: key is %d bytes, want %d (AES-128)", kid, len(key), ContentKeySize)
	}
	c := ContentKey{kid: kid, period: period}
	copy(c.key[:], key)
	return c, nil
}

// KID returns the key's public ID.
func (c ContentKey) KID() KID { return c.kid }

// Period returns the crypto period the key belongs to.
func (c ContentKey) Period() int { return c.period }

// InsecureRawKey returns a copy of the 16 raw key bytes. It is the only way
// to the key material: call it at the point of use (the CENC encryptor, the
// license wrapper) and do not keep, log or print the result.
func (c ContentKey) InsecureRawKey() []byte {
	b := make([]byte, ContentKeySize)
	copy(b, c.key[:])
	return b
}

// String returns "ContentKey{kid=<hex> period=N}". It never includes the key.
func (c ContentKey) String() string {
	return "ContentKey{kid=" + c.kid.String() + " period=" + strconv.Itoa(c.period) + "}"
}

// GoString is used by %#v; like String it shows the KID only.
func (c ContentKey) GoString() string { return "keys." + c.String() }

// Format makes every fmt verb print String (or GoString for %#v), so that
// %x, %v, %+v and friends cannot reach the unexported key bytes.
func (c ContentKey) Format(f fmt.State, verb rune) { formatSafe(f, verb, c.String(), c.GoString()) }

// LogValue shows the KID and period as a group, never the key.
func (c ContentKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", c.kid.String()), slog.Int("period", c.period))
}

// formatSafe writes s for every verb (quoted for %q, gs for %#v).
func formatSafe(f fmt.State, verb rune, s, gs string) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = fmt.Fprint(f, gs)
	case verb == 'q':
		_, _ = fmt.Fprint(f, strconv.Quote(s))
	default:
		_, _ = fmt.Fprint(f, s)
	}
}
