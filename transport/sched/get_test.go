package sched_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport/cache"
	"github.com/sealmesh/sealmesh/transport/sched"
)

func TestGetJoinsTheFetchInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 3, 64<<10)
		w := newSwarm(c)
		w.add("p", 50*time.Millisecond, 256<<10, nil)
		s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Store: &memStore{}})
		require.NoError(t, err)
		defer s.Close()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				data, src, err := s.Get(t.Context(), 2)
				require.NoError(t, err)
				require.Equal(t, sched.SourcePeer, src)
				require.Equal(t, c.data[media(2)], data)
				data[0] ^= 0xff // each caller owns its copy
			})
		}
		wg.Wait()
		require.Len(t, w.fetches(), 1, "one fetch served all three")
		data, src, err := s.Get(t.Context(), 2)
		require.NoError(t, err)
		require.Equal(t, sched.SourceCache, src)
		require.Equal(t, c.data[media(2)], data)
		data, src, err = s.GetInit(t.Context(), 0)
		require.NoError(t, err)
		require.Equal(t, sched.SourcePeer, src)
		require.Equal(t, c.data["v1/init.mp4"], data)
	})
}

func TestGetErrors(t *testing.T) {
	c := newContent(t, 3, 1000)
	w := newSwarm(c) // nobody has anything, and there is no origin
	s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Store: &memStore{}})
	require.NoError(t, err)
	defer s.Close()
	for _, i := range []int{0, -1, 4} {
		_, _, err := s.Get(t.Context(), i)
		require.ErrorIs(t, err, segment.ErrUnknownFile, "index %d", i)
	}
	_, _, err = s.GetInit(t.Context(), 1)
	require.ErrorIs(t, err, segment.ErrUnknownFile)
	_, _, err = s.Get(t.Context(), 1)
	require.ErrorIs(t, err, sched.ErrUnavailable)
}

func TestNewValidates(t *testing.T) {
	c := newContent(t, 1, 100)
	w := newSwarm(c)
	ok := sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Store: &memStore{}}
	cases := map[string]func(*sched.Config){
		"no manifest":       func(c *sched.Config) { c.Manifest = nil },
		"no store":          func(c *sched.Config) { c.Store = nil },
		"no source":         func(c *sched.Config) { c.Peers = nil },
		"unknown rendition": func(c *sched.Config) { c.Rendition = "a1" },
		"negative":          func(c *sched.Config) { c.UrgentWindow = -time.Second },
	}
	for name, mut := range cases {
		cfg := ok
		mut(&cfg)
		_, err := sched.New(cfg)
		require.Error(t, err, name)
	}
	s, err := sched.New(ok)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
}

// TestStoreRefusalStillPlays: a Store too small for a segment refuses every
// Put; the player still gets its bytes, prefetched ones from memory.
func TestStoreRefusalStillPlays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 6, 4000)
		o := &origin{c: c, delay: 10 * time.Millisecond}
		org, stop := listenPipe(o)
		defer stop()
		store, err := cache.NewMem(c.m, cache.Options{MaxBytes: 500})
		require.NoError(t, err)
		s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Origin: org, Store: store})
		require.NoError(t, err)
		defer s.Close()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		ran := make(chan error, 1)
		go func() { ran <- s.Run(ctx, func() time.Duration { return 0 }) }()
		time.Sleep(5 * time.Second) // Run prefetches the whole window
		require.Empty(t, store.Paths())
		for i := 1; i <= 6; i++ {
			data, src, err := s.Get(t.Context(), i)
			require.NoError(t, err)
			require.Equal(t, sched.SourceCache, src, "segment %d was prefetched and held", i)
			require.Equal(t, c.data[media(i)], data)
		}
		require.Len(t, o.requests(), 7, "nothing fetched twice")
		cancel()
		<-ran
	})
}

// TestGetWaitsForABusyPeerWhenTheOriginIsDown: the origin answers 503 and
// the only peer holding the file is busy for its first second. A Get for a
// file due now does not fail: the peer will serve it in a moment, so the
// fetch waits for it.
func TestGetWaitsForABusyPeerWhenTheOriginIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 3, 16<<10)
		o := &origin{c: c, down: true}
		org, stop := listenPipe(o)
		defer stop()
		w := newSwarm(c)
		w.add("p", 5*time.Millisecond, 1<<20, nil).busyUntil = time.Now().Add(time.Second)
		s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Origin: org, Store: &memStore{}})
		require.NoError(t, err)
		defer s.Close()
		start := time.Now()
		data, src, err := s.Get(t.Context(), 1)
		require.NoError(t, err)
		require.Equal(t, sched.SourcePeer, src)
		require.Equal(t, c.data[media(1)], data)
		require.GreaterOrEqual(t, time.Since(start), time.Second, "served once the peer had a slot")
		require.NotEmpty(t, o.requests(), "the origin was tried first")
		require.Positive(t, s.Stats().Busy)
	})
}
