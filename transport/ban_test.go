package transport_test

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// rawHandler replaces h's segment handler with serve, which gets the
// requested path and writes whatever it likes.
func rawHandler(h *transport.Host, serve func(st network.Stream, path string)) {
	h.LibP2P().SetStreamHandler(transport.SegmentProtocol, func(st network.Stream) {
		req, err := io.ReadAll(io.LimitReader(st, 1024))
		if err != nil || len(req) < 4 {
			_ = st.Reset()
			return
		}
		plen := int(binary.BigEndian.Uint16(req[2+int(req[1]):]))
		serve(st, string(req[len(req)-plen:]))
	})
}

func header(status byte, size int64) []byte {
	h := []byte{status}
	return binary.BigEndian.AppendUint64(h, uint64(size))
}

// A peer serving bad bytes is banned, and the file comes from another.
func TestBadPeerBanned(t *testing.T) {
	// Files 1 and 2 have the same size, so swapping them passes the size check.
	sizes := []int{700, 64 << 10, 64 << 10, 128 << 10}
	type evil struct {
		store func(fx *fixture) func(string) ([]byte, bool)  // served through the real handler (TrustStore)
		raw   func(fx *fixture) func(network.Stream, string) // a hand-written handler
	}
	cases := []struct {
		name      string
		evil      evil
		integrity bool // the error wraps segment.ErrIntegrity
	}{
		{"corrupted", evil{store: func(fx *fixture) func(string) ([]byte, bool) {
			return func(p string) ([]byte, bool) { return flip(fx.files[p]), true }
		}}, true},
		{"swapped same size", evil{store: func(fx *fixture) func(string) ([]byte, bool) {
			return func(p string) ([]byte, bool) {
				if p == fx.paths[1] {
					return fx.files[fx.paths[2]], true
				}
				return fx.files[fx.paths[1]], true
			}
		}}, true},
		{"swapped other size", evil{store: func(fx *fixture) func(string) ([]byte, bool) {
			return func(string) ([]byte, bool) { return fx.files[fx.paths[3]], true }
		}}, true},
		{"truncated", evil{store: func(fx *fixture) func(string) ([]byte, bool) {
			return func(p string) ([]byte, bool) { return fx.files[p][:100], true }
		}}, true},
		{"oversized", evil{store: func(fx *fixture) func(string) ([]byte, bool) {
			return func(p string) ([]byte, bool) {
				return append(fx.files[p][:len(fx.files[p]):len(fx.files[p])], 1, 2, 3), true
			}
		}}, true},
		{"body ends early", evil{raw: func(fx *fixture) func(network.Stream, string) {
			return func(st network.Stream, p string) {
				_, _ = st.Write(header(0, int64(len(fx.files[p]))))
				_, _ = st.Write(fx.files[p][:len(fx.files[p])/2])
				_ = st.Close() // a clean FIN mid-file
			}
		}}, true},
		{"bytes past the size", evil{raw: func(fx *fixture) func(network.Stream, string) {
			return func(st network.Stream, p string) {
				_, _ = st.Write(header(0, int64(len(fx.files[p]))))
				_, _ = st.Write(fx.files[p])
				_, _ = st.Write([]byte("more"))
				_ = st.Close()
			}
		}}, true},
		{"unknown status", evil{raw: func(fx *fixture) func(network.Stream, string) {
			return func(st network.Stream, p string) {
				_, _ = st.Write(header(42, 0))
				_ = st.Close()
			}
		}}, false},
		{"absurd size", evil{raw: func(fx *fixture) func(network.Stream, string) {
			return func(st network.Stream, p string) {
				_, _ = st.Write(header(0, 1<<62))
				_ = st.Close()
			}
		}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, sizes...)
			viewer, bad, good := n.host(), n.host(), n.host()
			sViewer := n.join(viewer, nil)
			if tc.evil.store != nil {
				n.join(bad, evilStore{MemStore: n.fx.full(), get: tc.evil.store(n.fx)}, func(o *transport.SwarmOptions) { o.TrustStore = true })
			} else {
				n.join(bad, n.fx.full())
				rawHandler(bad, tc.evil.raw(n.fx))
			}
			n.join(good, n.fx.full())
			connect(t, viewer, bad)
			connect(t, viewer, good)
			path := n.fx.paths[1]
			hasCandidate(t, sViewer, path, bad.ID())
			hasCandidate(t, sViewer, path, good.ID())

			_, err := sViewer.Fetch(context.Background(), bad.ID(), path)
			require.ErrorIs(t, err, transport.ErrPeerBanned)
			if tc.integrity {
				require.ErrorIs(t, err, segment.ErrIntegrity)
			}
			require.False(t, sViewer.Has(path), "bad bytes are never stored")
			require.True(t, viewer.Banned(bad.ID()))
			require.NotContains(t, sViewer.Candidates(path), bad.ID())
			require.Eventually(t, func() bool { return !connected(viewer, bad) }, 3*time.Second, 10*time.Millisecond)
			require.Error(t, viewer.Connect(context.Background(), bad.AddrInfo()))
			_, err = sViewer.Fetch(context.Background(), bad.ID(), n.fx.paths[2])
			require.ErrorIs(t, err, transport.ErrPeerBanned, "no more requests to a banned peer")

			got, err := sViewer.Fetch(context.Background(), good.ID(), path)
			require.NoError(t, err)
			require.Equal(t, n.fx.files[path], got)
			st := viewer.Stats()
			require.Equal(t, 1, st.BannedPeers)
			require.EqualValues(t, 2, st.FailedFetches)
		})
	}
}

