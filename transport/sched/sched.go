package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sealmesh/sealmesh/segment"
)

// Peers is the swarm as the scheduler sees it.
type Peers interface {
	// Candidates lists the admitted, unbanned peers that announced path.
	// It is called often and must not block on the network.
	Candidates(path string) []peer.ID
	// Fetch returns path's bytes from p, verified against the manifest, or an
	// error. An error wrapping segment.ErrIntegrity means p sent bad bytes;
	// the implementation bans p, and the scheduler stops asking it. An error
	// with a Busy() bool method returning true means p refused for now
	// (its upload slots are full): no failure is counted, p is skipped
	// for a moment and, outside the urgent window, the file waits for a peer
	// rather than going to the origin. Fetch must return promptly when ctx
	// is cancelled.
	Fetch(ctx context.Context, p peer.ID, path string) ([]byte, error)
}

// UrgentPeers is an optional Peers method: Fetch for a file needed within
// the urgent window, which the peer serves ahead of its other uploads. The
// scheduler calls it for attempts started inside the urgent window and
// keeps a separate throughput estimate for them. transport.Swarm has it.
type UrgentPeers interface {
	FetchUrgent(ctx context.Context, p peer.ID, path string) ([]byte, error)
}

// ProgressPeers is an optional Peers method: Fetch (FetchUrgent when
// urgent) that adds the answer's bytes to *got as they arrive. With it the
// scheduler judges a running peer fetch inside the urgent window by the
// rate it is actually getting rather than by the peer's past throughput,
// so a peer that is slower than usual but will make the deadline is not
// raced by the origin. transport.Swarm has it.
type ProgressPeers interface {
	FetchProgress(ctx context.Context, p peer.ID, path string, urgent bool, got *atomic.Int64) ([]byte, error)
}

// Origin is the HTTP origin or CDN, the source of last resort.
type Origin interface {
	// Fetch returns path's verified bytes or an error; it must return
	// promptly when ctx is cancelled.
	Fetch(ctx context.Context, path string) ([]byte, error)
}

// Store keeps fetched files (a transport/cache Cache or Mem). Put may refuse
// (full, too large, closed): the scheduler then keeps the bytes Run
// prefetched in memory until they leave Run's window. Put must copy data if it keeps it in memory:
// the same bytes go to Get's caller, who may decrypt them in place.
// If the Store also has a Has(path) bool method the scheduler uses it to see
// what is held without reading it; otherwise it remembers what it stored.
type Store interface {
	Get(path string) ([]byte, bool)
	Put(path string, data []byte) error
}

// Source says where Get's bytes came from.
type Source int

// Sources of a file.
const (
	SourceCache  Source = iota + 1 // the Store, fetched earlier
	SourcePeer                     // a peer of the swarm
	SourceOrigin                   // the HTTP origin
)

