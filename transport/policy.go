package transport

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// UploadPolicy limits what a swarm serves to other peers.
//
// Seed-only (serve without playing) is a player concern: a seed node joins
// the swarm with a full Store and never asks for segments; transport needs
// no mode for it.
type UploadPolicy struct {
	// MaxRate caps upload bytes/s across all peers of the swarm (one token
	// bucket). Zero: unlimited.
	MaxRate int64
	// MaxConcurrent caps simultaneous uploads; a request beyond it gets a
	// "busy" answer (not a ban), so the requester goes elsewhere. Urgent
	// requests (Swarm.FetchUrgent) may take MaxConcurrent/2 (at least one)
	// extra slots. Zero: 2. Few slots serve each file at more of the
	// upload rate, so it arrives sooner, and turn the other requesters to
	// other peers instead of slowing every transfer down: in the swarm
	// benchmark (2 Mbit/s uploads, 16 viewers) 2 slots took the offload
	// from 74 % (4 slots) to 80 %, 8 slots cut it to 51 %.
	MaxConcurrent int
	// ConsumeOnly serves nothing: every request is answered "busy" and the
	// have-map sent to peers stays empty.
	ConsumeOnly bool
}

// DefaultMaxConcurrent is UploadPolicy.MaxConcurrent's default.
const DefaultMaxConcurrent = 2

// minPeerRate is the slowest transfer an upload deadline allows for: a peer
// slower than 32 KiB/s cannot feed a video player anyway, and holding an
// upload slot for it would starve faster peers.
const minPeerRate = 32 << 10

type uploader struct {
	consumeOnly bool
	slots       chan struct{}
	urgentSlots chan struct{} // extra slots only urgent requests may take
	limiter     *rate.Limiter // nil: unlimited
	low         *rate.Limiter // caps normal uploads while an urgent one runs
	urgent      atomic.Int32  // urgent uploads running
	chunk       int
	maxRate     int64
}

func newUploader(p UploadPolicy) (*uploader, error) {
	if p.MaxRate < 0 || p.MaxConcurrent < 0 {
		return nil, errors.New("upload policy: MaxRate and MaxConcurrent must not be negative")
	}
	if p.MaxConcurrent == 0 {
		p.MaxConcurrent = DefaultMaxConcurrent
	}
	u := &uploader{consumeOnly: p.ConsumeOnly, slots: make(chan struct{}, p.MaxConcurrent),
		urgentSlots: make(chan struct{}, max(p.MaxConcurrent/2, 1)), maxRate: p.MaxRate}
	if p.MaxRate > 0 {
		// A tenth of a second of tokens per write, between 1 and 32 KiB,
		// keeps the rate smooth without a write per byte.
		u.chunk = int(min(max(p.MaxRate/10, 1<<10), 32<<10))
		u.limiter = rate.NewLimiter(rate.Limit(p.MaxRate), u.chunk)
		u.low = rate.NewLimiter(rate.Limit(p.MaxRate/lowShare), u.chunk)
	}
	return u, nil
}

// lowShare: while an urgent upload runs, normal ones together get at most
// 1/lowShare of MaxRate, enough to keep them inside the requesters' idle
// timeout, and the urgent ones the rest.
const lowShare = 4

// acquire takes an upload slot without waiting; an urgent request may take
// one of the extra urgent slots when the normal ones are full.
func (u *uploader) acquire(urgent bool) (release func(), ok bool) {
	select {
	case u.slots <- struct{}{}:
		return func() { <-u.slots }, true
	default:
	}
	if !urgent {
		return nil, false
	}
	select {
	case u.urgentSlots <- struct{}{}:
		return func() { <-u.urgentSlots }, true
	default:
		return nil, false
	}
}

// deadline bounds a whole upload of size bytes: the stream timeout, plus
// the time at the slowest useful peer rate, plus, under a rate limit, the
// time the shared bucket needs when every slot is busy.
func (u *uploader) deadline(timeout time.Duration, size int64) time.Duration {
	d := timeout + time.Duration(size)*time.Second/minPeerRate
	if u.maxRate > 0 {
		d += time.Duration(size*int64(cap(u.slots))) * time.Second / time.Duration(u.maxRate)
	}
	return d
}

type writer interface{ Write([]byte) (int, error) }

// write sends data, under the rate limit if any, calling count with every
// byte count written. data is written as is: no copy, no per-chunk buffer.
//
// Under a rate limit an urgent upload takes priority: while one runs,
// normal uploads also wait on the low-share limiter.
func (u *uploader) write(ctx context.Context, w writer, data []byte, urgent bool, count func(int)) error {
	if u.limiter == nil {
		n, err := w.Write(data)
		count(n)
		return err
	}
	if urgent {
		u.urgent.Add(1)
		defer u.urgent.Add(-1)
	}
	for off := 0; off < len(data); {
		c := min(u.chunk, len(data)-off)
		if !urgent && u.urgent.Load() > 0 {
			if err := u.low.WaitN(ctx, c); err != nil {
				return err
			}
		}
		if err := u.limiter.WaitN(ctx, c); err != nil {
			return err
		}
		n, err := w.Write(data[off : off+c])
		count(n)
		if err != nil {
			return err
		}
		off += n
	}
	return nil
}
