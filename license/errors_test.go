package license_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/license/token"
)

// unsignedToken is a JWT with "alg":"none" and no signature.
func unsignedToken(e *env) string {
	claims, _ := json.Marshal(map[string]any{"sub": "acct-1", "content": []string{movie}, "jti": "x", "aud": audience, "exp": e.clock.Now().Add(time.Hour).Unix()})
	return b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64.EncodeToString(claims) + "."
}

// hmacConfusionToken is signed HS256 with the issuer's public key as the
// HMAC secret: the classic algorithm confusion attack.
func hmacConfusionToken(t *testing.T, e *env) string {
	pub := e.issuer.PublicJWK()
	var raw []byte
	switch k := pub.Key.(type) {
	case []byte:
		raw = k
	default:
		b, _ := json.Marshal(pub)
		raw = b
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: raw}, (&jose.SignerOptions{}).WithHeader("kid", e.issuer.KeyID()))
	require.NoError(t, err)
	claims, _ := json.Marshal(map[string]any{"sub": "acct-1", "content": []string{movie}, "jti": "x", "aud": audience, "exp": e.clock.Now().Add(time.Hour).Unix()})
	jws, err := s.Sign(claims)
	require.NoError(t, err)
	out, err := jws.CompactSerialize()
	require.NoError(t, err)
	return out
}

