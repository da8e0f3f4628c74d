package transport_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

func TestResourceLimits(t *testing.T) {
	n := newNet(t)
	h := n.host()
	rm := h.LibP2P().Network().ResourceManager()
	limit := func(view func(func(network.ResourceScope) error) error) rcmgr.Limit {
		var l rcmgr.Limit
		require.NoError(t, view(func(s network.ResourceScope) error {
			l = s.(rcmgr.ResourceScopeLimiter).Limit()
			return nil
		}))
		return l
	}
	sys := limit(rm.ViewSystem)
	require.EqualValues(t, transport.DefaultMemory, sys.GetMemoryLimit())
	require.Equal(t, transport.DefaultConns, sys.GetConnTotalLimit())
	require.Equal(t, transport.DefaultStreams, sys.GetStreamTotalLimit())
	require.Equal(t, transport.DefaultFD, sys.GetFDLimit())
	peerLimit := limit(func(f func(network.ResourceScope) error) error {
		return rm.ViewPeer(h.ID(), func(s network.PeerScope) error { return f(s) })
	})
	require.EqualValues(t, transport.DefaultPeerMemory, peerLimit.GetMemoryLimit())
	require.Equal(t, transport.DefaultPeerStreams, peerLimit.GetStreamTotalLimit())
	require.Equal(t, transport.DefaultPeerConns, peerLimit.GetConnTotalLimit())
	require.Less(t, transport.DefaultConnHigh, transport.DefaultConns, "the connection manager trims before the hard limit")

	custom := n.host(func(c *transport.Config) { c.Limits = transport.Limits{Memory: 32 << 20, PeerStreams: 4} })
	rm = custom.LibP2P().Network().ResourceManager()
	require.EqualValues(t, 32<<20, limit(rm.ViewSystem).GetMemoryLimit())
	require.Equal(t, 4, limit(func(f func(network.ResourceScope) error) error {
		return rm.ViewPeer(h.ID(), func(s network.PeerScope) error { return f(s) })
	}).GetStreamTotalLimit())
}

func TestConfigRefused(t *testing.T) {
	for name, cfg := range map[string]transport.Config{
		"security":   {Security: "plaintext"},
		"watermarks": {ConnLow: 10, ConnHigh: 5},
		"limits":     {Limits: transport.Limits{Memory: -1}},
		"listen":     {ListenAddrs: []string{"not a multiaddr"}},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := transport.NewHost(context.Background(), cfg)
			if err == nil {
				h.Close()
			}
			require.Error(t, err)
		})
	}
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "identity")
	n := newNet(t)
	h1 := n.host(func(c *transport.Config) { c.IdentityFile = path })
	id := h1.ID()
	require.NoError(t, h1.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	h2 := n.host(func(c *transport.Config) { c.IdentityFile = path })
	require.Equal(t, id, h2.ID(), "the identity survives a restart")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = transport.LoadIdentity(path)
	require.ErrorContains(t, err, "chmod 600")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "garbage"), []byte("nope"), 0o600))
	_, err = transport.LoadIdentity(filepath.Join(dir, "garbage"))
	require.Error(t, err)
}

func TestCloseIdempotent(t *testing.T) {
	n := newNet(t)
	a, b := n.host(), n.host()
	sA := n.join(a, n.fx.full())
	sB := n.join(b, nil)
	connect(t, a, b)
	admitted(t, sB, a.ID())
	require.NoError(t, sB.Close())
	require.NoError(t, sB.Close())
	_, err := b.Join(context.Background(), content, n.fx.m, transport.SwarmOptions{Verifier: n.verifier(), Tickets: n.ticketFor(b)})
	require.NoError(t, err, "rejoin after leaving")
	_, err = b.Join(context.Background(), content, n.fx.m, transport.SwarmOptions{Verifier: n.verifier(), Tickets: n.ticketFor(b)})
	require.Error(t, err, "joined twice")
	require.NoError(t, a.Close())
	require.NoError(t, a.Close())
	_, err = sA.Fetch(context.Background(), b.ID(), n.fx.paths[1])
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, a.Connect(context.Background(), b.AddrInfo()), transport.ErrClosed)
	_, err = a.Join(context.Background(), content, n.fx.m, transport.SwarmOptions{Verifier: n.verifier(), Tickets: n.ticketFor(a)})
	require.ErrorIs(t, err, transport.ErrClosed)
}

func TestPrometheus(t *testing.T) {
	n := newNet(t)
	reg := prometheus.NewRegistry()
	seed := n.host(func(c *transport.Config) { c.Registerer = reg })
	viewer := n.host()
	n.join(seed, n.fx.full())
	sViewer := n.join(viewer, nil)
	connect(t, viewer, seed)
	hasCandidate(t, sViewer, n.fx.paths[1], seed.ID())
	_, err := sViewer.Fetch(context.Background(), seed.ID(), n.fx.paths[1])
	require.NoError(t, err)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sealmesh_transport_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[mf.GetName()] += v
		}
	}
	require.EqualValues(t, n.fx.size(n.fx.paths[1]), got["sealmesh_transport_bytes_uploaded_total"])
	require.EqualValues(t, 1, got["sealmesh_transport_admitted_peers"])
	require.Contains(t, got, "sealmesh_transport_banned_peers")
	require.NoError(t, seed.Close())
	// Close unregisters: a new host may use the same registry.
	again := n.host(func(c *transport.Config) { c.Registerer = reg })
	require.NotNil(t, again)
}
