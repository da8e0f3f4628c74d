package sched

import (
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sealmesh/sealmesh/segment"
)

// Stats counts what a Scheduler fetched and from where.
type Stats struct {
	PeerBytes   int64 // verified bytes received from peers (winners and finished losers)
	OriginBytes int64 // verified bytes received from the origin
	CacheBytes  int64 // bytes Get served from the Store

	PeerFetches   int // successful peer fetches
	OriginFetches int // successful origin fetches
	CacheHits     int // Gets served from the Store

	// Hedges counts extra fetches started for a file already being fetched:
	// because the first was slower than expected, or because its deadline
	// came so near that the origin had to race it.
	Hedges int
	// Failures counts fetches that ended in an error other than our own
	// cancellation or a busy peer.
	Failures int
	// Busy counts peer fetches refused because the peer's upload slots
	// were full (see Peers).
	Busy int
	// Integrity counts fetches whose bytes failed verification (each bans the peer).
	Integrity int
	// Cancelled counts fetches cancelled because another source won or no one needed them.
	Cancelled int

	Peers map[peer.ID]PeerStats
}

// PeerStats is one peer's share of Stats.
type PeerStats struct {
	Bytes      int64
	Fetches    int     // successful
	Failures   int     // failed, including integrity failures
	Throughput float64 // bytes per second, the estimate used to choose peers (0: never measured)
	Banned     bool    // sent bytes that failed verification; never asked again
}

// Stats returns a snapshot of the counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.Peers = make(map[peer.ID]PeerStats, len(s.peers))
	for id, p := range s.peers {
		out.Peers[id] = PeerStats{Bytes: p.bytes, Fetches: p.fetches, Failures: p.failures, Throughput: p.est.measured(), Banned: p.banned}
	}
	return out
}

// estimate is an EWMA of observed throughput.
type estimate struct {
	rate    float64 // bytes/s
	samples int
}

func (e *estimate) observe(bytes int64, d time.Duration) {
	d = max(d, time.Millisecond)
	r := float64(bytes) / d.Seconds()
	if e.samples == 0 {
		e.rate = r
	} else {
		e.rate = ewmaAlpha*r + (1-ewmaAlpha)*e.rate
	}
	e.samples++
}

// penalize halves the estimate after a failure.
func (e *estimate) penalize(prior float64) {
	if e.samples == 0 {
		e.rate, e.samples = prior, 1
	}
	e.rate /= 2
}

func (e *estimate) measured() float64 {
	if e.samples == 0 {
		return 0
	}
	return e.rate
}

// expect predicts how long size bytes take; prior stands in before any sample.
func (e *estimate) expect(size int64, prior float64) time.Duration {
	r := e.rate
	if e.samples == 0 {
		r = prior
	}
	return time.Duration(float64(size) / r * float64(time.Second))
}

// peerState is what the scheduler knows of one peer.
type peerState struct {
	est       estimate
	urgentEst estimate // urgent fetches, which a loaded peer serves first
	load      int      // fetches in flight
	bytes     int64
	fetches   int
	failures  int
	streak    int       // consecutive failures
	coolUntil time.Time // skipped until then after a failure streak
	// busyUntil: the peer refused a normal request (its upload slots are
	// full), so normal requests skip it until then; urgentBusyUntil: it
	// refused an urgent one, so every request skips it. A peer keeps an
	// extra slot for urgent requests, so a "busy" answer to a normal
	// request says nothing of the urgent one.
	busyUntil       time.Time
	urgentBusyUntil time.Time
	banned          bool
}

func (s *Scheduler) peerLocked(p peer.ID) *peerState {
	st := s.peers[p]
	if st == nil {
		st = &peerState{}
		s.peers[p] = st
	}
	return st
}

// skip reports whether st is not to be asked now, for an urgent
// request or a normal one.
func (st *peerState) skip(now time.Time, urgent bool) bool {
	if st.banned || now.Before(st.coolUntil) || now.Before(st.urgentBusyUntil) {
		return true
	}
	return !urgent && now.Before(st.busyUntil)
}

