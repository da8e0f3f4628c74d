package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sealmesh/sealmesh/internal/cli"
	"github.com/sealmesh/sealmesh/internal/swarmbench"
	"github.com/sealmesh/sealmesh/internal/swarmbench/plots"
)

const benchSynopsis = `Usage: sealmesh-bench swarm [flags]

Measures a swarm of viewers against a real license server and origin, all on
127.0.0.1: how much of the media came from peers (against the 1-1/N
ceiling), start-up times, stalls, and, with --mode processes, each viewer's
peak RSS. Every viewer embeds the player SDK and is played by a headless
HLS player in real time (--speed to go faster).

Scenarios (--scenario, a comma-separated list runs each):
  vod     viewers join as a Poisson process (--join-rate s apart on average)
  live    everyone joins at once and shares the playhead
  churn   every third viewer closes its session half-way through the content
  poison  an entitled peer serves every file with one bit flipped
  leech   two hosts without a valid ticket (none; one naming another peer)
          ask every viewer for every file: they must get zero bytes

Shaping is per viewer, in process: a token bucket on what it downloads over
HTTP (origin, license server) plus --latency per request, and its upload cap
on what it serves peers. Downloads from peers are bounded only by the
senders' upload caps (see BENCHMARKS.md, "Swarm").

Content: --content 12 plays the bundled clip (built into this binary);
longer content is generated once with ffmpeg at 640x360 900 kbit/s and
320x180 300 kbit/s (plus 64 kbit/s audio) and kept in --cache; --in FILE
(repeatable, keyframe-aligned MP4, best rendition first) plays your own.
No file of the repository is needed.

Examples (from the repository, 'go run ./cmd/sealmesh-bench' for sealmesh-bench):
  sealmesh-bench swarm --peers 16
  sealmesh-bench swarm --peers 4,8,16,32 --csv swarm.csv --plots docs/bench
  sealmesh-bench swarm --peers 8 --scenario churn,poison,leech --speed 4
  sealmesh-bench swarm --peers 8 --mode processes      # per-viewer peak RSS
  sealmesh-bench swarm --peers 3 --content 12 --json   # one JSON object per run
  sealmesh-bench swarm --peers 4 --in film-720p.mp4 --in film-360p.mp4`

