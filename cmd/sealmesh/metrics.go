package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sealmesh/sealmesh/player"
)

// peerMetrics serves 'peer play|seed --metrics ADDR': the transport's
// series (sealmesh_transport_*, and libp2p's own), the player's
// (sealmesh_player_*, below) and the Go runtime's, in Prometheus text
// format at http://ADDR/metrics. A nil *peerMetrics (no --metrics) does
// nothing.
//
// The series name the content being played and this peer's ID, never a
// token or a key; an address other than loopback exposes that to whoever
// can reach it, which is the operator's choice to make.
type peerMetrics struct {
	addr string
	reg  *prometheus.Registry
	ln   net.Listener
	hs   *http.Server
}

func newPeerMetrics(addr string) (*peerMetrics, error) {
	if addr == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usageErr("--metrics %q: give host:port, such as 127.0.0.1:9464", addr)
	}
	// Listen before the session opens, so that a busy port is reported
	// before anything else is done.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: listen on %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &peerMetrics{addr: addr, reg: reg, ln: ln}, nil
}

// Registerer is what player.Config.Registerer gets: nil without --metrics.
func (m *peerMetrics) Registerer() prometheus.Registerer {
	if m == nil {
		return nil
	}
	return m.reg
}

// Serve adds the session's player series and starts serving /metrics; it
// prints the address on w.
func (m *peerMetrics) Serve(ctx context.Context, s *player.Session, content string, w io.Writer) error {
	if m == nil {
		return nil
	}
	if err := m.reg.Register(newPlayerCollector(s, content)); err != nil {
		return fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	m.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second}
	go func() {
		if err := m.hs.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(w, "metrics: %v\n", err)
		}
	}()
	context.AfterFunc(ctx, func() { _ = m.hs.Close() })
	fmt.Fprintf(w, "metrics at http://%s/metrics\n", m.ln.Addr())
	return nil
}

// Close stops serving.
func (m *peerMetrics) Close() {
	if m == nil {
		return
	}
	if m.hs != nil {
		_ = m.hs.Close()
	}
	_ = m.ln.Close()
}

// playerCollector reads player.Session.Stats at each scrape:
//
//	sealmesh_player_bytes_total{source}          verified ciphertext by source: peers, origin, cache
//	sealmesh_player_uploaded_bytes_total         served to other peers
//	sealmesh_player_peers                        peers admitted to this content's swarm
//	sealmesh_player_buffered_seconds             content served ahead of the modelled playhead
//	sealmesh_player_playhead_seconds             the modelled playhead
//	sealmesh_player_stalls_total                 times the playhead caught up with what was served
//	sealmesh_player_stall_seconds_total          time spent stalled
//	sealmesh_player_startup_seconds              Open to first media segment (0 until then)
//	sealmesh_player_segments_total               segments served to the platform player
//	sealmesh_player_refused_segments_total       asked for while no valid license covered them
//	sealmesh_player_license_renewals_total       renewals, and failed ones below
//	sealmesh_player_license_renew_failures_total
//	sealmesh_player_license_expiry_timestamp_seconds  when the current license lapses unless renewed
//
// Every series carries the content ID as a constant label.
type playerCollector struct {
	s     *player.Session
	descs map[string]*prometheus.Desc
}

var playerSeries = []struct{ name, help string }{
	{"bytes_total", "Verified ciphertext bytes by source (peers, origin, cache)."},
	{"uploaded_bytes_total", "Bytes served to other peers."},
	{"peers", "Peers admitted to this content's swarm."},
	{"buffered_seconds", "Content served ahead of the modelled playhead."},
	{"playhead_seconds", "The modelled playhead, in content seconds."},
	{"stalls_total", "Times the modelled playhead reached the end of what had been served."},
	{"stall_seconds_total", "Time spent stalled."},
	{"startup_seconds", "Time from Open to the first media segment served (0 until then)."},
	{"segments_total", "Segments served to the platform player."},
	{"refused_segments_total", "Segments asked for while no valid license covered them."},
	{"license_renewals_total", "License renewals."},
	{"license_renew_failures_total", "Failed license renewals."},
	{"license_expiry_timestamp_seconds", "When the current license lapses unless renewed (Unix time; 0: none)."},
}

func newPlayerCollector(s *player.Session, contentID string) *playerCollector {
	c := &playerCollector{s: s, descs: map[string]*prometheus.Desc{}}
	content := prometheus.Labels{"content": contentID}
	for _, p := range playerSeries {
		var labels []string
		if p.name == "bytes_total" {
			labels = []string{"source"}
		}
		c.descs[p.name] = prometheus.NewDesc("sealmesh_player_"+p.name, p.help, labels, content)
	}
	return c
}

func (c *playerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *playerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, v, labels...)
	}
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v)
	}
	counter("bytes_total", float64(st.BytesFromPeers), "peers")
	counter("bytes_total", float64(st.BytesFromOrigin), "origin")
	counter("bytes_total", float64(st.BytesFromCache), "cache")
	counter("uploaded_bytes_total", float64(st.BytesUploaded))
	gauge("peers", float64(st.Peers))
	gauge("buffered_seconds", st.Buffered.Seconds())
	gauge("playhead_seconds", st.Playhead)
	counter("stalls_total", float64(st.Stalls))
	counter("stall_seconds_total", st.StallTime.Seconds())
	gauge("startup_seconds", st.StartupTime.Seconds())
	counter("segments_total", float64(st.Segments))
	counter("refused_segments_total", float64(st.Refused))
	counter("license_renewals_total", float64(st.Renewals))
	counter("license_renew_failures_total", float64(st.RenewFailures))
	expiry := 0.0
	if !st.LicenseExpiry.IsZero() {
		expiry = float64(st.LicenseExpiry.UnixNano()) / 1e9
	}
	gauge("license_expiry_timestamp_seconds", expiry)
}
