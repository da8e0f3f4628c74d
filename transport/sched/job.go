package sched

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sealmesh/sealmesh/segment"
)

// job is the fetch of one file: a race between one or more attempts (peers,
// the origin) that ends at the first verified answer. Get callers and Run
// own it; when the last owner lets go before it ends, it is cancelled.
type job struct {
	s      *Scheduler
	file   segment.File
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when data/src/err are set
	kick   chan struct{} // the deadline moved: re-decide now
	ended  chan struct{} // closed when the loop stops listening for results

	results  chan result
	first    *attempt       // started by newJobLocked, handed to the loop
	attempts int            // started so far; guarded by s.mu
	awg      sync.WaitGroup // attempts whose Fetch has not returned

	// guarded by s.mu
	owners   int
	runOwned bool
	deadline time.Time

	data []byte
	src  Source
	err  error
}

type attempt struct {
	peer    peer.ID // "" for the origin
	urgent  bool    // a peer attempt started inside the urgent window
	start   time.Time
	expect  time.Duration
	hedgeAt time.Time
	hedged  bool
	cancel  context.CancelFunc
	ours    atomic.Bool  // cancelled by the scheduler, not failed
	got     atomic.Int64 // bytes received so far (with ProgressPeers)
	// seen is got when reserve last saw it change, at seenAt; guarded by s.mu.
	seen   int64
	seenAt time.Time
}

func (a *attempt) origin() bool { return a.peer == "" }

// reserve is the time to keep in hand for a running peer attempt of a
// size-byte file: a quarter more than what is left at the rate it has had
// so far, once bytes arrive (that rate includes the wait for the first
// byte, so it errs slow); before that, or once no byte has come for
// progressStale (a peer that sends most of a file fast and then stops must
// not look nearly done), twice what is left of its expected time, or, once
// it is overdue, twice as long again as it has taken (the estimate was
// wrong; assume it is off by at least 2×). Called with s.mu held.
func (a *attempt) reserve(now time.Time, size int64) time.Duration {
	elapsed := now.Sub(a.start)
	got := a.got.Load()
	if got != a.seen || a.seenAt.IsZero() {
		a.seen, a.seenAt = got, now
	}
	if got > 0 && elapsed > 0 && now.Sub(a.seenAt) < progressStale {
		left := float64(max(size-got, 0)) / float64(got) * float64(elapsed)
		return time.Duration(left * 5 / 4)
	}
	if r := a.expect - elapsed; r > 0 {
		return 2 * r
	}
	return 2 * elapsed
}

type result struct {
	a    *attempt
	data []byte
	err  error
}

// newJobLocked registers a job for f and starts its first attempt per p
// (synchronously, so the load it adds is visible to the next decision).
// A job with nowhere to go still starts and fails at once with ErrUnavailable.
func (s *Scheduler) newJobLocked(f segment.File, deadline time.Time, p plan) *job {
	ctx, cancel := context.WithCancel(s.ctx)
	j := &job{
		s: s, file: f, ctx: ctx, cancel: cancel, deadline: deadline,
		done: make(chan struct{}), kick: make(chan struct{}, 1), ended: make(chan struct{}),
		results: make(chan result),
	}
	s.jobs[f.Path] = j
	if p.ok() {
		j.first = j.startLocked(p)
	}
	s.wg.Go(j.loop)
	return j
}

// startLocked launches one attempt.
func (j *job) startLocked(p plan) *attempt {
	s := j.s
	now := s.now()
	a := &attempt{peer: p.peer, start: now}
	var ctx context.Context
	if p.origin {
		a.expect = s.originExpectLocked(j.file.Size)
		s.originLoad++
		a.hedgeAt = now.Add(s.hedgeDelay(a.expect))
		ctx, a.cancel = context.WithTimeout(j.ctx, originTimeout)
	} else {
		st := s.peerLocked(p.peer)
		a.urgent = j.deadline.Sub(now) < s.cfg.UrgentWindow
		a.expect = peerExpect(st, j.file.Size, a.urgent)
		a.hedgeAt = now.Add(s.hedgeDelay(a.expect))
		st.load++
		s.peerLoad++
		ctx, a.cancel = context.WithTimeout(j.ctx, s.cfg.PeerTimeout)
	}
	j.attempts++
	s.log.Debug("sched: fetch", "path", j.file.Path, "from", a.source(), "expect", a.expect, "due", j.deadline.Sub(now), "attempt", j.attempts)
	j.awg.Add(1)
	s.wg.Go(func() {
		defer j.awg.Done()
		j.fetch(ctx, a)
	})
	return a
}

func (a *attempt) source() string {
	if a.origin() {
		return "origin"
	}
	return a.peer.String()
}

