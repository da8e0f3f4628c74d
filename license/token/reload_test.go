package token_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license/token"
)

func TestKeySetReload(t *testing.T) {
	newKey := func(t *testing.T) ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		return k
	}
	oldKey, newKeyA := newKey(t), newKey(t)
	keySet := func(keys map[string]ed25519.PrivateKey) []byte {
		pub := map[string]crypto.PublicKey{}
		for kid, k := range keys {
			pub[kid] = k.Public()
		}
		return publicJWKS(t, pub)
	}
	tok := func(t *testing.T, k ed25519.PrivateKey, kid string) string {
		return sign(t, jose.EdDSA, k, kid, validClaims())
	}

	type step struct {
		name    string
		write   map[string]ed25519.PrivateKey // if non-nil, replace the file with these keys first
		garbage bool                          // replace the file with an invalid one first
		advance time.Duration                 // then move the clock
		key     ed25519.PrivateKey
		kid     string
		want    error
	}
	// One scenario, played in order: each step depends on the file and clock
	// state the previous ones left.
	steps := []step{
		{name: "old key trusted at start", key: oldKey, kid: "old"},
		{name: "new key unknown before rotation", key: newKeyA, kid: "new", want: token.ErrUnknownKey},
		{name: "new key trusted right after the file gains it (unknown kid forces a check)",
			write: map[string]ed25519.PrivateKey{"old": oldKey, "new": newKeyA}, key: newKeyA, kid: "new"},
		{name: "old key still trusted during overlap", key: oldKey, kid: "old"},
		{name: "old key removed: still trusted until the next periodic check",
			write: map[string]ed25519.PrivateKey{"new": newKeyA}, advance: 500 * time.Millisecond, key: oldKey, kid: "old"},
		{name: "old key removed: refused after the reload interval",
			advance: time.Second, key: oldKey, kid: "old", want: token.ErrUnknownKey},
		{name: "new key survives a broken file", garbage: true, advance: 2 * time.Second, key: newKeyA, kid: "new"},
		{name: "broken file does not make unknown keys known", key: oldKey, kid: "old", want: token.ErrUnknownKey},
		{name: "fixed file is picked up", write: map[string]ed25519.PrivateKey{"old": oldKey}, key: oldKey, kid: "old"},
		{name: "dropped key refused after fix", advance: 2 * time.Second, key: newKeyA, kid: "new", want: token.ErrUnknownKey},
	}

	path := filepath.Join(t.TempDir(), "keys.json")
	writeAtomic(t, path, keySet(map[string]ed25519.PrivateKey{"old": oldKey}))
	clk := newClock(t0)
	v, err := token.NewVerifier(token.VerifierConfig{
		KeySetFile:     path,
		Audience:       testAudience,
		ReloadInterval: time.Second,
		Now:            clk.Now,
	})
	require.NoError(t, err)
	defer v.Close()

	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			// validClaims are valid at t0 ± 10 minutes; the steps advance far less.
			if s.write != nil {
				writeAtomic(t, path, keySet(s.write))
			}
			if s.garbage {
				writeAtomic(t, path, []byte(`{"keys": [`))
			}
			clk.Advance(s.advance)
			raw := tok(t, s.key, s.kid)
			_, err := v.Verify(raw)
			if s.want == nil {
				require.NoError(t, err)
				return
			}
			requireSentinel(t, err, s.want, raw)
		})
	}
}

// TestKeySetReloadConcurrent runs Verify from many goroutines while the key
// set file is rewritten, for the race detector.
func TestKeySetReloadConcurrent(t *testing.T) {
	k := newTestKeys(t)
	path := filepath.Join(t.TempDir(), "keys.json")
	writeAtomic(t, path, publicJWKS(t, map[string]crypto.PublicKey{"ed": k.ed.Public()}))
	v, err := token.NewVerifier(token.VerifierConfig{
		KeySetFile:     path,
		Audience:       testAudience,
		ReloadInterval: time.Nanosecond,
		Now:            func() time.Time { return t0.Add(time.Duration(time.Now().UnixNano() % 1e6)) },
	})
	require.NoError(t, err)
	defer v.Close()
	raw := sign(t, jose.EdDSA, k.ed, "ed", validClaims())

	done := make(chan error)
	for range 8 {
		go func() {
			var err error
			for range 200 {
				if _, err = v.Verify(raw); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for i := range 20 {
		kids := map[string]crypto.PublicKey{"ed": k.ed.Public()}
		if i%2 == 0 {
			kids["ec"] = k.ec.Public()
		}
		writeAtomic(t, path, publicJWKS(t, kids))
	}
	for range 8 {
		require.NoError(t, <-done)
	}
}
