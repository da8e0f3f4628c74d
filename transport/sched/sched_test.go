package sched_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport/cache"
	"github.com/sealmesh/sealmesh/transport/sched"
)

// result is what a simulated playback leaves to assert on.
type result struct {
	c      *content
	stats  sched.Stats
	origin []string // origin requests in arrival order
	calls  []call   // peer fetches in call order
	player *play
	swarm  *swarm
}

// simulate plays n segments of size bytes through a scheduler in a
// testing/synctest bubble: the clock is fake, so deadlines, hedges and
// throughput are exact and the test takes no wall time. The origin is a
// real net/http server reached over in-memory pipes; peers are the swarm
// simulation. setup adjusts both; withPeers false passes a nil Peers.
func simulate(t *testing.T, n, size int, withPeers bool, setup func(*origin, *swarm), cfg func(*sched.Config)) result {
	var res result
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, n, size)
		o := &origin{c: c, delay: 37 * time.Millisecond}
		org, stop := listenPipe(o)
		w := newSwarm(c)
		if setup != nil {
			setup(o, w)
		}
		store, err := cache.NewMem(c.m, cache.Options{})
		require.NoError(t, err)
		conf := sched.Config{Manifest: c.m, Rendition: "v1", Origin: org, Store: store}
		if withPeers {
			conf.Peers = w
		}
		if cfg != nil {
			cfg(&conf)
		}
		s, err := sched.New(conf)
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(t.Context())
		p := &play{}
		ran := make(chan error, 1)
		go func() { ran <- s.Run(ctx, p.playhead) }()
		p.run(ctx, t, s, c, n)
		cancel()
		require.ErrorIs(t, <-ran, context.Canceled)
		require.NoError(t, s.Close())
		stop()
		res = result{c: c, stats: s.Stats(), origin: o.requests(), calls: w.fetches(), player: p, swarm: w}
	})
	return res
}

func TestNoPeersAllFromOriginInOrder(t *testing.T) {
	for _, withPeers := range []bool{false, true} { // nil Peers, and a swarm where nobody has anything
		t.Run("peers="+strconv.FormatBool(withPeers), func(t *testing.T) {
			r := simulate(t, 40, 32<<10, withPeers, nil, nil)
			require.Empty(t, r.player.stalls(), "the player never waits")
			require.Zero(t, r.stats.PeerBytes)
			require.Equal(t, 41, r.stats.OriginFetches, "init and every segment once")
			require.Len(t, r.origin, 41, "no file requested twice")
			// At start the init and the first two segments (inside the urgent
			// window) are requested together; after that the buffer is filled
			// strictly in play order.
			idx := make([]int, len(r.origin))
			for i, p := range r.origin {
				idx[i] = indexOf(p)
			}
			require.ElementsMatch(t, []int{0, 1, 2}, idx[:3])
			require.True(t, slices.IsSorted(idx[3:]), "origin order %v", idx)
		})
	}
}

func TestFastPeersCarryTheLoad(t *testing.T) {
	r := simulate(t, 60, 64<<10, true, func(o *origin, w *swarm) {
		w.add("peer-a", 15*time.Millisecond, 2<<20, nil)
		w.add("peer-b", 20*time.Millisecond, 1<<20, nil)
		w.add("peer-c", 25*time.Millisecond, 3<<20, nil)
	}, nil)
	require.Empty(t, r.player.stalls())
	share := float64(r.stats.PeerBytes) / float64(r.stats.PeerBytes+r.stats.OriginBytes)
	t.Logf("peer share %.1f%%, stats %+v", 100*share, r.stats)
	require.GreaterOrEqual(t, share, 0.90)
	require.Zero(t, r.stats.Failures)
	for _, id := range []string{"peer-a", "peer-b", "peer-c"} {
		require.Positive(t, r.stats.Peers[peer.ID(id)].Bytes, id)
		require.Positive(t, r.stats.Peers[peer.ID(id)].Throughput, id)
	}
}