func (s Source) String() string {
	switch s {
	case SourceCache:
		return "cache"
	case SourcePeer:
		return "peer"
	case SourceOrigin:
		return "origin"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// Errors the scheduler returns; branch with errors.Is.
var (
	// ErrUnavailable: every source the scheduler could use failed (or none
	// was configured or announced the file); the error also wraps the last
	// source's error. Retrying later may work.
	ErrUnavailable = errors.New("no source delivered the file")
	// ErrClosed: the scheduler was closed.
	ErrClosed = errors.New("scheduler closed")
	// ErrRunning: Run was called while another Run is active.
	ErrRunning = errors.New("scheduler is already running")
)

// Defaults for zero Config fields.
const (
	DefaultBufferTarget = 30 * time.Second
	DefaultUrgentWindow = 4 * time.Second
	DefaultMaxParallel  = 4
	DefaultPeerTimeout  = 15 * time.Second
)

// Tuning that is not worth a Config field.
const (
	perPeerParallel  = 2         // fetches in flight per peer
	priorPeerRate    = 256 << 10 // bytes/s assumed for a peer never measured: a 2 Mbit/s home upload
	priorOriginRate  = 4 << 20   // bytes/s assumed for the origin before measuring
	ewmaAlpha        = 0.3       // weight of a new throughput sample
	minHedgeDelay    = 250 * time.Millisecond
	minOriginExpect  = 100 * time.Millisecond
	tickInterval     = 250 * time.Millisecond // Run re-plans at least this often
	retryBackoff     = time.Second            // Run waits this long before refetching a file that failed
	originDownFor    = 2 * time.Second        // after an origin failure, prefer peers for this long
	peerCoolDown     = 10 * time.Second       // a peer failing 3 times in a row is skipped this long
	busyCoolDown     = 500 * time.Millisecond // a peer that answered busy is skipped this long
	maxFrontierLead  = 20 * time.Second       // the front runner fetches new files at most this long before they play
	originTimeout    = 30 * time.Second       // bounds one origin fetch
	deadlineSlack    = 100 * time.Millisecond // deadline changes smaller than this do not wake a fetch
	progressCheck    = 100 * time.Millisecond // inside the urgent window a job re-reads its peer fetches' progress this often
	progressStale    = 500 * time.Millisecond // a peer fetch with no new byte for this long is judged without its progress
	originFillOrders = 1                      // origin fetches Run keeps going ahead of the urgent window when no peer has anything
)

// Config configures a Scheduler. Manifest, Rendition, Store and at least one
// of Peers and Origin are required; other zero values take the defaults
// shown.
type Config struct {
	Manifest  *segment.Manifest
	Rendition string // ID of the rendition (one track) to fetch
	Peers     Peers  // nil: origin only
	// Self names this viewer (its peer ID). With it, and a Peers that
	// reports its Population, viewers that start together split the work of
	// fetching ahead from the origin: each fills only the files a hash of
	// (path, Self) assigns to it, and gets the rest from the others. Zero:
	// every viewer fills its buffer from the origin when no peer has anything.
	Self   string
	Origin Origin // nil: peers only (no fallback: playback can stall)
	Store  Store

	// BufferTarget is how far past the playhead Run keeps files fetched. Zero: 30 s.
	BufferTarget time.Duration
	// UrgentWindow is the time before a file's play deadline kept in reserve
	// for the origin: inside it a file goes to the origin unless a measured
	// peer can deliver it well in time (see the package doc). Zero: 4 s.
	UrgentWindow time.Duration
	// Speed is how fast the player consumes content time: 2 plays two
	// seconds of content per second, so deadlines come twice as fast
	// (demos and benchmarks play faster than real time). Zero: 1.
	Speed float64
	// MaxParallel caps the peer fetches Run starts at once. Zero: 4.
	MaxParallel int
	// HedgeAfter is how long a peer fetch may run before another peer or the
	// origin is asked too. Zero: twice the fetch's expected time by the
	// peer's throughput estimate (at least 250 ms).
	HedgeAfter time.Duration
	// PeerTimeout bounds one peer fetch. Zero: 15 s.
	PeerTimeout time.Duration
	// Now reads the clock. Nil: time.Now. Timers use the runtime clock, so
	// tests that control time should use testing/synctest.
	Now func() time.Time
	// Logger receives Debug lines per fetch and Warn lines for failures. Nil discards.
	Logger *slog.Logger
}

// Scheduler fetches one rendition's files from peers and the origin so that
// each is in the Store before the player needs it. It is safe for concurrent use.
type Scheduler struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	media []segment.File         // media[i-1] is index i
	inits map[int]segment.File   // by crypto period
	has   func(path string) bool // Store's Has, if any

	ctx    context.Context // lifetime; Close cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // pokes Run when a fetch ends

	mu         sync.Mutex
	jobs       map[string]*job
	held       map[string][]byte // fetched but refused by the Store
	stored     map[string]bool   // what we put, when the Store has no Has
	failedAt   map[string]time.Time
	peers      map[peer.ID]*peerState
	origin     estimate
	originDown time.Time // prefer peers until then
	peerLoad   int       // peer fetches in flight
	originLoad int       // origin fetches in flight
	stats      Stats
	running    bool
	closed     bool

	// The playhead Run last planned with, and when: Get turns a file's
	// start into its deadline with it.
	playhead   time.Duration
	playheadAt time.Time
}

// New checks cfg, fills in defaults and returns an idle Scheduler; call Run
// to prefetch and Get to read. Close releases it.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Manifest == nil {
		return nil, errors.New("sched: Config.Manifest is nil")
	}
	if cfg.Store == nil {
		return nil, errors.New("sched: Config.Store is nil (use a cache.Mem to keep nothing on disk)")
	}
	if cfg.Peers == nil && cfg.Origin == nil {
		return nil, errors.New("sched: need Config.Peers, Config.Origin or both")
	}
	var rend *segment.Rendition
	for i := range cfg.Manifest.Renditions {
		if cfg.Manifest.Renditions[i].ID == cfg.Rendition {
			rend = &cfg.Manifest.Renditions[i]
		}
	}
	if rend == nil {
		return nil, fmt.Errorf("sched: rendition %q is not in the manifest", cfg.Rendition)
	}
	if cfg.BufferTarget < 0 || cfg.UrgentWindow < 0 || cfg.MaxParallel < 0 || cfg.HedgeAfter < 0 || cfg.PeerTimeout < 0 {
		return nil, errors.New("sched: negative Config durations or counts")
	}
	if cfg.Speed < 0 {
		return nil, errors.New("sched: Speed must not be negative")
	}
	if cfg.Speed == 0 {
		cfg.Speed = 1
	}
	if cfg.BufferTarget == 0 {
		cfg.BufferTarget = DefaultBufferTarget
	}
	if cfg.UrgentWindow == 0 {
		cfg.UrgentWindow = DefaultUrgentWindow
	}
	if cfg.MaxParallel == 0 {
		cfg.MaxParallel = DefaultMaxParallel
	}
	if cfg.PeerTimeout == 0 {
		cfg.PeerTimeout = DefaultPeerTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		cfg:      cfg,
		log:      cfg.Logger.With("content", cfg.Manifest.ContentID, "rendition", cfg.Rendition),
		now:      cfg.Now,
		inits:    map[int]segment.File{},
		wake:     make(chan struct{}, 1),
		jobs:     map[string]*job{},
		held:     map[string][]byte{},
		stored:   map[string]bool{},
		failedAt: map[string]time.Time{},
		peers:    map[peer.ID]*peerState{},
	}
	for _, f := range rend.Files {
		switch f.Kind {
		case segment.KindMedia:
			s.media = append(s.media, f) // Validate guarantees indexes 1, 2, ...
		case segment.KindInit:
			if _, dup := s.inits[f.Period]; !dup {
				s.inits[f.Period] = f
			}
		}
	}
	for i, f := range s.media {
		if f.Index != i+1 {
			return nil, fmt.Errorf("sched: rendition %q: media %q has index %d, want %d", cfg.Rendition, f.Path, f.Index, i+1)
		}
	}
	if h, ok := cfg.Store.(interface{ Has(string) bool }); ok {
		s.has = h.Has
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Get returns media segment index (1-based, as in the manifest) of the
// rendition: from the Store if it is there, else by joining the fetch in
// flight for it, else by fetching it with the urgency of its play deadline
// as Run last computed it (now, for a file at or behind the playhead or
// without Run): the origin when that is near and no peer is expected to
// beat it; a peer, or waiting for one while the deadline is still outside
// the urgent window, otherwise. A player that asks for segments ahead of
// the playhead thus does not pull them from the origin. The caller owns
// the returned bytes, which match the manifest. Errors wrap
// segment.ErrUnknownFile for an index out of range, ErrUnavailable when no
// source delivered, ErrClosed, or ctx's error.
func (s *Scheduler) Get(ctx context.Context, index int) ([]byte, Source, error) {
	if index < 1 || index > len(s.media) {
		return nil, 0, fmt.Errorf("sched: segment %d of %q: %w", index, s.cfg.Rendition, segment.ErrUnknownFile)
	}
	return s.get(ctx, s.media[index-1])
}

// GetInit is Get for the init segment of crypto period period.
func (s *Scheduler) GetInit(ctx context.Context, period int) ([]byte, Source, error) {
	f, ok := s.inits[period]
	if !ok {
		return nil, 0, fmt.Errorf("sched: init of period %d of %q: %w", period, s.cfg.Rendition, segment.ErrUnknownFile)
	}
	return s.get(ctx, f)
}

func (s *Scheduler) get(ctx context.Context, f segment.File) ([]byte, Source, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, 0, ErrClosed
	}
	if data, ok := s.fromStore(f); ok {
		return data, SourceCache, nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, 0, ErrClosed
	}
	if data, ok := s.held[f.Path]; ok {
		// Held until it leaves Run's window, so a player that seeks back
		// a little does not refetch it; the caller gets its own copy.
		s.stats.CacheHits++
		s.stats.CacheBytes += int64(len(data))
		s.mu.Unlock()
		return append([]byte(nil), data...), SourceCache, nil
	}
	j := s.jobs[f.Path]
	s.mu.Unlock()
	if j == nil {
		// Not in flight: start it with its play deadline. With nowhere to
		// go yet and that deadline outside the urgent window, the job
		// waits for a peer or for the window (see job.loop).
		cands := s.candidates(f.Path)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, 0, ErrClosed
		}
		if j = s.jobs[f.Path]; j == nil {
			now := s.now()
			ttd := s.dueLocked(f, now)
			j = s.newJobLocked(f, now.Add(ttd), s.chooseLocked(f, cands, now, ttd, nil, false, false))
		}
		j.owners++
		s.mu.Unlock()
	} else {
		s.mu.Lock()
		j.owners++
		s.mu.Unlock()
	}
	defer s.release(j)
	select {
	case <-j.done:
		if j.err != nil {
			return nil, 0, j.err
		}
		return append([]byte(nil), j.data...), j.src, nil
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// fromStore reads f from the Store, re-verifying it: the Store is an
// interface, and whatever Get returns goes to the decryptor.
func (s *Scheduler) fromStore(f segment.File) ([]byte, bool) {
	data, ok := s.cfg.Store.Get(f.Path)
	if !ok {
		return nil, false
	}
	if err := f.Check(data); err != nil {
		s.log.Warn("sched: store returned bad bytes; refetching", "path", f.Path, "err", err)
		s.mu.Lock()
		delete(s.stored, f.Path)
		s.mu.Unlock()
		return nil, false
	}
	s.mu.Lock()
	s.stats.CacheHits++
	s.stats.CacheBytes += int64(len(data))
	s.mu.Unlock()
	return data, true
}

// presentLocked reports whether path is in the Store or held in memory.
func (s *Scheduler) presentLocked(path string) bool {
	if _, ok := s.held[path]; ok {
		return true
	}
	if s.has != nil {
		return s.has(path)
	}
	return s.stored[path]
}

func (s *Scheduler) candidates(path string) []peer.ID {
	if s.cfg.Peers == nil {
		return nil
	}
	return s.cfg.Peers.Candidates(path)
}

// Close cancels every fetch, stops Run and waits for the scheduler's
// goroutines. It is idempotent.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dueLocked is the time until f plays, from the playhead Run last planned
// with, assuming playback at Speed since; 0 without Run or for a file at or
// behind the playhead.
func (s *Scheduler) dueLocked(f segment.File, now time.Time) time.Duration {
	if !s.running || s.playheadAt.IsZero() {
		return 0
	}
	ahead := f.Start - s.playhead.Seconds()
	ttd := time.Duration(ahead/s.cfg.Speed*float64(time.Second)) - now.Sub(s.playheadAt)
	return max(ttd, 0)
}
