package transport_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

func TestUploadPolicy(t *testing.T) {
	t.Run("busy past MaxConcurrent", func(t *testing.T) {
		n := newNet(t, 700, 256<<10, 256<<10)
		seed, a, b := n.host(), n.host(), n.host()
		sSeed := n.join(seed, n.fx.full(), func(o *transport.SwarmOptions) {
			o.Upload = transport.UploadPolicy{MaxConcurrent: 1, MaxRate: 512 << 10}
		})
		sA, sB := n.join(a, nil), n.join(b, nil)
		connect(t, a, seed)
		connect(t, b, seed)
		hasCandidate(t, sA, n.fx.paths[1], seed.ID())
		hasCandidate(t, sB, n.fx.paths[1], seed.ID())

		var wg sync.WaitGroup
		wg.Add(1)
		var slowErr error
		go func() {
			defer wg.Done()
			_, slowErr = sA.Fetch(context.Background(), seed.ID(), n.fx.paths[1])
		}()
		require.Eventually(t, func() bool { return sSeed.Stats().BytesUp > 0 }, 5*time.Second, 5*time.Millisecond)
		_, err := sB.Fetch(context.Background(), seed.ID(), n.fx.paths[2])
		require.ErrorIs(t, err, transport.ErrBusy)
		require.False(t, b.Banned(seed.ID()), "busy is not an offence")
		wg.Wait()
		require.NoError(t, slowErr)
		// The slot is free again.
		got, err := sB.Fetch(context.Background(), seed.ID(), n.fx.paths[2])
		require.NoError(t, err)
		require.Equal(t, n.fx.files[n.fx.paths[2]], got)
	})

	t.Run("MaxRate", func(t *testing.T) {
		n := newNet(t, 700, 200<<10)
		seed, a := n.host(), n.host()
		n.join(seed, n.fx.full(), func(o *transport.SwarmOptions) { o.Upload.MaxRate = 400 << 10 })
		sA := n.join(a, nil)
		connect(t, a, seed)
		hasCandidate(t, sA, n.fx.paths[1], seed.ID())
		start := time.Now()
		var got atomic.Int64
		done := make(chan error, 1)
		go func() {
			_, err := sA.FetchProgress(context.Background(), seed.ID(), n.fx.paths[1], false, &got)
			done <- err
		}()
		// FetchProgress reports the bytes as they come, before the end.
		require.Eventually(t, func() bool { g := got.Load(); return g > 0 && g < 200<<10 }, 5*time.Second, time.Millisecond)
		require.NoError(t, <-done)
		require.Equal(t, int64(200<<10), got.Load())
		// 200 KiB at 400 KiB/s, with a 40 KiB burst: at least ~0.4 s.
		require.Greater(t, time.Since(start), 350*time.Millisecond)
	})

	t.Run("consume only", func(t *testing.T) {
		n := newNet(t)
		leech, a := n.host(), n.host()
		sLeech := n.join(leech, n.fx.full(), func(o *transport.SwarmOptions) { o.Upload.ConsumeOnly = true })
		sA := n.join(a, nil)
		connect(t, a, leech)
		admitted(t, sA, leech.ID())
		admitted(t, sLeech, a.ID())
		require.Never(t, func() bool { return len(sA.Candidates(n.fx.paths[1])) > 0 }, 300*time.Millisecond, 20*time.Millisecond,
			"a consume-only peer announces nothing")
		_, err := sA.Fetch(context.Background(), leech.ID(), n.fx.paths[1])
		require.ErrorIs(t, err, transport.ErrBusy)
		require.Zero(t, sLeech.Stats().BytesUp)
	})

	t.Run("bad policy", func(t *testing.T) {
		n := newNet(t)
		h := n.host()
		_, err := h.Join(context.Background(), content, n.fx.m, transport.SwarmOptions{
			Verifier: n.verifier(), Tickets: n.ticketFor(h), Upload: transport.UploadPolicy{MaxRate: -1},
		})
		require.Error(t, err)
	})
}
