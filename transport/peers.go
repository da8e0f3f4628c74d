package transport

import (
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerState is a snapshot of one admitted peer.
type PeerState struct {
	ID            peer.ID
	AdmittedUntil time.Time
	// Have is a copy of the peer's have-map (nil before its hello, and for a
	// peer with another manifest).
	Have Bitfield
	// BytesUp were served to it; BytesDown were fetched from it and verified.
	BytesUp, BytesDown int64
	// Throughput is an EWMA of its verified fetches, bytes/s; 0 when unknown.
	Throughput float64

	index map[string]int
}

// Has reports whether the peer announced path.
func (ps PeerState) Has(path string) bool {
	i, ok := ps.index[path]
	return ok && ps.Have.Has(i)
}

// Peers returns the admitted peers, highest throughput first.
func (s *Swarm) Peers() []PeerState {
	now := s.h.now()
	s.mu.Lock()
	out := make([]PeerState, 0, len(s.peers))
	for p, sp := range s.peers {
		if !now.Before(sp.admittedUntil) {
			continue
		}
		ps := PeerState{ID: p, AdmittedUntil: sp.admittedUntil, BytesUp: sp.bytesUp, BytesDown: sp.bytesDown, Throughput: sp.ewma, index: s.index}
		if !sp.mismatch {
			ps.Have = sp.have.Clone()
		}
		out = append(out, ps)
	}
	s.mu.Unlock()
	sortPeers(out, func(i int) (float64, peer.ID) { return out[i].Throughput, out[i].ID })
	return out
}

// Candidates returns the admitted, unbanned peers with our manifest that
// announced path, highest throughput first.
func (s *Swarm) Candidates(path string) []peer.ID {
	i, ok := s.index[path]
	if !ok {
		return nil
	}
	now := s.h.now()
	type cand struct {
		id peer.ID
		tp float64
	}
	var cs []cand
	s.mu.Lock()
	for p, sp := range s.peers {
		if now.Before(sp.admittedUntil) && !sp.mismatch && sp.have.Has(i) {
			cs = append(cs, cand{p, sp.ewma})
		}
	}
	s.mu.Unlock()
	sortPeers(cs, func(i int) (float64, peer.ID) { return cs[i].tp, cs[i].id })
	out := make([]peer.ID, 0, len(cs))
	for _, c := range cs {
		if !s.h.gater.isBanned(c.id) {
			out = append(out, c.id)
		}
	}
	return out
}

func sortPeers[T any](xs []T, key func(int) (float64, peer.ID)) {
	sort.SliceStable(xs, func(a, b int) bool {
		ta, ia := key(a)
		tb, ib := key(b)
		if ta != tb {
			return ta > tb
		}
		return ia < ib
	})
}

// Population is the number of peers admitted to this swarm now, whatever
// they hold (transport/sched uses it to share origin prefetch).
func (s *Swarm) Population() int { return s.Stats().AdmittedPeers }
