package sched

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sealmesh/sealmesh/segment"
)

// Run is the prefetch loop. It keeps the rendition's files from the
// playhead to playhead+BufferTarget in the Store (with the init segment of
// each crypto period they span), re-planning every 250 ms and whenever a
// fetch ends, until ctx is done or the scheduler is closed. playhead
// reports the player's media position; the scheduler assumes playback at
// 1× from there to turn positions into deadlines, so a paused or stalled
// player simply reports the same position again.
//
// On return, the fetches only Run wanted are cancelled and Run waits for
// them to stop; fetches a Get is waiting for go on. Run returns ctx's error,
// ErrClosed, or ErrRunning if another Run is active.
func (s *Scheduler) Run(ctx context.Context, playhead func() time.Duration) error {
	if playhead == nil {
		return errors.New("sched: Run needs a playhead function")
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.running:
		s.mu.Unlock()
		return ErrRunning
	}
	s.running = true
	s.mu.Unlock()
	defer s.stopRun()

	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for {
		s.plan(playhead())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return ErrClosed
		case <-t.C:
		case <-s.wake:
		}
	}
}

// stopRun gives up Run's claim on every job and waits for the ones that
// ended with it.
func (s *Scheduler) stopRun() {
	s.mu.Lock()
	var gone []*job
	for _, j := range s.jobs {
		if j.runOwned {
			j.runOwned = false
			j.owners--
			if j.owners <= 0 {
				j.cancel()
				gone = append(gone, j)
			}
		}
	}
	s.running = false
	s.mu.Unlock()
	for _, j := range gone {
		<-j.done
		j.awg.Wait()
	}
}

// want is one file of the buffer window and the time until it plays.
type want struct {
	f   segment.File
	ttd time.Duration
}

// window lists the files of [ph, ph+BufferTarget] in play order, each
// period's init segment just before the period's first media segment there.
func (s *Scheduler) window(ph time.Duration) []want {
	from, to := ph.Seconds(), (ph + s.cfg.BufferTarget).Seconds()
	i := sort.Search(len(s.media), func(i int) bool { return s.media[i].Start+s.media[i].Duration > from })
	var out []want
	lastPeriod := -1
	for ; i < len(s.media) && s.media[i].Start < to; i++ {
		f := s.media[i]
		ttd := max(time.Duration((f.Start-from)/s.cfg.Speed*float64(time.Second)), 0)
		if f.Period != lastPeriod {
			lastPeriod = f.Period
			if init, ok := s.inits[f.Period]; ok {
				out = append(out, want{init, ttd})
			}
		}
		out = append(out, want{f, ttd})
	}
	return out
}

