package license

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiterSet is a token bucket per key (client IP or account hash) with a
// bounded memory: keys live in two generations, and when the current one
// holds half the bound it becomes the previous one and the old previous is
// forgotten. A key seen in the previous generation moves back to the
// current one, so active keys keep their bucket and idle ones fall out. A
// forgotten key starts again with a full bucket, which at worst grants one
// extra burst to a key idle long enough to be evicted.
type limiterSet struct {
	limit rate.Limit
	burst int
	half  int

	mu        sync.Mutex
	cur, prev map[string]*rate.Limiter
}

func newLimiterSet(limit rate.Limit, burst, maxKeys int) *limiterSet {
	return &limiterSet{limit: limit, burst: burst, half: max(1, maxKeys/2),
		cur: make(map[string]*rate.Limiter), prev: make(map[string]*rate.Limiter)}
}

// allow takes one token for key at now, or reports how long to wait.
func (l *limiterSet) allow(key string, now time.Time) (bool, time.Duration) {
	if l.limit == rate.Inf {
		return true, 0
	}
	l.mu.Lock()
	lim := l.cur[key]
	if lim == nil {
		if lim = l.prev[key]; lim != nil {
			delete(l.prev, key)
		} else {
			lim = rate.NewLimiter(l.limit, l.burst)
		}
		if len(l.cur) >= l.half {
			l.prev, l.cur = l.cur, make(map[string]*rate.Limiter, l.half)
		}
		l.cur[key] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
