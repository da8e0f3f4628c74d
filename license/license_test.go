package license_test

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/license/token"
	"github.com/sealmesh/sealmesh/segment"
)

func apiCode(t *testing.T, err error) string {
	t.Helper()
	var ae *license.APIError
	require.True(t, errors.As(err, &ae), "want an *APIError, got %v", err)
	return ae.Code
}

func TestLicenseRoundTrip(t *testing.T) {
	for _, suite := range []license.Suite{license.SuiteX25519, license.SuiteMLKEM768X25519} {
		t.Run(string(suite), func(t *testing.T) {
			e := newEnv(t)
			c := e.client(t, e.token(t, "acct-1", []string{"movie-*"}), func(cc *license.ClientConfig) { cc.Suite = suite; cc.DeviceID = "dev-1" })
			l, err := c.License(context.Background(), license.KeyRequest{Content: movie})
			require.NoError(t, err)
			ks := l.Keys()
			require.Len(t, ks, 2, "the first two periods at position 0")
			for i, k := range ks {
				require.Equal(t, e.movieKeys[i].KID(), k.KID())
				require.Equal(t, e.movieKeys[i].InsecureRawKey(), k.InsecureRawKey())
			}
			require.Equal(t, e.clock.Now().Add(license.DefaultLicenseTTL), l.Expiry)
			require.Equal(t, e.clock.Now().Add(3*time.Minute), l.RenewAfter)
			require.Equal(t, "dev-1", l.DeviceID)
			require.NotContains(t, l.String(), fmt.Sprintf("%x", ks[0].InsecureRawKey()), "License prints KIDs only")
			require.NotContains(t, l.AccountHash, "acct-1")
			require.Len(t, l.AccountHash, 64)

			// By KIDs: the third period only.
			l2, err := c.License(context.Background(), license.KeyRequest{Content: movie, KIDs: []keys.KID{e.movieKeys[2].KID()}})
			require.NoError(t, err)
			require.Len(t, l2.Keys(), 1)
			require.Equal(t, e.movieKeys[2].InsecureRawKey(), l2.Keys()[0].InsecureRawKey())
		})
	}
}

func TestLicensePositionWithCatalog(t *testing.T) {
	cat := license.ManifestCatalog{}
	e := newEnv(t, withCatalog(cat))
	cat[movie] = &segment.Manifest{Periods: []segment.Period{
		{Index: 0, KID: e.movieKeys[0].KID().String(), Start: 0},
		{Index: 1, KID: e.movieKeys[1].KID().String(), Start: 60},
		{Index: 2, KID: e.movieKeys[2].KID().String(), Start: 120},
	}}
	c := e.client(t, e.token(t, "acct-1", []string{movie}))
	for _, tc := range []struct {
		pos  float64
		want []int
	}{{0, []int{0, 1}}, {59.9, []int{0, 1}}, {60, []int{1, 2}}, {130, []int{2}}} {
		pos := tc.pos
		l, err := c.License(context.Background(), license.KeyRequest{Content: movie, Position: &pos})
		require.NoError(t, err)
		var got []int
		for _, k := range l.Keys() {
			got = append(got, k.Period())
		}
		require.Equal(t, tc.want, got, "position %v", pos)
	}
}

func TestPositionWithoutCatalog(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, e.token(t, "acct-1", []string{movie}))
	pos := 90.0
	_, err := c.License(context.Background(), license.KeyRequest{Content: movie, Position: &pos})
	require.Equal(t, license.CodePositionUnsupport, apiCode(t, err))
}

// rawLicense asks for a license without the Client, returning the raw answer
// and the private key.
func rawLicense(t *testing.T, e *env, tok, nonce string) (response, hpke.PrivateKey) {
	t.Helper()
	priv, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	r := e.do(t, http.MethodPost, "/v1/license", tok, license.LicenseRequest{
		Content: movie, HPKEPublicKey: b64.EncodeToString(priv.PublicKey().Bytes()), Nonce: nonce,
	})
	return r, priv
}

func TestReplayedNonceRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{movie})
	n := e.nonce(t)
	r, _ := rawLicense(t, e, tok, n)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	r, _ = rawLicense(t, e, tok, n)
	require.Equal(t, http.StatusConflict, r.status)
	require.Equal(t, license.CodeNonceReplayed, r.errCode(t))

	// Used nonces survive a restart.
	e.restart(t)
	r, _ = rawLicense(t, e, tok, n)
	require.Equal(t, http.StatusConflict, r.status)
	require.Equal(t, license.CodeNonceReplayed, r.errCode(t))

	// Nonce expiry.
	n2 := e.nonce(t)
	e.clock.Add(license.DefaultNonceTTL + time.Second)
	r, _ = rawLicense(t, e, tok, n2)
	require.Equal(t, license.CodeNonceExpired, r.errCode(t))
}

