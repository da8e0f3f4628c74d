package transport_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

// memTracker is a tracker in memory: it remembers who announced what.
type memTracker struct {
	mu      sync.Mutex
	peers   map[string]map[peer.ID][]ma.Multiaddr
	revoked []peer.ID // listed in every answer
}

type trackerClient struct {
	t *memTracker
	h *transport.Host
}

func (c trackerClient) Announce(_ context.Context, content string, addrs []ma.Multiaddr) (transport.TrackerAnswer, error) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if c.t.peers == nil {
		c.t.peers = map[string]map[peer.ID][]ma.Multiaddr{}
	}
	if c.t.peers[content] == nil {
		c.t.peers[content] = map[peer.ID][]ma.Multiaddr{}
	}
	c.t.peers[content][c.h.ID()] = addrs
	var out transport.TrackerAnswer
	for id, a := range c.t.peers[content] {
		if id != c.h.ID() {
			out.Peers = append(out.Peers, peer.AddrInfo{ID: id, Addrs: a})
		}
	}
	out.Revoked = c.t.revoked
	return out, nil
}

func mutuallyAdmitted(t *testing.T, a, b *transport.Swarm, aID, bID peer.ID) {
	t.Helper()
	admitted(t, a, bID)
	admitted(t, b, aID)
}

func TestDiscoveryTracker(t *testing.T) {
	n := newNet(t)
	tr := &memTracker{}
	seed, viewer := n.host(), n.host()
	fast := func(h *transport.Host) func(*transport.SwarmOptions) {
		return func(o *transport.SwarmOptions) {
			o.Tracker = trackerClient{tr, h}
			o.TrackerInterval = 200 * time.Millisecond
		}
	}
	sSeed := n.join(seed, n.fx.full(), fast(seed))
	sViewer := n.join(viewer, nil, fast(viewer))
	mutuallyAdmitted(t, sSeed, sViewer, seed.ID(), viewer.ID())
	hasCandidate(t, sViewer, n.fx.paths[1], seed.ID())
	_, err := sViewer.Fetch(context.Background(), seed.ID(), n.fx.paths[1])
	require.NoError(t, err)
}

// Tracker down: three hosts find each other through the private DHT; the
// bootstrap node joined no content and serves only the DHT.
func TestDiscoveryDHT(t *testing.T) {
	n := newNet(t)
	boot := n.host(func(c *transport.Config) { c.DHT = true })
	withDHT := func(c *transport.Config) {
		c.DHT = true
		c.Bootstrap = []peer.AddrInfo{boot.AddrInfo()}
	}
	fast := func(o *transport.SwarmOptions) {
		o.DiscoveryInterval = 300 * time.Millisecond
		o.DiscoveryKey = []byte("the content's secret, from the ticket response")
	}
	seed, viewer := n.host(withDHT), n.host(withDHT)
	sSeed := n.join(seed, n.fx.full(), fast)
	sViewer := n.join(viewer, nil, fast)
	require.False(t, connected(seed, viewer), "not connected by anything but the DHT")
	mutuallyAdmitted(t, sSeed, sViewer, seed.ID(), viewer.ID())
	hasCandidate(t, sViewer, n.fx.paths[1], seed.ID())
	got, err := sViewer.Fetch(context.Background(), seed.ID(), n.fx.paths[1])
	require.NoError(t, err)
	require.Equal(t, n.fx.files[n.fx.paths[1]], got)
	// The bootstrap node holds no ticket; it is exempt from eviction but
	// gets nothing.
	require.True(t, connected(seed, boot))
	for _, ps := range sSeed.Peers() {
		require.NotEqual(t, boot.ID(), ps.ID)
	}
}

// mDNS on the local network, no tracker, no DHT. Multicast needs an
// interface that supports it; where none exists, SEALMESH_TEST_SKIP_MDNS=1
// skips the test.
func TestDiscoveryMDNS(t *testing.T) {
	if os.Getenv("SEALMESH_TEST_SKIP_MDNS") != "" {
		t.Skip("SEALMESH_TEST_SKIP_MDNS is set")
	}
	n := newNet(t)
	lan := func(c *transport.Config) {
		c.MDNS = true
		c.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0"}
	}
	a, b, c := n.host(lan), n.host(lan), n.host(lan)
	sA, sB, sC := n.join(a, n.fx.full()), n.join(b, nil), n.join(c, nil)
	mutuallyAdmitted(t, sA, sB, a.ID(), b.ID())
	mutuallyAdmitted(t, sA, sC, a.ID(), c.ID())
	mutuallyAdmitted(t, sB, sC, b.ID(), c.ID())
}

func TestDiscoveryCID(t *testing.T) {
	c := transport.DiscoveryCID([]byte("k1"))
	require.Equal(t, c, transport.DiscoveryCID([]byte("k1")))
	require.NotEqual(t, c, transport.DiscoveryCID([]byte("k2")))
	require.Equal(t, uint64(0x55), c.Type()) // raw
}
