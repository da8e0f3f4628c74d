package token_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license/token"
)

// newTestVerifier trusts k.ed as "ed" and k.ec as "ec" through a key set file.
func newTestVerifier(t *testing.T, k testKeys, clk *clock) *token.Verifier {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	writeAtomic(t, path, publicJWKS(t, map[string]crypto.PublicKey{"ed": k.ed.Public(), "ec": k.ec.Public()}))
	v, err := token.NewVerifier(token.VerifierConfig{
		KeySetFile: path,
		Audience:   testAudience,
		Leeway:     60 * time.Second,
		Now:        clk.Now,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, v.Close()) })
	return v
}

func TestVerify(t *testing.T) {
	k := newTestKeys(t)
	v := newTestVerifier(t, k, newClock(t0))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	edSigned := func(c map[string]any) func(*testing.T) string {
		return func(t *testing.T) string { return sign(t, jose.EdDSA, k.ed, "ed", c) }
	}
	b64 := base64.RawURLEncoding.EncodeToString
	valid := func(t *testing.T) string { return sign(t, jose.EdDSA, k.ed, "ed", validClaims()) }

	tests := []struct {
		name  string
		token func(t *testing.T) string
		want  error // nil: valid
	}{
		{"valid EdDSA", valid, nil},
		{"valid ES256", func(t *testing.T) string { return sign(t, jose.ES256, k.ec, "ec", validClaims()) }, nil},
		{"aud as array", edSigned(with(map[string]any{"aud": []string{"other", testAudience}}, nil)), nil},
		{"with nbf in the past and device", edSigned(with(map[string]any{"nbf": t0.Unix(), "device": "stb-1"}, nil)), nil},

		// Time checks, with a 60 s leeway.
		{"expired", edSigned(with(map[string]any{"exp": t0.Add(-10 * time.Minute).Unix()}, nil)), token.ErrExpired},
		{"59s past exp within leeway", edSigned(with(map[string]any{"exp": t0.Add(-59 * time.Second).Unix()}, nil)), nil},
		{"60s past exp at leeway", edSigned(with(map[string]any{"exp": t0.Add(-60 * time.Second).Unix()}, nil)), nil},
		{"61s past exp beyond leeway", edSigned(with(map[string]any{"exp": t0.Add(-61 * time.Second).Unix()}, nil)), token.ErrExpired},
		{"not yet valid", edSigned(with(map[string]any{"nbf": t0.Add(5 * time.Minute).Unix()}, nil)), token.ErrNotYetValid},
		{"nbf 59s ahead within leeway", edSigned(with(map[string]any{"nbf": t0.Add(59 * time.Second).Unix()}, nil)), nil},
		{"nbf 61s ahead beyond leeway", edSigned(with(map[string]any{"nbf": t0.Add(61 * time.Second).Unix()}, nil)), token.ErrNotYetValid},
		{"iat in the future", edSigned(with(map[string]any{"iat": t0.Add(5 * time.Minute).Unix()}, nil)), token.ErrNotYetValid},

		// Lifetime: at most 24 h by default, from iat and from now.
		{"24h from iat", edSigned(with(map[string]any{"exp": t0.Add(-time.Minute + 24*time.Hour).Unix()}, nil)), nil},
		{"ten years", edSigned(with(map[string]any{"exp": t0.Add(10 * 365 * 24 * time.Hour).Unix()}, nil)), token.ErrLifetime},
		{"ten years without iat", edSigned(with(map[string]any{"exp": t0.Add(10 * 365 * 24 * time.Hour).Unix()}, []string{"iat"})), token.ErrLifetime},
		{"25h from an old iat, 1h left", edSigned(with(map[string]any{"iat": t0.Add(-24 * time.Hour).Unix(), "exp": t0.Add(time.Hour).Unix()}, nil)), token.ErrLifetime},
		{"any iss when none is expected", edSigned(with(map[string]any{"iss": "whoever"}, nil)), nil},

		// Audience and required claims.
		{"wrong audience", edSigned(with(map[string]any{"aud": "other.test"}, nil)), token.ErrAudience},
		{"missing aud", edSigned(with(nil, []string{"aud"})), token.ErrAudience},
		{"missing sub", edSigned(with(nil, []string{"sub"})), token.ErrMissingClaim},
		{"empty sub", edSigned(with(map[string]any{"sub": ""}, nil)), token.ErrMissingClaim},
		{"missing jti", edSigned(with(nil, []string{"jti"})), token.ErrMissingClaim},
		{"missing exp", edSigned(with(nil, []string{"exp"})), token.ErrMissingClaim},
		{"missing content", edSigned(with(nil, []string{"content"})), token.ErrMissingClaim},
		{"empty content", edSigned(with(map[string]any{"content": []string{}}, nil)), token.ErrMissingClaim},
		{"empty content entry", edSigned(with(map[string]any{"content": []string{"movie-1", ""}}, nil)), token.ErrMalformed},
		{"content not an array", edSigned(with(map[string]any{"content": "movie-1"}, nil)), token.ErrMalformed},
		{"exp not a number", edSigned(with(map[string]any{"exp": "tomorrow"}, nil)), token.ErrMalformed},

		// Algorithm attacks.
		{"alg none", func(t *testing.T) string {
			return "eyJhbGciOiJub25lIn0." + b64(mustJSON(t, validClaims())) + "."
		}, token.ErrAlgorithm},
		{"alg none with kid", func(t *testing.T) string {
			return b64([]byte(`{"alg":"none","kid":"ed"}`)) + "." + b64(mustJSON(t, validClaims())) + "."
		}, token.ErrAlgorithm},
		{"HS256 keyed with the public key", func(t *testing.T) string {
			// The classic confusion attack: the verifier's public key is
			// public, so if HS256 were accepted with it as the HMAC secret,
			// anyone could mint tokens.
			return sign(t, jose.HS256, []byte(k.ed.Public().(ed25519.PublicKey)), "ed", validClaims())
		}, token.ErrAlgorithm},
		{"HS256 keyed with the key set file", func(t *testing.T) string {
			secret := publicJWKS(t, map[string]crypto.PublicKey{"ed": k.ed.Public()})
			return sign(t, jose.HS256, secret, "ed", validClaims())
		}, token.ErrAlgorithm},
		{"RS256", func(t *testing.T) string { return sign(t, jose.RS256, rsaKey, "ed", validClaims()) }, token.ErrAlgorithm},
		{"kid of ES256 key, signed EdDSA", func(t *testing.T) string {
			return sign(t, jose.EdDSA, k.ed, "ec", validClaims())
		}, token.ErrAlgorithm},
		{"kid of EdDSA key, signed ES256", func(t *testing.T) string {
			return sign(t, jose.ES256, k.ec, "ed", validClaims())
		}, token.ErrAlgorithm},

		// Keys and signatures.
		{"unknown kid", func(t *testing.T) string { return sign(t, jose.EdDSA, k.rogueEd, "rogue", validClaims()) }, token.ErrUnknownKey},
		{"unknown key under a trusted kid", func(t *testing.T) string { return sign(t, jose.EdDSA, k.rogueEd, "ed", validClaims()) }, token.ErrSignature},
		{"no kid with two trusted keys", func(t *testing.T) string { return sign(t, jose.EdDSA, k.ed, "", validClaims()) }, token.ErrUnknownKey},
		{"payload swapped", func(t *testing.T) string {
			parts := strings.Split(valid(t), ".")
			parts[1] = b64(mustJSON(t, with(map[string]any{"sub": "acct-2"}, nil)))
			return strings.Join(parts, ".")
		}, token.ErrSignature},
		{"signature truncated", func(t *testing.T) string {
			raw := valid(t)
			return raw[:len(raw)-4]
		}, token.ErrSignature},
		{"signed payload not JSON", func(t *testing.T) string {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: k.ed},
				(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), "ed"))
			require.NoError(t, err)
			obj, err := s.Sign([]byte("not json"))
			require.NoError(t, err)
			raw, err := obj.CompactSerialize()
			require.NoError(t, err)
			return raw
		}, token.ErrMalformed},

		// Malformed input.
		{"empty", func(*testing.T) string { return "" }, token.ErrMalformed},
		{"garbage", func(*testing.T) string { return "not a token" }, token.ErrMalformed},
		{"two parts", func(*testing.T) string { return "eyJhbGciOiJFZERTQSJ9.e30" }, token.ErrMalformed},
		{"four parts", func(t *testing.T) string { return valid(t) + ".x" }, token.ErrMalformed},
		{"bad base64 header", func(*testing.T) string { return "!!!.e30.AAAA" }, token.ErrMalformed},
		{"header not JSON", func(*testing.T) string { return b64([]byte("nope")) + ".e30.AAAA" }, token.ErrMalformed},
		{"JSON serialization", func(*testing.T) string {
			return `{"payload":"e30","protected":"eyJhbGciOiJFZERTQSJ9","signature":"AAAA"}`
		}, token.ErrMalformed},
		{"whitespace padded", func(t *testing.T) string { return " " + valid(t) }, token.ErrMalformed},
		{"oversize", func(t *testing.T) string {
			return sign(t, jose.EdDSA, k.ed, "ed", with(map[string]any{"pad": strings.Repeat("x", token.MaxTokenSize)}, nil))
		}, token.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.token(t)
			c, err := v.Verify(raw)
			if tt.want == nil {
				require.NoError(t, err)
				require.Equal(t, "acct-1", c.Account)
				require.Equal(t, "jti-1", c.ID)
				require.True(t, c.Entitles("movie-1"))
				return
			}
			require.Nil(t, c)
			requireSentinel(t, err, tt.want, raw)
		})
	}
}

