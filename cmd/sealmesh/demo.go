package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/internal/viewer"
	"github.com/sealmesh/sealmesh/player"
	"github.com/sealmesh/sealmesh/segment"
)

const demoSynopsis = `Usage: sealmesh demo [flags]

Runs all of sealmesh in one process on 127.0.0.1, with no set-up:
  1. packs the bundled clip (testdata/clip) with CENC into a temporary folder,
  2. starts a license server and a static origin,
  3. starts --peers viewers one after another; each embeds the player SDK
     (license, swarm ticket, libp2p swarm, scheduler, in-memory decryption)
     and plays the clip through its local HLS gateway in real time
     (--speed to go faster),
  4. prints a live table and a summary: how much came from peers versus the
     origin, start-up times and stalls.

Examples:
  sealmesh demo
  sealmesh demo --peers 16 --speed 4
  sealmesh demo --json                 # one JSON object, for scripts
  sealmesh demo --serve                # keep it up and print a URL for ffplay/VLC`

type demoSummary struct {
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

type demoPeer struct {
	n      int
	sess   *player.Session
	view   *viewer.Viewer
	res    viewer.Result
	err    error
	done   bool
	joined bool
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoSynopsis, stderr)
	var ins multiFlag
	fs.Var(&ins, "in", "input `file` instead of the bundled clip (repeatable)")
	peers := fs.Int("peers", 8, "number of `viewers`")
	speed := fs.Float64("speed", 1, "playback `speed` (2 plays twice as fast as real time)")
	joinEvery := fs.Duration("join-every", time.Second, "`interval` between two viewers joining")
	scheme := fs.String("scheme", "cbcs", "CENC `scheme`: cbcs or cenc")
	segDur := fs.Duration("segment-duration", 2*time.Second, "segment `duration`")
	period := fs.Duration("crypto-period", 4*time.Second, "key rotation `period` (0: one key)")
	asJSON := fs.Bool("json", false, "print only the final summary, as one JSON object")
	serve := fs.Bool("serve", false, "keep everything running after the summary and print a URL to open")
	noP2P := fs.Bool("no-p2p", false, "baseline: every viewer plays from the origin only")
	verbose := fs.Bool("verbose", false, "log what the components do (on stderr)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *peers < 1 || *peers > 64 {
		return usageErr("--peers %d: use 1 to 64 (larger swarms: sealmesh bench swarm)", *peers)
	}
	if *speed <= 0 || *speed > 16 {
		return usageErr("--speed %v: use a value above 0 and up to 16", *speed)
	}
	if len(ins) == 0 {
		clip, err := findClip()
		if err != nil {
			return err
		}
		ins = clip
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	dir, err := os.MkdirTemp("", "sealmesh-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var egress atomic.Int64
	st, err := stack.Start(ctx, stack.Options{
		Dir: dir, Inputs: ins, ContentID: "demo", Scheme: segment.Scheme(*scheme),
		SegmentDuration: *segDur, CryptoPeriod: *period, Logger: logger,
		Origin: func(h http.Handler) http.Handler { return countingHandler(h, &egress) },
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer st.Close()
	m := st.Manifest
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(stdout, format, a...)
		}
	}
	say("packed %s: %.0f s, %s, %d renditions, %d crypto periods, in %v\n", filepath.Base(ins[0]), m.Duration, m.Scheme, len(m.Renditions), len(m.Periods), st.PackTime.Round(time.Millisecond))
	say("license server %s, origin %s\n", st.LicenseURL, st.OriginURL)
	say("%d viewers join %v apart and play at %gx\n\n", *peers, *joinEvery, *speed)

	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps := make([]*demoPeer, *peers)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range ps {
		ps[i] = &demoPeer{n: i + 1}
	}
	for i, p := range ps {
		wg.Go(func() {
			select {
			case <-time.After(time.Duration(i) * *joinEvery):
			case <-runCtx.Done():
				return
			}
			t0 := time.Now()
			cfg := player.Config{
				Content: st.ContentID, OriginURL: st.OriginURL, LicenseURL: st.LicenseURL,
				Token: st.TokenFunc(fmt.Sprintf("viewer-%d", p.n)), LicenseKeys: st.LicenseKeys, ManifestKeys: st.ManifestKeys,
				Speed: *speed, Logger: logger,
				P2P: player.P2P{Disable: *noP2P, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, TrackerInterval: 500 * time.Millisecond},
			}
			sess, err := player.Open(runCtx, cfg)
			mu.Lock()
			p.sess, p.err, p.joined = sess, err, true
			mu.Unlock()
			if err != nil {
				return
			}
			v := viewer.New(viewer.Config{URL: sess.URL(), Speed: *speed})
			mu.Lock()
			p.view = v
			mu.Unlock()
			res, err := v.Play(runCtx, t0)
			mu.Lock()
			p.res, p.err, p.done = res, err, true
			mu.Unlock()
		})
	}
	live := isTerminal(stdout) && !*asJSON
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastLines := 0
loop:
	for {
		select {
		case <-finished:
			break loop
		case <-ctx.Done():
			cancel()
			<-finished
			return errors.New("demo interrupted")
		case <-tick.C:
			if live {
				mu.Lock()
				table := demoTable(ps)
				mu.Unlock()
				if lastLines > 0 {
					fmt.Fprintf(stdout, "\033[%dA\033[J", lastLines)
				}
				fmt.Fprint(stdout, table)
				lastLines = countLines(table)
			}
		}
	}
	wall := time.Since(start)
	if live && lastLines > 0 {
		fmt.Fprintf(stdout, "\033[%dA\033[J", lastLines)
	}
	say("%s\n", demoTable(ps))
	var errs []error
	sum := demoSummary{Peers: *peers, WallSeconds: wall.Seconds(), ContentSeconds: m.Duration, OriginEgress: egress.Load()}
	var startups []time.Duration
	for _, p := range ps {
		if p.err != nil {
			errs = append(errs, fmt.Errorf("viewer %d: %w", p.n, p.err))
			continue
		}
		s := p.sess.Stats()
		sum.BytesFromPeers += s.BytesFromPeers
		sum.BytesFromOrigin += s.BytesFromOrigin
		sum.BytesUploaded += s.BytesUploaded
		sum.Stalls += p.res.Stalls
		sum.StallMS += p.res.StallTime.Milliseconds()
		startups = append(startups, p.res.Startup)
	}
	if total := sum.BytesFromPeers + sum.BytesFromOrigin; total > 0 {
		sum.Offload = float64(sum.BytesFromPeers) / float64(total)
	}
	sum.StartupP50MS = percentile(startups, 50).Milliseconds()
	sum.StartupP95MS = percentile(startups, 95).Milliseconds()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		ceiling := 1 - 1/float64(*peers)
		fmt.Fprintf(stdout, "offload: %.1f%% of media bytes came from peers (ceiling for %d viewers: %.1f%%)\n", 100*sum.Offload, *peers, 100*ceiling)
		fmt.Fprintf(stdout, "bytes: %s from peers, %s from the origin (origin egress %s), %s uploaded\n", mb(sum.BytesFromPeers), mb(sum.BytesFromOrigin), mb(sum.OriginEgress), mb(sum.BytesUploaded))
		fmt.Fprintf(stdout, "start-up: p50 %d ms, p95 %d ms; stalls: %d (%d ms)\n", sum.StartupP50MS, sum.StartupP95MS, sum.Stalls, sum.StallMS)
		fmt.Fprintf(stdout, "%d viewers played %.0f s of content in %.1f s\n", *peers, m.Duration, wall.Seconds())
	}
	if *serve && len(errs) == 0 {
		fmt.Fprintf(stderr, "\nserving: open %s in ffplay, mpv or VLC (clear HLS from viewer 1's gateway); Ctrl-C to stop\n", ps[0].sess.URL())
		<-ctx.Done()
	}
	cancel()
	for _, p := range ps {
		if p.sess != nil {
			p.sess.Close()
		}
	}
	return errors.Join(errs...)
}

func demoTable(ps []*demoPeer) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "viewer\tstate\tbuffered s\tfrom peers\tfrom origin\tuploaded\tpeers\tstalls\tstart-up\t")
	for _, p := range ps {
		state := "waiting"
		var s player.Stats
		var pr viewer.Progress
		switch {
		case p.err != nil:
			state = "error"
		case p.done:
			state = "done"
		case p.view != nil:
			state = "playing"
		case p.joined:
			state = "joining"
		}
		if p.sess != nil {
			s = p.sess.Stats()
		}
		if p.view != nil {
			pr = p.view.Progress()
		}
		startup := "-"
		if p.done {
			startup = fmt.Sprintf("%d ms", p.res.Startup.Milliseconds())
		}
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%s\t%s\t%s\t%d\t%d\t%s\t\n", p.n, state, pr.Buffered.Seconds(), mb(s.BytesFromPeers), mb(s.BytesFromOrigin), mb(s.BytesUploaded), s.Peers, pr.Stalls, startup)
	}
	tw.Flush()
	return b.String()
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }

func countingHandler(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(countingWriter{w, n}, r)
	})
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	k, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(k))
	return k, err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func countLines(s string) int {
	n := 0
	for _, c := range s {
		if c == '\n' {
			n++
		}
	}
	return n
}

// findClip locates testdata/clip from the working folder or any parent, so
// 'go run ./cmd/sealmesh demo' works from anywhere inside the repository.
func findClip() ([]string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		c := filepath.Join(dir, "testdata", "clip")
		a, b := filepath.Join(c, "360p.mp4"), filepath.Join(c, "180p.mp4")
		if _, err := os.Stat(a); err == nil {
			if _, err := os.Stat(b); err == nil {
				return []string{a, b}, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("bundled clip testdata/clip not found: run from the sealmesh repository or pass --in FILE.mp4")
		}
		dir = parent
	}
}
