package license_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/segment"
)

// long is a content of 20 crypto periods (40 s in 2 s periods, as in issue
// 12's attack).
const long = "long-1"

// putLong stores 20 period keys for content long and returns them.
func putLong(t *testing.T, e *env) []keys.ContentKey {
	t.Helper()
	var ks []keys.ContentKey
	for p := range 20 {
		k, err := keys.NewContentKey(p)
		require.NoError(t, err)
		ks = append(ks, k)
	}
	require.NoError(t, e.store.PutContent(context.Background(), long, ks, false))
	return ks
}

// longCatalog lists long's periods every step seconds.
func longCatalog(ks []keys.ContentKey, step float64) *segment.Manifest {
	m := &segment.Manifest{}
	for _, k := range ks {
		m.Periods = append(m.Periods, segment.Period{Index: k.Period(), KID: k.KID().String(), Start: float64(k.Period()) * step})
	}
	return m
}

func clearKeyBody(ks ...keys.ContentKey) map[string]any {
	var kids []string
	for _, k := range ks {
		kid := k.KID()
		kids = append(kids, b64.EncodeToString(kid[:]))
	}
	return map[string]any{"kids": kids, "type": "temporary"}
}

// clearKeyPeriods decodes a Clear Key answer into the periods it holds keys
// for, checking every key against the store's.
func clearKeyPeriods(t *testing.T, r response, ks []keys.ContentKey) []int {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var resp license.ClearKeyResponse
	require.NoError(t, json.Unmarshal(r.body, &resp))
	require.Equal(t, "temporary", resp.Type)
	var got []int
	for _, jwk := range resp.Keys {
		found := false
		for _, k := range ks {
			kid := k.KID()
			if jwk.KID == b64.EncodeToString(kid[:]) {
				require.Equal(t, b64.EncodeToString(k.InsecureRawKey()), jwk.K)
				got = append(got, k.Period())
				found = true
			}
		}
		require.True(t, found, "unknown KID %s in the answer", jwk.KID)
	}
	return got
}

func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	require.Equal(t, license.CodeKeyWindowAhead, apiCode(t, err))
	var ae *license.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusTooManyRequests, ae.Status)
	require.Positive(t, ae.RetryAfter)
	return ae.RetryAfter
}

// TestKeyWindowEveryKeyAtOnce is issue 12's M4 attack against a running
// server: an entitled client asking for every period's key at once, by
// renewals naming any KIDs or by one Clear Key request, gets the current
// period and the next, and nothing else.
func TestKeyWindowEveryKeyAtOnce(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.KeyWindow.ClearKey = []string{long} }))
	ks := putLong(t, e)
	ctx := t.Context()
	tok := e.token(t, "acct-1", []string{long})
	c := e.client(t, tok)

	got := map[int]bool{}
	l, err := c.License(ctx, license.KeyRequest{Content: long, KIDs: []keys.KID{ks[0].KID(), ks[1].KID()}})
	require.NoError(t, err)
	for _, k := range l.Keys() {
		got[k.Period()] = true
	}
	for p := 1; p+1 < len(ks); p++ {
		next, err := c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[p].KID(), ks[p+1].KID()}})
		if err == nil {
			for _, k := range next.Keys() {
				got[k.Period()] = true
			}
			continue
		}
		retryAfter(t, err)
	}
	require.Equal(t, map[int]bool{0: true, 1: true}, got, "native: the keys collected at once")

	// Clear Key, with the content's policy asking for the window: 16 KIDs
	// in one request (the most one may name) get the first two.
	ck := e.token(t, "acct-2", []string{long})
	r := e.do(t, http.MethodPost, "/v1/clearkey", ck, clearKeyBody(ks[:16]...))
	require.Equal(t, []int{0, 1}, clearKeyPeriods(t, r, ks))
	r = e.do(t, http.MethodPost, "/v1/clearkey", ck, clearKeyBody(ks[2:18]...))
	require.Equal(t, http.StatusTooManyRequests, r.status, "%s", r.body)
	require.Equal(t, license.CodeKeyWindowAhead, r.errCode(t))
	require.NotEmpty(t, r.header.Get("Retry-After"))
}

