package player

import (
	"sync"
	"time"
)

// playback models the platform player's clock from what the gateway
// serves, so that the scheduler knows where the playhead is and Stats can
// count stalls without help from the player:
//
//   - playback starts when the first media segment is served (start-up time
//     is measured from Open to then);
//   - content time then advances at Speed with the wall clock, but never past
//     the end of what has been served: reaching it is a stall, which lasts
//     until the next segment is served.
//
// A player that buffers ahead requests segments before it needs them, so a
// segment served after its play time is exactly a stall that player saw.
type playback struct {
	speed   float64
	budget  time.Duration // start-up budget, for the playhead before start
	now     func() time.Time
	opened  time.Time
	mu      sync.Mutex
	started bool
	startup time.Duration
	base    time.Time // wall time matching content time basePos
	basePos float64
	served  float64 // content time up to which media has been served contiguously
	next    int     // the media index that extends served
	stalls  int
	stalled time.Duration
	ends    []float64 // end time of each media index (1-based: ends[i-1])
	starts  []float64
}

func newPlayback(starts, ends []float64, speed float64, budget time.Duration, now func() time.Time) *playback {
	return &playback{speed: speed, budget: budget, now: now, opened: now(), starts: starts, ends: ends}
}

// served records that media segment index (1-based) of the reference track
// was handed to the player.
func (p *playback) servedSegment(index int) {
	if index < 1 || index > len(p.ends) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if !p.started {
		p.started = true
		p.startup = now.Sub(p.opened)
		p.base, p.basePos = now, p.starts[index-1]
		p.served, p.next = p.ends[index-1], index+1
		return
	}
	if index != p.next {
		if index < p.next { // a re-request of something served: no news
			return
		}
		// A seek: playback restarts at this segment.
		p.base, p.basePos = now, p.starts[index-1]
		p.served, p.next = p.ends[index-1], index+1
		return
	}
	// Where would the playhead be had nothing been missing?
	would := p.basePos + now.Sub(p.base).Seconds()*p.speed
	if would > p.served {
		// It hit the end of the buffer at content time p.served and has
		// been waiting since: a stall.
		wait := time.Duration((would - p.served) / p.speed * float64(time.Second))
		p.stalls++
		p.stalled += wait
		p.base, p.basePos = now, p.served
	}
	p.served, p.next = p.ends[index-1], index+1
}

// position is the modelled playhead in content seconds. Before playback
// starts it sits the start-up budget before zero, so the first segment's
// deadline is the budget.
func (p *playback) position() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		return -p.budget.Seconds() * p.speed
	}
	return min(p.basePos+p.now().Sub(p.base).Seconds()*p.speed, p.served)
}

// stats counts a stall going on now (the playhead waits at the end of what
// was served, and the content has more) as well as those that ended, so a
// status line says "stalled" during an outage, not only after it.
func (p *playback) stats() (startup time.Duration, started bool, stalls int, stalled, buffered time.Duration, now bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	stalls, stalled = p.stalls, p.stalled
	if p.started {
		would := p.basePos + p.now().Sub(p.base).Seconds()*p.speed
		pos := min(would, p.served)
		buffered = time.Duration((p.served - pos) * float64(time.Second))
		if would > p.served && p.next <= len(p.ends) {
			now = true
			stalls++
			stalled += time.Duration((would - p.served) / p.speed * float64(time.Second))
		}
	}
	return p.startup, p.started, stalls, stalled, buffered, now
}