func TestCapturedLicenseUselessWithoutPrivateKey(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{movie})
	r, priv := rawLicense(t, e, tok, e.nonce(t))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var lr license.LicenseResponse
	require.NoError(t, json.Unmarshal(r.body, &lr))
	payload, err := b64.DecodeString(lr.License)
	require.NoError(t, err)
	var p license.LicensePayload
	require.NoError(t, json.Unmarshal(payload, &p))
	require.Len(t, p.Keys, 2)
	require.NotContains(t, string(r.body), b64.EncodeToString(e.movieKeys[0].InsecureRawKey()))

	// One HPKE context per license: info binds the license ID, each key's
	// AAD its KID and period, and the sequence number its place.
	info := func(licenseID string) []byte { return []byte("sealmesh license v1\x00" + licenseID) }
	aad := func(wk license.WrappedKey) []byte { return []byte(fmt.Sprintf("kid:%s|period:%d", wk.KID, wk.Period)) }
	enc, err := b64.DecodeString(p.Enc)
	require.NoError(t, err)
	ct := make([][]byte, len(p.Keys))
	for i, wk := range p.Keys {
		ct[i], err = b64.DecodeString(wk.CT)
		require.NoError(t, err)
	}
	open := func(priv hpke.PrivateKey, licenseID string, aads [][]byte, cts [][]byte) ([][]byte, error) {
		r, err := hpke.NewRecipient(enc, priv, hpke.HKDFSHA256(), hpke.AES128GCM(), info(licenseID))
		if err != nil {
			return nil, err
		}
		var out [][]byte
		for i := range cts {
			pt, err := r.Open(aads[i], cts[i])
			if err != nil {
				return nil, err
			}
			out = append(out, pt)
		}
		return out, nil
	}
	aads := [][]byte{aad(p.Keys[0]), aad(p.Keys[1])}
	// The player's key opens both, in order.
	raw, err := open(priv, p.LicenseID, aads, ct)
	require.NoError(t, err)
	require.Equal(t, [][]byte{e.movieKeys[0].InsecureRawKey(), e.movieKeys[1].InsecureRawKey()}, raw)
	// Another private key does not.
	thief, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	_, err = open(thief, p.LicenseID, aads, ct)
	require.Error(t, err)
	// Nor does the right key under another license ID (info binding), ...
	_, err = open(priv, "other-license", aads, ct)
	require.Error(t, err)
	// ... a ciphertext presented as another KID's or period's key (AAD binding), ...
	_, err = open(priv, p.LicenseID, [][]byte{aad(p.Keys[1])}, ct[:1])
	require.Error(t, err)
	_, err = open(priv, p.LicenseID, [][]byte{[]byte(fmt.Sprintf("kid:%s|period:%d", p.Keys[0].KID, p.Keys[0].Period+1))}, ct[:1])
	require.Error(t, err)
	// ... or the ciphertexts reordered with their KIDs (sequence numbers).
	_, err = open(priv, p.LicenseID, [][]byte{aads[1]}, ct[1:])
	require.Error(t, err)

	// The client refuses a license whose ciphertexts were swapped, even with
	// a valid signature (a malicious or buggy server).
	_, err = license.UnwrapForTest(priv, &license.LicensePayload{LicenseID: p.LicenseID, Enc: p.Enc,
		Keys: []license.WrappedKey{{KID: p.Keys[0].KID, Period: p.Keys[0].Period, CT: p.Keys[1].CT}, {KID: p.Keys[1].KID, Period: p.Keys[1].Period, CT: p.Keys[0].CT}}})
	require.ErrorIs(t, err, license.ErrLicenseMismatch)
	got, err := license.UnwrapForTest(priv, &p)
	require.NoError(t, err)
	require.Equal(t, e.movieKeys[1].KID(), got[1].KID())
}

func TestClientRefusesForgedLicense(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{movie})
	// A client pinning another server key refuses this server's licenses.
	otherKey, err := keys.NewSigningKey()
	require.NoError(t, err)
	c := e.client(t, tok, func(cc *license.ClientConfig) { cc.ServerKeys = append(cc.ServerKeys[:0], otherKey.Public()) })
	_, err = c.License(context.Background(), license.KeyRequest{Content: movie})
	require.ErrorIs(t, err, license.ErrLicenseSignature)
}

func TestTokenPastExpiryRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{movie}, func(c *token.Claims) { c.Expiry = e.clock.Now().Add(10 * time.Minute) })
	c := e.client(t, tok)
	_, err := c.License(context.Background(), license.KeyRequest{Content: movie})
	require.NoError(t, err)
	e.clock.Add(11 * time.Minute)
	_, err = c.License(context.Background(), license.KeyRequest{Content: movie})
	require.Equal(t, license.CodeTokenExpired, apiCode(t, err))
}

