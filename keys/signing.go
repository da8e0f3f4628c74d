package keys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
)

// Names of the signing keys sealmesh uses. Store.SigningKey accepts any name
// that passes validation, but these are the ones the packager and the license
// server agree on.
const (
	// SigningKeyManifest signs segment manifests (sealmesh pack).
	SigningKeyManifest = "manifest"
	// SigningKeyLicense signs licenses and swarm tickets (sealmesh license serve).
	SigningKeyLicense = "license"
)

// SigningKey is an Ed25519 private key used to sign segment manifests and
// licenses. It prints as its ID only; the private key is reachable through
// Signer (which signs but does not print) and InsecureRawPrivateKey.
type SigningKey struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

// NewSigningKey returns a fresh random Ed25519 signing key.
func NewSigningKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keys: new signing key: %w", err)
	}
	return newSigningKeyFromPrivate(priv), nil
}

// signingKeyFromSeed rebuilds a key from its 32-byte RFC 8032 seed, the form
// in which the store seals it.
func signingKeyFromSeed(seed []byte) (*SigningKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return newSigningKeyFromPrivate(ed25519.NewKeyFromSeed(seed)), nil
}

func newSigningKeyFromPrivate(priv ed25519.PrivateKey) *SigningKey {
	pub := priv.Public().(ed25519.PublicKey)
	return &SigningKey{priv: priv, pub: pub, id: SigningKeyID(pub)}
}

// SigningKeyID returns the short ID of an Ed25519 public key: the first 8
// bytes of SHA-256(public key) as 16 lowercase hex digits. Verifiers use it to
// pick the right public key; it is stable across store reopen and rotation.
func SigningKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// ID returns the key's stable short ID (see SigningKeyID).
func (s *SigningKey) ID() string { return s.id }

// Public returns a copy of the Ed25519 public key.
func (s *SigningKey) Public() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), s.pub...)
}

// Signer returns a crypto.Signer for the key, so that other packages can sign
// without importing keys. It signs exactly as ed25519.PrivateKey.Sign does
// (pass crypto.Hash(0) as opts for pure Ed25519), but it is an opaque type:
// printing it shows the key ID, never the private key bytes.
func (s *SigningKey) Signer() crypto.Signer { return signer{k: s} }

// InsecureRawPrivateKey returns a copy of the Ed25519 private key, for
// exporting it. Do not keep, log or print the result.
func (s *SigningKey) InsecureRawPrivateKey() ed25519.PrivateKey {
	return append(ed25519.PrivateKey(nil), s.priv...)
}

// String returns "SigningKey{id=<16 hex>}".
func (s *SigningKey) String() string { return "SigningKey{id=" + s.id + "}" }

// GoString is used by %#v; it shows the ID only.
func (s *SigningKey) GoString() string { return "&keys." + s.String() }

// Format makes every fmt verb print String (GoString for %#v).
func (s *SigningKey) Format(f fmt.State, verb rune) { formatSafe(f, verb, s.String(), s.GoString()) }

// LogValue shows the key ID only.
func (s *SigningKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("signing_key_id", s.id))
}

// signer is the crypto.Signer handed out by SigningKey.Signer. It wraps the
// SigningKey rather than the ed25519.PrivateKey so that fmt and slog see the
// SigningKey's safe printing methods.
type signer struct{ k *SigningKey }

func (s signer) Public() crypto.PublicKey { return s.k.Public() }

func (s signer) Sign(r io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.k.priv.Sign(r, msg, opts)
}

func (s signer) String() string                { return s.k.String() }
func (s signer) GoString() string              { return s.k.GoString() }
func (s signer) Format(f fmt.State, verb rune) { s.k.Format(f, verb) }
func (s signer) LogValue() slog.Value          { return s.k.LogValue() }
