package sched_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport/sched"
)

// content is a synthetic packaged content: one video rendition "v1" with
// an init segment and n media segments of 2 s, and the bytes they hash to.
type content struct {
	m    *segment.Manifest
	data map[string][]byte
}

const segDur = 2 * time.Second

func newContent(t testing.TB, n, size int) *content {
	t.Helper()
	c := &content{data: map[string][]byte{}}
	r := segment.Rendition{ID: "v1", Type: "video", Codec: "avc1.64001f", Bandwidth: 1_000_000, Timescale: 90000}
	add := func(f segment.File) {
		d := make([]byte, f.Size)
		_, _ = rand.Read(d)
		sum := sha256.Sum256(d)
		f.SHA256 = hex.EncodeToString(sum[:])
		c.data[f.Path] = d
		r.Files = append(r.Files, f)
	}
	add(segment.File{Path: "v1/init.mp4", Kind: segment.KindInit, Size: 900})
	for i := 1; i <= n; i++ {
		add(segment.File{Path: media(i), Kind: segment.KindMedia, Index: i, Start: float64(i-1) * segDur.Seconds(), Duration: segDur.Seconds(), Size: int64(size)})
	}
	c.m = &segment.Manifest{
		Version: segment.ManifestVersion, ContentID: "clip", Scheme: segment.SchemeCBCS,
		Created: time.Unix(0, 0).UTC(), SegmentDuration: segDur.Seconds(), Duration: float64(n) * segDur.Seconds(), SigningKeyID: "k",
		Periods:    []segment.Period{{Index: 0, KID: "00112233445566778899aabbccddeeff"}},
		Renditions: []segment.Rendition{r},
	}
	require.NoError(t, c.m.Validate())
	return c
}

func media(i int) string { return fmt.Sprintf("v1/%d.m4s", i) }

// origin is a real net/http handler serving the content's files, with
// injectable delay and failure, that logs every request in arrival order.
type origin struct {
	c     *content
	mu    sync.Mutex
	delay time.Duration
	down  bool // answer 503 to everything
	log   []string
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/clip/")
	o.mu.Lock()
	o.log = append(o.log, p)
	delay, down := o.delay, o.down
	o.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if down {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	d, ok := o.c.data[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(d)))
	_, _ = w.Write(d)
}

func (o *origin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.log)
}

func (o *origin) set(delay time.Duration, down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delay, o.down = delay, down
}

// listenTCP serves o on 127.0.0.1 (httptest) and returns an HTTPOrigin for it.
func listenTCP(t *testing.T, o *origin) (*sched.HTTPOrigin, *httptest.Server) {
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return &sched.HTTPOrigin{BaseURL: srv.URL + "/clip", Client: srv.Client(), Manifest: o.c.m}, srv
}

// listenPipe serves o with a real http.Server and http.Transport joined by
// in-memory pipes, which testing/synctest can see block (a socket it
// cannot). Call the returned stop before the bubble ends.
func listenPipe(o *origin) (*sched.HTTPOrigin, func()) {
	l := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	srv := &http.Server{Handler: o}
	go func() { _ = srv.Serve(l) }()
	tr := &http.Transport{DialContext: l.dial}
	return &sched.HTTPOrigin{BaseURL: "http://origin.test/clip", Client: &http.Client{Transport: tr}, Manifest: o.c.m},
		func() {
			tr.CloseIdleConnections()
			_ = srv.Close()
		}
}

