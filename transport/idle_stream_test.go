package transport_test

import (
	"context"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

// TestIdleStreamFloodReset backs the "sybil flood" row of SECURITY.md for
// streams that never choose a protocol. Such streams sit in the resource
// manager's transient scope, which all peers share (a quarter of Streams:
// 64 by default); libp2p lets them sit for 10 s. Five admitted ticket
// holders keep opening streams to a seed with default limits, each with one
// byte of a protocol header and then nothing: enough to fill that scope
// (each peer may hold 16 streams). The seed must reset them after
// NegotiationTimeout (default 2 s), count the resets, ban each attacker
// after IdleStreamStrikes resets, and then serve an honest admitted peer
// every file. With the reaper off, libp2p's own timeout ends the streams
// but nobody is banned and the attackers start again: the test fails on
// its deadline.
func TestIdleStreamFloodReset(t *testing.T) {
	const (
		attackers   = 5
		streamsEach = 16
	)
	n := newNet(t)
	seed := n.host() // default negotiation timeout and strikes
	sSeed := n.join(seed, n.fx.full())
	honest := n.host()
	sHonest := n.join(honest, nil)
	connect(t, honest, seed)
	hasCandidate(t, sHonest, n.fx.paths[0], seed.ID())

	hosts := make([]*transport.Host, attackers)
	for i := range hosts {
		hosts[i] = n.host(func(c *transport.Config) { c.AdmissionGrace = -1 }) // the attackers themselves never evict
		n.join(hosts[i], nil)
		connect(t, hosts[i], seed)
		// Admitted before the flood: until then the seed holds a peer to
		// a few streams (Limits.UnadmittedStreams), and a late attacker
		// flooding alone is not enough pressure to be banned.
		admitted(t, sSeed, hosts[i].ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		mu      sync.Mutex
		streams []network.Stream
		wg      sync.WaitGroup
	)
	for _, h := range hosts {
		wg.Go(func() {
			// A determined attacker: it keeps opening streams that start
			// a multistream header (its length byte, which also makes a
			// QUIC stream exist on the seed's side) and never finish it,
			// until the seed drops it. Streams the seed refuses because
			// its transient scope is full are retried.
			for ctx.Err() == nil && connected(h, seed) {
				sctx, scancel := context.WithTimeout(ctx, time.Second)
				st, err := h.LibP2P().Network().NewStream(sctx, seed.ID())
				scancel()
				if err == nil {
					_, err = st.Write([]byte{0x13})
				}
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				streams = append(streams, st)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "the seed never dropped the attackers")
	for _, h := range hosts {
		require.True(t, seed.Banned(h.ID()), "attacker %s not banned", h.ID())
	}
	t.Logf("attackers opened %d idle streams before the seed banned them all; seed stats %+v", len(streams), seed.Stats())

	// Every idle stream was ended by the seed (reset, or closed with the
	// connection): none runs into our read deadline.
	for _, st := range streams {
		_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, st)
		require.Error(t, err)
		require.NotErrorIs(t, err, os.ErrDeadlineExceeded)
		_ = st.Close()
	}
	st := seed.Stats()
	require.GreaterOrEqual(t, st.IdleStreamResets, int64(attackers*transport.DefaultIdleStreamStrikes))
	require.Equal(t, int64(attackers), st.Bans)
	require.False(t, seed.Banned(honest.ID()), "the honest peer never left a stream idle")

	// The honest peer gets every file, verified.
	for _, p := range n.fx.paths {
		var got []byte
		var err error
		for range 50 {
			if got, err = sHonest.Fetch(ctx, seed.ID(), p); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err, "honest fetch of %s after the idle-stream flood", p)
		require.NoError(t, n.fx.m.CheckFile(p, got))
	}
}