// TestVerifyIssuerAndMaxLifetime: a verifier with expected issuers refuses
// others and a missing iss; MaxLifetime is configurable and negative turns
// it off.
func TestVerifyIssuerAndMaxLifetime(t *testing.T) {
	k := newTestKeys(t)
	newV := func(issuers []string, maxLife time.Duration) *token.Verifier {
		v, err := token.NewVerifier(token.VerifierConfig{Audience: testAudience, Now: newClock(t0).Now, Issuers: issuers, MaxLifetime: maxLife,
			ExtraKeys: []jose.JSONWebKey{{Key: k.ed.Public(), KeyID: "ed", Algorithm: string(jose.EdDSA)}}})
		require.NoError(t, err)
		return v
	}
	tok := func(set map[string]any, drop ...string) string {
		return sign(t, jose.EdDSA, k.ed, "ed", with(set, drop))
	}
	v := newV([]string{"https://a.example", "https://b.example"}, 0)
	for _, tc := range []struct {
		name string
		raw  string
		want error
	}{
		{"first issuer", tok(map[string]any{"iss": "https://a.example"}), nil},
		{"second issuer", tok(map[string]any{"iss": "https://b.example"}), nil},
		{"other issuer", tok(map[string]any{"iss": "https://evil.example"}), token.ErrIssuer},
		{"no issuer", tok(nil), token.ErrIssuer},
	} {
		_, err := v.Verify(tc.raw)
		if tc.want == nil {
			require.NoError(t, err, tc.name)
		} else {
			requireSentinel(t, err, tc.want, tc.raw)
		}
	}
	long := tok(map[string]any{"exp": t0.Add(48 * time.Hour).Unix()})
	_, err := newV(nil, 72*time.Hour).Verify(long)
	require.NoError(t, err)
	_, err = newV(nil, time.Hour).Verify(long)
	requireSentinel(t, err, token.ErrLifetime, long)
	_, err = newV(nil, -1).Verify(tok(map[string]any{"exp": t0.Add(10 * 365 * 24 * time.Hour).Unix()}))
	require.NoError(t, err, "negative MaxLifetime: no limit")
	_, err = token.NewVerifier(token.VerifierConfig{Audience: testAudience, Issuers: []string{""}, ExtraKeys: []jose.JSONWebKey{{Key: k.ed.Public(), KeyID: "ed"}}})
	require.Error(t, err)
}