func runBenchSwarm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("swarm", benchSynopsis)
	peersList := fs.String("peers", "8", "number of `viewers`; a comma-separated list runs each (4,8,16,32); none: only --merge")
	scenarios := fs.String("scenario", "vod", "`scenario`: vod, live, churn, poison, leech; or a comma-separated list")
	mode := fs.String("mode", "inprocess", "`mode`: inprocess, or processes (one OS process per viewer, with its peak RSS)")
	join := fs.String("join", "", "`joins`: poisson or all (zero: all for live, poisson otherwise)")
	joinRate := fs.Float64("join-rate", 1, "mean `seconds` between two joins (poisson)")
	speed := fs.Float64("speed", 1, "playback `speed` (2 plays twice as fast as real time)")
	content := fs.Int("content", 60, "content length in `seconds` (12: the bundled clip; longer: generated with ffmpeg)")
	var ins multiFlag
	fs.Var(&ins, "in", "play this MP4 `file` instead of --content (repeatable: one per rendition, best first)")
	cacheDir := fs.String("cache", swarmbench.DefaultCacheDir(), "`folder` that keeps generated content between runs")
	down := fs.Float64("down-mbit", 4, "per-viewer download cap for HTTP (origin, license), `Mbit/s` (0: none)")
	up := fs.Float64("up-mbit", 2, "per-viewer upload cap to peers, `Mbit/s` (0: none)")
	latency := fs.Duration("latency", 20*time.Millisecond, "added `delay` before each HTTP request (a CDN round trip)")
	seed := fs.Uint64("seed", 1, "random `seed` for the join times")
	asJSON := fs.Bool("json", false, "print only the results, one JSON object per run")
	csvPath := fs.String("csv", "", "write per-viewer rows to `file`")
	plotsDir := fs.String("plots", "", "write PNG plots to `dir` (offload vs N, start-up CDF, origin egress)")
	var merge multiFlag
	fs.Var(&merge, "merge", "add the runs in `file` (a previous --json output) to the table, CSV and plots (repeatable)")
	noP2P := fs.Bool("no-p2p", false, "baseline: every viewer plays from the origin only")
	logFlags := cli.AddLogFlags(fs, "off")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var ns []int
	for _, f := range strings.Split(*peersList, ",") {
		if f == "none" {
			continue // only --merge
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 512 {
			return usageErr("--peers %q: use numbers from 1 to 512, comma-separated", *peersList)
		}
		ns = append(ns, n)
	}
	var scs []string
	for _, s := range strings.Split(*scenarios, ",") {
		s = strings.TrimSpace(s)
		if !isOneOf(s, swarmbench.Scenarios) {
			return usageErr("--scenario %q: use %s", s, strings.Join(swarmbench.Scenarios, ", "))
		}
		scs = append(scs, s)
	}
	if *mode != swarmbench.InProcess && *mode != swarmbench.Processes {
		return usageErr("--mode %q: use inprocess or processes", *mode)
	}
	if *join != "" && *join != "poisson" && *join != "all" {
		return usageErr("--join %q: use poisson or all", *join)
	}
	if *speed <= 0 || *speed > 16 {
		return usageErr("--speed %v: use a value above 0 and up to 16", *speed)
	}
	if *joinRate <= 0 || *content < 1 || *down < 0 || *up < 0 || *latency < 0 {
		return usageErr("--join-rate, --content, --down-mbit, --up-mbit and --latency must not be negative (nor zero for the first two)")
	}
	logger, err := logFlags.Logger(stderr)
	if err != nil {
		return usageErr("%v", err)
	}
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(stderr, format, a...)
		}
	}
	inputs := []string(ins)
	for _, in := range inputs {
		if _, err := os.Stat(in); err != nil {
			return usageErr("--in %s: no such file", in)
		}
	}
	top := 400 // the bundled clip's 360p
	switch {
	case len(inputs) > 0:
		top = 0 // unknown
	case len(ns) > 0:
		if inputs, err = swarmbench.Content(ctx, *content, *cacheDir, say); err != nil {
			return err
		}
		if *content > swarmbench.BundledSeconds {
			top = swarmbench.Ladder[0].VideoKbit
		}
	}
	exe := ""
	if *mode == swarmbench.Processes {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("find the sealmesh-bench binary for --mode processes: %w", err)
		}
	}
	shaping := swarmbench.Shaping{DownBytes: swarmbench.Mbit(*down), UpBytes: swarmbench.Mbit(*up), Latency: *latency}
	var reports []*swarmbench.Report
	for _, f := range merge {
		rs, err := readReports(f)
		if err != nil {
			return err
		}
		reports = append(reports, rs...)
	}
	var problems []error
	enc := json.NewEncoder(stdout)
	for _, sc := range scs {
		for _, n := range ns {
			say("bench: %s, %d viewers, %s, joins %s, speed %gx, shaping %g/%g Mbit/s down/up + %v\n",
				sc, n, *mode, orDefault(*join, "default"), *speed, *down, *up, *latency)
			last := time.Time{}
			r, err := swarmbench.Run(ctx, swarmbench.Options{
				Peers: n, Scenario: sc, Mode: *mode, Join: *join, JoinRate: time.Duration(*joinRate * float64(time.Second)),
				Seed: *seed, Speed: *speed, Inputs: inputs, TopKbit: top, Shaping: shaping, NoP2P: *noP2P, Exe: exe, Logger: logger,
				Progress: func(line string) {
					if time.Since(last) >= 5*time.Second {
						last = time.Now()
						say("  %s\n", line)
					}
				},
			})
			if err != nil {
				return err
			}
			reports = append(reports, r)
			if *asJSON {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			for _, e := range r.Errors {
				problems = append(problems, fmt.Errorf("%s N=%d: %s", sc, n, e))
			}
			for _, l := range r.Leech {
				if l.Bytes != 0 {
					problems = append(problems, fmt.Errorf("%s N=%d: leech %s received %d bytes", sc, n, l.Kind, l.Bytes))
				}
			}
		}
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "\n%s", swarmbench.Table(reports))
		for _, r := range reports {
			for _, f := range swarmbench.Findings(r) {
				fmt.Fprintln(stdout, f)
			}
		}
		fmt.Fprintln(stdout, "rendition switches: 0 (one rendition per viewer, no ABR yet)")
	}
	if *csvPath != "" {
		f, err := os.Create(*csvPath)
		if err != nil {
			return err
		}
		err = swarmbench.WriteCSV(f, reports)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", *csvPath, err)
		}
		say("wrote %s\n", *csvPath)
	}
	if *plotsDir != "" {
		files, err := plots.Write(*plotsDir, reports)
		if err != nil {
			return err
		}
		say("wrote %s\n", strings.Join(files, ", "))
	}
	return errors.Join(problems...)
}

// readReports reads the JSON lines 'sealmesh-bench swarm --json' printed.
func readReports(path string) ([]*swarmbench.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--merge: %w", err)
	}
	var out []*swarmbench.Report
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		r := new(swarmbench.Report)
		if err := dec.Decode(r); err != nil {
			return nil, fmt.Errorf("--merge %s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func isOneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
