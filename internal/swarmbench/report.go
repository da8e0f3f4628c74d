package swarmbench

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is the demo's machine-readable summary ('sealmesh demo --json');
// the benchmark's report carries the same keys.
type Summary struct {
	Peers           int     `json:"peers"`
	Offload         float64 `json:"offload"`
	Stalls          int     `json:"stalls"`
	StallMS         int64   `json:"stall_ms"`
	StartupP50MS    int64   `json:"startup_p50_ms"`
	StartupP95MS    int64   `json:"startup_p95_ms"`
	BytesFromPeers  int64   `json:"bytes_from_peers"`
	BytesFromOrigin int64   `json:"bytes_from_origin"`
	OriginEgress    int64   `json:"origin_egress_bytes"`
	BytesUploaded   int64   `json:"bytes_uploaded"`
	ContentSeconds  float64 `json:"content_seconds"`
	WallSeconds     float64 `json:"wall_seconds"`
}

// ViewerResult is one viewer's record.
type ViewerResult struct {
	N               int     `json:"viewer"`
	JoinedAtS       float64 `json:"joined_at_s"` // since the run started
	StartupMS       int64   `json:"startup_ms"`
	Stalls          int     `json:"stalls"`
	StallMS         int64   `json:"stall_ms"`
	BytesFromPeers  int64   `json:"bytes_from_peers"`
	BytesFromOrigin int64   `json:"bytes_from_origin"`
	BytesUploaded   int64   `json:"bytes_uploaded"`
	// RenditionSwitches is always 0: the headless viewer plays one
	// rendition (the player picks it at Open; there is no ABR yet).
	RenditionSwitches int `json:"rendition_switches"`
	// PeakRSSKiB is the viewer process's VmHWM (processes mode only; 0
	// in process, where viewers share one heap).
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// Left: the viewer closed its session mid-play (churn); its counters
	// stop there.
	Left bool `json:"left,omitempty"`
	// BannedPoisoner: the viewer banned the poisoning peer.
	BannedPoisoner bool   `json:"banned_poisoner,omitempty"`
	Bans           int64  `json:"bans"`
	PeerID         string `json:"peer_id,omitempty"`
	Error          string `json:"error,omitempty"`
}

// Offload is the share of the viewer's media bytes that came from peers.
func (v ViewerResult) Offload() float64 {
	if t := v.BytesFromPeers + v.BytesFromOrigin; t > 0 {
		return float64(v.BytesFromPeers) / float64(t)
	}
	return 0
}

// EgressSample is the origin's cumulative egress at a time since the run began.
type EgressSample struct {
	T     float64 `json:"t_s"`
	Bytes int64   `json:"bytes"`
}

// ChurnResult splits stalls between viewers who stayed and those who left.
type ChurnResult struct {
	Left          int   `json:"left"`
	StayedStalls  int   `json:"stayed_stalls"`
	StayedStallMS int64 `json:"stayed_stall_ms"`
	LeftStalls    int   `json:"left_stalls"`
}

// PoisonResult is what the poisoning peer achieved.
type PoisonResult struct {
	PeerID string `json:"peer_id"`
	// BytesServed is how many corrupted bytes it sent before bans cut it off.
	BytesServed int64 `json:"bytes_served"`
	// BannedBy is how many viewers banned it (each bans it at its first bad file).
	BannedBy int   `json:"banned_by"`
	Stalls   int   `json:"stalls"`
	StallMS  int64 `json:"stall_ms"`
}

// Report is one benchmark run.
type Report struct {
	Summary
	Scenario          string         `json:"scenario"`
	Mode              string         `json:"mode"`
	Join              string         `json:"join"`
	JoinRateS         float64        `json:"join_rate_s"`
	Speed             float64        `json:"speed"`
	Ceiling           float64        `json:"offload_ceiling"`
	DownMbit          float64        `json:"down_mbit"`
	UpMbit            float64        `json:"up_mbit"`
	LatencyMS         int64          `json:"latency_ms"`
	TopRenditionKbit  int            `json:"top_rendition_kbit"`
	StartupMaxMS      int64          `json:"startup_max_ms"`
	RenditionSwitches int            `json:"rendition_switches"`
	PeakRSSMaxKiB     int64          `json:"peak_rss_max_kib"`     // processes mode: the largest viewer's VmHWM
	ProcessPeakRSSKiB int64          `json:"process_peak_rss_kib"` // this process's VmHWM (in process: all viewers together)
	Viewers           []ViewerResult `json:"viewers"`
	Egress            []EgressSample `json:"origin_egress"`
	Churn             *ChurnResult   `json:"churn,omitempty"`
	Poison            *PoisonResult  `json:"poison,omitempty"`
	Leech             []LeechResult  `json:"leech,omitempty"`
	Errors            []string       `json:"errors,omitempty"`
}

