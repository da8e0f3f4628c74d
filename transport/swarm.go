package transport

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/sealmesh/sealmesh/segment"
)

// SwarmOptions configures Join.
type SwarmOptions struct {
	// Verifier checks the tickets other peers present. Required.
	Verifier TicketVerifier
	// Tickets yields this host's own ticket. Required: without one no peer
	// admits us, so we could neither fetch nor serve.
	Tickets TicketSource
	// Store holds the content's ciphertext. Nil: a new MemStore.
	Store Store
	// Upload limits what this host serves.
	Upload UploadPolicy
	// Tracker, when set, is asked for peers every TrackerInterval.
	Tracker Tracker
	// TrackerInterval: zero means 30 s.
	TrackerInterval time.Duration
	// DiscoveryKey is the content's secret DHT key, which the license
	// server gives ticket holders only (license.TicketResponse.DiscoveryKey).
	// Provider records are published under DiscoveryCID(DiscoveryKey), so
	// strangers, who cannot compute it, cannot list a title's holders. Empty:
	// this swarm does not use the DHT, even when Config.DHT is set.
	DiscoveryKey []byte
	// DiscoveryInterval is how often the DHT is asked for the content's
	// providers (when Config.DHT is set). Zero: 30 s. The provider record is
	// re-published every 10 DiscoveryIntervals.
	DiscoveryInterval time.Duration
	// TrustStore skips re-hashing a file before serving it. By default every
	// served file is checked against the manifest first (a SHA-256 costs far
	// less than sending the file, and a disk cache can rot after its start
	// check); set it when the Store re-verifies on read, or for benchmarks.
	TrustStore bool
	// Logger: nil means the host's logger.
	Logger *slog.Logger
}

// Swarm is one content's peer set on a Host: admissions, have-maps,
// transfers. Create it with Host.Join.
type Swarm struct {
	h       *Host
	content string
	files   []segment.File          // init and media files, in bitfield order
	index   map[string]int          // path -> bit
	listed  map[string]segment.File // every manifest file, playlists too
	digest  [32]byte
	opts    SwarmOptions
	store   Store
	// storeVerifies: the Store guarantees Get's bytes match the manifest
	// (VerifyingStore), so serving need not hash them again.
	storeVerifies bool
	upload        *uploader
	log           *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	peers  map[peer.ID]*swarmPeer
	have   Bitfield
	onHave []func(peer.ID, string)
	ticket ownTicket
	// revoked: peers the license server listed as revoked, refused until then.
	revoked map[peer.ID]time.Time

	bytesDown, bytesUp, failed atomic.Int64
}

type ownTicket struct {
	raw         []byte
	got, expiry time.Time
}

// swarmPeer is what a swarm knows of one peer. Guarded by Swarm.mu.
type swarmPeer struct {
	admittedUntil time.Time
	budget        string        // its ticket's Admission.Budget (see Host.budgetKey)
	admittedCh    chan struct{} // closed at the first admission
	have          Bitfield      // nil until its hello
	mismatch      bool          // its manifest differs from ours
	bytesUp       int64
	bytesDown     int64
	ewma          float64 // bytes/s of verified fetches
	out           *haveSender
	in            network.Stream
}

// Join joins content's swarm with manifest m, which the caller has verified
// (segment.ParseManifest). Files already in opts.Store are announced as held
// (the Store contract says they were verified). It presents this host's
// ticket to every connected peer and starts discovery.
func (h *Host) Join(ctx context.Context, content string, m *segment.Manifest, opts SwarmOptions) (*Swarm, error) {
	if err := checkContent(content); err != nil {
		return nil, fmt.Errorf("transport: join: %w", err)
	}
	if m == nil || m.ContentID != content {
		return nil, fmt.Errorf("transport: join %q: manifest is for another content", content)
	}
	if opts.Verifier == nil || opts.Tickets == nil {
		return nil, fmt.Errorf("transport: join %q: Verifier and Tickets are required", content)
	}
	upload, err := newUploader(opts.Upload)
	if err != nil {
		return nil, fmt.Errorf("transport: join %q: %w", content, err)
	}
	if opts.Store == nil {
		opts.Store = NewMemStore()
	}
	opts.DiscoveryKey = append([]byte(nil), opts.DiscoveryKey...)
	if opts.TrackerInterval <= 0 {
		opts.TrackerInterval = 30 * time.Second
	}
	if opts.DiscoveryInterval <= 0 {
		opts.DiscoveryInterval = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = h.log
	}
	s := &Swarm{
		h:       h,
		content: content,
		index:   make(map[string]int),
		listed:  make(map[string]segment.File),
		opts:    opts,
		store:   opts.Store,
		upload:  upload,
		log:     opts.Logger.With("content", content),
		peers:   make(map[peer.ID]*swarmPeer),
		revoked: make(map[peer.ID]time.Time),
	}
	if vs, ok := opts.Store.(VerifyingStore); ok && vs.GetVerified() {
		s.storeVerifies = true
	}
	d := sha256.New()
	io.WriteString(d, "sealmesh manifest digest v1\x00")
	for _, r := range m.Renditions {
		for _, f := range r.Files {
			s.index[f.Path] = len(s.files)
			s.files = append(s.files, f)
			s.listed[f.Path] = f
			fmt.Fprintf(d, "%s\x00%d\x00%s\n", f.Path, f.Size, f.SHA256)
		}
	}
	for _, f := range m.Playlists {
		s.listed[f.Path] = f
	}
	d.Sum(s.digest[:0])
	s.have = newBitfield(len(s.files))
	for _, p := range s.store.Paths() {
		if i, ok := s.index[p]; ok {
			s.have.set(i)
		}
	}
	s.ctx, s.cancel = context.WithCancel(h.ctx)

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		s.cancel()
		return nil, ErrClosed
	}
	if _, ok := h.swarms[content]; ok {
		h.mu.Unlock()
		s.cancel()
		return nil, fmt.Errorf("transport: join %q: already joined", content)
	}
	h.swarms[content] = s
	h.mu.Unlock()

	if _, _, err := s.currentTicket(ctx); err != nil {
		s.log.Warn("no ticket yet; peers will not admit us until one comes", "err", err)
	}
	for _, p := range h.h.Network().Peers() {
		s.presentAsync(p)
	}
	s.wg.Add(1)
	go s.renewLoop()
	s.startDiscovery()
	return s, nil
}

