package sched_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport/sched"
)

// runPaused runs Run for d of fake time with the playhead held at 0, so
// every file's deadline stays its start time, and returns the origin's
// requests and the stats.
func runPaused(t *testing.T, c *content, w sched.Peers, cfg sched.Config, d time.Duration, during func(*sched.Scheduler)) ([]string, sched.Stats) {
	return runAt(t, 0, c, w, cfg, d, during)
}

// runAt is runPaused with the playhead held at ph.
func runAt(t *testing.T, ph time.Duration, c *content, w sched.Peers, cfg sched.Config, d time.Duration, during func(*sched.Scheduler)) ([]string, sched.Stats) {
	t.Helper()
	o := &origin{c: c}
	org, stop := listenPipe(o)
	defer stop()
	cfg.Manifest, cfg.Rendition, cfg.Peers, cfg.Origin = c.m, "v1", w, org
	if cfg.Store == nil {
		cfg.Store = &memStore{}
	}
	s, err := sched.New(cfg)
	require.NoError(t, err)
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, func() time.Duration { return ph }) }()
	if during != nil {
		during(s)
	}
	time.Sleep(d)
	cancel()
	<-ran
	return o.requests(), s.Stats()
}

// TestBusyPeerIsWaitedForOutsideTheUrgentWindow: the only peer holding the
// files answers "busy" for its first 5 s. Files due later than the urgent
// window wait for it (no failure is counted, nothing goes to the origin);
// so does the one due in 2 s (the playhead is held, so waiting for the
// peer's slot always leaves the origin its time); only the init segment
// and the file due now come from the origin.
func TestBusyPeerIsWaitedForOutsideTheUrgentWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 12, 16<<10)
		w := newSwarm(c)
		p := w.add("peer-a", 5*time.Millisecond, 1<<20, nil)
		p.busyUntil = time.Now().Add(5 * time.Second)
		reqs, st := runPaused(t, c, w, sched.Config{BufferTarget: time.Minute}, 20*time.Second, nil)
		require.ElementsMatch(t, []string{"v1/init.mp4", media(1)}, reqs)
		require.Positive(t, st.Busy)
		require.Zero(t, st.Failures)
		require.Equal(t, 11, st.PeerFetches, "files 2 to 12 from the peer once it had room")
	})
}

// TestGetAheadOfThePlayheadUsesPeers: a player that asks for a segment far
// ahead of the playhead gets it from the peer that holds it, not from the
// origin: Get uses the file's play deadline, not "now".
func TestGetAheadOfThePlayheadUsesPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 20, 16<<10)
		w := newSwarm(c)
		w.add("peer-a", 5*time.Millisecond, 256<<10, []string{media(15)})
		var src sched.Source
		reqs, _ := runPaused(t, c, w, sched.Config{BufferTarget: 10 * time.Second}, 5*time.Second, func(s *sched.Scheduler) {
			time.Sleep(time.Second) // Run has planned once
			data, from, err := s.Get(t.Context(), 15)
			require.NoError(t, err)
			require.Equal(t, c.data[media(15)], data)
			src = from
		})
		require.Equal(t, sched.SourcePeer, src)
		require.NotContains(t, reqs, media(15))
	})
}

// TestFrontierFileFetchedBeforeTheUrgentWindow: a slow peer holds files 1
// to 5 (at 1 KiB/s, one at a time, so over the test's 10 s some stay
// wanted from it), nobody holds 6 to 30. A viewer at the front of the swarm fetches a file
// nobody holds from the origin once it is due within its lead (drawn per
// file from [UrgentWindow+2 s, min(2/3 BufferTarget, 20 s)] = [6 s, 20 s]),
// so the viewers behind can get it from it; files due later than 20 s are
// left for later, and the files peers hold come from peers.
func TestFrontierFileFetchedBeforeTheUrgentWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 30, 16<<10)
		w := newSwarm(c)
		var held []string
		for i := 1; i <= 5; i++ {
			held = append(held, media(i))
		}
		w.add("peer-a", 5*time.Millisecond, 1<<10, held)
		reqs, _ := runPaused(t, c, w, sched.Config{BufferTarget: time.Minute, MaxParallel: 1, HedgeAfter: time.Minute}, 10*time.Second, nil)
		var early int
		for i := 1; i <= 30; i++ {
			start := time.Duration(i-1) * segDur
			switch {
			case i == 4 || i == 5:
				require.NotContains(t, reqs, media(i), "file %d is held by a peer", i)
			case start >= 20*time.Second:
				require.NotContains(t, reqs, media(i), "file %d is due in %v, beyond any lead", i, start)
			case start >= 4*time.Second && slices.Contains(reqs, media(i)):
				early++
			}
		}
		require.GreaterOrEqual(t, early, 5, "files 6 to 10 (due in 10-18 s) must be fetched ahead of the urgent window; origin got %v", reqs)
	})
}