// TestKeyWindowFollowsPlayback walks a session through the window with the
// catalog's period start times (4 s periods): playback at real time is
// never refused; a renewal ahead of the pace is refused with the exact
// Retry-After; non-adjacent KIDs and far-ahead periods are refused.
func TestKeyWindowFollowsPlayback(t *testing.T) {
	cat := license.ManifestCatalog{}
	e := newEnv(t, withCatalog(cat))
	ks := putLong(t, e)
	cat[long] = longCatalog(ks, 4)
	ctx := t.Context()
	c := e.client(t, e.token(t, "acct-1", []string{long}))
	periods := func(l *license.License) []int {
		var out []int
		for _, k := range l.Keys() {
			out = append(out, k.Period())
		}
		return out
	}
	pos := func(p float64) *float64 { return &p }

	l, err := c.License(ctx, license.KeyRequest{Content: long, Position: pos(0)})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1}, periods(l))

	// Ahead of the pace at once: period 1 and 2 would need 4 s of content,
	// 2 s of wall time at speed 2.
	_, err = c.Renew(ctx, l, license.KeyRequest{Position: pos(4)})
	require.Equal(t, 2*time.Second, retryAfter(t, err))
	e.clock.Add(2 * time.Second)
	l, err = c.Renew(ctx, l, license.KeyRequest{Position: pos(4)})
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, periods(l))

	// Periods 3 and 4 widen the window to 0..4: three more periods entered,
	// 12 s of content, 6 s of wall time; 2 s have passed.
	_, err = c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[3].KID(), ks[4].KID()}})
	require.Equal(t, 4*time.Second, retryAfter(t, err))

	// Non-adjacent KIDs in one request.
	_, err = c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[2].KID(), ks[4].KID()}})
	require.Equal(t, license.CodeKIDsNotAdjacent, apiCode(t, err))
	var ae *license.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusBadRequest, ae.Status)

	// Far ahead (a minute in), and far back from a session started later:
	// both widen the window past what 2 s allow.
	_, err = c.Renew(ctx, l, license.KeyRequest{Position: pos(60)})
	retryAfter(t, err)
	l2, err := c.License(ctx, license.KeyRequest{Content: long, Position: pos(70)})
	require.NoError(t, err, "a new session starts where the client asks")
	require.Equal(t, []int{17, 18}, periods(l2))
	_, err = c.Renew(ctx, l2, license.KeyRequest{Position: pos(0)})
	retryAfter(t, err)

	// Honest playback at real time, renewing at each period: never refused,
	// up to the last period.
	for p := 2; p < len(ks); p++ {
		e.clock.Add(4 * time.Second)
		l, err = c.Renew(ctx, l, license.KeyRequest{Position: pos(float64(p) * 4)})
		require.NoError(t, err, "period %d at real time", p)
		require.Equal(t, p, periods(l)[0])
	}
}

// TestKeyWindowWithoutCatalog paces by KeyWindow.Period for content the
// catalog does not know.
func TestKeyWindowWithoutCatalog(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.KeyWindow.Speed = 1.5; c.KeyWindow.Period = 6 * time.Second }))
	ks := putLong(t, e)
	ctx := t.Context()
	c := e.client(t, e.token(t, "acct-1", []string{long}))
	l, err := c.License(ctx, license.KeyRequest{Content: long, KIDs: []keys.KID{ks[5].KID(), ks[6].KID()}})
	require.NoError(t, err, "a session starts at the period asked for")
	_, err = c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[6].KID(), ks[7].KID()}})
	require.Equal(t, 4*time.Second, retryAfter(t, err), "6 s of content at speed 1.5")
	e.clock.Add(4 * time.Second)
	_, err = c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[6].KID(), ks[7].KID()}})
	require.NoError(t, err)
	// The same pair again (a retry, or a second request for keys already
	// given) is always answered.
	_, err = c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[5].KID(), ks[6].KID()}})
	require.NoError(t, err)
}

// TestKeyWindowRevokeStopsNextPeriod: with the window, keys a client was not
// given yet stay out of reach after its account is revoked — natively and
// through Clear Key for content whose policy asks for the window.
func TestKeyWindowRevokeStopsNextPeriod(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.KeyWindow.ClearKey = []string{"long-*"} }))
	ks := putLong(t, e)
	ctx := t.Context()
	tok := e.token(t, "acct-1", []string{long})
	c := e.client(t, tok)
	l, err := c.License(ctx, license.KeyRequest{Content: long})
	require.NoError(t, err)
	r := e.do(t, http.MethodPost, "/v1/clearkey", tok, clearKeyBody(ks[:16]...))
	require.Equal(t, []int{0, 1}, clearKeyPeriods(t, r, ks))

	// A control account shows the next period is within the window by then.
	ctl := e.token(t, "acct-ctl", []string{long})
	cc := e.client(t, ctl)
	lc, err := cc.License(ctx, license.KeyRequest{Content: long})
	require.NoError(t, err)
	require.Equal(t, []int{0}, clearKeyPeriods(t, e.do(t, http.MethodPost, "/v1/clearkey", ctl, clearKeyBody(ks[0])), ks))

	require.NoError(t, e.state.Revoke(ctx, license.RevokeAccount, "acct-1", e.clock.Now()))
	e.clock.Add(2 * time.Second)
	_, err = c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[1].KID(), ks[2].KID()}})
	require.Equal(t, license.CodeAccountRevoked, apiCode(t, err))
	r = e.do(t, http.MethodPost, "/v1/clearkey", tok, clearKeyBody(ks[2]))
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, license.CodeAccountRevoked, r.errCode(t))

	_, err = cc.Renew(ctx, lc, license.KeyRequest{KIDs: []keys.KID{ks[1].KID(), ks[2].KID()}})
	require.NoError(t, err, "the control account gets the next period")
	require.Equal(t, []int{2}, clearKeyPeriods(t, e.do(t, http.MethodPost, "/v1/clearkey", ctl, clearKeyBody(ks[2])), ks))
}

