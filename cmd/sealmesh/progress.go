package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressEvery is how often pack prints a progress line when its output is
// not a terminal (a log file, a CI job, systemd): often enough to show that a
// long run is alive, rarely enough not to flood the log.
const progressEvery = 10 * time.Second

// progress draws a one-line bar on a terminal; elsewhere it prints a plain
// line at most every progressEvery, so logs and pipes see a long run advance
// without carriage returns.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	quiet bool
	last  int // last percentage drawn on a terminal
	every time.Duration
	now   func() time.Time
	next  time.Time // earliest time of the next line off a terminal
}

func newProgress(w io.Writer, quiet bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, tty: tty, quiet: quiet, last: -1, every: progressEvery, now: time.Now}
}

func (p *progress) update(done, total int) {
	if p.quiet || total == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pct := done * 100 / total
	if !p.tty {
		now := p.now()
		if p.next.IsZero() {
			// The first call starts the clock: a run that ends within one
			// interval prints only its summary.
			p.next = now.Add(p.every)
			return
		}
		if done >= total || now.Before(p.next) {
			return
		}
		p.next = now.Add(p.every)
		fmt.Fprintf(p.w, "pack: %d%% (%d/%d segments)\n", pct, done, total)
		return
	}
	if pct == p.last {
		return
	}
	p.last = pct
	n := pct * 30 / 100
	fmt.Fprintf(p.w, "\r[%s%s] %3d%%  %d/%d segments", strings.Repeat("#", n), strings.Repeat(".", 30-n), pct, done, total)
}

func (p *progress) done() {
	if p.tty && !p.quiet && p.last >= 0 {
		fmt.Fprintln(p.w)
	}
}