type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.closed:
		return nil, errors.New("origin closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "origin.test:80" }

// swarm simulates the peers: each Fetch moves the file's bytes through an
// io.Pipe, paced by the peer's upload rate limiter (shared by all fetches
// from that peer) after its latency, and verifies them against the
// manifest the way the libp2p implementation does, banning a peer whose
// bytes fail.
type swarm struct {
	c     *content
	mu    sync.Mutex
	peers map[peer.ID]*simPeer
	calls []call
	live  int // Fetches not yet returned
}

type simPeer struct {
	id      peer.ID
	has     map[string]bool
	latency time.Duration
	limit   *rate.Limiter
	corrupt bool            // flips a byte of every file it sends
	hang    map[string]bool // never finishes these paths
	banned  bool
	// busyUntil: until then every fetch is refused as busy (its upload
	// slots are full), like transport.ErrBusy.
	busyUntil time.Time
	// normalBusy: normal fetches are refused as busy, urgent ones
	// (FetchUrgent) served: its normal slots are full, its urgent slot free.
	normalBusy bool
	// stallAfter, if positive: sends that many bytes of each file, then
	// nothing more until the fetch is cancelled.
	stallAfter int
}

// busyErr is a busy refusal, recognised by its Busy method.
type busyErr struct{}

func (busyErr) Error() string { return "peer busy" }
func (busyErr) Busy() bool    { return true }

type call struct {
	peer      peer.ID
	path      string
	cancelled bool
}

func newSwarm(c *content) *swarm { return &swarm{c: c, peers: map[peer.ID]*simPeer{}} }

// add makes a peer holding paths (all files when paths is nil) that sends
// bytesPerSec after latency.
func (w *swarm) add(name string, latency time.Duration, bytesPerSec int, paths []string) *simPeer {
	p := &simPeer{id: peer.ID(name), has: map[string]bool{}, latency: latency, hang: map[string]bool{},
		limit: rate.NewLimiter(rate.Limit(bytesPerSec), chunk)}
	if paths == nil {
		for path := range w.c.data {
			p.has[path] = true
		}
	}
	for _, path := range paths {
		p.has[path] = true
	}
	w.mu.Lock()
	w.peers[p.id] = p
	w.mu.Unlock()
	return p
}

const chunk = 4 << 10

func (w *swarm) Candidates(path string) []peer.ID {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []peer.ID
	for id, p := range w.peers {
		if p.has[path] && !p.banned {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (w *swarm) Fetch(ctx context.Context, id peer.ID, path string) ([]byte, error) {
	return w.fetch(ctx, id, path, false, nil)
}

// FetchUrgent makes swarm a sched.UrgentPeers.
func (w *swarm) FetchUrgent(ctx context.Context, id peer.ID, path string) ([]byte, error) {
	return w.fetch(ctx, id, path, true, nil)
}

// progressSwarm is a swarm that reports progress (sched.ProgressPeers).
type progressSwarm struct{ *swarm }

func (w progressSwarm) FetchProgress(ctx context.Context, id peer.ID, path string, urgent bool, got *atomic.Int64) ([]byte, error) {
	return w.fetch(ctx, id, path, urgent, got)
}

type countingReader struct {
	r   io.Reader
	got *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.got.Add(int64(n))
	return n, err
}

func (w *swarm) fetch(ctx context.Context, id peer.ID, path string, urgent bool, got *atomic.Int64) ([]byte, error) {
	w.mu.Lock()
	p := w.peers[id]
	banned := p != nil && p.banned
	n := len(w.calls)
	w.calls = append(w.calls, call{peer: id, path: path})
	w.live++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.live--
		if ctx.Err() != nil {
			w.calls[n].cancelled = true
		}
		w.mu.Unlock()
	}()
	if p == nil || banned || !p.has[path] {
		return nil, fmt.Errorf("peer %s: no such file", id)
	}
	if time.Now().Before(p.busyUntil) || p.normalBusy && !urgent {
		return nil, fmt.Errorf("peer %s: %w", id, busyErr{})
	}
	select {
	case <-time.After(p.latency):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.hang[path] {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	f, _ := w.c.m.Lookup(path)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(p.send(ctx, pw, w.c.data[path])) }()
	var body io.Reader = pr
	if got != nil {
		body = countingReader{pr, got}
	}
	data, err := io.ReadAll(io.LimitReader(body, f.Size+1))
	pr.Close()
	if err != nil {
		return nil, err
	}
	if err := f.Check(data); err != nil {
		w.mu.Lock()
		p.banned = true
		w.mu.Unlock()
		return nil, fmt.Errorf("peer %s: %w", id, err)
	}
	return data, nil
}

func (p *simPeer) send(ctx context.Context, dst io.Writer, data []byte) error {
	for off := 0; off < len(data); off += chunk {
		if p.stallAfter > 0 && off >= p.stallAfter {
			<-ctx.Done()
			return ctx.Err()
		}
		b := data[off:min(off+chunk, len(data))]
		if err := p.limit.WaitN(ctx, len(b)); err != nil {
			return err
		}
		if p.corrupt && off == 0 {
			b = slices.Clone(b)
			b[0] ^= 0xff
		}
		if _, err := dst.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (w *swarm) fetches() []call {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

func (w *swarm) inFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live
}

func (w *swarm) isBanned(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peers[peer.ID(id)].banned
}

// memStore is a minimal Store without Has, to exercise that path too.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Get(p string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[p]
	return slices.Clone(d), ok
}

func (s *memStore) Put(p string, d []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[p] = slices.Clone(d)
	return nil
}

// play is a simulated player: it gets the init segment and then each media
// segment in turn, "plays" it for its duration, and reports the playhead
// to Run. A segment not ready when its turn comes is a stall.
type play struct {
	mu      sync.Mutex
	base    time.Duration // start of the segment playing
	started time.Time     // when it started playing; zero while waiting
	got     []got
}

type got struct {
	index  int
	src    sched.Source
	waited time.Duration
}

func (p *play) playhead() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started.IsZero() {
		return p.base
	}
	return p.base + min(time.Since(p.started), segDur)
}

func (p *play) run(ctx context.Context, t *testing.T, s *sched.Scheduler, c *content, n int) {
	_, _, err := s.GetInit(ctx, 0)
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		start := time.Now()
		data, src, err := s.Get(ctx, i)
		require.NoError(t, err, "segment %d", i)
		require.Equal(t, c.data[media(i)], data, "segment %d bytes", i)
		p.mu.Lock()
		p.got = append(p.got, got{i, src, time.Since(start)})
		p.base, p.started = time.Duration(i-1)*segDur, time.Now()
		p.mu.Unlock()
		time.Sleep(segDur)
		p.mu.Lock()
		p.base, p.started = time.Duration(i)*segDur, time.Time{}
		p.mu.Unlock()
	}
}

// stalls lists the segments after the first that the player had to wait for.
func (p *play) stalls() []got {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []got
	for _, g := range p.got[1:] {
		if g.waited > 0 {
			out = append(out, g)
		}
	}
	return out
}
