package transport_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

// M3: a listener shows its ticket only to a dialer it has admitted. A plain
// libp2p host that dials a seed and shows nothing records every ticket
// stream the seed opens to it, until the seed evicts it after the grace
// period; it must record none. A ticketed dialer is then admitted and gets
// the seed's ticket in return. Fails if the seed presents on every new
// connection again.
func TestListenerShowsNoTicketToUnticketedDialer(t *testing.T) {
	n := newNet(t)
	seed := n.host()
	sSeed := n.join(seed, n.fx.full())

	stranger, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = stranger.Close() })
	var shown atomic.Int32
	stranger.SetStreamHandler(transport.TicketProtocol, func(st network.Stream) {
		shown.Add(1)
		_ = st.Reset()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, stranger.Connect(ctx, seed.AddrInfo()))
	// The seed evicts it after the one-second grace: by then a seed that
	// presented on connect has done so.
	require.Eventually(t, func() bool {
		return stranger.Network().Connectedness(seed.ID()) != network.Connected
	}, 10*time.Second, 20*time.Millisecond, "the seed never evicted the unticketed dialer")
	require.Zero(t, shown.Load(), "the seed showed its ticket to a dialer that showed none")
	require.Positive(t, seed.Stats().Evictions)

	// A ticketed dialer: admitted, and admits the seed in turn.
	viewer := n.host()
	sViewer := n.join(viewer, nil)
	connect(t, viewer, seed)
	mutuallyAdmitted(t, sSeed, sViewer, seed.ID(), viewer.ID())
}

// L5: a peer the tracker lists as revoked loses its admission at once and
// is disconnected, though its ticket is still valid, and the same ticket
// presented again is refused. Fails if the swarm ignores the answer's
// Revoked list.
func TestTrackerRevocationCutsPeer(t *testing.T) {
	n := newNet(t)
	tr := &memTracker{}
	seed, viewer := n.host(), n.host()
	sSeed := n.join(seed, n.fx.full(), func(o *transport.SwarmOptions) {
		o.Tracker = trackerClient{tr, seed}
		o.TrackerInterval = 100 * time.Millisecond
	})
	sViewer := n.join(viewer, nil)
	connect(t, viewer, seed)
	mutuallyAdmitted(t, sSeed, sViewer, seed.ID(), viewer.ID())
	hasCandidate(t, sViewer, n.fx.paths[1], seed.ID())

	tr.mu.Lock()
	tr.revoked = []peer.ID{viewer.ID()}
	tr.mu.Unlock()
	require.Eventually(t, func() bool { return !connected(seed, viewer) }, 10*time.Second, 20*time.Millisecond,
		"the seed kept the revoked peer connected")
	for _, ps := range sSeed.Peers() {
		require.NotEqual(t, viewer.ID(), ps.ID)
	}
	_, err := sViewer.Fetch(context.Background(), seed.ID(), n.fx.paths[1])
	require.Error(t, err)
	// Past the eviction, its still-valid ticket is refused.
	n.clock.Advance(61 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, seed.Connect(ctx, viewer.AddrInfo()))
	require.Never(t, func() bool {
		for _, ps := range sSeed.Peers() {
			if ps.ID == viewer.ID() {
				return true
			}
		}
		return false
	}, time.Second, 20*time.Millisecond, "the revoked peer was admitted again")
}

// The admission record keeps the ticket's budget; without one a peer is
// its own budget.
func TestBudgetKey(t *testing.T) {
	n := newNet(t)
	seed, viewer, other := n.host(), n.host(), n.host()
	v := n.verifier()
	v.budget = "opaque-account-budget"
	sSeed := n.join(seed, n.fx.full(), func(o *transport.SwarmOptions) { o.Verifier = v })
	sViewer := n.join(viewer, nil)
	connect(t, viewer, seed)
	mutuallyAdmitted(t, sSeed, sViewer, seed.ID(), viewer.ID())
	require.Equal(t, "opaque-account-budget", transport.BudgetKey(seed, viewer.ID()))
	require.Equal(t, other.ID().String(), transport.BudgetKey(seed, other.ID()), "not admitted: its peer ID")
	require.Equal(t, seed.ID().String(), transport.BudgetKey(viewer, seed.ID()), "no budget in the ticket: its peer ID")
}
