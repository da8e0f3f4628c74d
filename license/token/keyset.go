package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	_ "crypto/sha256" // crypto.SHA256 for Thumbprint
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	jose "github.com/go-jose/go-jose/v4"
)

// maxKeySetFileSize bounds how much of the key set file is read. A real set
// holds a handful of keys (a few hundred bytes each); the bound keeps a
// misconfigured path (a log file, /dev/zero) from exhausting memory.
const maxKeySetFileSize = 1 << 20

// trustedKey is one verification key, with the single algorithm it may verify.
type trustedKey struct {
	kid string
	alg jose.SignatureAlgorithm
	pub crypto.PublicKey // ed25519.PublicKey or *ecdsa.PublicKey (P-256)
}

// keySet is an immutable snapshot of the trusted keys.
type keySet struct {
	all   []trustedKey
	byKID map[string]trustedKey
}

// lookup selects the key for a token's "kid".
func (s *keySet) lookup(kid string) (trustedKey, bool) {
	if kid == "" {
		// Without a kid there is no way to choose among several keys, and
		// trying each in turn would let a token signed by any trusted key
		// stand in for another's. Accept it only when the choice is trivial.
		if len(s.all) == 1 {
			return s.all[0], true
		}
		return trustedKey{}, false
	}
	k, ok := s.byKID[kid]
	return k, ok
}

// newKeySet validates keys and indexes them by kid. Duplicate kids are refused:
// a kid must name exactly one key or key selection becomes ambiguous.
func newKeySet(keys []trustedKey) (*keySet, error) {
	s := &keySet{all: keys, byKID: make(map[string]trustedKey, len(keys))}
	for _, k := range keys {
		if _, dup := s.byKID[k.kid]; dup {
			return nil, fmt.Errorf("duplicate key ID %q", k.kid)
		}
		s.byKID[k.kid] = k
	}
	return s, nil
}

// toTrustedKey checks that a JWK is a public Ed25519 or P-256 signing key and
// derives the one algorithm it may verify. A key's declared "alg", if any, must
// agree with its type, so a key set cannot widen what a key is trusted for.
func toTrustedKey(k jose.JSONWebKey) (trustedKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return trustedKey{}, fmt.Errorf("key %q: use %q, want \"sig\"", k.KeyID, k.Use)
	}
	var alg jose.SignatureAlgorithm
	var pub crypto.PublicKey
	switch key := k.Key.(type) {
	case ed25519.PublicKey:
		alg, pub = jose.EdDSA, key
	case *ecdsa.PublicKey:
		if key.Curve != elliptic.P256() {
			return trustedKey{}, fmt.Errorf("key %q: ECDSA curve %s, want P-256", k.KeyID, key.Curve.Params().Name)
		}
		alg, pub = jose.ES256, key
	case ed25519.PrivateKey, *ecdsa.PrivateKey:
		return trustedKey{}, fmt.Errorf("key %q: has private key material; the key set holds public keys only", k.KeyID)
	default:
		return trustedKey{}, fmt.Errorf("key %q: unsupported key type %T, want Ed25519 (OKP) or ECDSA P-256 (EC)", k.KeyID, k.Key)
	}
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return trustedKey{}, fmt.Errorf("key %q: alg %q does not match key type (want %q)", k.KeyID, k.Algorithm, alg)
	}
	return trustedKey{kid: k.KeyID, alg: alg, pub: pub}, nil
}

// parseKeySet parses a JWK Set document into trusted keys.
func parseKeySet(data []byte) ([]trustedKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("parse JWK set: %w", err)
	}
	keys := make([]trustedKey, 0, len(set.Keys))
	for i, k := range set.Keys {
		tk, err := toTrustedKey(k)
		if err != nil {
			return nil, fmt.Errorf("JWK set entry %d: %w", i, err)
		}
		keys = append(keys, tk)
	}
	return keys, nil
}

// readKeySetFile reads and parses the key set file, returning the FileInfo of
// the very file read (not of the path later), so a change racing the read is
// seen at the next check.
func readKeySetFile(path string) ([]trustedKey, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeySetFileSize+1))
	if err != nil {
		return nil, fi, err
	}
	if len(data) > maxKeySetFileSize {
		return nil, fi, fmt.Errorf("key set file larger than %d bytes", maxKeySetFileSize)
	}
	keys, err := parseKeySet(data)
	return keys, fi, err
}

// sameFile reports whether a and b describe the same, unchanged file: same
// inode (an atomic rename replaces it), size and modification time.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return false
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// KeyID returns the key ID this package derives for a public key: the first 8
// bytes, in hex, of its RFC 7638 JWK thumbprint (SHA-256). Any other unique
// string works as a kid; this one is stable and needs no bookkeeping.
func KeyID(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return hex.EncodeToString(tp[:8]), nil
}

var errNoKeys = errors.New("no trusted keys: set KeySetFile or ExtraKeys")
