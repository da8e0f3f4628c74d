package swarmbench

import (
	"context"
	"io"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// Shaping is one viewer's access link. Zero fields: unshaped.
type Shaping struct {
	// DownBytes caps what the viewer's HTTP client reads (origin and license
	// server), bytes/s, one token bucket per viewer.
	DownBytes int64
	// UpBytes caps what the viewer serves to peers, bytes/s
	// (transport.UploadPolicy.MaxRate).
	UpBytes int64
	// Latency is added before every HTTP request the viewer makes: one
	// round trip to a CDN edge.
	Latency time.Duration
}

// Mbit converts megabits per second to bytes per second.
func Mbit(m float64) int64 { return int64(m * 1e6 / 8) }

// Client returns an HTTP client shaped by s, or nil when s shapes nothing
// (the player then uses its default client).
func (s Shaping) Client() *http.Client {
	if s.DownBytes <= 0 && s.Latency <= 0 {
		return nil
	}
	rt := &shapedTransport{base: http.DefaultTransport.(*http.Transport).Clone(), latency: s.Latency}
	if s.DownBytes > 0 {
		// A burst of 16 KiB (about 30 ms at 4 Mbit/s): a home link's queue,
		// not a free first second.
		burst := int(min(s.DownBytes, 16<<10))
		rt.limit = rate.NewLimiter(rate.Limit(s.DownBytes), burst)
		rt.chunk = burst
	}
	return &http.Client{Transport: rt, Timeout: 20 * time.Second}
}

// shapedTransport delays each request by the latency and meters response
// bodies through the viewer's download bucket.
type shapedTransport struct {
	base    http.RoundTripper
	latency time.Duration
	limit   *rate.Limiter
	chunk   int
}

func (t *shapedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.latency > 0 {
		tm := time.NewTimer(t.latency)
		select {
		case <-tm.C:
		case <-r.Context().Done():
			tm.Stop()
			return nil, r.Context().Err()
		}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil || t.limit == nil {
		return resp, err
	}
	resp.Body = &shapedBody{rc: resp.Body, ctx: r.Context(), limit: t.limit, chunk: t.chunk}
	return resp, nil
}

type shapedBody struct {
	rc    io.ReadCloser
	ctx   context.Context
	limit *rate.Limiter
	chunk int
}

func (b *shapedBody) Read(p []byte) (int, error) {
	if len(p) > b.chunk {
		p = p[:b.chunk]
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		if werr := b.limit.WaitN(b.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

func (b *shapedBody) Close() error { return b.rc.Close() }
