package transport

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of a host's counters.
type Stats struct {
	// BytesDown are verified bytes fetched from peers; BytesUp were served.
	BytesDown, BytesUp int64
	// FailedFetches counts Fetch calls that returned an error.
	FailedFetches int64
	// BannedPeers are banned now; Bans and Evictions count since start.
	BannedPeers     int
	Bans, Evictions int64
	// IdleStreamResets counts inbound streams reset since start for not
	// choosing a protocol within Config.NegotiationTimeout.
	IdleStreamResets int64
	// RequestTimeouts counts inbound segment and have streams reset since
	// start for not delivering their request within Config.RequestTimeout.
	RequestTimeouts int64
	// RefusedHandshakes, RefusedUnadmitted and RefusedStreams count what
	// the per-source budgets refused since start: inbound connections over
	// a source's handshake budget, connections of peers without an
	// admission over their source's budget, and streams of such peers
	// (over Limits.UnadmittedStreams, or for a protocol other than the
	// ticket exchange).
	RefusedHandshakes, RefusedUnadmitted, RefusedStreams int64
	// AdmittedPeers are distinct peers admitted to at least one swarm now.
	AdmittedPeers int
	// Contents holds the same per joined content.
	Contents map[string]ContentStats
}

// ContentStats are one swarm's counters. Per-peer bytes are in Swarm.Peers.
type ContentStats struct {
	BytesDown, BytesUp, FailedFetches int64
	AdmittedPeers                     int
}

// Stats returns the swarm's counters.
func (s *Swarm) Stats() ContentStats {
	now := s.h.now()
	cs := ContentStats{BytesDown: s.bytesDown.Load(), BytesUp: s.bytesUp.Load(), FailedFetches: s.failed.Load()}
	s.mu.Lock()
	for _, sp := range s.peers {
		if now.Before(sp.admittedUntil) {
			cs.AdmittedPeers++
		}
	}
	s.mu.Unlock()
	return cs
}

// Stats returns the host's counters, summed over joined contents.
func (h *Host) Stats() Stats {
	st := Stats{
		BannedPeers:      h.gater.bannedCount(),
		Bans:             h.bans.Load(),
		Evictions:        h.evictions.Load(),
		IdleStreamResets: h.idleResets.Load(),
		RequestTimeouts:  h.requestTimeouts.Load(),

		RefusedHandshakes: h.inbound.refusedHandshakes.Load(),
		RefusedUnadmitted: h.inbound.refusedUnadmitted.Load(),
		RefusedStreams:    h.inbound.refusedStreams.Load(),
		Contents:          make(map[string]ContentStats),
	}
	now := h.now()
	admitted := map[any]bool{}
	for _, s := range h.swarmsSnapshot() {
		cs := s.Stats()
		st.Contents[s.content] = cs
		st.BytesDown += cs.BytesDown
		st.BytesUp += cs.BytesUp
		st.FailedFetches += cs.FailedFetches
		s.mu.Lock()
		for p, sp := range s.peers {
			if now.Before(sp.admittedUntil) {
				admitted[p] = true
			}
		}
		s.mu.Unlock()
	}
	st.AdmittedPeers = len(admitted)
	return st
}

// failedFetch counts a failed fetch by reason for Prometheus.
func (h *Host) failedFetch(content, reason string) {
	if h.collector != nil {
		h.collector.fail(content, reason)
	}
}

// collector exports Stats as Prometheus metrics, read at scrape time.
// Per-peer counters are not exported: peer IDs would make the label set
// unbounded.
type collector struct {
	h *Host

	mu       sync.Mutex
	failures map[[2]string]int64 // content, reason

	bytesDown, bytesUp, failed, admitted, banned, bans, evictions, idleResets *prometheus.Desc
}

func newCollector(h *Host) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sealmesh_transport_"+name, help, labels, prometheus.Labels{"peer_id": h.ID().String()})
	}
	return &collector{
		h:          h,
		failures:   make(map[[2]string]int64),
		bytesDown:  d("peer_bytes_received_total", "Verified ciphertext bytes fetched from peers.", "content"),
		bytesUp:    d("bytes_uploaded_total", "Ciphertext bytes served to peers.", "content"),
		failed:     d("failed_fetches_total", "Fetches from peers that failed, by reason.", "content", "reason"),
		admitted:   d("admitted_peers", "Peers admitted to the content's swarm now.", "content"),
		banned:     d("banned_peers", "Peers banned now for sending bad bytes."),
		bans:       d("bans_total", "Peers banned since start."),
		evictions:  d("evictions_total", "Peers disconnected since start for lacking a valid ticket."),
		idleResets: d("idle_stream_resets_total", "Inbound streams reset since start for choosing no protocol within the negotiation timeout."),
	}
}

func (c *collector) fail(content, reason string) {
	c.mu.Lock()
	c.failures[[2]string{content, reason}]++
	c.mu.Unlock()
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bytesDown, c.bytesUp, c.failed, c.admitted, c.banned, c.bans, c.evictions, c.idleResets} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.h.Stats()
	for content, cs := range st.Contents {
		ch <- prometheus.MustNewConstMetric(c.bytesDown, prometheus.CounterValue, float64(cs.BytesDown), content)
		ch <- prometheus.MustNewConstMetric(c.bytesUp, prometheus.CounterValue, float64(cs.BytesUp), content)
		ch <- prometheus.MustNewConstMetric(c.admitted, prometheus.GaugeValue, float64(cs.AdmittedPeers), content)
	}
	c.mu.Lock()
	for k, n := range c.failures {
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.banned, prometheus.GaugeValue, float64(st.BannedPeers))
	ch <- prometheus.MustNewConstMetric(c.bans, prometheus.CounterValue, float64(st.Bans))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(c.idleResets, prometheus.CounterValue, float64(st.IdleStreamResets))
}