// peerExpect predicts a fetch of size bytes from st, queued behind its
// load. An urgent fetch is predicted from urgent fetches only: the peer
// serves it ahead of its other uploads (see UrgentPeers), so the rate of
// its shared, normal uploads says little about it.
func peerExpect(st *peerState, size int64, urgent bool) time.Duration {
	if urgent {
		return time.Duration(st.load+1) * st.urgentEst.expect(size, priorPeerRate)
	}
	return time.Duration(st.load+1) * st.est.expect(size, priorPeerRate)
}

// estimateFor is the estimate a's outcome updates.
func (st *peerState) estimateFor(a *attempt) *estimate {
	if a.urgent {
		return &st.urgentEst
	}
	return &st.est
}

func (s *Scheduler) originExpectLocked(size int64) time.Duration {
	return max(s.origin.expect(size, priorOriginRate), minOriginExpect)
}

func (s *Scheduler) hedgeDelay(expect time.Duration) time.Duration {
	if s.cfg.HedgeAfter > 0 {
		return s.cfg.HedgeAfter
	}
	return max(2*expect, minHedgeDelay)
}

// book updates load, estimates and counters for a finished attempt.
func (s *Scheduler) book(j *job, a *attempt, data []byte, err error) {
	now := s.now()
	elapsed := now.Sub(a.start)
	s.mu.Lock()
	defer s.mu.Unlock()
	var st *peerState
	if a.origin() {
		s.originLoad--
	} else {
		st = s.peerLocked(a.peer)
		st.load--
		s.peerLoad--
	}
	switch {
	case err == nil:
		if st != nil {
			st.estimateFor(a).observe(int64(len(data)), elapsed)
			st.bytes += int64(len(data))
			st.fetches++
			st.streak = 0
			s.stats.PeerBytes += int64(len(data))
			s.stats.PeerFetches++
		} else {
			s.origin.observe(int64(len(data)), elapsed)
			s.originDown = time.Time{}
			s.stats.OriginBytes += int64(len(data))
			s.stats.OriginFetches++
		}
	case a.ours.Load() || j.ctx.Err() != nil:
		s.stats.Cancelled++
		if st != nil && elapsed > a.expect {
			// It lost while late: what it delivered so far (or, without
			// progress, the whole file) in the time it took bounds its
			// real speed from above, so slow peers stop looking fast.
			n := j.file.Size
			if g := a.got.Load(); g > 0 {
				n = g
			}
			st.estimateFor(a).observe(n, elapsed)
		}
	case st != nil && isBusy(err):
		// Its upload slots are full: not a failure and says nothing of
		// its speed. Skip it briefly so Run asks someone else meanwhile.
		s.stats.Busy++
		st.busyUntil = now.Add(busyCoolDown)
		if a.urgent {
			st.urgentBusyUntil = st.busyUntil
		}
	default:
		s.stats.Failures++
		integrity := errors.Is(err, segment.ErrIntegrity)
		if integrity {
			s.stats.Integrity++
		}
		if st != nil {
			st.failures++
			st.streak++
			st.estimateFor(a).penalize(priorPeerRate)
			if integrity {
				// The Peers implementation bans it from the swarm; we stop
				// asking it even if its Candidates lags behind.
				st.banned = true
				s.log.Warn("sched: peer sent bytes that fail the manifest; not asking it again", "peer", a.peer, "path", j.file.Path, "err", err)
			} else {
				if st.streak >= 3 {
					st.coolUntil = now.Add(peerCoolDown)
				}
				s.log.Debug("sched: peer fetch failed", "peer", a.peer, "path", j.file.Path, "err", err)
			}
		} else {
			s.originDown = now.Add(originDownFor)
			s.log.Warn("sched: origin fetch failed", "path", j.file.Path, "err", err)
		}
	}
}

// isBusy reports whether err says a peer refused for now (see Peers).
func isBusy(err error) bool {
	var b interface{ Busy() bool }
	return errors.As(err, &b) && b.Busy()
}
