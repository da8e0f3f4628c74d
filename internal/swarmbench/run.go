package swarmbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/transport"
)

// Scenarios.
const (
	ScenarioVOD    = "vod"    // staggered joins
	ScenarioLive   = "live"   // everyone at once, same playhead
	ScenarioChurn  = "churn"  // a third of the viewers leave mid-play
	ScenarioPoison = "poison" // one entitled peer serves corrupted bytes
	ScenarioLeech  = "leech"  // peers without a valid ticket try to fetch
)

// Scenarios lists the scenarios.
var Scenarios = []string{ScenarioVOD, ScenarioLive, ScenarioChurn, ScenarioPoison, ScenarioLeech}

// Modes.
const (
	InProcess = "inprocess"
	Processes = "processes"
)

// Options configures Run. Zero values are documented.
type Options struct {
	Peers    int    // required
	Scenario string // zero: VOD
	Mode     string // zero: InProcess
	// Join is "poisson" (exponential gaps of mean JoinRate) or "all".
	// Zero: "all" for Live, "poisson" otherwise.
	Join     string
	JoinRate time.Duration // zero: 1 s
	Seed     uint64        // for the join times; zero: 1
	Speed    float64       // zero: 1
	// Inputs are the files to pack (Content). Required.
	Inputs                        []string
	TopKbit                       int // the top rendition's video bitrate, for the report
	Shaping                       Shaping
	NoP2P                         bool
	SegmentDuration, CryptoPeriod time.Duration // zero: 2 s and 4 s
	// Exe is the sealmesh-bench binary that runs 'viewer' (processes mode).
	Exe    string
	Logger *slog.Logger
	// Progress receives a status line every second. Zero: none.
	Progress func(string)
}

// member is one viewer, in process or as a child process.
type member interface {
	play(ctx context.Context) error // blocks until played, left or failed
	leave()
	addr() (peer.AddrInfo, bool)
	state() State
	result(poisoner peer.ID) ViewerResult // before close
	close()
}

// Run runs one benchmark: it packs the inputs, starts the stack, runs the
// scenario's adversary, starts the viewers at their join times and waits for
// all of them to finish (or leave). Viewers who finish keep serving until
// the last one does, as the demo's do.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sealmesh-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var egress atomic.Int64
	st, err := stack.Start(ctx, stack.Options{
		Dir: dir, Inputs: o.Inputs, ContentID: "bench", SegmentDuration: o.SegmentDuration, CryptoPeriod: o.CryptoPeriod,
		Logger: o.Logger, PlaybackSpeed: o.Speed, Origin: func(h http.Handler) http.Handler { return CountingHandler(h, &egress) },
	})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer st.Close()
	t := TargetOf(st)
	rep := &Report{Scenario: o.Scenario, Mode: o.Mode, Join: o.Join, JoinRateS: o.JoinRate.Seconds(), Speed: o.Speed,
		Ceiling: 1 - 1/float64(o.Peers), DownMbit: float64(o.Shaping.DownBytes) * 8 / 1e6, UpMbit: float64(o.Shaping.UpBytes) * 8 / 1e6,
		LatencyMS: o.Shaping.Latency.Milliseconds(), TopRenditionKbit: o.TopKbit}
	up := transport.UploadPolicy{MaxRate: o.Shaping.UpBytes}

	var poisoner *Poisoner
	if o.Scenario == ScenarioPoison {
		if poisoner, err = StartPoisoner(ctx, t, st.Manifest, st.ContentDir, up, o.Logger); err != nil {
			return nil, err
		}
		defer poisoner.Close()
	}
	ms := make([]member, o.Peers)
	for i := range ms {
		if o.Mode == Processes {
			ms[i] = newChild(i+1, o, t, poisoner)
		} else {
			ms[i] = &inproc{p: NewPeer(i + 1), t: t, cfg: PeerConfig{Speed: o.Speed, NoP2P: o.NoP2P, Upload: up, HTTPClient: o.Shaping.Client(), Logger: o.Logger}}
		}
	}
	defer func() {
		for _, m := range ms {
			m.close()
		}
	}()

	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var leeches []*Leech
	if o.Scenario == ScenarioLeech {
		targets := func() []peer.AddrInfo {
			var out []peer.AddrInfo
			for _, m := range ms {
				if ai, ok := m.addr(); ok {
					out = append(out, ai)
				}
			}
			return out
		}
		stolen, err := stealTicket(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, k := range []struct{ kind, ticket string }{{"no-ticket", ""}, {"stolen-ticket", stolen}} {
			l, err := StartLeech(runCtx, k.kind, k.ticket, st.Manifest, targets, o.Logger)
			if err != nil {
				return nil, err
			}
			defer l.Close()
			leeches = append(leeches, l)
		}
	}

	joins := joinTimes(o)
	joinedAt := make([]time.Duration, o.Peers)
	errs := make([]error, o.Peers)
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			select {
			case <-time.After(joins[i]):
			case <-runCtx.Done():
				return
			}
			joinedAt[i] = time.Since(start)
			if o.Scenario == ScenarioChurn && (i+1)%3 == 0 {
				// Mid-play: half the content after the join, at Speed.
				at := time.Duration(st.Manifest.Duration / 2 / o.Speed * float64(time.Second))
				tm := time.AfterFunc(at, m.leave)
				defer tm.Stop()
			}
			errs[i] = m.play(runCtx)
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	sample := func() {
		rep.Egress = append(rep.Egress, EgressSample{T: time.Since(start).Seconds(), Bytes: egress.Load()})
	}
	sample()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for {
		select {
		case <-finished:
			break loop
		case <-ctx.Done():
			cancel()
			<-finished
			return nil, errors.New("bench interrupted")
		case <-tick.C:
			sample()
			if o.Progress != nil {
				o.Progress(status(ms, time.Since(start), egress.Load()))
			}
		}
	}
	wall := time.Since(start)
	sample()

	var pid peer.ID
	if poisoner != nil {
		pid = poisoner.ID()
	}
	for _, m := range ms {
		if c, ok := m.(*child); ok {
			c.finish() // all at once: each reports its counters as it gets EOF
		}
	}
	for i, m := range ms {
		v := m.result(pid)
		v.JoinedAtS = joinedAt[i].Seconds()
		if errs[i] != nil && v.Error == "" {
			v.Error = errs[i].Error()
		}
		if v.Error != "" {
			rep.Errors = append(rep.Errors, fmt.Sprintf("viewer %d: %s", v.N, v.Error))
		}
		rep.Viewers = append(rep.Viewers, v)
	}
	for _, l := range leeches {
		rep.Leech = append(rep.Leech, l.Result())
	}
	rep.Summary = Summarize(rep.Viewers, st.Manifest.Duration, wall, egress.Load())
	fillExtras(rep, o, poisoner)
	return rep, nil
}