func TestLatePeerLosesToOrigin(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*origin, *swarm)
		late  []string // files the origin must have served after a peer started them
	}{
		{
			// Every transfer takes longer than the buffer gives it.
			name:  "slow peer",
			setup: func(o *origin, w *swarm) { w.add("slow", 20*time.Millisecond, 4<<10, nil) },
		},
		{
			// A peer measured fast goes silent on three segments: each is
			// hedged, and the origin wins it before its deadline.
			name: "fast peer stalls",
			setup: func(o *origin, w *swarm) {
				p := w.add("fast", 10*time.Millisecond, 4<<20, nil)
				for i := 10; i <= 12; i++ {
					p.hang[media(i)] = true
				}
			},
			late: []string{media(10), media(11), media(12)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := simulate(t, 25, 64<<10, true, tc.setup, nil)
			require.Empty(t, r.player.stalls(), "P2P never stalls playback")
			require.Positive(t, r.stats.Hedges)
			require.Positive(t, r.stats.Cancelled, "the losing peer fetches were cancelled")
			cancelled := 0
			for _, c := range r.calls {
				if c.cancelled {
					cancelled++
				}
			}
			require.Positive(t, cancelled, "the peer saw its fetch cancelled")
			for _, p := range tc.late {
				require.Contains(t, r.origin, p)
				require.True(t, slices.ContainsFunc(r.calls, func(c call) bool { return c.path == p && c.cancelled }), "%s was tried on the peer first", p)
			}
		})
	}
}

func TestBadPeerIsBannedAndFileFetchedElsewhere(t *testing.T) {
	r := simulate(t, 20, 64<<10, true, func(o *origin, w *swarm) {
		w.add("evil", 5*time.Millisecond, 8<<20, nil).corrupt = true
		w.add("good", 20*time.Millisecond, 1<<20, nil)
	}, nil)
	// play checked every segment's bytes; here: who was asked.
	require.True(t, r.swarm.isBanned("evil"))
	require.True(t, r.stats.Peers["evil"].Banned)
	require.Positive(t, r.stats.Integrity)
	require.Zero(t, r.stats.Peers["evil"].Bytes)
	evil := 0
	for _, c := range r.calls {
		if c.peer == "evil" {
			evil++
		}
	}
	require.LessOrEqual(t, evil, 2, "no request after the ban (two may have been in flight)")
	require.Positive(t, r.stats.Peers["good"].Bytes)
	require.Empty(t, r.player.stalls())
}

func TestOriginDownSwarmCompletes(t *testing.T) {
	cases := []struct {
		name   string
		origin func(*origin)
	}{
		{"503", func(o *origin) { o.set(0, true) }},
		{"hangs", func(o *origin) { o.set(time.Hour, false) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := simulate(t, 20, 64<<10, true, func(o *origin, w *swarm) {
				tc.origin(o)
				w.add("peer-a", 10*time.Millisecond, 1<<20, nil)
				w.add("peer-b", 10*time.Millisecond, 1<<20, nil)
			}, nil)
			// play required every segment with the right bytes.
			require.Len(t, r.player.got, 20)
			require.Zero(t, r.stats.OriginBytes)
			require.Positive(t, r.stats.Failures+r.stats.Hedges, "the origin was tried and failed or was hedged")
			require.LessOrEqual(t, len(r.player.stalls()), 1, "at most the first segment after start waits")
		})
	}
}

func TestRarestFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 10, 16<<10)
		o := &origin{c: c}
		org, stop := listenPipe(o)
		defer stop()
		w := newSwarm(c)
		all := make([]string, 0, 10)
		for i := 1; i <= 10; i++ {
			all = append(all, media(i))
		}
		without := func(drop ...int) []string {
			return slices.DeleteFunc(slices.Clone(all), func(p string) bool { return slices.Contains(drop, indexOf(p)) })
		}
		w.add("p1", time.Millisecond, 1<<20, all)
		w.add("p2", time.Millisecond, 1<<20, without(7, 9))
		w.add("p3", time.Millisecond, 1<<20, without(7, 4))
		s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Origin: org, Store: &memStore{},
			BufferTarget: time.Minute, MaxParallel: 1, HedgeAfter: time.Minute})
		require.NoError(t, err)
		defer s.Close()
		ctx, cancel := context.WithCancel(t.Context())
		ran := make(chan error, 1)
		go func() { ran <- s.Run(ctx, func() time.Duration { return 0 }) }() // paused at the start
		time.Sleep(10 * time.Second)
		cancel()
		<-ran

		var order []int
		for _, call := range w.fetches() {
			if i := indexOf(call.path); !slices.Contains(order, i) {
				order = append(order, i)
			}
		}
		// 1 is due now (origin); 2 is inside the urgent window but a peer's
		// expected time (by the prior) leaves the origin room, so a peer gets
		// it first; then one holder (7), two holders (4 and 9, in play
		// order), then the rest in play order.
		require.Equal(t, []int{2, 7, 4, 9, 3, 5, 6, 8, 10}, order)
		require.ElementsMatch(t, []string{"v1/init.mp4", media(1)}, o.requests())
	})
}

func TestRunCancelStopsFetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 10, 16<<10)
		w := newSwarm(c)
		p := w.add("stuck", time.Millisecond, 1<<20, nil)
		for path := range c.data {
			p.hang[path] = true
		}
		s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Store: &memStore{}})
		require.NoError(t, err)
		defer s.Close()

		ctx, cancel := context.WithCancel(t.Context())
		ran := make(chan error, 1)
		go func() { ran <- s.Run(ctx, func() time.Duration { return 0 }) }()
		time.Sleep(time.Second)
		require.Positive(t, w.inFlight())
		cancel()
		require.ErrorIs(t, <-ran, context.Canceled)
		require.Zero(t, w.inFlight(), "Run returns only after its fetches stopped")

		// A Get that gives up cancels the fetch it alone wanted.
		gctx, gcancel := context.WithTimeout(t.Context(), time.Second)
		defer gcancel()
		_, _, err = s.Get(gctx, 5)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		synctest.Wait()
		require.Zero(t, w.inFlight())

		require.NoError(t, s.Close())
		_, _, err = s.Get(t.Context(), 5)
		require.ErrorIs(t, err, sched.ErrClosed)
		require.ErrorIs(t, s.Run(t.Context(), func() time.Duration { return 0 }), sched.ErrClosed)
	})
}

// indexOf returns a media path's index, 0 for the init segment.
func indexOf(p string) int {
	i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(p, "v1/"), ".m4s"))
	return i
}

// populated is a swarm that reports n admitted peers, none holding anything
// yet: viewers that started together.
type populated struct {
	*swarm
	n int
}

func (p populated) Population() int { return p.n }

// TestViewersStartingTogetherShareOriginPrefetch: with Self and a swarm of
// three other admitted peers that hold nothing, a viewer fills ahead from
// the origin only the files assigned to it (about a quarter), not its whole
// buffer; alone (no Self) it fills everything.
func TestViewersStartingTogetherShareOriginPrefetch(t *testing.T) {
	count := func(self string) int {
		var n int
		synctest.Test(t, func(t *testing.T) {
			c := newContent(t, 40, 16<<10)
			o := &origin{c: c}
			org, stop := listenPipe(o)
			defer stop()
			w := populated{newSwarm(c), 3}
			s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Origin: org, Store: &memStore{},
				BufferTarget: 10 * time.Minute, Self: self})
			require.NoError(t, err)
			defer s.Close()
			ctx, cancel := context.WithCancel(t.Context())
			ran := make(chan error, 1)
			go func() { ran <- s.Run(ctx, func() time.Duration { return 0 }) }() // paused at the start
			time.Sleep(time.Minute)
			cancel()
			<-ran
			n = len(o.requests())
		})
		return n
	}
	alone, shared := count(""), count("viewer-a")
	require.Equal(t, 41, alone, "without Self the viewer prefetches its whole buffer from the origin")
	require.Less(t, shared, 25, "with three peers about a quarter of the files (plus the urgent ones) come from the origin")
	require.Greater(t, shared, 3, "the urgent files still come from the origin")
}
