package license_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
)

// ticketReq is a /v1/ticket body proving possession of key over tok at now.
func ticketReq(t testing.TB, key crypto.PrivKey, content, tok string, now time.Time) license.TicketRequest {
	t.Helper()
	r, err := license.NewTicketRequest(key, content, tok, now)
	require.NoError(t, err)
	return r
}

// announceReq is a /v1/announce body signed by key at now.
func announceReq(t testing.TB, key crypto.PrivKey, ticket string, addrs []string, now time.Time) license.AnnounceRequest {
	t.Helper()
	r, err := license.NewAnnounceRequest(key, ticket, addrs, 0, now)
	require.NoError(t, err)
	return r
}

func TestTickets(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{movie})
	tr, err := e.client(t, tok).Ticket(t.Context(), keyA, movie)
	require.NoError(t, err)
	require.Equal(t, e.clock.Now().Add(license.DefaultTicketTTL), tr.Expiry)
	require.NotEmpty(t, tr.DiscoveryKey)

	revokedPeers := map[string]bool{}
	v, err := license.NewTicketVerifier([]ed25519.PublicKey{e.pub}, license.WithTicketRevocation(func(t *license.Ticket) bool { return revokedPeers[t.PeerID] }))
	require.NoError(t, err)
	now := e.clock.Now()
	tk, err := v.Verify([]byte(tr.Encoded), peerA, movie, now)
	require.NoError(t, err)
	require.Equal(t, peerA, tk.PeerID)
	require.NotEmpty(t, tk.Budget)

	stranger, err := keys.NewSigningKey()
	require.NoError(t, err)
	vStranger, err := license.NewTicketVerifier([]ed25519.PublicKey{stranger.Public()})
	require.NoError(t, err)
	flipped := []byte(tr.Encoded)
	flipped[5] ^= 1

	tests := []struct {
		name    string
		v       *license.TicketVerifier
		raw     []byte
		peer    string
		content string
		now     time.Time
		want    error
	}{
		{"expired", v, []byte(tr.Encoded), peerA, movie, now.Add(license.DefaultTicketTTL + time.Minute), license.ErrTicketExpired},
		{"not yet valid", v, []byte(tr.Encoded), peerA, movie, now.Add(-time.Hour), license.ErrTicketExpired},
		{"other peer", v, []byte(tr.Encoded), peerB, movie, now, license.ErrTicketPeer},
		{"other content", v, []byte(tr.Encoded), peerA, other, now, license.ErrTicketContent},
		{"bad signature", v, flipped, peerA, movie, now, license.ErrTicketSignature},
		{"unknown key", vStranger, []byte(tr.Encoded), peerA, movie, now, license.ErrTicketSignature},
		{"garbage", v, []byte("garbage"), peerA, movie, now, license.ErrTicketMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(tc.raw, tc.peer, tc.content, tc.now)
			require.ErrorIs(t, err, tc.want)
		})
	}
	revokedPeers[peerA] = true
	_, err = v.Verify([]byte(tr.Encoded), peerA, movie, now)
	require.ErrorIs(t, err, license.ErrTicketRevoked)

	// The server refuses tickets for revoked peers and content it does not have.
	require.NoError(t, e.state.Revoke(t.Context(), license.RevokePeer, peerB, now))
	_, err = e.client(t, tok).Ticket(t.Context(), keyB, movie)
	require.Equal(t, license.CodePeerRevoked, apiCode(t, err))
	_, err = e.client(t, e.token(t, "acct-1", []string{"*"})).Ticket(t.Context(), keyA, "no-such")
	require.Equal(t, license.CodeUnknownContent, apiCode(t, err))
}

// L3: a ticket, which strangers may see, names no content and no stable
// account pseudonym; its budget value is stable per account and content
// only. Fails if the payload goes back to carrying content or account_hash.
func TestTicketPayloadIsOpaque(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tok1 := e.token(t, "acct-1", []string{"*"})
	tok2 := e.token(t, "acct-2", []string{"*"})
	payload := func(tok string, key crypto.PrivKey, content string) (string, map[string]any) {
		e.clock.Add(time.Millisecond) // a later proof each time
		tr, err := e.client(t, tok).Ticket(ctx, key, content)
		require.NoError(t, err)
		raw, err := b64.DecodeString(strings.Split(tr.Encoded, ".")[0])
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return string(raw), m
	}
	raw, m := payload(tok1, keyA, movie)
	keysOf := func(m map[string]any) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	require.ElementsMatch(t, []string{"ticket_id", "peer_id", "content_tag", "budget", "not_before", "expiry"}, keysOf(m))
	require.NotContains(t, raw, movie, "the content ID is in the ticket")
	require.NotContains(t, raw, "acct-1")
	require.NotContains(t, raw, e.state.AccountHash("acct-1"), "the account hash is in the ticket")

	_, sameAcct := payload(tok1, keyB, movie)
	_, otherContent := payload(tok1, keyA, other)
	_, otherAcct := payload(tok2, keyC, movie)
	require.Equal(t, m["budget"], sameAcct["budget"], "one account's peers share a budget")
	require.NotEqual(t, m["budget"], otherContent["budget"], "budgets are unlinkable across contents")
	require.NotEqual(t, m["budget"], otherAcct["budget"])
	require.NotEqual(t, m["content_tag"], sameAcct["content_tag"], "content tags differ per ticket")
}

