package sched_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport/cache"
	"github.com/sealmesh/sealmesh/transport/sched"
)

// These tests run on the real clock against an httptest origin on
// 127.0.0.1. They assert sources, bytes and order only, never durations, so
// a loaded machine slows them down without failing them.

func TestRealOriginPrefetchInOrder(t *testing.T) {
	c := newContent(t, 20, 32<<10)
	o := &origin{c: c}
	org, _ := listenTCP(t, o)
	store, err := cache.NewMem(c.m, cache.Options{})
	require.NoError(t, err)
	s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Origin: org, Store: store, BufferTarget: time.Hour})
	require.NoError(t, err)
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, func() time.Duration { return 0 }) }()
	require.Eventually(t, func() bool { return len(store.Paths()) == 21 }, time.Minute, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-ran, context.Canceled)

	idx := make([]int, 0, 21)
	for _, p := range o.requests() {
		idx = append(idx, indexOf(p))
	}
	require.Len(t, idx, 21, "each file once: %v", idx)
	require.ElementsMatch(t, []int{0, 1, 2}, idx[:3], "init and the urgent segments first")
	require.True(t, slices.IsSorted(idx[3:]), "then in play order: %v", idx)
	require.Equal(t, int64(900+20*(32<<10)), org.BytesRead())
	for i := 1; i <= 20; i++ {
		data, src, err := s.Get(t.Context(), i)
		require.NoError(t, err)
		require.Equal(t, sched.SourceCache, src)
		require.Equal(t, c.data[media(i)], data)
	}
}

func TestRealOriginDownPeersComplete(t *testing.T) {
	c := newContent(t, 10, 32<<10)
	o := &origin{c: c}
	org, srv := listenTCP(t, o)
	srv.Close() // connection refused from now on
	w := newSwarm(c)
	w.add("peer-a", 0, 64<<20, nil)
	s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Origin: org, Store: &memStore{}})
	require.NoError(t, err)
	defer s.Close()
	for i := 1; i <= 10; i++ {
		data, src, err := s.Get(t.Context(), i)
		require.NoError(t, err, "segment %d", i)
		require.Equal(t, sched.SourcePeer, src)
		require.Equal(t, c.data[media(i)], data)
	}
	st := s.Stats()
	require.Zero(t, st.OriginBytes)
	require.Positive(t, st.Failures)
}

// TestRealBadPeerFetchedElsewhere runs without an origin. The bad peer is
// alone at first, so the failure is deterministic: its bytes are refused,
// it is banned, and once an honest peer joins every file comes from it.
// (TestBadPeerIsBannedAndFileFetchedElsewhere races the two in parallel.)
func TestRealBadPeerFetchedElsewhere(t *testing.T) {
	c := newContent(t, 10, 32<<10)
	w := newSwarm(c)
	w.add("evil", 0, 64<<20, nil).corrupt = true
	s, err := sched.New(sched.Config{Manifest: c.m, Rendition: "v1", Peers: w, Store: &memStore{}})
	require.NoError(t, err)
	defer s.Close()
	_, _, err = s.Get(t.Context(), 1)
	require.ErrorIs(t, err, sched.ErrUnavailable)
	require.ErrorIs(t, err, segment.ErrIntegrity)
	require.True(t, w.isBanned("evil"))
	require.True(t, s.Stats().Peers["evil"].Banned)

	w.add("good", 0, 64<<20, nil)
	for i := 1; i <= 10; i++ {
		data, src, err := s.Get(t.Context(), i)
		require.NoError(t, err, "segment %d", i)
		require.Equal(t, sched.SourcePeer, src)
		require.Equal(t, c.data[media(i)], data)
	}
	st := s.Stats()
	require.Equal(t, 1, st.Integrity)
	require.Zero(t, st.Peers["evil"].Bytes)
	require.Equal(t, 10, st.Peers["good"].Fetches)
	require.Len(t, w.fetches(), 11, "the banned peer was asked once")
}