// fetch runs one attempt, verifies what it got, books the outcome and
// hands it to the loop if the loop still listens.
func (j *job) fetch(ctx context.Context, a *attempt) {
	s := j.s
	var data []byte
	var err error
	if a.origin() {
		data, err = s.cfg.Origin.Fetch(ctx, j.file.Path)
	} else if pp, ok := s.cfg.Peers.(ProgressPeers); ok {
		data, err = pp.FetchProgress(ctx, a.peer, j.file.Path, a.urgent, &a.got)
	} else if u, ok := s.cfg.Peers.(UrgentPeers); ok && a.urgent {
		data, err = u.FetchUrgent(ctx, a.peer, j.file.Path)
	} else {
		data, err = s.cfg.Peers.Fetch(ctx, a.peer, j.file.Path)
	}
	a.cancel()
	if err == nil {
		// Verify even though Peers and Origin promise verified bytes: this is
		// the last gate before the Store, other peers and the decryptor, and
		// CENC has no integrity of its own.
		if cerr := j.file.Check(data); cerr != nil {
			err = fmt.Errorf("%s sent bad bytes: %w", a.source(), cerr)
			data = nil
		}
	}
	s.book(j, a, data, err)
	select {
	case j.results <- result{a: a, data: data, err: err}:
	case <-j.ended:
	}
}

// loop races the job's attempts until one delivers, all sources are spent,
// or every owner let go.
func (j *job) loop() {
	running := map[*attempt]bool{}
	tried := map[peer.ID]bool{}
	noOrigin := false
	if j.first != nil {
		running[j.first] = true
		tried[j.first.peer] = true
	}
	var lastErr error
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		j.decide(running, tried, noOrigin)
		if len(running) == 0 {
			// Nothing to ask now but the deadline is outside the urgent
			// window (peers busy, or none yet): wait for a peer, or for
			// the urgent window and the origin, rather than failing. Or
			// the origin failed and the peer holding the file is busy:
			// wait for its slot, and ask the origin again once it is no
			// longer marked down.
			if wait, ok := j.parkFor(noOrigin); ok {
				timer.Reset(wait)
				select {
				case <-timer.C:
					noOrigin = noOrigin && !j.originUp()
					continue
				case <-j.kick:
					continue
				case <-j.ctx.Done():
					j.finish(nil, 0, fmt.Errorf("sched: fetch %s: %w", j.file.Path, j.ctx.Err()))
					return
				}
			}
		}
		if len(running) == 0 {
			err := fmt.Errorf("sched: fetch %s: %w", j.file.Path, ErrUnavailable)
			if lastErr != nil {
				err = fmt.Errorf("sched: fetch %s: %w (last error: %w)", j.file.Path, ErrUnavailable, lastErr)
			}
			j.finish(nil, 0, err)
			return
		}
		timer.Reset(j.nextWake(running))
		select {
		case r := <-j.results:
			delete(running, r.a)
			if r.err == nil {
				src := SourcePeer
				if r.a.origin() {
					src = SourceOrigin
				}
				for a := range running {
					a.ours.Store(true)
					a.cancel()
				}
				j.finish(r.data, src, nil)
				return
			}
			lastErr = r.err
			if r.a.origin() {
				noOrigin = true
			} else if isBusy(r.err) {
				delete(tried, r.a.peer) // it may have a slot after its cool-down
			}
		case <-timer.C:
		case <-j.kick:
		case <-j.ctx.Done():
			for a := range running {
				a.ours.Store(true)
				a.cancel()
			}
			j.finish(nil, 0, fmt.Errorf("sched: fetch %s: %w", j.file.Path, j.ctx.Err()))
			return
		}
	}
}

// decide starts whatever attempt the situation calls for: a first or next
// attempt when none runs; while only peers run, a hedge when one is past its
// hedge time, and the origin when the deadline is so near that no running
// peer is expected to make it with the origin's time still in reserve.
func (j *job) decide(running map[*attempt]bool, tried map[peer.ID]bool, noOrigin bool) {
	s := j.s
	cands := s.candidates(j.file.Path) // outside s.mu: Peers may take its own locks
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.now()
	ttd := j.deadline.Sub(now)
	urgent := ttd < s.cfg.UrgentWindow
	start := func(p plan) {
		if !p.ok() {
			return
		}
		if len(running) > 0 {
			s.stats.Hedges++
		}
		a := j.startLocked(p)
		running[a] = true
		if !a.origin() {
			tried[a.peer] = true
		}
	}
	if len(running) == 0 {
		// A first attempt follows the urgency rule. A next one, after a
		// peer failed or was busy, goes to the origin only inside the
		// urgent window: before that the job gives up and Run plans the
		// file again when a peer can take it.
		if j.attempts > 0 && !urgent {
			noOrigin = true
		}
		start(s.chooseLocked(j.file, cands, now, ttd, tried, false, noOrigin))
		return
	}
	hedge, inTime, originRunning, originLate := false, false, false, false
	for a := range running {
		if a.origin() {
			originRunning = true
			if !a.hedged && !now.Before(a.hedgeAt) {
				a.hedged, originLate = true, true
			}
			continue
		}
		if !now.Before(a.hedgeAt) {
			if !a.hedged {
				a.hedged, hedge = true, true
			}
			continue
		}
		if !urgent {
			inTime = true
			continue
		}
		// Inside the urgent window a peer keeps the file only while what
		// it may still need (see reserve), plus the origin's expected
		// time, fits before the deadline.
		if a.reserve(now, j.file.Size)+s.originExpectLocked(j.file.Size) <= ttd {
			inTime = true
		}
	}
	if originRunning {
		// The source of last resort is racing. Only if it is itself late
		// is an untried peer asked too.
		if originLate {
			if p := s.chooseLocked(j.file, cands, now, ttd, tried, false, true); p.peer != "" {
				start(p)
			}
		}
		return
	}
	if inTime {
		return
	}
	p := s.chooseLocked(j.file, cands, now, ttd, tried, false, noOrigin)
	// Outside the urgent window a slow peer is only hedged with another
	// peer: the origin's bytes cost money and there is still time.
	if urgent || (hedge && p.peer != "") {
		start(p)
	}
}