// M1/M3: a ticket only for a caller that proves it holds the peer's key,
// over this token, this content and a fresh time.
func TestTicketNeedsPossession(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{"*"})
	tokOther := e.token(t, "acct-2", []string{"*"})
	now := e.clock.Now()
	replayed := ticketReq(t, keyA, movie, tok, now.Add(-time.Second))
	r := e.do(t, http.MethodPost, "/v1/ticket", tok, replayed)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	tests := []struct {
		name   string
		tok    string
		req    func() license.TicketRequest
		status int
		code   string
	}{
		{"no proof", tok, func() license.TicketRequest { return license.TicketRequest{PeerID: peerA, Content: movie} }, 401, license.CodeInvalidProof},
		{"another peer's key", tok, func() license.TicketRequest {
			q := ticketReq(t, keyB, movie, tok, now)
			q.PeerID = peerA
			return q
		}, 401, license.CodeInvalidProof},
		{"proof over another token", tok, func() license.TicketRequest { return ticketReq(t, keyA, movie, tokOther, now) }, 401, license.CodeInvalidProof},
		{"proof over another content", tok, func() license.TicketRequest {
			q := ticketReq(t, keyA, other, tok, now)
			q.Content = movie
			return q
		}, 401, license.CodeInvalidProof},
		{"proof too old", tok, func() license.TicketRequest {
			return ticketReq(t, keyA, movie, tok, now.Add(-license.ProofSkew-time.Second))
		}, 400, license.CodeProofTime},
		{"replayed proof", tok, func() license.TicketRequest { return replayed }, 409, license.CodeProofReplayed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/v1/ticket", tc.tok, tc.req())
			require.Equal(t, tc.status, r.status, "%s", r.body)
			require.Equal(t, tc.code, r.errCode(t))
		})
	}
	r = e.do(t, http.MethodPost, "/v1/ticket", tok, ticketReq(t, keyA, movie, tok, now))
	require.Equal(t, http.StatusOK, r.status, "a fresh proof: %s", r.body)
}

// At most MaxTicketsPerAccount peer IDs of an account hold a live ticket
// for a content; renewals reuse their slot. Fails without the cap.
func TestTicketCap(t *testing.T) {
	for _, limit := range []int{0, 2} { // 0: the default, 4
		want := limit
		if want == 0 {
			want = license.DefaultMaxTicketsPerAccount
		}
		t.Run(fmt.Sprintf("limit %d", want), func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *license.Config) { c.MaxTicketsPerAccount = limit }))
			ctx := t.Context()
			tok := e.token(t, "acct-1", []string{"*"})
			c := e.client(t, tok)
			var ks []crypto.PrivKey
			for i := range want + 1 {
				k, _ := testPeer(byte(10 + i))
				ks = append(ks, k)
			}
			for _, k := range ks[:want] {
				_, err := c.Ticket(ctx, k, movie)
				require.NoError(t, err)
			}
			_, err := c.Ticket(ctx, ks[want], movie)
			var ae *license.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, http.StatusTooManyRequests, ae.Status)
			require.Equal(t, license.CodeTooManyTickets, ae.Code)
			require.Contains(t, ae.Message, "live swarm tickets")

			// A renewal for a peer holding a slot, another content, another
			// account: all fine.
			e.clock.Add(time.Second)
			_, err = c.Ticket(ctx, ks[0], movie)
			require.NoError(t, err)
			_, err = c.Ticket(ctx, ks[want], other)
			require.NoError(t, err)
			_, err = e.client(t, e.token(t, "acct-2", []string{"*"})).Ticket(ctx, ks[want], movie)
			require.NoError(t, err)
			// Once the tickets run out, the slots free.
			e.clock.Add(license.DefaultTicketTTL + time.Second)
			_, err = c.Ticket(ctx, ks[want], movie)
			require.NoError(t, err)
		})
	}
}

