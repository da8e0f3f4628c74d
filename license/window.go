package license

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sealmesh/sealmesh/keys"
)

// The key window: keys follow playback, and the server decides.
//
// A license session starts at the crypto period the client asks for (by
// position or KID) and gets that period and the next. From then on the
// session's window is the range of periods [lo, hi] it has been given keys
// for, and every renewal (or Clear Key request, for content whose policy
// asks for it) may widen that range only as far as playback could have
// gone since the session began:
//
//	hi - lo + 1  <=  2 + entered(start period, Speed × wall time since the session began)
//
// where entered(p, d) is how many period boundaries lie within d seconds of
// content after the start of p (from the signed manifest's period start
// times; without a catalog entry, d / KeyWindow.Period). The "2" is the
// period being played and the next one, so that a player switching keys at a
// boundary never waits. Speed (default 2) is the tolerance: playback at up
// to twice real time, or catching up after a stall, is never refused.
//
// The range only grows, and it is measured end to end: a request that
// jumps ahead (or back) counts every period between as used. So no sequence
// of requests, in any order, gets a session more distinct keys than the
// formula allows at that moment; a client asking for every period at once
// gets the first two. A request beyond the window is refused with 429
// key_window_ahead and a Retry-After of when it would be allowed; KIDs of
// one request that are not adjacent periods are refused with 400
// kids_not_adjacent.
//
// What it does not stop: an account may start up to MaxStreamsPerAccount
// sessions, each at a period of its choice, so it can collect about that
// many times 2 periods at once and then that many times Speed the playback
// pace. Revocation stops every session at its next request.

// Defaults of KeyWindow.
const (
	DefaultWindowSpeed  = 2.0
	DefaultWindowPeriod = 2 * time.Second
)

// KeyWindow configures the key window (see above). The zero value is the
// default: on for native licenses, off for Clear Key.
type KeyWindow struct {
	// Off turns the window off for native licenses: a request may then name
	// any two adjacent periods. Not for production.
	Off bool
	// Speed is how many seconds of content a session may advance per second
	// of wall time. Default 2; at least 1.
	Speed float64
	// Period is the crypto period length assumed for content whose period
	// start times the catalog does not know. Default 2 s: content packed with
	// longer periods is then paced more loosely than it could be (serve with
	// --content-dir for the exact window); shorter periods than this are
	// throttled below real time.
	Period time.Duration
	// ClearKey lists the contents whose Clear Key requests follow the window
	// too: exact content IDs, or prefixes ending in "*" ("*" for all). Empty
	// (the default): Clear Key requests get every entitled key they name, for
	// browser players that fetch all periods' keys at load (see SECURITY.md).
	ClearKey []string
}

func (w KeyWindow) withDefaults() (KeyWindow, error) {
	if w.Speed == 0 {
		w.Speed = DefaultWindowSpeed
	}
	if w.Period == 0 {
		w.Period = DefaultWindowPeriod
	}
	w.ClearKey = slices.Clone(w.ClearKey)
	switch {
	case math.IsNaN(w.Speed) || w.Speed < 1 || w.Speed > 1000:
		return w, fmt.Errorf("license: KeyWindow.Speed %v must be from 1 to 1000", w.Speed)
	case w.Period < 100*time.Millisecond:
		return w, fmt.Errorf("license: KeyWindow.Period %v must be at least 100ms", w.Period)
	}
	for _, c := range w.ClearKey {
		if c == "" {
			return w, errors.New("license: KeyWindow.ClearKey has an empty content pattern")
		}
	}
	return w, nil
}

// clearKeyWindowed reports whether Clear Key requests for content follow
// the window (same matching as token content claims).
func (w KeyWindow) clearKeyWindowed(content string) bool {
	for _, p := range w.ClearKey {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(content, prefix) {
				return true
			}
		} else if p == content {
			return true
		}
	}
	return false
}

// keyWindow is a session's window state, stored with the session.
type keyWindow struct {
	Start int       `json:"start"` // the period the session began at
	Lo    int       `json:"lo"`    // lowest period given
	Hi    int       `json:"hi"`    // highest period given
	Began time.Time `json:"began"` // when the session began (the window's clock)
}

// periodClock tells where periods start in content time.
type periodClock struct {
	starts  map[int]float64 // from the catalog; nil when unknown
	nominal float64         // seconds per period when starts is nil
}

func (pc periodClock) start(p int) float64 {
	if pc.starts != nil {
		if s, ok := pc.starts[p]; ok {
			return s
		}
	}
	return float64(p) * pc.nominal
}

// entered counts the period boundaries within d seconds of content after the
// start of period p: how many periods playback can have moved on by.
func (pc periodClock) entered(p int, d float64) int {
	if d <= 0 {
		return 0
	}
	if pc.starts == nil {
		return int(d / pc.nominal)
	}
	limit := pc.start(p) + d
	n := 0
	for q, s := range pc.starts {
		if q > p && s <= limit {
			n++
		}
	}
	return n
}

// reach returns how many seconds of content after the start of period p
// playback must have covered to have entered n more periods.
func (pc periodClock) reach(p, n int) float64 {
	if pc.starts == nil {
		return float64(n) * pc.nominal
	}
	var later []float64
	for q, s := range pc.starts {
		if q > p {
			later = append(later, s)
		}
	}
	slices.Sort(later)
	if n <= 0 {
		return 0
	}
	if n > len(later) {
		return math.Inf(1)
	}
	return later[n-1] - pc.start(p)
}