func TestVerifyClaimsRoundTrip(t *testing.T) {
	k := newTestKeys(t)
	v := newTestVerifier(t, k, newClock(t0))
	raw := sign(t, jose.ES256, k.ec, "ec", with(map[string]any{"nbf": t0.Unix(), "device": "stb-9"}, nil))
	c, err := v.Verify(raw)
	require.NoError(t, err)
	require.Equal(t, &token.Claims{
		Account:   "acct-1",
		Content:   []string{"movie-1", "series-1/*"},
		Device:    "stb-9",
		ID:        "jti-1",
		Audience:  []string{testAudience},
		IssuedAt:  t0.Add(-time.Minute),
		NotBefore: t0,
		Expiry:    t0.Add(10 * time.Minute),
	}, c)
}

func TestVerifyNoKIDSingleKey(t *testing.T) {
	k := newTestKeys(t)
	v, err := token.NewVerifier(token.VerifierConfig{
		Audience:  testAudience,
		Now:       newClock(t0).Now,
		ExtraKeys: []jose.JSONWebKey{{Key: k.ed.Public(), KeyID: "ed"}},
	})
	require.NoError(t, err)
	defer v.Close()

	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"no kid, one key", sign(t, jose.EdDSA, k.ed, "", validClaims()), nil},
		{"no kid, wrong key", sign(t, jose.EdDSA, k.rogueEd, "", validClaims()), token.ErrSignature},
		{"no kid, wrong alg for the key", sign(t, jose.ES256, k.ec, "", validClaims()), token.ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(tt.raw)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			requireSentinel(t, err, tt.want, tt.raw)
		})
	}
}

