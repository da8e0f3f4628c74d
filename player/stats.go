package player

import (
	"time"

	"github.com/sealmesh/sealmesh/transport/sched"
)

// Stats is a snapshot of a session.
type Stats struct {
	// Started reports whether playback has begun; StartupTime is from Open
	// to the first media segment served.
	Started     bool
	StartupTime time.Duration
	// Stalls and StallTime count the times the modelled playhead reached the
	// end of what had been served (see the package doc for the model),
	// including a stall going on now (Stalled), whatever its cause: slow
	// peers, a slow origin, or keys the license server could not renew.
	Stalls    int
	StallTime time.Duration
	Stalled   bool
	// Buffered is content served ahead of the modelled playhead.
	Buffered time.Duration
	// Playhead is the modelled position in content seconds.
	Playhead float64
	// Bytes of verified ciphertext by source.
	BytesFromPeers, BytesFromOrigin, BytesFromCache int64
	// BytesUploaded were served to other peers.
	BytesUploaded int64
	// Peers admitted to this content's swarm now.
	Peers int
	// Held is how many of the renditions' Files (init and media segments:
	// what peers exchange) the cache holds.
	Held, Files int
	// Segments served to the platform player; Refused is how many it asked
	// for while the license server refused keys (403), Unavailable how many
	// while it could not be reached (503, retryable).
	Segments, Refused, Unavailable int64
	// LicenseExpiry is when the current license lapses unless renewed;
	// Renewals and RenewFailures count since Open.
	LicenseExpiry           time.Time
	Renewals, RenewFailures int
	// LicenseErr is the last renewal failure while it lasts (nil once a
	// renewal succeeds): it wraps ErrLicenseUnavailable (retrying) or
	// ErrNoLicense (refused; retried too, more slowly, in case the account
	// is reinstated). NextRenewal is when the next attempt is due.
	LicenseErr  error
	NextRenewal time.Time
}

// PeerShare is the fraction of fetched bytes that came from peers.
func (st Stats) PeerShare() float64 {
	total := st.BytesFromPeers + st.BytesFromOrigin
	if total == 0 {
		return 0
	}
	return float64(st.BytesFromPeers) / float64(total)
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	var st Stats
	st.StartupTime, st.Started, st.Stalls, st.StallTime, st.Buffered, st.Stalled = s.play.stats()
	st.Playhead = s.play.position()
	s.schedMu.Lock()
	for _, sc := range s.scheds {
		add(&st, sc.Stats())
	}
	s.schedMu.Unlock()
	if s.swarm != nil {
		cs := s.swarm.Stats()
		st.BytesUploaded = cs.BytesUp
		st.Peers = cs.AdmittedPeers
	}
	st.Segments, st.Refused, st.Unavailable = s.served.Load(), s.refused.Load(), s.unavailable.Load()
	st.Held = len(s.store.Paths())
	for _, r := range s.m.Renditions {
		st.Files += len(r.Files)
	}
	if s.keys != nil {
		ks := s.keys.status()
		st.LicenseExpiry, st.Renewals, st.RenewFailures = ks.expiry, ks.renewed, ks.fails
		st.LicenseErr, st.NextRenewal = ks.lastErr, ks.next
	}
	return st
}

func add(st *Stats, ss sched.Stats) {
	st.BytesFromPeers += ss.PeerBytes
	st.BytesFromOrigin += ss.OriginBytes
	st.BytesFromCache += ss.CacheBytes
}
