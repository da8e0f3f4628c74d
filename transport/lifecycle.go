package transport

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The connection lifecycle of admission: grace periods, expiry, eviction.

// evict disconnects p, which lacks admission, and refuses it for EvictFor.
func (h *Host) evict(p peer.ID, reason string) {
	h.gater.evict(p, h.now().Add(h.cfg.EvictFor))
	h.evictions.Add(1)
	h.log.Info("peer evicted", "remote", p.String(), "reason", reason)
	h.mu.Lock()
	delete(h.pending, p)
	swarms := h.swarmList()
	h.mu.Unlock()
	for _, s := range swarms {
		s.dropPeer(p)
	}
	_ = h.h.Network().ClosePeer(p)
}

// connected starts the admission of a new peer: it presents our tickets and
// starts its grace period. Notifiee callbacks must not block.
func (h *Host) connected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	if _, ok := h.pending[p]; !ok && !h.admittedAnywhereLocked(p) {
		h.pending[p] = time.Now()
	}
	swarms := h.swarmList()
	h.mu.Unlock()
	for _, s := range swarms {
		s.presentAsync(p)
	}
}

func (h *Host) disconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	if n.Connectedness(p) == network.Connected {
		return
	}
	h.mu.Lock()
	delete(h.pending, p)
	swarms := h.swarmList()
	h.mu.Unlock()
	for _, s := range swarms {
		s.dropPeer(p)
	}
}

// admittedAnywhereLocked reports whether p holds an admission in any swarm.
// h.mu must be held (Swarm locks nest inside it).
func (h *Host) admittedAnywhereLocked(p peer.ID) bool {
	now := h.now()
	for _, s := range h.swarms {
		if s.admittedAt(p, now) {
			return true
		}
	}
	return false
}

// admitted is called by a swarm after it admits p.
func (h *Host) admitted(p peer.ID) {
	h.mu.Lock()
	delete(h.pending, p)
	h.mu.Unlock()
	h.inbound.admitted(p)
}

// restricted reports whether p is held to the budgets of peers without an
// admission (inbound.go): this host has joined a content and evicts
// unadmitted peers, and p is neither admitted anywhere nor a bootstrap
// peer. It mirrors sweep's choice of whom to evict.
func (h *Host) restricted(p peer.ID) bool {
	if h.cfg.AdmissionGrace < 0 || h.exempt[p] {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.swarms) > 0 && !h.admittedAnywhereLocked(p)
}

// admittedAnywhere reports whether p holds an admission in any swarm.
func (h *Host) admittedAnywhere(p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.admittedAnywhereLocked(p)
}

// every runs f each tick (real time) until the host closes; it is one of
// the host's background goroutines, counted in h.wg.
func (h *Host) every(tick time.Duration, f func()) {
	defer h.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// janitor expires admissions and evicts peers that are not admitted within
// the grace period. Comparisons use the injected clock; the tick is real time.
func (h *Host) janitor() {
	tick := time.Second
	if g := h.cfg.AdmissionGrace; g > 0 && g/4 < tick {
		tick = max(g/4, 20*time.Millisecond)
	}
	h.every(tick, h.sweep)
}

func (h *Host) sweep() {
	now := h.now()
	// The grace period is a network timeout, counted in real time like
	// stream deadlines; ticket expiry uses the injected clock.
	wall := time.Now()
	lapsed := map[peer.ID]bool{}
	for _, s := range h.swarmsSnapshot() {
		for _, p := range s.expireAdmissions(now) {
			lapsed[p] = true
		}
	}
	if h.cfg.AdmissionGrace < 0 {
		return
	}
	var evict []peer.ID
	h.mu.Lock()
	if len(h.swarms) == 0 {
		// Nothing to protect: a host that has joined no content (a DHT
		// bootstrap node, or a player between contents) keeps its peers.
		h.mu.Unlock()
		return
	}
	for _, p := range h.h.Network().Peers() {
		if h.exempt[p] || h.admittedAnywhereLocked(p) {
			delete(h.pending, p)
			continue
		}
		since, ok := h.pending[p]
		if !ok {
			since = wall
			h.pending[p] = wall
		}
		// An admission that lapsed without a renewed ticket ends the
		// connection at once; a new connection gets the grace period to
		// present its first ticket.
		if lapsed[p] || wall.Sub(since) >= h.cfg.AdmissionGrace {
			evict = append(evict, p)
		}
	}
	h.mu.Unlock()
	for _, p := range evict {
		reason := "no valid ticket within the grace period"
		if lapsed[p] {
			reason = "admission expired and no renewed ticket was presented"
		}
		h.evict(p, reason)
	}
}

// rejected is called when p presented a ticket that failed verification.
// Unless p holds an admission for another content, it is evicted at once:
// it had its chance, and waiting out the grace period only keeps a
// connection open for a peer that may not have any segment.
func (h *Host) rejected(p peer.ID, content string, err error) {
	h.log.Info("ticket rejected", "remote", p.String(), "content", content, "err", err)
	if h.exempt[p] || h.cfg.AdmissionGrace < 0 {
		return
	}
	h.mu.Lock()
	other := h.admittedAnywhereLocked(p)
	h.mu.Unlock()
	if !other {
		h.evict(p, "ticket rejected")
	}
}

// reapUnnegotiated resets inbound streams that have not chosen a protocol
// within NegotiationTimeout and bans peers that keep opening such streams
// while the transient scope is under pressure.
// An honest libp2p peer sends the protocol header with its first read or
// write, within a round trip; a stream that stays silent only holds a slot
// of the transient scope, which every peer's new streams share.
func (h *Host) reapUnnegotiated() {
	tick := min(max(h.cfg.NegotiationTimeout/4, 20*time.Millisecond), 500*time.Millisecond)
	h.every(tick, func() { h.reapOnce(time.Now()) })
}

func (h *Host) reapOnce(wall time.Time) {
	// Strikes count only while the transient scope is at least half full:
	// an honest peer whose stream was merely slow to negotiate on a loaded
	// host loses that stream, not its place in the swarm.
	pressure := true
	if v, ok := h.h.Network().ResourceManager().(network.ResourceScopeViewer); ok {
		_ = v.ViewTransient(func(sc network.ResourceScope) error {
			st := sc.Stat()
			pressure = st.NumStreamsInbound+st.NumStreamsOutbound >= max(h.cfg.Limits.Streams/8, 1)
			return nil
		})
	}
	for _, c := range h.h.Network().Conns() {
		p := c.RemotePeer()
		for _, st := range c.GetStreams() {
			if st.Protocol() != "" {
				continue
			}
			stat := st.Stat()
			if stat.Direction != network.DirInbound || wall.Sub(stat.Opened) < h.cfg.NegotiationTimeout {
				continue
			}
			_ = st.Reset()
			h.idleResets.Add(1)
			if pressure {
				h.strike(p, fmt.Sprintf("%d inbound streams left without a protocol for %v or without a request for %v",
					h.cfg.IdleStreamStrikes, h.cfg.NegotiationTimeout, h.cfg.RequestTimeout))
			}
		}
	}
	h.strikes.forget(wall)
}
