package transport

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// strikeMemory is how long a peer's strikes are remembered after its last
// one.
const strikeMemory = 10 * time.Minute

// strikes counts, per peer, the streams it held without using them: reset
// by the negotiation reaper, or ended because the request did not arrive
// within Config.RequestTimeout. Strikes outlive the connection, so
// reconnecting does not wipe them, and are forgotten after strikeMemory,
// so the map stays bounded. Safe for concurrent use.
type strikes struct {
	mu sync.Mutex
	m  map[peer.ID]strike
}

type strike struct {
	n    int
	last time.Time
}

func newStrikes() *strikes { return &strikes{m: make(map[peer.ID]strike)} }

// add records a strike for p at wall and returns p's count.
func (s *strikes) add(p peer.ID, wall time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.m[p]
	if wall.Sub(k.last) > strikeMemory {
		k.n = 0
	}
	k.n++
	k.last = wall
	s.m[p] = k
	return k.n
}

// forget drops strikes older than strikeMemory.
func (s *strikes) forget(wall time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, k := range s.m {
		if wall.Sub(k.last) > strikeMemory {
			delete(s.m, p)
		}
	}
}

// strike counts one strike against p and bans it when it reaches
// Config.IdleStreamStrikes. Bootstrap peers are never banned for it.
func (h *Host) strike(p peer.ID, reason string) {
	n := h.strikes.add(p, time.Now())
	if n >= h.cfg.IdleStreamStrikes && !h.exempt[p] && !h.gater.isBanned(p) {
		h.Ban(p, reason)
	}
}
