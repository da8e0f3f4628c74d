// Package viewer is a headless HLS player for demos and benchmarks: it
// plays a sealmesh session's local clear HLS URL the way a platform player
// does (playlists, init segments, media segments fetched ahead of a playhead
// that advances in real time, or faster) and measures what a viewer sees:
// start-up time and stalls.
package viewer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sealmesh/sealmesh/segment"
)

// Config says how to play.
type Config struct {
	// URL is the multivariant playlist (player.Session.URL()).
	URL string
	// Speed plays faster than real time. Zero: 1.
	Speed float64
	// BufferAhead is how much content the viewer keeps fetched ahead of its
	// playhead. Zero: 8 s.
	BufferAhead time.Duration
	// Client: zero is a client with a 30 s timeout.
	Client *http.Client
}

// Result is what the viewer saw.
type Result struct {
	Startup   time.Duration // from Play to the first video and audio segments in hand
	Stalls    int
	StallTime time.Duration
	Segments  int
	Bytes     int64
	Duration  time.Duration // content played
}

// Progress is a live view of a playing viewer.
type Progress struct {
	Started  bool
	Position time.Duration // playhead in content time
	Buffered time.Duration // content fetched ahead of the playhead
	Stalls   int
	Done     bool
}

// Viewer plays one URL; Play blocks, Progress may be called meanwhile.
type Viewer struct {
	cfg Config
	mu  sync.Mutex
	p   Progress
	res Result
}

// New returns a viewer for cfg.
func New(cfg Config) *Viewer {
	if cfg.Speed <= 0 {
		cfg.Speed = 1
	}
	if cfg.BufferAhead <= 0 {
		cfg.BufferAhead = 8 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Viewer{cfg: cfg}
}

type seg struct {
	uri  string
	dur  float64
	init string // the EXT-X-MAP in force
}

// Play plays the whole content, returning when the playhead reaches the end.
func (v *Viewer) Play(ctx context.Context, started time.Time) (Result, error) {
	base := v.cfg.URL[:strings.LastIndex(v.cfg.URL, "/")+1]
	master, err := v.fetch(ctx, v.cfg.URL)
	if err != nil {
		return Result{}, err
	}
	mv, _, err := segment.ParseHLS(master)
	if err == nil && mv == nil {
		err = errors.New("not a multivariant playlist")
	}
	if err != nil {
		return Result{}, fmt.Errorf("viewer: %s: %w", v.cfg.URL, err)
	}
	var tracks []string
	for _, m := range mv.Media {
		if m.URI != "" {
			tracks = append(tracks, m.URI)
		}
	}
	if len(mv.Variants) > 0 {
		tracks = append(tracks, mv.Variants[0].URI) // the first variant
	}
	if len(tracks) == 0 {
		return Result{}, fmt.Errorf("viewer: no media playlist in %s", v.cfg.URL)
	}
	var lists [][]seg
	for _, tr := range tracks {
		pl, err := v.fetch(ctx, base+tr)
		if err != nil {
			return Result{}, err
		}
		l, err := parseMedia(base+tr[:strings.LastIndex(tr, "/")+1], pl)
		if err != nil {
			return Result{}, fmt.Errorf("viewer: %s: %w", base+tr, err)
		}
		lists = append(lists, l)
	}
	n := len(lists[0])
	for _, l := range lists[1:] {
		n = min(n, len(l))
	}
	speed := v.cfg.Speed
	var (
		playStart time.Time
		stalled   time.Duration // wall time spent stalled
		buffered  float64       // content seconds fetched
		inits     = make([]string, len(lists))
	)
	pos := func(now time.Time) float64 {
		if playStart.IsZero() {
			return 0
		}
		return min(now.Sub(playStart).Seconds()-stalled.Seconds(), buffered/speed) * speed
	}
	for i := 0; i < n; i++ {
		// Wait while the buffer is full.
		if !playStart.IsZero() {
			ahead := buffered - pos(time.Now())
			if wait := ahead - v.cfg.BufferAhead.Seconds(); wait > 0 {
				select {
				case <-time.After(time.Duration(wait / speed * float64(time.Second))):
				case <-ctx.Done():
					return Result{}, ctx.Err()
				}
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(lists))
		for k, l := range lists {
			wg.Go(func() {
				s := l[i]
				if s.init != inits[k] {
					if _, err := v.fetch(ctx, s.init); err != nil {
						errs[k] = err
						return
					}
					inits[k] = s.init
				}
				_, errs[k] = v.fetch(ctx, s.uri)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return Result{}, err
			}
		}
		now := time.Now()
		if playStart.IsZero() {
			playStart = now
			v.mu.Lock()
			v.res.Startup = now.Sub(started)
			v.p.Started = true
			v.mu.Unlock()
		} else if would := now.Sub(playStart).Seconds() - stalled.Seconds(); would*speed > buffered {
			// The playhead reached the end of the buffer before this segment came.
			over := time.Duration((would - buffered/speed) * float64(time.Second))
			stalled += over
			v.mu.Lock()
			v.res.Stalls++
			v.res.StallTime += over
			v.p.Stalls++
			v.mu.Unlock()
		}
		buffered += lists[0][i].dur
		v.mu.Lock()
		v.res.Segments++
		v.p.Position = time.Duration(pos(now) * float64(time.Second))
		v.p.Buffered = time.Duration((buffered - pos(now)) * float64(time.Second))
		v.mu.Unlock()
	}
	// Play out what is buffered.
	if rest := buffered - pos(time.Now()); rest > 0 {
		select {
		case <-time.After(time.Duration(rest / speed * float64(time.Second))):
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.p.Done, v.p.Position, v.p.Buffered = true, time.Duration(buffered*float64(time.Second)), 0
	v.res.Duration = time.Duration(buffered * float64(time.Second))
	return v.res, nil
}

// Progress returns the live state.
func (v *Viewer) Progress() Progress {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.p
}

func (v *Viewer) fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("viewer: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("viewer: read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("viewer: %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	v.mu.Lock()
	v.res.Bytes += int64(len(b))
	v.mu.Unlock()
	return b, nil
}

func parseMedia(base string, pl []byte) ([]seg, error) {
	_, md, err := segment.ParseHLS(pl)
	if err != nil {
		return nil, err
	}
	if md == nil {
		return nil, fmt.Errorf("not a media playlist")
	}
	var out []seg
	init := ""
	for _, s := range md.Segments {
		if s.Map != "" {
			init = base + s.Map
		}
		out = append(out, seg{uri: base + s.URI, dur: s.Duration, init: init})
	}
	return out, nil
}
