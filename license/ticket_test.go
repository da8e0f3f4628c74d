package license_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
)

func TestTickets(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, "acct-1", []string{movie})
	tr, err := e.client(t, tok).Ticket(t.Context(), peerA, movie)
	require.NoError(t, err)
	require.Equal(t, e.clock.Now().Add(license.DefaultTicketTTL), tr.Expiry)

	revokedPeers := map[string]bool{}
	v, err := license.NewTicketVerifier([]ed25519.PublicKey{e.pub}, license.WithTicketRevocation(func(t *license.Ticket) bool { return revokedPeers[t.PeerID] }))
	require.NoError(t, err)
	now := e.clock.Now()
	tk, err := v.Verify([]byte(tr.Encoded), peerA, movie, now)
	require.NoError(t, err)
	require.Equal(t, peerA, tk.PeerID)
	require.Len(t, tk.AccountHash, 64)

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
		{"expired", v, []byte(tr.Encoded), peerA, movie, now.Add(11 * time.Minute), license.ErrTicketExpired},
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
	_, err = e.client(t, tok).Ticket(t.Context(), peerB, movie)
	require.Equal(t, license.CodePeerRevoked, apiCode(t, err))
	_, err = e.client(t, e.token(t, "acct-1", []string{"*"})).Ticket(t.Context(), peerA, "no-such")
	require.Equal(t, license.CodeUnknownContent, apiCode(t, err))
}

func TestTracker(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tok := e.token(t, "acct-1", []string{movie})
	c := e.client(t, tok)
	ticket := func(peer string) string {
		tr, err := c.Ticket(ctx, peer, movie)
		require.NoError(t, err)
		return tr.Encoded
	}
	ta, tb, tc := ticket(peerA), ticket(peerB), ticket(peerC)
	// Requests all come from 127.0.0.1, which is not public, so each peer is
	// placed by its first public-looking address.
	peers, err := c.Announce(ctx, ta, []string{"/ip4/192.168.1.5/tcp/4001", "/ip4/203.0.113.7/tcp/4001"}, 0)
	require.NoError(t, err)
	require.Empty(t, peers)
	_, err = c.Announce(ctx, tb, []string{"/ip4/198.51.100.9/tcp/4001"}, 0)
	require.NoError(t, err)
	_, err = c.Announce(ctx, tc, []string{"/ip4/203.0.113.99/udp/4001/quic-v1"}, 0)
	require.NoError(t, err)
	// A in 203.0.113.0/24: C (same /24) first, then B; never A itself.
	for range 10 {
		peers, err = c.Announce(ctx, ta, []string{"/ip4/203.0.113.7/tcp/4001"}, 0)
		require.NoError(t, err)
		require.Len(t, peers, 2)
		require.Equal(t, peerC, peers[0].PeerID)
		require.Equal(t, peerB, peers[1].PeerID)
		require.Equal(t, []string{"/ip4/203.0.113.99/udp/4001/quic-v1"}, peers[0].Addrs)
	}
	peers, err = c.Announce(ctx, ta, []string{"/ip4/203.0.113.7/tcp/4001"}, 1)
	require.NoError(t, err)
	require.Len(t, peers, 1)

	// Revoked peers are excluded.
	require.NoError(t, e.state.Revoke(ctx, license.RevokePeer, peerC, e.clock.Now()))
	peers, err = c.Announce(ctx, ta, nil, 0)
	require.NoError(t, err)
	require.Len(t, peers, 1)
	require.Equal(t, peerB, peers[0].PeerID)
	// ... and cannot announce.
	_, err = c.Announce(ctx, tc, nil, 0)
	require.Equal(t, license.CodePeerRevoked, apiCode(t, err))

	// Entries expire unless re-announced: after 6 minutes B re-announces with a
	// fresh ticket; after 11, A (whose entry lapsed) sees only B.
	e.clock.Add(6 * time.Minute)
	tb = ticket(peerB)
	_, err = c.Announce(ctx, tb, []string{"/ip4/198.51.100.9/tcp/4001"}, 0)
	require.NoError(t, err)
	e.clock.Add(5 * time.Minute)
	ta = ticket(peerA)
	peers, err = c.Announce(ctx, ta, nil, 0)
	require.NoError(t, err)
	require.Len(t, peers, 1)
	require.Equal(t, peerB, peers[0].PeerID)
	// An expired ticket cannot announce.
	_, err = c.Announce(ctx, tc, nil, 0)
	require.Equal(t, license.CodeTicketExpired, apiCode(t, err))
}
