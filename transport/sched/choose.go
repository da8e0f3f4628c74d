package sched

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sealmesh/sealmesh/segment"
)

// plan is where one fetch goes: a peer, the origin, or nowhere (neither set).
type plan struct {
	peer   peer.ID
	origin bool
}

func (p plan) ok() bool { return p.origin || p.peer != "" }

// chooseLocked decides where to fetch f from, ttd before its play deadline.
// It is the one place the urgency rule lives (the package doc explains it):
//
//   - Outside the urgent window: the peer with the earliest predicted
//     completion among the usable candidates; if none announced the file,
//     the origin when allowOrigin (Run allows it only when no peer has
//     anything it needs) or for a fetch that is already someone's need.
//
//   - Inside the urgent window: a peer only if 2×expected (from its
//     measured throughput, or the prior) + origin's expected time fits in ttd (so if
//     it turns out slow, the hedge at 2×expected still leaves the origin
//     time); otherwise the origin; a peer anyway if there is no origin.
//
//     When every holder answered busy a moment ago and one's busy time
//     ends early enough to leave the origin its time twice over (plus
//     slotWaitSlack), nothing: the fetch waits for that slot (job.parkFor).
//
// exclude lists peers already tried for this fetch; needFree skips peers
// that are already at perPeerParallel fetches; noOrigin rules the origin out
// (it failed for this fetch).
func (s *Scheduler) chooseLocked(f segment.File, cands []peer.ID, now time.Time, ttd time.Duration, exclude map[peer.ID]bool, needFree, noOrigin bool) plan {
	var best peer.ID
	var bestE time.Duration
	usable := 0
	for _, p := range cands {
		st := s.peerLocked(p)
		if exclude[p] || st.skip(now, ttd < s.cfg.UrgentWindow) {
			continue
		}
		usable++
		if needFree && st.load >= perPeerParallel {
			continue
		}
		if e := peerExpect(st, f.Size, ttd < s.cfg.UrgentWindow); best == "" || e < bestE {
			best, bestE = p, e
		}
	}
	haveOrigin := s.cfg.Origin != nil && !noOrigin
	originUp := haveOrigin && !now.Before(s.originDown)
	if ttd >= s.cfg.UrgentWindow {
		switch {
		case best != "":
			return plan{peer: best}
		case usable > 0:
			return plan{} // candidates exist but are busy: wait for a slot
		case originUp:
			return plan{origin: true}
		}
		return plan{}
	}
	// An unmeasured peer is judged by the prior rate: if it turns out
	// slower, the hedge at 2×expected still leaves the origin its time.
	// This is what lets a new viewer's first segment, which has the start-up
	// budget as its deadline, come from a peer.
	if best != "" && 2*bestE+s.originExpectLocked(f.Size) <= ttd {
		return plan{peer: best}
	}
	if best == "" && originUp && s.mayWaitForSlotLocked(f, cands, now, ttd, exclude) {
		return plan{} // every holder is busy, but one will have a slot in time
	}
	if originUp {
		return plan{origin: true}
	}
	if best != "" {
		return plan{peer: best} // the origin is down or absent: a peer is the only hope
	}
	if haveOrigin {
		return plan{origin: true} // marked down, but nothing else can serve the file
	}
	return plan{}
}

// slotWaitSlack is the time left for a peer transfer when an urgent fetch
// waits for a busy peer's slot rather than going to the origin.
const slotWaitSlack = time.Second

// busyWaitLocked returns how long until the first of cands (not excluded,
// banned or failing) that refused an urgent request is asked again.
func (s *Scheduler) busyWaitLocked(cands []peer.ID, now time.Time, exclude map[peer.ID]bool) (time.Duration, bool) {
	wait, ok := time.Duration(0), false
	for _, p := range cands {
		st := s.peers[p]
		if st == nil || exclude[p] || st.banned || now.Before(st.coolUntil) {
			continue
		}
		if d := st.urgentBusyUntil.Sub(now); d > 0 && (!ok || d < wait) {
			wait, ok = d, true
		}
	}
	return wait, ok
}

// mayWaitForSlotLocked reports whether an urgent fetch of f, ttd before its
// deadline, whose holders are all busy, can wait for the first slot and
// still leave the origin 2 × its expected time plus slotWaitSlack.
func (s *Scheduler) mayWaitForSlotLocked(f segment.File, cands []peer.ID, now time.Time, ttd time.Duration, exclude map[peer.ID]bool) bool {
	wait, ok := s.busyWaitLocked(cands, now, exclude)
	return ok && ttd-wait >= 2*s.originExpectLocked(f.Size)+slotWaitSlack
}