// TestBadInput checks every refusal the issue lists: each is a 4xx with a
// stable code in a JSON error body.
func TestBadInput(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.MaxStreamsPerAccount = 1 }))
	ctx := context.Background()
	good := func() string { return e.token(t, "acct-1", []string{movie}) }
	pubKey := func() string {
		r, _ := rawLicenseKey(t)
		return r
	}
	licReq := func(nonce string, mods ...func(*license.LicenseRequest)) license.LicenseRequest {
		r := license.LicenseRequest{Content: movie, HPKEPublicKey: pubKey(), Nonce: nonce}
		for _, m := range mods {
			m(&r)
		}
		return r
	}
	type req struct {
		method, path, tok string
		body              any
		hdr               []string
	}
	tests := []struct {
		name   string
		req    func() req
		status int
		code   string
	}{
		{"malformed JSON", func() req {
			return req{"POST", "/v1/license", good(), []byte(`{"content":`), nil}
		}, 400, license.CodeMalformedRequest},
		{"unknown field", func() req {
			return req{"POST", "/v1/license", good(), []byte(`{"content":"movie-1","bogus":1}`), nil}
		}, 400, license.CodeMalformedRequest},
		{"wrong type", func() req {
			return req{"POST", "/v1/license", good(), []byte(`{"content":7}`), nil}
		}, 400, license.CodeMalformedRequest},
		{"oversized JSON", func() req {
			return req{"POST", "/v1/license", good(), []byte(`{"content":"` + strings.Repeat("a", 70<<10) + `"}`), nil}
		}, 413, license.CodeBodyTooLarge},
		{"wrong content type", func() req {
			return req{"POST", "/v1/license", good(), []byte(`{}`), []string{"Content-Type", "text/plain"}}
		}, 415, license.CodeUnsupportedMedia},
		{"bad public key", func() req {
			return req{"POST", "/v1/license", good(), licReq(e.nonce(t), func(r *license.LicenseRequest) { r.HPKEPublicKey = "AAAA" }), nil}
		}, 400, license.CodeInvalidPublicKey},
		{"unknown suite", func() req {
			return req{"POST", "/v1/license", good(), licReq(e.nonce(t), func(r *license.LicenseRequest) { r.Suite = "rsa" }), nil}
		}, 400, license.CodeUnsupportedSuite},
		{"three KIDs", func() req {
			return req{"POST", "/v1/license", good(), licReq(e.nonce(t), func(r *license.LicenseRequest) {
				r.KIDs = []string{e.movieKeys[0].KID().String(), e.movieKeys[1].KID().String(), e.movieKeys[2].KID().String()}
			}), nil}
		}, 400, license.CodeTooManyKIDs},
		{"forged nonce", func() req {
			return req{"POST", "/v1/license", good(), licReq(b64.EncodeToString(make([]byte, 32))), nil}
		}, 400, license.CodeInvalidNonce},
		{"unknown content", func() req {
			tok := e.token(t, "acct-1", []string{"*"})
			return req{"POST", "/v1/license", tok, licReq(e.nonce(t), func(r *license.LicenseRequest) { r.Content = "no-such-movie" }), nil}
		}, 404, license.CodeUnknownContent},
		{"unknown KID", func() req {
			return req{"POST", "/v1/license", good(), licReq(e.nonce(t), func(r *license.LicenseRequest) { r.KIDs = []string{strings.Repeat("ab", 16)} }), nil}
		}, 404, license.CodeUnknownKID},
		{"KID of other content", func() req {
			return req{"POST", "/v1/license", good(), licReq(e.nonce(t), func(r *license.LicenseRequest) { r.KIDs = []string{e.otherKeys[0].KID().String()} }), nil}
		}, 404, license.CodeUnknownKID},
		{"not entitled", func() req {
			return req{"POST", "/v1/license", good(), licReq(e.nonce(t), func(r *license.LicenseRequest) { r.Content = other }), nil}
		}, 403, license.CodeNotEntitled},
		{"no token", func() req {
			return req{"POST", "/v1/license", "", licReq(e.nonce(t)), nil}
		}, 401, license.CodeMissingToken},
		{"garbage token", func() req {
			return req{"POST", "/v1/license", "not-a-jwt", licReq(e.nonce(t)), nil}
		}, 401, license.CodeInvalidToken},
		{"expired token", func() req {
			tok := e.token(t, "acct-1", []string{movie}, func(c *token.Claims) {
				c.IssuedAt = e.clock.Now().Add(-2 * time.Hour)
				c.Expiry = e.clock.Now().Add(-time.Hour)
			})
			return req{"POST", "/v1/license", tok, licReq(e.nonce(t)), nil}
		}, 401, license.CodeTokenExpired},
		{"not-yet-valid token", func() req {
			tok := e.token(t, "acct-1", []string{movie}, func(c *token.Claims) { c.NotBefore = e.clock.Now().Add(10 * time.Minute) })
			return req{"POST", "/v1/license", tok, licReq(e.nonce(t)), nil}
		}, 401, license.CodeTokenNotYetValid},
		{"wrong-audience token", func() req {
			tok := e.token(t, "acct-1", []string{movie}, func(c *token.Claims) { c.Audience = []string{"someone-else"} })
			return req{"POST", "/v1/license", tok, licReq(e.nonce(t)), nil}
		}, 401, license.CodeTokenAudience},
		{"unsigned alg:none token", func() req {
			return req{"POST", "/v1/license", unsignedToken(e), licReq(e.nonce(t)), nil}
		}, 401, license.CodeTokenAlgorithm},
		{"HS256 confusion token", func() req {
			return req{"POST", "/v1/license", hmacConfusionToken(t, e), licReq(e.nonce(t)), nil}
		}, 401, license.CodeTokenAlgorithm},
		{"replayed nonce", func() req {
			n := e.nonce(t)
			r := e.do(t, "POST", "/v1/license", e.token(t, "acct-replay", []string{movie}), licReq(n))
			require.Equal(t, 200, r.status, "%s", r.body)
			return req{"POST", "/v1/license", e.token(t, "acct-replay2", []string{movie}), licReq(n), nil}
		}, 409, license.CodeNonceReplayed},
		{"revoked account", func() req {
			require.NoError(t, e.state.Revoke(ctx, license.RevokeAccount, "acct-revoked", e.clock.Now()))
			return req{"POST", "/v1/license", e.token(t, "acct-revoked", []string{movie}), licReq(e.nonce(t)), nil}
		}, 403, license.CodeAccountRevoked},
		{"too many concurrent streams", func() req {
			tok := e.token(t, "acct-busy", []string{movie})
			r := e.do(t, "POST", "/v1/license", tok, licReq(e.nonce(t)))
			require.Equal(t, 200, r.status, "%s", r.body)
			return req{"POST", "/v1/license", tok, licReq(e.nonce(t)), nil}
		}, 429, license.CodeTooManyStreams},
		{"ticket for another peer ID", func() req {
			var tr license.TicketResponse
			tok := good()
			r := e.do(t, "POST", "/v1/ticket", tok, ticketReq(t, keyA, movie, tok, e.clock.Now()))
			require.Equal(t, 200, r.status, "%s", r.body)
			require.NoError(t, json.Unmarshal(r.body, &tr))
			a := announceReq(t, keyA, tr.Encoded, []string{"/ip4/127.0.0.1/tcp/4001"}, e.clock.Now())
			a.PeerID = peerB
			return req{"POST", "/v1/announce", "", a, nil}
		}, 403, license.CodeTicketPeerMismatch},
		{"forged ticket", func() req {
			return req{"POST", "/v1/announce", "", announceReq(t, keyA, "e30."+b64.EncodeToString(make([]byte, 64))+"."+e.keyID, nil, e.clock.Now()), nil}
		}, 401, license.CodeInvalidTicket},
		{"bad peer ID", func() req {
			tr := ticketReq(t, keyA, movie, good(), e.clock.Now())
			tr.PeerID = "not a peer id!"
			return req{"POST", "/v1/ticket", good(), tr, nil}
		}, 400, license.CodeInvalidPeerID},
		{"ticket without a proof of possession", func() req {
			return req{"POST", "/v1/ticket", good(), license.TicketRequest{PeerID: peerA, Content: movie}, nil}
		}, 401, license.CodeInvalidProof},
		{"ticket proof from a skewed clock", func() req {
			tok := good()
			return req{"POST", "/v1/ticket", tok, ticketReq(t, keyA, movie, tok, e.clock.Now().Add(-time.Hour)), nil}
		}, 400, license.CodeProofTime},
		{"renew unknown session", func() req {
			return req{"POST", "/v1/license/renew", good(), license.RenewRequest{SessionID: "nope", HPKEPublicKey: pubKey(), Nonce: e.nonce(t)}, nil}
		}, 404, license.CodeUnknownSession},
		{"clearkey bad KID", func() req {
			return req{"POST", "/v1/clearkey", good(), []byte(`{"kids":["AAAA"],"type":"temporary"}`), nil}
		}, 400, license.CodeMalformedRequest},
		{"wrong method", func() req { return req{"GET", "/v1/license", "", nil, nil} }, 405, license.CodeMethodNotAllowed},
		{"unknown route", func() req { return req{"GET", "/v2/nothing", "", nil, nil} }, 404, license.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rq := tc.req()
			r := e.do(t, rq.method, rq.path, rq.tok, rq.body, rq.hdr...)
			require.Equal(t, tc.status, r.status, "body %s", r.body)
			require.Equal(t, tc.code, r.errCode(t))
			if tc.status == 429 {
				require.NotEmpty(t, r.header.Get("Retry-After"))
			}
		})
	}
}