func TestRenewAndRevocationAtRenewal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.token(t, "acct-1", []string{movie})
	c := e.client(t, tok)
	l, err := c.License(ctx, license.KeyRequest{Content: movie})
	require.NoError(t, err)

	e.clock.Add(3 * time.Minute)
	l2, err := c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{e.movieKeys[1].KID(), e.movieKeys[2].KID()}})
	require.NoError(t, err)
	require.Equal(t, l.SessionID, l2.SessionID)
	require.NotEqual(t, l.ID, l2.ID)
	require.Equal(t, e.clock.Now().Add(5*time.Minute), l2.Expiry)
	require.Equal(t, e.movieKeys[2].KID(), l2.Keys()[1].KID())

	// The session survives a restart.
	e.restart(t)
	c = e.client(t, tok)
	e.clock.Add(3 * time.Minute)
	l3, err := c.Renew(ctx, l2, license.KeyRequest{})
	require.NoError(t, err)

	// Revoke the account (through the state while the server runs, as the
	// admin endpoint does): the next renewal is refused.
	require.NoError(t, e.state.Revoke(ctx, license.RevokeAccount, "acct-1", e.clock.Now()))
	_, err = c.Renew(ctx, l3, license.KeyRequest{})
	require.Equal(t, license.CodeAccountRevoked, apiCode(t, err))

	// Revocations survive a restart; unrevoke restores access.
	e.restart(t)
	c = e.client(t, tok)
	_, err = c.Renew(ctx, l3, license.KeyRequest{})
	require.Equal(t, license.CodeAccountRevoked, apiCode(t, err))
	require.NoError(t, e.state.Unrevoke(ctx, license.RevokeAccount, "acct-1"))
	_, err = c.Renew(ctx, l3, license.KeyRequest{})
	require.NoError(t, err)
}

func TestSessionLapses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client(t, e.token(t, "acct-1", []string{movie}))
	l, err := c.License(ctx, license.KeyRequest{Content: movie})
	require.NoError(t, err)
	e.clock.Add(5*time.Minute + time.Second)
	_, err = c.Renew(ctx, l, license.KeyRequest{})
	require.Equal(t, license.CodeSessionExpired, apiCode(t, err))

	// Another account cannot renew it.
	c2 := e.client(t, e.token(t, "acct-2", []string{movie}))
	_, err = c2.Renew(ctx, l, license.KeyRequest{})
	require.Equal(t, license.CodeUnknownSession, apiCode(t, err))
}

func TestDeviceRevocation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.token(t, "acct-1", []string{movie}, func(c *token.Claims) { c.Device = "stb-7" })
	c := e.client(t, tok)
	l, err := c.License(ctx, license.KeyRequest{Content: movie})
	require.NoError(t, err)
	require.Equal(t, "stb-7", l.DeviceID)
	require.NoError(t, e.state.Revoke(ctx, license.RevokeDevice, "stb-7", e.clock.Now()))
	_, err = c.Renew(ctx, l, license.KeyRequest{})
	require.Equal(t, license.CodeDeviceRevoked, apiCode(t, err))
	// A token bound to stb-7 cannot ask for another device.
	c2 := e.client(t, tok, func(cc *license.ClientConfig) { cc.DeviceID = "stb-8" })
	_, err = c2.License(ctx, license.KeyRequest{Content: movie})
	require.Equal(t, license.CodeDeviceMismatch, apiCode(t, err))
}

func TestConcurrentStreamLimitUnderParallelRequests(t *testing.T) {
	e := newEnv(t) // MaxStreamsPerAccount 4
	tok := e.token(t, "acct-1", []string{movie})
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range n {
		wg.Go(func() {
			c := e.client(t, tok)
			_, err := c.License(context.Background(), license.KeyRequest{Content: movie})
			code := "ok"
			var ae *license.APIError
			if errors.As(err, &ae) {
				code = ae.Code
			} else if err != nil {
				code = err.Error()
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Equal(t, map[string]int{"ok": 4, license.CodeTooManyStreams: n - 4}, codes)

	// Another account is not affected; after expiry the slots free up.
	_, err := e.client(t, e.token(t, "acct-2", []string{movie})).License(context.Background(), license.KeyRequest{Content: movie})
	require.NoError(t, err)
	e.clock.Add(5*time.Minute + time.Second)
	tok = e.token(t, "acct-1", []string{movie})
	_, err = e.client(t, tok).License(context.Background(), license.KeyRequest{Content: movie})
	require.NoError(t, err)
}

func TestAuditLog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.token(t, "acct-1", []string{movie})
	l, err := e.client(t, tok).License(ctx, license.KeyRequest{Content: movie})
	require.NoError(t, err)
	_, err = e.client(t, tok).Ticket(ctx, keyA, movie)
	require.NoError(t, err)
	var entries []license.AuditEntry
	require.NoError(t, e.state.Audit(ctx, func(a license.AuditEntry) bool { entries = append(entries, a); return true }))
	require.Len(t, entries, 2)
	require.Equal(t, "license", entries[0].Event)
	require.Equal(t, l.ID, entries[0].LicenseID)
	require.Equal(t, l.SessionID, entries[0].SessionID)
	require.Equal(t, l.AccountHash, entries[0].AccountHash)
	require.Equal(t, []string{e.movieKeys[0].KID().String(), e.movieKeys[1].KID().String()}, entries[0].KIDs)
	require.Equal(t, "ticket", entries[1].Event)
	require.Equal(t, peerA, entries[1].PeerID)
	b, _ := json.Marshal(entries)
	require.NotContains(t, string(b), "acct-1")
	require.NotContains(t, string(b), tok)
}