func TestVerifyDefaultLeeway(t *testing.T) {
	k := newTestKeys(t)
	v, err := token.NewVerifier(token.VerifierConfig{
		Audience:  testAudience,
		Now:       newClock(t0).Now,
		ExtraKeys: []jose.JSONWebKey{{Key: k.ed.Public(), KeyID: "ed"}},
	})
	require.NoError(t, err)
	defer v.Close()

	_, err = v.Verify(sign(t, jose.EdDSA, k.ed, "ed", with(map[string]any{"exp": t0.Add(-29 * time.Second).Unix()}, nil)))
	require.NoError(t, err)
	_, err = v.Verify(sign(t, jose.EdDSA, k.ed, "ed", with(map[string]any{"exp": t0.Add(-31 * time.Second).Unix()}, nil)))
	require.ErrorIs(t, err, token.ErrExpired)
}

func TestVerifyAfterClose(t *testing.T) {
	k := newTestKeys(t)
	v := newTestVerifier(t, k, newClock(t0))
	raw := sign(t, jose.EdDSA, k.ed, "ed", validClaims())
	_, err := v.Verify(raw)
	require.NoError(t, err)
	require.NoError(t, v.Close())
	require.NoError(t, v.Close(), "Close is idempotent")
	_, err = v.Verify(raw)
	requireSentinel(t, err, token.ErrClosed, raw)
}

func TestNewVerifierConfig(t *testing.T) {
	k := newTestKeys(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	good := filepath.Join(dir, "good.json")
	writeAtomic(t, good, publicJWKS(t, map[string]crypto.PublicKey{"ed": k.ed.Public()}))
	privJWK, err := (&jose.JSONWebKey{Key: k.ed, KeyID: "ed"}).MarshalJSON()
	require.NoError(t, err)
	edPub := jose.JSONWebKey{Key: k.ed.Public(), KeyID: "ed"}

	tests := []struct {
		name    string
		cfg     token.VerifierConfig
		wantErr string // empty: success
	}{
		{"file only", token.VerifierConfig{KeySetFile: good, Audience: testAudience}, ""},
		{"extra keys only", token.VerifierConfig{Audience: testAudience, ExtraKeys: []jose.JSONWebKey{edPub}}, ""},
		{"private extra key reduced to public", token.VerifierConfig{Audience: testAudience, ExtraKeys: []jose.JSONWebKey{{Key: k.ed, KeyID: "ed"}}}, ""},
		{"leeway 60s", token.VerifierConfig{KeySetFile: good, Audience: testAudience, Leeway: 60 * time.Second}, ""},
		{"leeway 61s", token.VerifierConfig{KeySetFile: good, Audience: testAudience, Leeway: 61 * time.Second}, "Leeway"},
		{"negative leeway", token.VerifierConfig{KeySetFile: good, Audience: testAudience, Leeway: -time.Second}, "Leeway"},
		{"negative reload interval", token.VerifierConfig{KeySetFile: good, Audience: testAudience, ReloadInterval: -time.Second}, "ReloadInterval"},
		{"no audience", token.VerifierConfig{KeySetFile: good}, "Audience"},
		{"no keys", token.VerifierConfig{Audience: testAudience}, "no trusted keys"},
		{"empty key set", token.VerifierConfig{KeySetFile: file("empty.json", `{"keys":[]}`), Audience: testAudience}, "no trusted keys"},
		{"missing file", token.VerifierConfig{KeySetFile: filepath.Join(dir, "nope.json"), Audience: testAudience}, "no such file"},
		{"not JSON", token.VerifierConfig{KeySetFile: file("bad.json", `nope`), Audience: testAudience}, "parse JWK set"},
		{"private key in file", token.VerifierConfig{KeySetFile: file("priv.json", `{"keys":[`+string(privJWK)+`]}`), Audience: testAudience}, "private key material"},
		{"RSA key in file", token.VerifierConfig{KeySetFile: file("rsa.json", string(publicJWKS(t, map[string]crypto.PublicKey{"rsa": rsaKey.Public()}))), Audience: testAudience}, "unsupported key type"},
		{"alg contradicts key type", token.VerifierConfig{Audience: testAudience, ExtraKeys: []jose.JSONWebKey{{Key: k.ed.Public(), KeyID: "ed", Algorithm: "ES256"}}}, "does not match key type"},
		{"encryption key", token.VerifierConfig{Audience: testAudience, ExtraKeys: []jose.JSONWebKey{{Key: k.ed.Public(), KeyID: "ed", Use: "enc"}}}, "use"},
		{"duplicate kid across file and extra", token.VerifierConfig{KeySetFile: good, Audience: testAudience, ExtraKeys: []jose.JSONWebKey{edPub}}, "duplicate key ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := token.NewVerifier(tt.cfg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, v.Close())
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), `"d"`, "error must not echo private key material")
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