// fromIP returns an HTTP client whose connections come from the loopback
// address ip (all of 127.0.0.0/8 is local on Linux), so the server sees
// players on distinct addresses.
func fromIP(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func postClearKey(t *testing.T, hc *http.Client, url, tok string, body map[string]any) response {
	t.Helper()
	j, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, url+"/v1/clearkey", strings.NewReader(string(j)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&b)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestClearKeyConcurrentPlayersOneToken is issue 12's L6: N players on N
// addresses sharing one token hold N stream slots, so the (N+1)th is refused
// with 429 too_many_streams; a player's own next requests, and a second tab
// on the same address, share its slot.
func TestClearKeyConcurrentPlayersOneToken(t *testing.T) {
	const n = 3
	e := newEnv(t, withConfig(func(c *license.Config) { c.MaxStreamsPerAccount = n }))
	tok := e.token(t, "acct-1", []string{movie})
	for i := range n {
		hc := fromIP(t, "127.0.0."+strconv.Itoa(i+1))
		r := postClearKey(t, hc, e.url, tok, clearKeyBody(e.movieKeys[0]))
		require.Equal(t, http.StatusOK, r.status, "player %d: %s", i+1, r.body)
		r = postClearKey(t, hc, e.url, tok, clearKeyBody(e.movieKeys[1]))
		require.Equal(t, http.StatusOK, r.status, "player %d, next period: %s", i+1, r.body)
	}
	r := postClearKey(t, fromIP(t, "127.0.0."+strconv.Itoa(n+1)), e.url, tok, clearKeyBody(e.movieKeys[0]))
	require.Equal(t, http.StatusTooManyRequests, r.status, "%s", r.body)
	require.Equal(t, license.CodeTooManyStreams, r.errCode(t))
	require.NotEmpty(t, r.header.Get("Retry-After"))

	// Once the sessions lapse, a player elsewhere gets in.
	e.clock.Add(license.DefaultLicenseTTL + time.Second)
	r = postClearKey(t, fromIP(t, "127.0.0."+strconv.Itoa(n+1)), e.url, tok, clearKeyBody(e.movieKeys[0]))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
}

// TestKeyWindowConcurrentRenewals: the window is decided under the state
// lock, so two renewals of one session racing in opposite directions cannot
// each widen it from the same starting point: of a step back and a step
// ahead, each allowed alone, exactly one is given.
func TestKeyWindowConcurrentRenewals(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.MaxStreamsPerAccount = -1 }))
	ks := putLong(t, e)
	ctx := t.Context()
	c := e.client(t, e.token(t, "acct-1", []string{long}))
	for round := range 10 {
		l, err := c.License(ctx, license.KeyRequest{Content: long, KIDs: []keys.KID{ks[5].KID(), ks[6].KID()}})
		require.NoError(t, err)
		e.clock.Add(time.Second) // 2 s of content at speed 2: one period more, in either direction
		errs := make(chan error, 2)
		for _, pair := range [][2]int{{6, 7}, {4, 5}} {
			go func() {
				_, err := c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[pair[0]].KID(), ks[pair[1]].KID()}})
				errs <- err
			}()
		}
		ok := 0
		for range 2 {
			if err := <-errs; err == nil {
				ok++
			} else {
				retryAfter(t, err)
			}
		}
		require.Equal(t, 1, ok, "round %d", round)
	}
}

// TestKeyWindowSurvivesRestart: the window is stored with the session, so a
// restarted server still refuses what the session could not have reached.
func TestKeyWindowSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	ks := putLong(t, e)
	ctx := t.Context()
	tok := e.token(t, "acct-1", []string{long})
	l, err := e.client(t, tok).License(ctx, license.KeyRequest{Content: long, KIDs: []keys.KID{ks[0].KID(), ks[1].KID()}})
	require.NoError(t, err)
	e.clock.Add(time.Second)
	l, err = e.client(t, tok).Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[1].KID(), ks[2].KID()}})
	require.NoError(t, err)

	e.restart(t)
	c := e.client(t, tok)
	_, err = c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[3].KID(), ks[4].KID()}})
	require.Equal(t, 2*time.Second, retryAfter(t, err), "the window 0..2 began 1 s ago; 0..4 needs 3 periods, 3 s at speed 2")
	e.clock.Add(2 * time.Second)
	_, err = c.Renew(ctx, l, license.KeyRequest{KIDs: []keys.KID{ks[3].KID(), ks[4].KID()}})
	require.NoError(t, err)
}
