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
	// end of what had been served (see the package doc for the model).
	Stalls    int
	StallTime time.Duration
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
	// Segments served to the platform player; Refused is how many it asked
	// for while no valid license covered them.
	Segments, Refused int64
	// LicenseExpiry is when the current license lapses unless renewed;
	// Renewals and RenewFailures count since Open.
	LicenseExpiry           time.Time
	Renewals, RenewFailures int
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
	st.StartupTime, st.Started, st.Stalls, st.StallTime, st.Buffered = s.play.stats()
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
	st.Segments, st.Refused = s.served.Load(), s.refused.Load()
	if s.keys != nil {
		st.LicenseExpiry, st.Renewals, st.RenewFailures, _ = s.keys.status()
	}
	return st
}

func add(st *Stats, ss sched.Stats) {
	st.BytesFromPeers += ss.PeerBytes
	st.BytesFromOrigin += ss.OriginBytes
	st.BytesFromCache += ss.CacheBytes
}
