package token_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license/token"
)

const testAudience = "license.test"

// t0 is the fixed "now" of most tests.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var sentinels = []error{
	token.ErrMalformed, token.ErrSignature, token.ErrAlgorithm, token.ErrExpired,
	token.ErrNotYetValid, token.ErrAudience, token.ErrMissingClaim, token.ErrUnknownKey,
	token.ErrClosed, token.ErrIssuer, token.ErrLifetime,
}

// requireSentinel checks that err wraps want and no other sentinel, and that
// its message does not leak the token.
func requireSentinel(t testing.TB, err, want error, raw string) {
	t.Helper()
	require.Error(t, err)
	for _, s := range sentinels {
		if s == want {
			require.ErrorIs(t, err, s)
		} else {
			require.NotErrorIs(t, err, s, "error %q wraps extra sentinel", err)
		}
	}
	if len(raw) > 8 {
		require.NotContains(t, err.Error(), raw, "error message leaks the token")
	}
}

// clock is an injectable, settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testKeys holds the keys the table tests use.
type testKeys struct {
	ed      ed25519.PrivateKey // kid "ed", trusted, EdDSA
	ec      *ecdsa.PrivateKey  // kid "ec", trusted, ES256
	rogueEd ed25519.PrivateKey // not trusted
}

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, rogue, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return testKeys{ed: ed, ec: ec, rogueEd: rogue}
}

// publicJWKS returns a JWK Set of the given public keys by kid.
func publicJWKS(t testing.TB, keys map[string]crypto.PublicKey) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: keys[kid], KeyID: kid, Use: "sig"})
	}
	b, err := json.Marshal(set)
	require.NoError(t, err)
	return b
}

// writeAtomic replaces path with data the way operators are told to: a
// temporary file, then a rename.
func writeAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	require.NoError(t, os.WriteFile(tmp, data, 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// sign hand-crafts a compact JWS over claims with go-jose directly, as an
// operator's backend (or an attacker) would, with full control of alg and kid.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	obj, err := s.Sign(payload)
	require.NoError(t, err)
	raw, err := obj.CompactSerialize()
	require.NoError(t, err)
	return raw
}

// validClaims returns a claims set that verifies at t0, as a map so cases can
// drop or retype single claims.
func validClaims() map[string]any {
	return map[string]any{
		"sub":     "acct-1",
		"content": []string{"movie-1", "series-1/*"},
		"jti":     "jti-1",
		"aud":     testAudience,
		"iat":     t0.Add(-time.Minute).Unix(),
		"exp":     t0.Add(10 * time.Minute).Unix(),
	}
}

func with(set map[string]any, drop []string) map[string]any {
	c := validClaims()
	maps.Copy(c, set)
	for _, k := range drop {
		delete(c, k)
	}
	return c
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
