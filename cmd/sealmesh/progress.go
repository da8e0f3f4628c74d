package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// progress draws a one-line bar on a terminal and stays silent elsewhere, so
// logs and pipes get only the final summary.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	on   bool
	last int
}

func newProgress(w io.Writer, quiet bool) *progress {
	on := false
	if f, ok := w.(*os.File); ok && !quiet {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: w, on: on, last: -1}
}

func (p *progress) update(done, total int) {
	if !p.on || total == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pct := done * 100 / total
	if pct == p.last {
		return
	}
	p.last = pct
	n := pct * 30 / 100
	fmt.Fprintf(p.w, "\r[%s%s] %3d%%  %d/%d segments", strings.Repeat("#", n), strings.Repeat(".", 30-n), pct, done, total)
}

func (p *progress) done() {
	if p.on && p.last >= 0 {
		fmt.Fprintln(p.w)
	}
}