// Banning a peer cancels its other in-flight fetches at once.
func TestBanCancelsInflight(t *testing.T) {
	n := newNet(t)
	viewer, bad := n.host(), n.host()
	sViewer := n.join(viewer, nil)
	n.join(bad, n.fx.full())
	stall := n.fx.paths[1]
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	inflight := make(chan struct{}) // the stalled fetch's request arrived and its first bytes went out
	rawHandler(bad, func(st network.Stream, p string) {
		if p == stall {
			_, _ = st.Write(header(0, int64(len(n.fx.files[p]))))
			_, _ = st.Write(n.fx.files[p][:10])
			close(inflight)
			<-release // stalls; the viewer's stream timeout is 30 s
			_ = st.Reset()
			return
		}
		_, _ = st.Write(header(0, int64(len(n.fx.files[p]))))
		_, _ = st.Write(flip(n.fx.files[p]))
		_ = st.Close()
	})
	connect(t, viewer, bad)
	hasCandidate(t, sViewer, stall, bad.ID())

	stalled := make(chan error, 1)
	go func() {
		_, err := sViewer.Fetch(context.Background(), bad.ID(), stall)
		stalled <- err
	}()
	// Ban only once the stalled fetch is in flight, else this would test
	// nothing but a fetch refused up front.
	select {
	case <-inflight:
	case err := <-stalled:
		t.Fatalf("the stalled fetch ended before the ban: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled fetch never reached the peer")
	}
	_, err := sViewer.Fetch(context.Background(), bad.ID(), n.fx.paths[2])
	require.ErrorIs(t, err, segment.ErrIntegrity)
	select {
	case err := <-stalled:
		require.ErrorIs(t, err, transport.ErrPeerBanned)
	case <-time.After(3 * time.Second):
		t.Fatal("the stalled fetch from the banned peer was not cancelled")
	}
}

// A peer killed mid-transfer: the fetch fails fast, the peer is not banned,
// and a retry elsewhere succeeds.
func TestPeerClosedMidTransfer(t *testing.T) {
	n := newNet(t, 700, 1<<20)
	viewer, slow, good := n.host(), n.host(), n.host()
	sViewer := n.join(viewer, nil)
	sSlow := n.join(slow, n.fx.full(), func(o *transport.SwarmOptions) { o.Upload.MaxRate = 256 << 10 })
	n.join(good, n.fx.full())
	connect(t, viewer, slow)
	connect(t, viewer, good)
	path := n.fx.paths[1]
	hasCandidate(t, sViewer, path, slow.ID())
	hasCandidate(t, sViewer, path, good.ID())

	done := make(chan error, 1)
	go func() {
		_, err := sViewer.Fetch(context.Background(), slow.ID(), path)
		done <- err
	}()
	require.Eventually(t, func() bool { return sSlow.Stats().BytesUp > 64<<10 }, 5*time.Second, 5*time.Millisecond)
	killed := time.Now()
	require.NoError(t, slow.Close())
	select {
	case err := <-done:
		require.Error(t, err)
		require.NotErrorIs(t, err, transport.ErrPeerBanned)
		require.Less(t, time.Since(killed), 2*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("fetch from a closed peer did not fail")
	}
	require.False(t, viewer.Banned(slow.ID()))
	got, err := sViewer.Fetch(context.Background(), good.ID(), path)
	require.NoError(t, err)
	require.Equal(t, n.fx.files[path], got)
}

func TestFetchErrors(t *testing.T) {
	n := newNet(t)
	viewer, seed, stranger := n.host(), n.host(), n.host()
	sViewer := n.join(viewer, nil)
	n.join(seed, n.fx.full())
	connect(t, viewer, seed)
	admitted(t, sViewer, seed.ID())

	_, err := sViewer.Fetch(context.Background(), seed.ID(), "not/listed.m4s")
	require.ErrorIs(t, err, segment.ErrUnknownFile)
	_, err = sViewer.Fetch(context.Background(), stranger.ID(), n.fx.paths[1])
	require.ErrorIs(t, err, transport.ErrNotAdmitted, "we fetch only from peers that showed us a ticket")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = sViewer.Fetch(ctx, seed.ID(), n.fx.paths[1])
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, viewer.Banned(seed.ID()))
}
