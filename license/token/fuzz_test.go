package token_test

import (
	"crypto"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license/token"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, every
// failure must wrap a sentinel without echoing the input, and nothing but the
// seeded valid tokens' claims may ever verify (the fuzzer cannot forge a
// signature; it may find equivalent encodings of a valid token).
func FuzzVerify(f *testing.F) {
	k := newTestKeys(f)
	path := filepath.Join(f.TempDir(), "keys.json")
	writeAtomic(f, path, publicJWKS(f, map[string]crypto.PublicKey{"ed": k.ed.Public(), "ec": k.ec.Public()}))
	v, err := token.NewVerifier(token.VerifierConfig{
		KeySetFile:     path,
		Audience:       testAudience,
		Now:            func() time.Time { return t0 },
		ReloadInterval: time.Hour,
	})
	require.NoError(f, err)
	f.Cleanup(func() { v.Close() })

	b64 := base64.RawURLEncoding.EncodeToString
	valid := sign(f, jose.EdDSA, k.ed, "ed", validClaims())
	f.Add(valid)
	f.Add(sign(f, jose.ES256, k.ec, "ec", validClaims()))
	f.Add(sign(f, jose.EdDSA, k.ed, "ec", validClaims()))
	f.Add(sign(f, jose.EdDSA, k.ed, "ed", with(map[string]any{"content": "x", "aud": 7}, []string{"exp"})))
	f.Add("eyJhbGciOiJub25lIn0." + b64(mustJSON(f, validClaims())) + ".")
	f.Add(b64([]byte(`{"alg":"EdDSA","kid":"ed","crit":["b64"],"b64":false}`)) + ".e30.AAAA")
	f.Add(strings.Join(strings.Split(valid, ".")[:2], "."))
	f.Add(`{"payload":"e30","protected":"eyJhbGciOiJFZERTQSJ9","signature":"AAAA"}`)
	f.Add("")
	f.Add("...")

	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(raw)
		if err != nil {
			require.Nil(t, c)
			require.True(t, isSentinel(err), "error %q wraps no sentinel", err)
			if len(raw) > 16 {
				require.NotContains(t, err.Error(), raw)
			}
			return
		}
		require.Equal(t, "jti-1", c.ID, "only seeded claims can verify")
		require.Equal(t, "acct-1", c.Account)
	})
}