// nextWake says when decide's answer can next change without an event:
// a running peer's hedge time or expected completion, the deadline
// entering the urgent window, or the last moment the origin could still
// make the deadline.
func (j *job) nextWake(running map[*attempt]bool) time.Duration {
	s := j.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	wake := time.Hour
	at := func(t time.Time) {
		if d := t.Sub(now); d > 0 && d < wake {
			wake = d
		}
	}
	originRunning := false
	for a := range running {
		if !a.hedged {
			at(a.hedgeAt)
		}
		if a.origin() {
			originRunning = true
		}
	}
	if originRunning {
		return wake // only a late origin changes anything now
	}
	for a := range running {
		// Once a peer is overdue its reserve grows as ttd shrinks:
		// decide's in-time test fails from start + (deadline-start-oE)/3 on.
		oE := s.originExpectLocked(j.file.Size)
		at(a.start.Add(a.expect))
		at(a.start.Add((j.deadline.Sub(a.start) - oE) / 3))
		if a.got.Load() > 0 && j.deadline.Sub(now) < s.cfg.UrgentWindow {
			at(now.Add(progressCheck)) // the reserve follows the transfer's progress
		}
	}
	// One nanosecond in: decide's test is ttd < UrgentWindow.
	at(j.deadline.Add(-s.cfg.UrgentWindow + time.Nanosecond))
	at(j.deadline.Add(-s.originExpectLocked(j.file.Size)))
	return wake
}

// finish stores the result, publishes it to the job's waiters and wakes Run.
func (j *job) finish(data []byte, src Source, err error) {
	s := j.s
	var perr error
	if err == nil {
		perr = s.cfg.Store.Put(j.file.Path, data)
	}
	s.mu.Lock()
	if s.jobs[j.file.Path] == j {
		delete(s.jobs, j.file.Path)
	}
	switch {
	case err == nil && perr != nil:
		s.log.Warn("sched: store refused a verified file; keeping it in memory for the player", "path", j.file.Path, "err", perr)
		if j.runOwned {
			s.held[j.file.Path] = data
		}
	case err == nil:
		if s.has == nil {
			s.stored[j.file.Path] = true
		}
		delete(s.failedAt, j.file.Path)
	case j.ctx.Err() == nil:
		s.failedAt[j.file.Path] = s.now()
		s.log.Debug("sched: fetch failed", "path", j.file.Path, "err", err)
	}
	j.data, j.src, j.err = data, src, err
	s.mu.Unlock()
	close(j.ended)
	close(j.done)
	j.cancel()
	s.poke()
}

// release drops one owner's claim on j, cancelling it if no one is left.
func (s *Scheduler) release(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.owners--
	if j.owners <= 0 {
		j.cancel()
	}
}

// setDeadlineLocked moves j's deadline and wakes it if the move matters.
func (j *job) setDeadlineLocked(d time.Time) {
	diff := d.Sub(j.deadline)
	if diff < 0 {
		diff = -diff
	}
	if diff < deadlineSlack {
		return
	}
	j.deadline = d
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// originUp reports whether the origin is configured and not marked down.
func (j *job) originUp() bool {
	s := j.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Origin != nil && !s.now().Before(s.originDown)
}

// parkFor says how long a job with no attempt running may wait before
// deciding again: while its deadline is outside the urgent window, until
// the next tick or the window opens, whichever is first. Inside it, when a
// peer holding the file refused it as busy and either the origin cannot
// help (absent, or failed for this job) or there is time to wait for that
// peer and still use the origin (mayWaitForSlotLocked): until that peer's
// busy time ends.
func (j *job) parkFor(noOrigin bool) (time.Duration, bool) {
	s := j.s
	cands := s.candidates(j.file.Path) // outside s.mu: Peers may take its own locks
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	untilUrgent := j.deadline.Sub(now) - s.cfg.UrgentWindow
	if s.closed {
		return 0, false
	}
	if untilUrgent > 0 && !noOrigin {
		return min(tickInterval, untilUrgent+time.Millisecond), true
	}
	if untilUrgent > 0 {
		return 0, false // after an origin failure outside the window, Run retries the file
	}
	if !noOrigin && s.cfg.Origin != nil && !s.mayWaitForSlotLocked(j.file, cands, now, j.deadline.Sub(now), nil) {
		return 0, false
	}
	wait, ok := s.busyWaitLocked(cands, now, nil)
	if !ok {
		return 0, false
	}
	return wait + time.Millisecond, true
}