func TestTracker(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tok := e.token(t, "acct-1", []string{movie})
	c := e.client(t, tok)
	ticket := func(k crypto.PrivKey) string {
		tr, err := c.Ticket(ctx, k, movie)
		require.NoError(t, err)
		return tr.Encoded
	}
	announce := func(k crypto.PrivKey, tk string, addrs []string, want int) ([]license.TrackerPeer, error) {
		e.clock.Add(time.Millisecond) // each announce later than the last
		a, err := c.Announce(ctx, k, tk, addrs, want)
		if err != nil {
			return nil, err
		}
		return a.Peers, nil
	}
	ta, tb, tc := ticket(keyA), ticket(keyB), ticket(keyC)
	// Requests all come from 127.0.0.1, which is not public, so each peer is
	// placed by its first public-looking address.
	peers, err := announce(keyA, ta, []string{"/ip4/192.168.1.5/tcp/4001", "/ip4/203.0.113.7/tcp/4001"}, 0)
	require.NoError(t, err)
	require.Empty(t, peers)
	_, err = announce(keyB, tb, []string{"/ip4/198.51.100.9/tcp/4001"}, 0)
	require.NoError(t, err)
	_, err = announce(keyC, tc, []string{"/ip4/203.0.113.99/udp/4001/quic-v1"}, 0)
	require.NoError(t, err)
	// A in 203.0.113.0/24: C (same /24) first, then B; never A itself.
	for range 10 {
		peers, err = announce(keyA, ta, []string{"/ip4/203.0.113.7/tcp/4001"}, 0)
		require.NoError(t, err)
		require.Len(t, peers, 2)
		require.Equal(t, peerC, peers[0].PeerID)
		require.Equal(t, peerB, peers[1].PeerID)
		require.Equal(t, []string{"/ip4/203.0.113.99/udp/4001/quic-v1"}, peers[0].Addrs)
	}
	peers, err = announce(keyA, ta, []string{"/ip4/203.0.113.7/tcp/4001"}, 1)
	require.NoError(t, err)
	require.Len(t, peers, 1)

	// Revoked peers are excluded, listed as revoked...
	require.NoError(t, e.state.Revoke(ctx, license.RevokePeer, peerC, e.clock.Now()))
	e.clock.Add(time.Millisecond)
	a, err := c.Announce(ctx, keyA, ta, nil, 0)
	require.NoError(t, err)
	require.Len(t, a.Peers, 1)
	require.Equal(t, peerB, a.Peers[0].PeerID)
	require.Equal(t, []string{peerC}, a.Revoked)
	// ... and cannot announce.
	_, err = announce(keyC, tc, nil, 0)
	require.Equal(t, license.CodePeerRevoked, apiCode(t, err))

	// Entries expire unless re-announced: after 3/4 of a ticket's life B
	// re-announces with a fresh ticket; when A's entry has lapsed too, A
	// (with a fresh ticket) sees only B.
	e.clock.Add(license.DefaultTicketTTL * 3 / 4)
	tb = ticket(keyB)
	_, err = announce(keyB, tb, []string{"/ip4/198.51.100.9/tcp/4001"}, 0)
	require.NoError(t, err)
	e.clock.Add(license.DefaultTicketTTL / 2)
	ta = ticket(keyA)
	peers, err = announce(keyA, ta, nil, 0)
	require.NoError(t, err)
	require.Len(t, peers, 1)
	require.Equal(t, peerB, peers[0].PeerID)
	// An expired ticket cannot announce.
	_, err = announce(keyC, tc, nil, 0)
	require.Equal(t, license.CodeTicketExpired, apiCode(t, err))
}

