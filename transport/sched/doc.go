// Package sched is sealmesh's deadline-aware fetch scheduler: it gets each
// file of one rendition into the Store before the player needs it, from
// peers when they can deliver in time and from the HTTP origin when they
// cannot. P2P never stalls playback: a late peer loses the race to the origin.
//
// The package knows nothing of libp2p hosts, tickets or keys. It talks to
// the swarm through the small [Peers] interface (the transport package
// implements it over the segment protocol), to the origin through [Origin]
// ([HTTPOrigin] is the HTTP implementation) and keeps bytes in a [Store]
// (transport/cache's Cache or Mem).
//
// # Entry points
//
//	s, err := sched.New(sched.Config{
//		Manifest:  m,             // verified segment manifest
//		Rendition: "v1080",       // one scheduler per track (video, audio)
//		Peers:     swarm,         // nil: origin only
//		Origin:    &sched.HTTPOrigin{BaseURL: cdn, Manifest: m},
//		Store:     c,             // cache.Open(...) or cache.NewMem(...)
//	})
//	defer s.Close()
//	go s.Run(ctx, player.Position)          // prefetch loop
//	init, _, err := s.GetInit(ctx, period)  // what the player asks for
//	seg, src, err := s.Get(ctx, index)
//	st := s.Stats()                         // bytes from peers vs origin, per peer
//
// [Scheduler.Run] keeps the window [playhead, playhead+BufferTarget] in the
// Store. [Scheduler.Get] returns a segment now: from the Store, by joining
// the fetch in flight for it, or by fetching it at the highest urgency.
//
// # How urgency is computed
//
// A file's deadline is when the player reaches it: now + (file start −
// playhead), assuming 1× playback from the reported playhead (Run
// recomputes it on every round, so pauses and stalls push deadlines out).
// ttd is the time left until it. Get uses the same deadline, from the
// playhead Run last saw (now, without Run).
//
// Expected times come from throughput estimates: an EWMA (weight 0.3) of
// bytes/second per peer, measured on each fetch, halved on each failure, and
// lowered when a fetch is cancelled after running past its expected time; a
// peer never measured is assumed to do 256 KiB/s (a 2 Mbit/s home upload;
// urgent fetches keep an estimate of their own). The expected time of a peer
// fetch is size / rate × (1 + fetches already in flight to that peer). The
// origin has its own estimate (4 MiB/s before measuring, never less than
// 100 ms), written oE below.
//
// Starting a fetch:
//
//   - ttd ≥ UrgentWindow: the candidate peer with the earliest expected
//     completion. Run fetches these rarest first (fewest candidates; ties in
//     play order), at most MaxParallel at once and two per peer. A file no
//     peer announced waits, except: when no peer announced anything Run
//     still needs ("no peers at all"), Run fills the window from the
//     origin, one file at a time, in play order; and when no peer holds a
//     later file either (this viewer is at the front of the swarm), Run
//     fetches it from the origin once ttd drops below this viewer's lead
//     for it, drawn per file from [UrgentWindow+2 s, 2/3 BufferTarget] by a
//     hash of (path, Self). The front runner thus fetches each new file
//     well before the viewers behind need it, and viewers near the same
//     playhead take turns instead of all fetching it at once.
//   - ttd < UrgentWindow: a peer only if 2 × its expected time (from its
//     measured throughput, or the 256 KiB/s prior for a new peer) + oE ≤ ttd,
//     so that if it turns out slow the hedge at 2 × expected still leaves
//     the origin time. A new viewer's first segment, whose deadline is the
//     player's start-up budget, can therefore come from a peer. Otherwise the
//     origin; a peer after all if there is no origin or it just failed.
//
// While a file is being fetched only from peers:
//
//   - A peer fetch running past HedgeAfter (default 2 × its expected time)
//     is hedged once: another candidate peer is asked too, or, inside the
//     urgent window, whichever source the rule above picks. Outside the
//     window the origin is not used for hedges: its bytes cost money and
//     there is still time.
//   - Inside the urgent window a running peer keeps the file only while
//     reserve + oE ≤ ttd. With progress reports ([ProgressPeers]) reserve
//     is 1.25 × the time the bytes still missing take at the rate the
//     fetch has had so far (checked every 100 ms): a peer slower than
//     usual that will still make it is left alone. Without them, or before
//     the first byte, it is 2 × what is left of its expected time or, once
//     overdue, 2 × as long again as it has taken so far. When no running
//     peer passes, the origin races them.
//
// An origin fetch is bounded to 30 s; one running past its own hedge time
// (2 × oE, at least 250 ms) is raced by an untried candidate peer, if any.
//
// Before playback starts (the player reports a playhead before zero, the
// start-up budget) only init segments and the first media segment go to
// the origin, so that segment has the viewer's link to itself; peers may
// serve anything meanwhile.
//
// A peer that answers busy (its upload slots are full; see [Peers]) is not
// counted as failing: it is skipped for 500 ms and asked again. A busy
// answer to a normal request skips it for normal requests only: a peer
// keeps a slot for urgent ones ([UrgentPeers]). A fetch
// whose attempts have failed or been refused while ttd ≥ UrgentWindow does
// not turn to the origin: it waits for a peer (or for the urgent window).
//
// Get uses the file's play deadline from the playhead Run last saw, so a
// player that requests segments ahead of its playhead (as HLS players do to
// fill their own buffer) gets them by the same rules as Run, not from the
// origin at once.
//
// The first verified answer wins; the other fetches for the file are
// cancelled. A fetch that fails moves to the next candidate, then to the
// origin; when every source failed, the file fails with [ErrUnavailable]
// and Run retries it a second later. After an origin failure urgent files
// prefer peers for 2 s; a peer that fails three times in a row is skipped
// for 10 s.
//
// # Integrity
//
// Peers and Origin promise verified bytes; the scheduler checks each file
// against the manifest again (size, SHA-256) before storing it or returning
// it, and re-checks what the Store returns. A peer whose bytes fail, by its
// own implementation's check (an error wrapping segment.ErrIntegrity) or by
// ours, is never asked again by this scheduler; the Peers implementation is
// expected to ban it from the swarm. Get's caller owns the returned slice.
//
// # Time and tests
//
// Config.Now reads the clock; timers use the runtime clock, so tests that
// control time run the scheduler in a testing/synctest bubble, where
// deadlines, hedges and throughput are exact and nothing sleeps for real.
//
// # Compatibility
//
// The API may change before sealmesh 1.0. Defaults and the urgency rule may
// be tuned in any release; tests should assert sources and order, not timings.
// # Viewers that start together
//
// When no peer holds anything a viewer needs (a swarm that started together,
// or before any have-map has arrived), a viewer that knows its own ID
// (Config.Self) and whose Peers reports its Population fills ahead from the
// origin only the files a hash of (path, Self) assigns to it, about one in
// Population+1, and gets the rest from the others once they announce them;
// files nobody fetched in time still go to the origin in the urgent window.
package sched
