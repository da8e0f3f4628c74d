package license_test

import (
	"crypto/hpke"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/license/token"
)

// lowOrderX25519 are X25519 public keys whose shared secret with any private
// key is all zeros (RFC 7748 §6.1): 0, 1 and a point of order 8.
var lowOrderX25519 = []string{
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
}

// TestLowOrderPublicKeyRefused is issue 12's L1: a license or renewal
// request whose HPKE public key is low-order gets 400 invalid_public_key,
// and neither its nonce nor a stream slot is used up: with one stream
// allowed, the same nonce then buys a license.
func TestLowOrderPublicKeyRefused(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.MaxStreamsPerAccount = 1 }))
	tok := e.token(t, "acct-1", []string{movie})

	// A hybrid key whose X25519 half is all zeros, beside a real ML-KEM half.
	hybrid, err := hpke.MLKEM768X25519().GenerateKey()
	require.NoError(t, err)
	hyb := hybrid.PublicKey().Bytes()
	clear(hyb[len(hyb)-32:])

	nonce := e.nonce(t)
	type bad struct {
		suite license.Suite
		key   []byte
	}
	var cases []bad
	for _, h := range lowOrderX25519 {
		k, err := hex.DecodeString(h)
		require.NoError(t, err)
		cases = append(cases, bad{license.SuiteX25519, k})
	}
	cases = append(cases, bad{license.SuiteMLKEM768X25519, hyb}, bad{license.SuiteX25519, make([]byte, 31)})
	for i, c := range cases {
		r := e.do(t, http.MethodPost, "/v1/license", tok, license.LicenseRequest{
			Content: movie, HPKEPublicKey: b64.EncodeToString(c.key), Suite: c.suite, Nonce: nonce})
		require.Equal(t, http.StatusBadRequest, r.status, "case %d: %s", i, r.body)
		require.Equal(t, license.CodeInvalidPublicKey, r.errCode(t), "case %d", i)
	}

	// The account can still get a license, with that very nonce.
	pub, _ := rawKeyPair(t)
	r := e.do(t, http.MethodPost, "/v1/license", tok, license.LicenseRequest{Content: movie, HPKEPublicKey: pub, Nonce: nonce})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	// Renewals check the key the same way, before the nonce is used.
	c := e.client(t, tok)
	e.clock.Add(license.DefaultLicenseTTL + time.Second) // the raw session above lapses
	l, err := c.License(t.Context(), license.KeyRequest{Content: movie})
	require.NoError(t, err)
	nonce = e.nonce(t)
	r = e.do(t, http.MethodPost, "/v1/license/renew", tok, license.RenewRequest{
		SessionID: l.SessionID, HPKEPublicKey: b64.EncodeToString(make([]byte, 32)), Nonce: nonce})
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	require.Equal(t, license.CodeInvalidPublicKey, r.errCode(t))
	r = e.do(t, http.MethodPost, "/v1/license/renew", tok, license.RenewRequest{SessionID: l.SessionID, HPKEPublicKey: pub, Nonce: nonce})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
}

// TestTokenLifetimeAndIssuer is issue 12's L7: a token valid for ten years,
// or from another issuer, is refused with 401 by a running server; a
// day-long token of the expected issuer is accepted.
func TestTokenLifetimeAndIssuer(t *testing.T) {
	e := newEnv(t, withVerifier(func(c *token.VerifierConfig) { c.Issuers = []string{"https://backend.example"} }))
	iss := func(s string) func(*token.Claims) { return func(c *token.Claims) { c.Issuer = s } }
	exp := func(d time.Duration) func(*token.Claims) {
		return func(c *token.Claims) { c.Expiry = c.IssuedAt.Add(d) }
	}
	for _, tc := range []struct {
		name string
		mods []func(*token.Claims)
		want string // "" for success
	}{
		{"expected issuer, 1h", []func(*token.Claims){iss("https://backend.example")}, ""},
		{"expected issuer, 24h", []func(*token.Claims){iss("https://backend.example"), exp(24 * time.Hour)}, ""},
		{"ten years", []func(*token.Claims){iss("https://backend.example"), exp(10 * 365 * 24 * time.Hour)}, license.CodeTokenLifetime},
		{"25h", []func(*token.Claims){iss("https://backend.example"), exp(25 * time.Hour)}, license.CodeTokenLifetime},
		{"25h from an iat 20h ago", []func(*token.Claims){iss("https://backend.example"), func(c *token.Claims) {
			c.IssuedAt, c.Expiry = c.IssuedAt.Add(-20*time.Hour), c.IssuedAt.Add(5*time.Hour)
		}}, license.CodeTokenLifetime},
		{"other issuer", []func(*token.Claims){iss("https://evil.example")}, license.CodeTokenIssuer},
		{"dev issuer", nil, license.CodeTokenIssuer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.token(t, "acct-"+tc.name, []string{movie}, tc.mods...)
			_, err := e.client(t, tok).License(t.Context(), license.KeyRequest{Content: movie})
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, tc.want, apiCode(t, err))
		})
	}
}
