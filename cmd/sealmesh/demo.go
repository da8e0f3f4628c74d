package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sealmesh/sealmesh"
	"github.com/sealmesh/sealmesh/internal/cli"
	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/internal/swarmbench"
	"github.com/sealmesh/sealmesh/segment"
)

const demoSynopsis = `Usage: sealmesh demo [flags]

Runs all of sealmesh in one process on 127.0.0.1, with no set-up:
  1. packs the bundled clip (built into this binary) with CENC into a
     temporary folder,
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

// The demo's --json object is swarmbench.Summary; 'sealmesh-bench swarm --json'
// carries the same keys.

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
	logFlags := cli.AddLogFlags(fs, "off")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *peers < 1 || *peers > 64 {
		return usageErr("--peers %d: use 1 to 64 (larger swarms: go run ./cmd/sealmesh-bench swarm)", *peers)
	}
	if *speed <= 0 || *speed > 16 {
		return usageErr("--speed %v: use a value above 0 and up to 16", *speed)
	}
	for _, in := range ins {
		if _, err := os.Stat(in); err != nil {
			return usageErr("demo: --in %s: no such file", in)
		}
	}
	logger, err := logFlags.Logger(stderr)
	if err != nil {
		return usageErr("demo: %v", err)
	}
	dir, err := os.MkdirTemp("", "sealmesh-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if len(ins) == 0 {
		// The clip is embedded in the binary: the demo runs from any folder.
		if ins, err = sealmesh.WriteClip(filepath.Join(dir, "clip")); err != nil {
			return err
		}
	}

	var egress atomic.Int64
	st, err := stack.Start(ctx, stack.Options{
		Dir: dir, Inputs: ins, ContentID: "demo", Scheme: segment.Scheme(*scheme),
		SegmentDuration: *segDur, CryptoPeriod: *period, Logger: logger, PlaybackSpeed: *speed,
		Origin: func(h http.Handler) http.Handler { return swarmbench.CountingHandler(h, &egress) },
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
	ps := make([]*swarmbench.Peer, *peers)
	var wg sync.WaitGroup
	for i := range ps {
		ps[i] = swarmbench.NewPeer(i + 1)
	}
	target := swarmbench.TargetOf(st)
	for i, p := range ps {
		wg.Go(func() {
			select {
			case <-time.After(time.Duration(i) * *joinEvery):
			case <-runCtx.Done():
				return
			}
			_ = p.Play(runCtx, target, swarmbench.PeerConfig{Speed: *speed, NoP2P: *noP2P, Logger: logger})
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
				table := demoTable(ps)
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
	var results []swarmbench.ViewerResult
	for _, p := range ps {
		sn := p.Snapshot()
		if sn.Err != nil {
			errs = append(errs, fmt.Errorf("viewer %d: %w", p.N, sn.Err))
			continue
		}
		results = append(results, swarmbench.ViewerResult{
			BytesFromPeers: sn.Stats.BytesFromPeers, BytesFromOrigin: sn.Stats.BytesFromOrigin, BytesUploaded: sn.Stats.BytesUploaded,
			Stalls: sn.Result.Stalls, StallMS: sn.Result.StallTime.Milliseconds(), StartupMS: sn.Result.Startup.Milliseconds(),
		})
	}
	sum := swarmbench.Summarize(results, m.Duration, wall, egress.Load())
	sum.Peers = *peers
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
		fmt.Fprintf(stderr, "\nserving: open %s in ffplay, mpv or VLC (clear HLS from viewer 1's gateway); Ctrl-C to stop\n", ps[0].Session().URL())
		<-ctx.Done()
	}
	cancel()
	for _, p := range ps {
		p.Close()
	}
	return errors.Join(errs...)
}

func demoTable(ps []*swarmbench.Peer) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "viewer\tstate\tbuffered s\tfrom peers\tfrom origin\tuploaded\tpeers\tstalls\tstart-up\t")
	for _, p := range ps {
		sn := p.Snapshot()
		state := string(sn.State)
		if sn.State == swarmbench.StateJoining {
			state = "waiting" // the demo has always said "waiting" until Open returns
		}
		s, pr := sn.Stats, sn.Progress
		startup := "-"
		if sn.State == swarmbench.StateDone {
			startup = fmt.Sprintf("%d ms", sn.Result.Startup.Milliseconds())
		}
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%s\t%s\t%s\t%d\t%d\t%s\t\n", p.N, state, pr.Buffered.Seconds(), mb(s.BytesFromPeers), mb(s.BytesFromOrigin), mb(s.BytesUploaded), s.Peers, pr.Stalls, startup)
	}
	tw.Flush()
	return b.String()
}

func mb(n int64) string { return swarmbench.MB(n) }

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