// TestStartUpOnlyFirstSegmentFromOrigin: before playback starts (the
// player reports a playhead before zero: the start-up budget) the origin
// serves the init segment and the first media segment only, so that one
// has the viewer's link to itself; a peer meanwhile serves what it holds
// (files 2 to 4), and nothing else is fetched.
func TestStartUpOnlyFirstSegmentFromOrigin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 20, 16<<10)
		w := newSwarm(c)
		w.add("peer-a", 5*time.Millisecond, 1<<20, []string{media(2), media(3), media(4)})
		reqs, st := runAt(t, -time.Second, c, w, sched.Config{}, 10*time.Second, nil)
		require.ElementsMatch(t, []string{"v1/init.mp4", media(1)}, reqs)
		require.Equal(t, 3, st.PeerFetches)
	})
}

// TestBusyForNormalStillAskedUrgently: the only peer holding the files has
// its normal upload slots full for the whole run (every normal request is
// "busy") but serves urgent requests, as transport's extra urgent slot does.
// A "busy" to a normal request must not keep the peer from being asked for
// the files that turn urgent: they come from it, not from the origin, and
// the player never waits.
func TestBusyForNormalStillAskedUrgently(t *testing.T) {
	const n = 20
	r := simulate(t, n, 32<<10, true, func(o *origin, w *swarm) {
		w.add("peer-a", 10*time.Millisecond, 1<<20, nil).normalBusy = true
	}, nil)
	require.Empty(t, r.player.stalls())
	require.Positive(t, r.stats.Busy, "normal requests were refused")
	t.Logf("origin requests %v, stats %+v", r.origin, r.stats)
	// The init and the first segments come from the origin (start-up); the
	// rest through urgent requests to the busy peer.
	require.LessOrEqual(t, len(r.origin), 4, "origin requests %v", r.origin)
	require.GreaterOrEqual(t, r.stats.PeerFetches, n-3)
}

// TestSlowPeerMakingProgressIsNotRaced: a file due in 3.5 s, inside the
// urgent window, goes to a peer expected (by the prior rate) to take 1 s;
// it sends at half that rate and would arrive in 2 s, well in time. Judged
// by its expected time alone it looks late from 1 s on and the origin is
// asked too; with progress reports (ProgressPeers) the scheduler sees it
// will make it and leaves it alone.
func TestSlowPeerMakingProgressIsNotRaced(t *testing.T) {
	for _, progress := range []bool{false, true} {
		t.Run("progress="+strconv.FormatBool(progress), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newContent(t, 4, 256<<10) // 1 s at the 256 KiB/s prior
				w := newSwarm(c)
				w.add("peer-a", 5*time.Millisecond, 128<<10, []string{media(3)})
				var peers sched.Peers = w
				if progress {
					peers = progressSwarm{w}
				}
				// Playhead 0.5 s, window [0.5 s, 5.5 s): media 1 and 2 are
				// due now and in 1.5 s (origin), media 3 in 3.5 s.
				// HedgeAfter far out: only the urgency rule can start the origin.
				cfg := sched.Config{BufferTarget: 5 * time.Second, HedgeAfter: time.Minute}
				reqs, st := runAt(t, 500*time.Millisecond, c, peers, cfg, 5*time.Second, nil)
				t.Logf("origin requests %v, stats %+v", reqs, st)
				if progress {
					require.Equal(t, 1, st.PeerFetches, "the peer delivers media 3")
					require.NotContains(t, reqs, media(3), "a peer on course to make the deadline is not raced")
					require.Zero(t, st.Hedges)
				} else {
					require.Contains(t, reqs, media(3), "without progress the late-looking peer is raced by the origin")
				}
			})
		})
	}
}

// TestPeerStallingNearTheEndIsRaced: a peer sends 240 of a file's 256 KiB
// at once and then nothing. By its progress it looks nearly done; once no
// byte has come for a while the scheduler stops trusting that and the
// origin races it (the playhead is held, so the file stays due in 3.5 s).
func TestPeerStallingNearTheEndIsRaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newContent(t, 4, 256<<10)
		w := newSwarm(c)
		w.add("peer-a", 5*time.Millisecond, 4<<20, []string{media(3)}).stallAfter = 240 << 10
		// HedgeAfter far out: only the urgency rule can start the origin.
		cfg := sched.Config{BufferTarget: 5 * time.Second, HedgeAfter: time.Minute}
		reqs, st := runAt(t, 500*time.Millisecond, c, progressSwarm{w}, cfg, 5*time.Second, nil)
		t.Logf("origin requests %v, stats %+v", reqs, st)
		require.Equal(t, []call{{peer: "peer-a", path: media(3), cancelled: true}}, w.fetches(), "the peer was asked first")
		require.Contains(t, reqs, media(3), "the stalled peer is raced by the origin")
		require.Equal(t, 1, st.Hedges)
	})
}