func rawLicenseKey(t *testing.T) (string, error) {
	r, _ := rawKeyPair(t)
	return r, nil
}

func TestRateLimits(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.IPRate, c.IPBurst = rate.Limit(1), 3 }))
	for i := range 3 {
		r := e.do(t, "POST", "/v1/nonce", "", nil)
		require.Equal(t, 200, r.status, "request %d", i)
	}
	r := e.do(t, "POST", "/v1/nonce", "", nil)
	require.Equal(t, 429, r.status)
	require.Equal(t, license.CodeRateLimited, r.errCode(t))
	require.Equal(t, "1", r.header.Get("Retry-After"))
	e.clock.Add(2 * time.Second)
	require.Equal(t, 200, e.do(t, "POST", "/v1/nonce", "", nil).status)

	e2 := newEnv(t, withConfig(func(c *license.Config) { c.AccountRate, c.AccountBurst = rate.Limit(1), 2 }))
	tok := e2.token(t, "acct-1", []string{movie})
	codes := []int{}
	for range 3 {
		codes = append(codes, e2.do(t, "POST", "/v1/ticket", tok, ticketReq(t, keyA, movie, tok, e2.clock.Now())).status)
		e2.clock.Add(time.Millisecond) // each proof later than the last
	}
	require.Equal(t, []int{200, 200, 429}, codes)
}

func TestNoPanicOnHostileBodies(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{"*"})
	for _, path := range []string{"/v1/license", "/v1/license/renew", "/v1/clearkey", "/v1/ticket", "/v1/announce"} {
		for _, body := range [][]byte{nil, []byte("null"), []byte("[]"), []byte(`{"kids":null}`), bytes.Repeat([]byte("["), 5000), []byte(`{"position":-1}`), []byte(`{"want":1000}`), {0xff, 0xfe}} {
			r := e.do(t, "POST", path, tok, body)
			require.True(t, r.status >= 400 && r.status < 500, "%s %q: %d %s", path, body, r.status, r.body)
			r.errCode(t)
		}
	}
}
