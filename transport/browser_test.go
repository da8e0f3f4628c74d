package transport_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

func withBrowser(c *transport.Config) { c.BrowserTransports = true }

// browserAddr returns h's address that contains component (for example
// "/webtransport"), failing the test when there is none.
func browserAddr(t testing.TB, h *transport.Host, component string) ma.Multiaddr {
	t.Helper()
	for _, a := range h.Addrs() {
		if strings.Contains(a.String(), component) {
			return a
		}
	}
	t.Fatalf("no %s address among %v", component, h.Addrs())
	return nil
}

// udpPort returns the /udp/ port of a.
func udpPort(t testing.TB, a ma.Multiaddr) string {
	t.Helper()
	p, err := a.ValueForProtocol(ma.P_UDP)
	require.NoError(t, err, a)
	return p
}

func TestBrowserTransportsListen(t *testing.T) {
	n := newNet(t)
	plain := n.host()
	for _, a := range plain.Addrs() {
		require.NotContains(t, a.String(), "webtransport", "browser transports are off by default")
		require.NotContains(t, a.String(), "webrtc", "browser transports are off by default")
	}

	h := n.host(withBrowser)
	quic := browserAddr(t, h, "/quic-v1")
	wt := browserAddr(t, h, "/webtransport")
	rtc := browserAddr(t, h, "/webrtc-direct")
	// A browser pins the self-signed certificate by its hash: an address
	// without one cannot be dialled from a page.
	require.Contains(t, wt.String(), "/certhash/", wt)
	require.Contains(t, rtc.String(), "/certhash/", rtc)
	require.Equal(t, udpPort(t, quic), udpPort(t, wt), "WebTransport shares the QUIC port: %v", h.Addrs())
	require.Equal(t, udpPort(t, quic), udpPort(t, rtc), "WebRTC-direct shares the QUIC port: %v", h.Addrs())
}

// TestBrowserTransportFetch dials a seed over each browser transport only
// and fetches every file through the segment protocol: tickets, admission
// and integrity checks are those of any other connection.
func TestBrowserTransportFetch(t *testing.T) {
	for _, component := range []string{"/webtransport", "/webrtc-direct"} {
		t.Run(strings.TrimPrefix(component, "/"), func(t *testing.T) {
			n := newNet(t)
			// The seed listens on UDP only, so the viewer cannot fall back to
			// plain QUIC or TCP behind the test's back.
			seed := n.host(withBrowser, func(c *transport.Config) { c.ListenAddrs = c.ListenAddrs[1:] })
			viewer := n.host(withBrowser)
			sSeed := n.join(seed, n.fx.full())
			sViewer := n.join(viewer, nil)

			addr := browserAddr(t, seed, component)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			require.NoError(t, viewer.Connect(ctx, peer.AddrInfo{ID: seed.ID(), Addrs: []ma.Multiaddr{addr}}))
			conns := viewer.LibP2P().Network().ConnsToPeer(seed.ID())
			require.NotEmpty(t, conns)
			for _, c := range conns {
				require.Contains(t, c.RemoteMultiaddr().String(), component, "connection went over another transport")
			}
			admitted(t, sViewer, seed.ID())
			admitted(t, sSeed, viewer.ID())
			for _, p := range n.fx.paths {
				got, err := sViewer.Fetch(ctx, seed.ID(), p)
				require.NoError(t, err, p)
				require.Equal(t, n.fx.files[p], got)
			}
		})
	}
}

// TestBrowserTransportNoTicket: a peer that reaches the seed over
// WebTransport but presents no ticket gets no segment byte.
func TestBrowserTransportNoTicket(t *testing.T) {
	n := newNet(t)
	seed := n.host(withBrowser, func(c *transport.Config) { c.ListenAddrs = c.ListenAddrs[1:] })
	n.join(seed, n.fx.full())
	stranger := n.host(withBrowser) // joins nothing: presents no ticket
	addr := browserAddr(t, seed, "/webtransport")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, stranger.Connect(ctx, peer.AddrInfo{ID: seed.ID(), Addrs: []ma.Multiaddr{addr}}))
	status, payload := rawRequest(t, stranger, seed, n.fx.paths[1])
	require.Equal(t, 1, status, "want NotAdmitted")
	require.Zero(t, payload)
}