// M3: an announce needs a proof by the ticket's own peer; without one, or
// with another peer's, nothing is recorded and no peer is listed, and an
// entry is never overwritten from another peer's proof.
func TestAnnounceNeedsPossession(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.client(t, e.token(t, "acct-1", []string{movie}))
	trA, err := c.Ticket(ctx, keyA, movie)
	require.NoError(t, err)
	trB, err := c.Ticket(ctx, keyB, movie)
	require.NoError(t, err)
	honest := []string{"/ip4/203.0.113.7/tcp/4001"}
	evil := []string{"/ip4/198.51.100.7/tcp/4001"}
	_, err = c.Announce(ctx, keyA, trA.Encoded, honest, 0)
	require.NoError(t, err)
	now := e.clock.Now()
	replayed := announceReq(t, keyA, trA.Encoded, honest, now.Add(-time.Second))

	tests := []struct {
		name   string
		req    func() license.AnnounceRequest
		status int
		code   string
	}{
		{"ticket alone", func() license.AnnounceRequest {
			return license.AnnounceRequest{Ticket: trA.Encoded, Addrs: evil}
		}, 401, license.CodeInvalidProof},
		{"another peer's proof", func() license.AnnounceRequest { return announceReq(t, keyB, trA.Encoded, evil, now) }, 401, license.CodeInvalidProof},
		{"proof over other addresses", func() license.AnnounceRequest {
			q := announceReq(t, keyA, trA.Encoded, honest, now)
			q.Addrs = evil
			return q
		}, 401, license.CodeInvalidProof},
		{"proof over another ticket", func() license.AnnounceRequest {
			q := announceReq(t, keyB, trB.Encoded, evil, now)
			q.Ticket = trA.Encoded
			return q
		}, 401, license.CodeInvalidProof},
		{"replayed announce", func() license.AnnounceRequest { return replayed }, 409, license.CodeProofReplayed},
		{"stale time", func() license.AnnounceRequest {
			return announceReq(t, keyA, trA.Encoded, evil, now.Add(-license.ProofSkew-time.Second))
		}, 400, license.CodeProofTime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/v1/announce", "", tc.req())
			require.Equal(t, tc.status, r.status, "%s", r.body)
			require.Equal(t, tc.code, r.errCode(t))
			require.NotContains(t, string(r.body), peerA, "a refused announce lists no peers")
		})
	}
	// A's entry still holds A's own addresses.
	a, err := c.Announce(ctx, keyB, trB.Encoded, nil, 0)
	require.NoError(t, err)
	require.Len(t, a.Peers, 1)
	require.Equal(t, peerA, a.Peers[0].PeerID)
	require.Equal(t, honest, a.Peers[0].Addrs)
}

// A ticket the server has no record of (issued before a restart) cannot
// announce: the answer tells the peer to get a new one.
func TestAnnounceAfterRestart(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.client(t, e.token(t, "acct-1", []string{movie}))
	tr, err := c.Ticket(ctx, keyA, movie)
	require.NoError(t, err)
	e.restart(t)
	c = e.client(t, e.token(t, "acct-1", []string{movie}))
	_, err = c.Announce(ctx, keyA, tr.Encoded, nil, 0)
	require.Equal(t, license.CodeInvalidTicket, apiCode(t, err))
	e.clock.Add(time.Millisecond)
	tr, err = c.Ticket(ctx, keyA, movie)
	require.NoError(t, err)
	_, err = c.Announce(ctx, keyA, tr.Encoded, nil, 0)
	require.NoError(t, err)
}

// A device whose clock is an hour off gets proof_time once, corrects its
// clock from the server's Date header and succeeds; its later requests
// carry the corrected time.
func TestClientCorrectsItsClock(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	skewed := func() time.Time { return e.clock.Now().Add(-time.Hour) }
	c := e.client(t, e.token(t, "acct-1", []string{movie}), func(cc *license.ClientConfig) { cc.Now = skewed })
	tr, err := c.Ticket(ctx, keyA, movie)
	require.NoError(t, err)
	e.clock.Add(2 * time.Second) // past the Date header's one-second resolution
	_, err = c.Announce(ctx, keyA, tr.Encoded, nil, 0)
	require.NoError(t, err)
}

// Proofs from one client are strictly later than each other even when its
// clock stands still or steps back, so renewals and announces in quick
// succession are not mistaken for replays.
func TestClientProofTimesIncrease(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.client(t, e.token(t, "acct-1", []string{movie}))
	tr, err := c.Ticket(ctx, keyA, movie)
	require.NoError(t, err)
	_, err = c.Ticket(ctx, keyA, movie)
	require.NoError(t, err, "a renewal in the same millisecond")
	for range 3 {
		_, err = c.Announce(ctx, keyA, tr.Encoded, nil, 0)
		require.NoError(t, err)
	}
	e.clock.Add(5 * time.Second)
	_, err = c.Announce(ctx, keyA, tr.Encoded, nil, 0)
	require.NoError(t, err)
	e.clock.Add(-time.Second)
	_, err = c.Announce(ctx, keyA, tr.Encoded, nil, 0)
	require.NoError(t, err, "after the clock stepped back")
}

// A peer ID that does not embed its key (RSA) proves possession with the
// key sent beside it, which must be the peer ID's own.
func TestTicketForRSAPeer(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{movie})
	rsaKey, _, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	require.NoError(t, err)
	_, err = e.client(t, tok).Ticket(t.Context(), rsaKey, movie)
	require.NoError(t, err)

	q := ticketReq(t, rsaKey, movie, tok, e.clock.Now().Add(time.Second))
	other, _, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	require.NoError(t, err)
	q2 := ticketReq(t, other, movie, tok, e.clock.Now().Add(time.Second))
	q.PublicKey, q.Signature = q2.PublicKey, q2.Signature
	r := e.do(t, http.MethodPost, "/v1/ticket", tok, q)
	require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.body)
	require.Equal(t, license.CodeInvalidProof, r.errCode(t))
	require.Contains(t, string(r.body), "not the key of peer_id")
}