// Content returns the content ID.
func (s *Swarm) Content() string { return s.content }

// OnHave registers f to be called, outside any lock, whenever an admitted
// peer announces a file (once per newly set bit, including its hello).
func (s *Swarm) OnHave(f func(p peer.ID, path string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onHave = append(s.onHave, f)
}

// peer returns p's state, creating it; s.mu must be held.
func (s *Swarm) peerLocked(p peer.ID) *swarmPeer {
	sp := s.peers[p]
	if sp == nil {
		sp = &swarmPeer{admittedCh: make(chan struct{})}
		s.peers[p] = sp
	}
	return sp
}

// admittedAt reports whether p holds an admission valid at now.
func (s *Swarm) admittedAt(p peer.ID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.peers[p]
	return sp != nil && now.Before(sp.admittedUntil)
}

// admit records p's admission and, the first time, starts sending it our
// have-map. It reports whether this was p's first admission.
func (s *Swarm) admit(p peer.ID, a Admission) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	sp := s.peerLocked(p)
	first := sp.admittedUntil.IsZero()
	if a.Expiry.After(sp.admittedUntil) {
		sp.admittedUntil = a.Expiry
	}
	sp.budget = a.Budget
	var hs *haveSender
	if first {
		close(sp.admittedCh)
		hs = newHaveSender(s, p)
		sp.out = hs
	}
	s.mu.Unlock()
	s.h.admitted(p)
	s.h.cm.TagPeer(p, "sealmesh:"+s.content, 20)
	if first {
		s.log.Debug("peer admitted", "remote", p.String(), "until", a.Expiry)
		s.wg.Add(1)
		go hs.run()
	}
	return first
}

// waitAdmitted waits until p is admitted, for at most d.
func (s *Swarm) waitAdmitted(ctx context.Context, p peer.ID, d time.Duration) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	ch := s.peerLocked(p).admittedCh
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return s.admittedAt(p, s.h.now())
	case <-t.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return false
}

// expireAdmissions drops peers whose admission has lapsed and returns them.
func (s *Swarm) expireAdmissions(now time.Time) []peer.ID {
	s.mu.Lock()
	var out []peer.ID
	for p, sp := range s.peers {
		if !sp.admittedUntil.IsZero() && !now.Before(sp.admittedUntil) {
			out = append(out, p)
		}
	}
	s.mu.Unlock()
	for _, p := range out {
		s.log.Info("admission expired", "remote", p.String())
		s.dropPeer(p)
	}
	return out
}

// dropPeer forgets p: admission, have-map, have streams.
func (s *Swarm) dropPeer(p peer.ID) {
	s.mu.Lock()
	sp := s.peers[p]
	delete(s.peers, p)
	s.mu.Unlock()
	if sp == nil {
		return
	}
	if sp.out != nil {
		sp.out.stop()
	}
	if sp.in != nil {
		_ = sp.in.Reset()
	}
	s.h.cm.UntagPeer(p, "sealmesh:"+s.content)
}

// Has reports whether this host holds path (as announced).
func (s *Swarm) Has(path string) bool {
	i, ok := s.index[path]
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.have.Has(i)
}

// Announce tells admitted peers that this host now holds path. Call it
// after Store.Put of verified bytes (Fetch does). Paths outside the
// bitfield (playlists) and files already announced are ignored. A
// consume-only swarm announces nothing.
func (s *Swarm) Announce(path string) {
	i, ok := s.index[path]
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.have.set(i) || s.opts.Upload.ConsumeOnly {
		return
	}
	for _, sp := range s.peers {
		if sp.out != nil {
			sp.out.queue(i)
		}
	}
}

// Close leaves the swarm: it stops discovery, resets have streams and
// forgets admissions. The Host keeps running. Close is idempotent.
func (s *Swarm) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	peers := make([]peer.ID, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	s.cancel()
	for _, p := range peers {
		s.dropPeer(p)
	}
	s.h.mu.Lock()
	if s.h.swarms[s.content] == s {
		delete(s.h.swarms, s.content)
	}
	s.h.mu.Unlock()
	s.wg.Wait()
	return nil
}

var errSwarmClosed = fmt.Errorf("swarm: %w", ErrClosed)

func (s *Swarm) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
