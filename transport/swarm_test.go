package transport_test

import (
	"context"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

func TestFetchAndHavePropagation(t *testing.T) {
	for _, sec := range []string{"", "tls", "noise"} {
		t.Run("security="+sec, func(t *testing.T) {
			n := newNet(t)
			withSec := func(c *transport.Config) { c.Security = sec; c.ListenAddrs = c.ListenAddrs[:1] } // TCP: the secure channel matters there
			seed, viewer, third := n.host(withSec), n.host(withSec), n.host(withSec)
			sSeed := n.join(seed, n.fx.full())
			sViewer := n.join(viewer, nil)
			sThird := n.join(third, nil)

			var mu sync.Mutex
			heard := map[string]peer.ID{}
			sThird.OnHave(func(p peer.ID, path string) {
				mu.Lock()
				defer mu.Unlock()
				if p == viewer.ID() {
					heard[path] = p
				}
			})
			connect(t, viewer, seed)
			connect(t, third, viewer)
			admitted(t, sViewer, seed.ID())
			admitted(t, sSeed, viewer.ID())
			admitted(t, sThird, viewer.ID())
			for _, p := range n.fx.paths {
				hasCandidate(t, sViewer, p, seed.ID())
			}
			require.Empty(t, sThird.Candidates(n.fx.paths[1]), "the viewer holds nothing yet")

			var total int64
			for _, p := range n.fx.paths {
				got, err := sViewer.Fetch(context.Background(), seed.ID(), p)
				require.NoError(t, err, p)
				require.Equal(t, n.fx.files[p], got)
				require.True(t, sViewer.Has(p))
				total += n.fx.size(p)
			}
			// Fetched files were stored and announced: the third peer,
			// connected to the viewer only, learns of them and can fetch.
			for _, p := range n.fx.paths {
				hasCandidate(t, sThird, p, viewer.ID())
			}
			mu.Lock()
			require.Len(t, heard, len(n.fx.paths))
			mu.Unlock()
			got, err := sThird.Fetch(context.Background(), viewer.ID(), n.fx.paths[2])
			require.NoError(t, err)
			require.Equal(t, n.fx.files[n.fx.paths[2]], got)

			require.Equal(t, total, sSeed.Stats().BytesUp)
			require.Equal(t, total, sViewer.Stats().BytesDown)
			var fromSeed transport.PeerState
			for _, ps := range sViewer.Peers() {
				if ps.ID == seed.ID() {
					fromSeed = ps
				}
			}
			require.Equal(t, total, fromSeed.BytesDown)
			require.Greater(t, fromSeed.Throughput, 0.0)
			require.True(t, fromSeed.Has(n.fx.paths[3]))
			st := viewer.Stats()
			require.Equal(t, total, st.BytesDown)
			require.Equal(t, 2, st.AdmittedPeers)
			require.Zero(t, st.FailedFetches)
		})
	}
}