// plan is one round of Run: adopt or release jobs as the window moves,
// update deadlines, and start fetches for what is missing.
func (s *Scheduler) plan(ph time.Duration) {
	win := s.window(ph)
	now := s.now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.playhead, s.playheadAt = ph, now
	in := make(map[string]bool, len(win))
	for _, w := range win {
		in[w.f.Path] = true
	}
	for path, j := range s.jobs {
		if j.runOwned && !in[path] {
			j.runOwned = false
			j.owners--
			if j.owners <= 0 {
				j.cancel()
			}
		}
	}
	for path := range s.held {
		if !in[path] {
			delete(s.held, path)
		}
	}
	var missing []want
	for _, w := range win {
		d := now.Add(w.ttd)
		if j := s.jobs[w.f.Path]; j != nil {
			if !j.runOwned {
				j.runOwned = true
				j.owners++
			}
			// A Get is waiting on it when Run is not its only owner: never postpone that.
			if j.owners == 1 || d.Before(j.deadline) {
				j.setDeadlineLocked(d)
			}
			continue
		}
		if s.presentLocked(w.f.Path) {
			continue
		}
		if t, ok := s.failedAt[w.f.Path]; ok && now.Sub(t) < retryBackoff {
			continue
		}
		missing = append(missing, w)
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return
	}

	cands := make([][]peer.ID, len(missing))
	for i, w := range missing {
		cands[i] = s.candidates(w.f.Path) // outside s.mu: Peers may take its own locks
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	type pending struct {
		w     want
		cands []peer.ID
		n     int // usable candidates: the file's rarity
	}
	var queue []pending
	rarity := make([]int, len(missing))
	emptySwarm := true
	for i := range missing {
		rarity[i] = s.usableLocked(cands[i], now)
		if len(cands[i]) > 0 {
			emptySwarm = false // even if its holders are busy or cooling down
		}
	}
	// heldLater[i]: a peer holds a file after missing[i] in play order, so
	// someone is ahead of us and will likely fetch missing[i] first.
	heldLater := make([]bool, len(missing))
	for i := len(missing) - 2; i >= 0; i-- {
		heldLater[i] = heldLater[i+1] || len(cands[i+1]) > 0
	}
	for i, w := range missing {
		if s.jobs[w.f.Path] != nil {
			continue // a Get started it meanwhile
		}
		// Before playback starts (the player reports a playhead before
		// zero) nothing but the init segments and the first media segment
		// goes to the origin, so that segment has the viewer's link to
		// itself; later files still come from peers meanwhile.
		startingUp := ph < 0 && w.f.Kind == segment.KindMedia && w.f.Start > 0
		switch {
		case w.ttd < s.cfg.UrgentWindow:
			p := s.chooseLocked(w.f, cands[i], now, w.ttd, nil, true, false)
			if !p.ok() {
				p = s.chooseLocked(w.f, cands[i], now, w.ttd, nil, false, false) // urgent: do not wait for a free slot
			}
			if p.origin && startingUp {
				continue
			}
			s.startRunJobLocked(w, now, p)
		case rarity[i] == 0:
			// No peer has it. If no peer has anything we need, fill the
			// buffer from the origin in play order, originFillOrders at a
			// time, sharing the work with viewers that started with us. A
			// file at the front of the swarm (no peer holds a later one)
			// is fetched anyway once it is due within this viewer's lead,
			// early enough for the viewers behind to get it from us, even
			// if the share said it was another's. Anything else waits for
			// a peer or for the urgent window.
			if s.cfg.Origin == nil || s.originLoad >= originFillOrders || now.Before(s.originDown) || startingUp {
				break
			}
			if len(cands[i]) > 0 {
				break // held by peers that are busy or cooling down: ask them later
			}
			if emptySwarm && s.mineLocked(w.f.Path) || !heldLater[i] && w.ttd < s.frontierLead(w.f.Path) {
				s.startRunJobLocked(w, now, plan{origin: true})
			}
		default:
			queue = append(queue, pending{w, cands[i], rarity[i]})
		}
	}
	// Rarest first: the files fewest peers hold are the likeliest to become
	// unavailable, so they go first; ties keep play order.
	slices.SortStableFunc(queue, func(a, b pending) int { return a.n - b.n })
	for _, q := range queue {
		if s.peerLoad >= s.cfg.MaxParallel {
			break
		}
		if p := s.chooseLocked(q.w.f, q.cands, now, q.w.ttd, nil, true, false); p.peer != "" {
			s.startRunJobLocked(q.w, now, p)
		}
	}
}

func (s *Scheduler) startRunJobLocked(w want, now time.Time, p plan) {
	j := s.newJobLocked(w.f, now.Add(w.ttd), p)
	j.runOwned = true
	j.owners++
}

// usableLocked counts the candidates the scheduler would ask.
func (s *Scheduler) usableLocked(cands []peer.ID, now time.Time) int {
	n := 0
	for _, p := range cands {
		if st := s.peers[p]; st == nil || !st.skip(now, false) {
			n++
		}
	}
	return n
}

// Population is an optional Peers method: how many peers are admitted to
// the swarm now (whether or not they hold anything yet).
type Population interface {
	Population() int
}

// mineLocked reports whether this viewer should fetch path from the origin
// ahead of its urgent window when no peer has anything it needs. Alone, it
// fetches everything; with n admitted peers, about one viewer in n+1 does,
// chosen by a hash of the path and Self, and the others get it from that one
// (or, if it is late, from the origin in their urgent window).
func (s *Scheduler) mineLocked(path string) bool {
	pop, ok := s.cfg.Peers.(Population)
	if s.cfg.Self == "" || !ok {
		return true
	}
	n := pop.Population()
	if n <= 0 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write([]byte(s.cfg.Self))
	return h.Sum64()%uint64(n+1) == 0
}

// frontierLead is how long before its deadline this viewer fetches a file
// that no peer holds, when it is at the front of the swarm. Each viewer
// draws it per file from [UrgentWindow+2 s, min(2/3 BufferTarget, 20 s)]
// by a hash of (path, Self), so viewers near the same playhead do not all
// fetch the same new file at once: the first to reach its lead fetches it
// and the others find it among their peers. Without Self (or peers), the
// top of the range.
func (s *Scheduler) frontierLead(path string) time.Duration {
	hi := min(s.cfg.BufferTarget*2/3, maxFrontierLead)
	lo := min(s.cfg.UrgentWindow+2*time.Second, hi)
	if s.cfg.Self == "" || s.cfg.Peers == nil || hi == lo {
		return hi
	}
	h := fnv.New64a()
	h.Write([]byte(path))
	h.Write([]byte{1})
	h.Write([]byte(s.cfg.Self))
	return lo + time.Duration(h.Sum64()%uint64(hi-lo))
}