// Summarize fills the summary from per-viewer results.
func Summarize(vs []ViewerResult, contentSeconds float64, wall time.Duration, egress int64) Summary {
	s := Summary{Peers: len(vs), ContentSeconds: contentSeconds, WallSeconds: wall.Seconds(), OriginEgress: egress}
	var startups []time.Duration
	for _, v := range vs {
		if v.Error != "" {
			continue
		}
		s.BytesFromPeers += v.BytesFromPeers
		s.BytesFromOrigin += v.BytesFromOrigin
		s.BytesUploaded += v.BytesUploaded
		s.Stalls += v.Stalls
		s.StallMS += v.StallMS
		if v.StartupMS > 0 {
			startups = append(startups, time.Duration(v.StartupMS)*time.Millisecond)
		}
	}
	if total := s.BytesFromPeers + s.BytesFromOrigin; total > 0 {
		s.Offload = float64(s.BytesFromPeers) / float64(total)
	}
	s.StartupP50MS = Percentile(startups, 50).Milliseconds()
	s.StartupP95MS = Percentile(startups, 95).Milliseconds()
	return s
}

// Percentile is the p-th percentile (nearest rank) of ds; 0 for none.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

// MB formats bytes as decimal megabytes.
func MB(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }

var csvHeader = []string{"scenario", "mode", "peers", "viewer", "joined_at_s", "startup_ms", "stalls", "stall_ms",
	"bytes_from_peers", "bytes_from_origin", "bytes_uploaded", "offload", "rendition_switches", "peak_rss_kib", "left", "banned_poisoner", "error"}

// WriteCSV writes one row per viewer of every report, with a header.
func WriteCSV(w io.Writer, rs []*Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, r := range rs {
		for _, v := range r.Viewers {
			row := []string{r.Scenario, r.Mode, strconv.Itoa(r.Peers), strconv.Itoa(v.N), fmt.Sprintf("%.3f", v.JoinedAtS),
				strconv.FormatInt(v.StartupMS, 10), strconv.Itoa(v.Stalls), strconv.FormatInt(v.StallMS, 10),
				strconv.FormatInt(v.BytesFromPeers, 10), strconv.FormatInt(v.BytesFromOrigin, 10), strconv.FormatInt(v.BytesUploaded, 10),
				fmt.Sprintf("%.4f", v.Offload()), strconv.Itoa(v.RenditionSwitches), strconv.FormatInt(v.PeakRSSKiB, 10),
				strconv.FormatBool(v.Left), strconv.FormatBool(v.BannedPoisoner), v.Error}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// Table is the summary table, one row per report.
func Table(rs []*Report) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tmode\tpeers\toffload\tceiling\tgap\tstalls\tstall ms\tstart-up p50\tp95\tmax\tpeak RSS/viewer\torigin egress\twall s\t")
	for _, r := range rs {
		rss := "-"
		if r.PeakRSSMaxKiB > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(r.PeakRSSMaxKiB)/1024)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f%%\t%.1f%%\t%.1f\t%d\t%d\t%d ms\t%d ms\t%d ms\t%s\t%s\t%.0f\t\n",
			r.Scenario, r.Mode, r.Peers, 100*r.Offload, 100*r.Ceiling, 100*(r.Ceiling-r.Offload), r.Stalls, r.StallMS,
			r.StartupP50MS, r.StartupP95MS, r.StartupMaxMS, rss, MB(r.OriginEgress), r.WallSeconds)
	}
	tw.Flush()
	return b.String()
}

// Findings are the scenario lines under the table.
func Findings(r *Report) []string {
	var out []string
	if c := r.Churn; c != nil {
		out = append(out, fmt.Sprintf("churn (N=%d): %d viewers left mid-play; those who stayed stalled %d times (%d ms); those who left had stalled %d times before leaving", r.Peers, c.Left, c.StayedStalls, c.StayedStallMS, c.LeftStalls))
	}
	if p := r.Poison; p != nil {
		out = append(out, fmt.Sprintf("poison (N=%d): the poisoner sent %s of corrupted ciphertext; %d of %d viewers banned it; stalls %d (%d ms)", r.Peers, MB(p.BytesServed), p.BannedBy, r.Peers, p.Stalls, p.StallMS))
	}
	for _, l := range r.Leech {
		out = append(out, fmt.Sprintf("leech %s (N=%d): %d bytes received for %d raw segment requests to %d viewers: %d answered 'not admitted', %d cut off unanswered, %d other; %d more attempts found the connection refused (evicted)", l.Kind, r.Peers, l.Bytes, l.Requests, l.PeersTried, l.Refused, l.NoAnswer, l.Other, l.Unreachable))
	}
	return out
}