func (o *Options) defaults() error {
	if o.Peers < 1 {
		return errors.New("bench: at least one peer")
	}
	if len(o.Inputs) == 0 {
		return errors.New("bench: no inputs")
	}
	if o.Scenario == "" {
		o.Scenario = ScenarioVOD
	}
	if o.Mode == "" {
		o.Mode = InProcess
	}
	if o.Join == "" {
		o.Join = "poisson"
		if o.Scenario == ScenarioLive {
			o.Join = "all"
		}
	}
	if o.Join != "poisson" && o.Join != "all" {
		return fmt.Errorf("bench: join %q: poisson or all", o.Join)
	}
	if o.JoinRate <= 0 {
		o.JoinRate = time.Second
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.SegmentDuration == 0 {
		o.SegmentDuration = 2 * time.Second
	}
	if o.CryptoPeriod == 0 {
		o.CryptoPeriod = 4 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// joinTimes are the viewers' join offsets: the first at 0, then gaps drawn
// from an exponential distribution of mean JoinRate (a Poisson process of
// arrivals), or all at 0. The seed makes runs repeatable.
func joinTimes(o Options) []time.Duration {
	out := make([]time.Duration, o.Peers)
	if o.Join == "all" {
		return out
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x5ea1))
	var t float64
	for i := 1; i < o.Peers; i++ {
		t += r.ExpFloat64() * o.JoinRate.Seconds()
		out[i] = time.Duration(t * float64(time.Second))
	}
	return out
}

// stealTicket gets a genuine ticket naming somebody else's peer ID, as if
// copied off a viewer's connection: here a throwaway identity's, minted
// with a valid token, since what matters is that it does not name the
// leech.
func stealTicket(ctx context.Context, t Target) (string, error) {
	h, err := transport.NewHost(ctx, transport.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", err
	}
	defer h.Close()
	ts, err := newTicketSource(t, "victim", h)
	if err != nil {
		return "", err
	}
	raw, _, err := ts.Ticket(ctx, t.Content)
	if err != nil {
		return "", fmt.Errorf("stolen ticket: %w", err)
	}
	return string(raw), nil
}

func status(ms []member, since time.Duration, egress int64) string {
	counts := map[State]int{}
	for _, m := range ms {
		counts[m.state()]++
	}
	return fmt.Sprintf("%5.0fs  waiting %d  joining %d  playing %d  done %d  left %d  error %d  origin egress %s",
		since.Seconds(), counts[StateWaiting], counts[StateJoining], counts[StatePlaying], counts[StateDone], counts[StateLeft], counts[StateError], MB(egress))
}

func fillExtras(rep *Report, o Options, poisoner *Poisoner) {
	var startups []time.Duration
	for _, v := range rep.Viewers {
		if v.StartupMS > 0 {
			startups = append(startups, time.Duration(v.StartupMS)*time.Millisecond)
		}
		rep.PeakRSSMaxKiB = max(rep.PeakRSSMaxKiB, v.PeakRSSKiB)
		rep.RenditionSwitches += v.RenditionSwitches
	}
	rep.StartupMaxMS = Percentile(startups, 100).Milliseconds()
	rep.ProcessPeakRSSKiB = selfHWM()
	if o.Scenario == ScenarioChurn {
		c := &ChurnResult{}
		for _, v := range rep.Viewers {
			if v.Left {
				c.Left++
				c.LeftStalls += v.Stalls
			} else {
				c.StayedStalls += v.Stalls
				c.StayedStallMS += v.StallMS
			}
		}
		rep.Churn = c
	}
	if poisoner != nil {
		p := &PoisonResult{PeerID: poisoner.ID().String(), BytesServed: poisoner.BytesServed(), Stalls: rep.Stalls, StallMS: rep.StallMS}
		for _, v := range rep.Viewers {
			if v.BannedPoisoner {
				p.BannedBy++
			}
		}
		rep.Poison = p
	}
}

// CountingHandler counts the bytes h writes into n: the origin's egress.
func CountingHandler(h http.Handler, n *atomic.Int64) http.Handler {
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