// windowRefusal is the answer to a request beyond the window: 429 with a
// Retry-After of when it would be allowed.
func windowRefusal(wait time.Duration, lo, hi int) *apiError {
	e := fail(http.StatusTooManyRequests, CodeKeyWindowAhead, fmt.Sprintf(
		"keys follow playback: periods %d to %d are further ahead (or back) than this session can have played since it began; ask again after the Retry-After delay, or start a new session at that position",
		lo, hi))
	secs := wait.Seconds()
	if math.IsInf(secs, 1) || secs > 86400 {
		secs = 86400
	}
	e.retryAfter = max(1, int(math.Ceil(secs)))
	return e
}

// admit decides whether a session with window w may get keys for periods
// lo..hi at now, and returns its window afterwards. It is pure: the caller
// holds the state lock and stores the result.
func (w keyWindow) admit(lo, hi int, now time.Time, speed float64, pc periodClock) (keyWindow, error) {
	nlo, nhi := min(w.Lo, lo), max(w.Hi, hi)
	width := nhi - nlo + 1
	elapsed := max(0, now.Sub(w.Began).Seconds())
	allowed := 2 + pc.entered(w.Start, elapsed*speed)
	if width <= allowed {
		w.Lo, w.Hi = nlo, nhi
		return w, nil
	}
	need := pc.reach(w.Start, width-2)
	wait := time.Duration((need/speed - elapsed) * float64(time.Second))
	if math.IsInf(need, 1) {
		wait = time.Duration(math.MaxInt64)
	}
	return w, windowRefusal(wait, lo, hi)
}

// newWindow starts a window at period p.
func newWindow(p int, now time.Time) keyWindow {
	return keyWindow{Start: p, Lo: p, Hi: p, Began: now.UTC()}
}

// periodRange returns the lowest and highest period of ks, and refuses a
// set that is not contiguous (at most one key per period is expected).
func periodRange(ks []keys.ContentKey) (lo, hi int, err error) {
	if len(ks) == 0 {
		return 0, 0, errors.New("no keys")
	}
	ps := make([]int, len(ks))
	for i, k := range ks {
		ps[i] = k.Period()
	}
	slices.Sort(ps)
	ps = slices.Compact(ps)
	for i := 1; i < len(ps); i++ {
		if ps[i] != ps[i-1]+1 {
			return 0, 0, fail(http.StatusBadRequest, CodeKIDsNotAdjacent, fmt.Sprintf(
				"the KIDs asked for are of periods %v: a license carries one period and the next, so ask for adjacent periods", ps))
		}
	}
	return ps[0], ps[len(ps)-1], nil
}

// periodClockFor returns where content's periods start: from the catalog
// when it knows the content, else the nominal KeyWindow.Period.
func (s *Server) periodClockFor(ctx context.Context, content string) (periodClock, error) {
	pc := periodClock{nominal: s.cfg.KeyWindow.Period.Seconds()}
	if s.deps.Catalog == nil {
		return pc, nil
	}
	periods, err := s.deps.Catalog.Periods(ctx, content)
	switch {
	case errors.Is(err, keys.ErrNotFound):
		return pc, nil
	case err != nil:
		return pc, internal(fmt.Errorf("catalog periods of %q: %w", content, err))
	}
	pc.starts = make(map[int]float64, len(periods))
	for _, p := range periods {
		pc.starts[p.Index] = p.Start
	}
	return pc, nil
}

// windowCheck is what startSession and renewSession run under the state
// lock: it admits periods into a session's window (starting one at the
// lowest period asked for when the session has none) or refuses.
type windowCheck struct {
	periods []int // sorted, distinct
	// some: grant the periods that fit, in ascending order, and refuse only
	// if none does (Clear Key, whose requests may list many KIDs); else all
	// periods or none (native licenses: one period and the next).
	some  bool
	speed float64
	pc    periodClock

	granted map[int]bool // set by apply
	// kidPeriod maps a KID (hex) to its period, for grantedKIDs.
	kidPeriod map[string]int
}

// grantedKIDs returns the KIDs of kids whose period apply granted.
func (c *windowCheck) grantedKIDs(kids []string) []string {
	out := make([]string, 0, len(kids))
	for _, k := range kids {
		if p, ok := c.kidPeriod[k]; ok && c.granted[p] {
			out = append(out, k)
		}
	}
	return out
}

func (c *windowCheck) apply(se *session, now time.Time) error {
	if c == nil {
		return nil
	}
	if len(c.periods) == 0 {
		return internal(errors.New("window check without periods"))
	}
	w := newWindow(c.periods[0], now)
	if se.Window != nil {
		w = *se.Window
	}
	c.granted = map[int]bool{}
	if !c.some {
		nw, err := w.admit(c.periods[0], c.periods[len(c.periods)-1], now, c.speed, c.pc)
		if err != nil {
			return err
		}
		for _, p := range c.periods {
			c.granted[p] = true
		}
		se.Window = &nw
		return nil
	}
	var first error
	for _, p := range c.periods {
		nw, err := w.admit(p, p, now, c.speed, c.pc)
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		w = nw
		c.granted[p] = true
	}
	if len(c.granted) == 0 {
		return first
	}
	se.Window = &w
	return nil
}
