package player

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
	"github.com/sealmesh/sealmesh/transport/cache"
	"github.com/sealmesh/sealmesh/transport/sched"
)

// Session is one content being played (or seeded). Create it with Open;
// Close it when done.
type Session struct {
	cfg    Config
	m      *segment.Manifest
	video  *segment.Rendition
	audio  *segment.Rendition
	keys   *keyring
	lc     *license.Client
	host   *transport.Host
	own    bool // the session made host and closes it
	swarm  *transport.Swarm
	store  store
	origin *sched.HTTPOrigin
	play   *playback

	schedMu sync.Mutex
	scheds  map[string]*sched.Scheduler

	decMu sync.Mutex
	decs  map[string]*segment.Decryptor // by init path

	ln     net.Listener
	srv    *http.Server
	prefix string // "/<secret>/"

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	wakeRenew chan struct{}
	closeOnce sync.Once
	closeErr  error

	served, refused, unavailable, servedBytes atomic.Int64
}

// store is what the session keeps ciphertext in (transport/cache).
type store interface {
	Get(path string) ([]byte, bool)
	Put(path string, data []byte) error
	Paths() []string
	Has(path string) bool
	Close() error
}

// announcing is the scheduler's view of the store: whatever it stores (from
// the origin too) is announced to the swarm, so peers learn of it.
type announcing struct {
	store
	swarm *transport.Swarm
}

func (a announcing) Put(path string, data []byte) error {
	if !a.store.Has(path) {
		if err := a.store.Put(path, data); err != nil {
			return err
		}
	}
	if a.swarm != nil {
		a.swarm.Announce(path)
	}
	return nil
}

// Open fetches and verifies the content's segment manifest, gets a license
// (unless SeedOnly), joins the swarm, starts fetching ahead, and starts the
// loopback gateway. ctx bounds Open only; the session runs until Close.
//
// Errors wrap ErrConfig, ErrManifest or ErrNoLicense for the caller's
// mistakes and refusals, and ErrLicenseUnavailable when the license server
// could not be reached or failed (worth retrying later); the cause stays in
// the chain. Without a license Open fails and nothing is decrypted.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := fetchAnchors(ctx, &cfg); err != nil {
		return nil, err
	}
	history, err := openHistory(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Session{cfg: cfg, scheds: map[string]*sched.Scheduler{}, decs: map[string]*segment.Decryptor{}, wakeRenew: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.m, err = fetchManifest(ctx, &cfg, false); err != nil {
		return nil, err
	}
	if err := history.Check(s.m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if s.video, s.audio, err = chooseRenditions(s.m, cfg.Video, cfg.MaxBandwidth); err != nil {
		return nil, err
	}
	s.lc, err = license.NewClient(license.ClientConfig{BaseURL: cfg.LicenseURL, ServerKeys: cfg.LicenseKeys, Token: cfg.Token, HTTPClient: cfg.HTTPClient, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if !cfg.SeedOnly {
		if s.keys, err = newKeyring(ctx, s.lc, s.m, cfg.Now, cfg.LicenseRetry, cfg.Logger); err != nil {
			return nil, err
		}
		if err := s.checkLicensedManifest(ctx, history); err != nil {
			return nil, err
		}
	}
	// Only a manifest that passed every check raises the history.
	if err := history.Accept(s.m); err != nil {
		return nil, err
	}
	opts := cache.Options{MaxBytes: cfg.CacheBytes, Logger: cfg.Logger, Now: cfg.Now}
	if cfg.CacheDir != "" {
		s.store, err = cache.Open(cfg.CacheDir, s.m, opts)
	} else {
		if opts.MaxBytes == 0 {
			opts.MaxBytes = 16 << 20
			if cfg.SeedOnly {
				// A seed holds the whole content: a cache smaller than that
				// would evict what its scheduler then fetches again.
				var total int64
				for _, f := range s.m.Files() {
					total += f.Size
				}
				opts.MaxBytes = total + 1<<20
			}
		}
		s.store, err = cache.NewMem(s.m, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("player: cache: %w", err)
	}
	if !cfg.P2P.Disable {
		if err := s.joinSwarm(ctx); err != nil {
			return nil, err
		}
	}
	s.origin = &sched.HTTPOrigin{BaseURL: cfg.OriginURL, Client: cfg.HTTPClient, Manifest: s.m}
	var ref *segment.Rendition
	if s.video != nil {
		ref = s.video
	} else {
		ref = s.audio
	}
	var starts, ends []float64
	for _, f := range ref.Files {
		if f.Kind == segment.KindMedia {
			starts = append(starts, f.Start)
			ends = append(ends, f.Start+f.Duration)
		}
	}
	s.play = newPlayback(starts, ends, cfg.Speed, cfg.StartupBudget, cfg.Now)
	run := []*segment.Rendition{s.video, s.audio}
	if cfg.SeedOnly {
		run = nil
		for i := range s.m.Renditions {
			run = append(run, &s.m.Renditions[i])
		}
	}
	for _, r := range run {
		if r == nil {
			continue
		}
		sc, err := s.scheduler(r.ID)
		if err != nil {
			return nil, err
		}
		playhead := func() time.Duration { return time.Duration(s.play.position() * float64(time.Second)) }
		if cfg.SeedOnly {
			playhead = func() time.Duration { return 0 }
		}
		s.wg.Go(func() { _ = sc.Run(s.ctx, playhead) })
	}
	if !cfg.SeedOnly {
		if err := s.startGateway(); err != nil {
			return nil, err
		}
		s.wg.Go(func() { s.keys.loop(s.ctx, s.play.position, s.wakeRenew) })
	}
	ok = true
	return s, nil
}

func (s *Session) joinSwarm(ctx context.Context) error {
	cfg := &s.cfg
	s.host = cfg.P2P.Host
	if s.host == nil {
		h, err := transport.NewHost(s.ctx, transport.Config{
			IdentityFile: cfg.P2P.IdentityFile, ListenAddrs: cfg.P2P.ListenAddrs, Security: cfg.P2P.Security,
			MDNS: cfg.P2P.MDNS, DHT: cfg.P2P.DHT, Bootstrap: cfg.P2P.Bootstrap, BrowserTransports: cfg.P2P.BrowserTransports,
			Registerer: cfg.Registerer, Logger: cfg.Logger, Now: cfg.Now,
		})
		if err != nil {
			return fmt.Errorf("player: p2p host: %w", err)
		}
		s.host, s.own = h, true
	}
	tv, err := license.NewTicketVerifier(cfg.LicenseKeys)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	key := s.host.LibP2P().Peerstore().PrivKey(s.host.ID())
	if key == nil {
		return errors.New("player: the p2p host has no private key to prove its peer ID with")
	}
	tickets := &ticketSource{client: s.lc, key: key, now: cfg.Now}
	// A ticket up front: a viewer the license server will not admit to the
	// swarm learns it now, not from silent peers.
	if _, _, err := tickets.Ticket(ctx, cfg.Content); err != nil {
		return licenseError("swarm ticket", err)
	}
	upload := cfg.P2P.Upload
	tr := newTracker(s.lc, tickets)
	s.swarm, err = s.host.Join(s.ctx, cfg.Content, s.m, transport.SwarmOptions{
		Verifier: ticketVerifier{v: tv, now: cfg.Now}, Tickets: tickets, Store: s.store, Upload: upload,
		Tracker: tr, TrackerInterval: cfg.P2P.TrackerInterval, DiscoveryKey: tickets.discoveryKey(),
		Logger: cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("player: join swarm: %w", err)
	}
	s.waitForPeers(ctx, tr)
	return nil
}

// waitForPeers gives a viewer joining a populated swarm a moment to be
// admitted and to learn what its peers hold before fetching starts, so that
// its first segments can come from them. It waits only when the tracker
// named peers, and never longer than half the start-up budget: P2P must not
// slow playback down.
func (s *Session) waitForPeers(ctx context.Context, tr *tracker) {
	limit := time.NewTimer(s.cfg.StartupBudget / 2)
	defer limit.Stop()
	select {
	case n := <-tr.first:
		if n <= 0 {
			return
		}
	case <-limit.C:
		return
	case <-ctx.Done():
		return
	}
	first := ""
	for _, r := range []*segment.Rendition{s.video, s.audio} {
		if r != nil && len(r.Files) > 1 {
			first = r.Files[1].Path
			break
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(s.swarm.Candidates(first)) == 0 {
		select {
		case <-tick.C:
		case <-limit.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// scheduler returns the rendition's scheduler, making it on first use.
func (s *Session) scheduler(id string) (*sched.Scheduler, error) {
	s.schedMu.Lock()
	defer s.schedMu.Unlock()
	if sc := s.scheds[id]; sc != nil {
		return sc, nil
	}
	cfg := sched.Config{
		Manifest: s.m, Rendition: id, Origin: s.origin, Store: announcing{s.store, s.swarm},
		BufferTarget: s.cfg.BufferTarget, UrgentWindow: s.cfg.UrgentWindow, Speed: s.cfg.Speed,
		Logger: s.cfg.Logger, Now: s.cfg.Now,
	}
	if s.cfg.SeedOnly {
		cfg.BufferTarget = time.Duration(s.m.Duration*float64(time.Second)) + time.Minute
	}
	if s.swarm != nil {
		cfg.Peers = s.swarm
		cfg.Self = s.host.ID().String()
	}
	sc, err := sched.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("player: scheduler for %s: %w", id, err)
	}
	s.scheds[id] = sc
	return sc, nil
}

// openHistory returns the configured manifest history, the one in CacheDir,
// or one for this session only.
func openHistory(cfg *Config) (*ManifestHistory, error) {
	switch {
	case cfg.History != nil:
		return cfg.History, nil
	case cfg.CacheDir != "":
		h, err := OpenManifestHistory(filepath.Join(cfg.CacheDir, historyFile))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		return h, nil
	}
	return NewManifestHistory(), nil
}

// checkLicensedManifest refuses a manifest other than the one the license
// was issued for (issue 12, L4). The signature alone cannot tell an older
// manifest of the same content, signed with the same key, from the current
// one; the license server knows which is current and names its digest in
// the signed license, so a replayed older manifest (other segments, other
// keys) is refused here even by a player that has never seen a newer one.
//
// A mismatch may also be an origin or CDN still serving the manifest a
// re-pack replaced: the manifest is fetched once more, bypassing caches,
// before refusing. A license that names no manifest (a server without a
// catalog of manifests) leaves the sequence number as the only check.
func (s *Session) checkLicensedManifest(ctx context.Context, history *ManifestHistory) error {
	s.keys.mu.Lock()
	want := s.keys.lic.ManifestSHA256
	s.keys.mu.Unlock()
	if want == "" {
		s.cfg.Logger.Warn("player: the license names no manifest (license server without --content-dir): rollback is checked by sequence number only", "content", s.cfg.Content)
		return nil
	}
	if s.m.Digest() == want {
		return nil
	}
	m, err := fetchManifest(ctx, &s.cfg, true)
	if err != nil {
		return err
	}
	if m.Digest() != want {
		return fmt.Errorf("%w: %w: the origin's manifest (sha256 %s, sequence %d) is not the one the license was issued for (sha256 %s): an older or foreign manifest, or a re-pack under way (then retry in a few seconds)",
			ErrManifest, ErrManifestNotLicensed, m.Digest(), m.Sequence, want)
	}
	if err := history.Check(m); err != nil {
		return fmt.Errorf("%w: %w", ErrManifest, err)
	}
	s.m = m
	s.video, s.audio, err = chooseRenditions(m, s.cfg.Video, s.cfg.MaxBandwidth)
	return err
}

// fetchManifest fetches and verifies the origin's manifest; noCache asks
// caches on the way for a fresh copy.
func fetchManifest(ctx context.Context, cfg *Config, noCache bool) (*segment.Manifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.OriginURL+segment.ManifestFile, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if noCache {
		req.Header.Set("Cache-Control", "no-cache")
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch: %v", ErrManifest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %s", ErrManifest, req.URL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, segment.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", ErrManifest, err)
	}
	m, err := segment.ParseManifest(data, cfg.ManifestKeys)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if m.ContentID != cfg.Content {
		return nil, fmt.Errorf("%w: the origin's manifest is for %q, not %q", ErrManifest, m.ContentID, cfg.Content)
	}
	return m, nil
}

// chooseRenditions picks the video rendition (by ID, or the highest
// bandwidth within maxBW) and the first audio rendition.
func chooseRenditions(m *segment.Manifest, id string, maxBW int) (video, audio *segment.Rendition, err error) {
	var videos []*segment.Rendition
	for i := range m.Renditions {
		r := &m.Renditions[i]
		switch {
		case r.Type == "audio" && audio == nil:
			audio = r
		case r.Type == "video":
			videos = append(videos, r)
		}
	}
	sort.Slice(videos, func(i, j int) bool { return videos[i].Bandwidth > videos[j].Bandwidth })
	for _, v := range videos {
		if id != "" && v.ID == id {
			return v, audio, nil
		}
		if id == "" && video == nil && (maxBW == 0 || v.Bandwidth <= maxBW) {
			video = v
		}
	}
	if id != "" {
		return nil, nil, fmt.Errorf("%w: no video rendition %q in the manifest", ErrConfig, id)
	}
	if video == nil && len(videos) > 0 {
		video = videos[len(videos)-1] // all above the cap: the lightest
	}
	if video == nil && audio == nil {
		return nil, nil, fmt.Errorf("%w: the manifest has no playable rendition", ErrManifest)
	}
	return video, audio, nil
}

// URL is the local address the platform player opens: clear HLS (ModeClear)
// or the packaged master playlist (ModeEME), behind an unguessable path.
func (s *Session) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String() + s.prefix + "master.m3u8"
}

// DASHURL is the packaged MPD behind the gateway (ModeEME only).
func (s *Session) DASHURL() string {
	if s.ln == nil || s.cfg.Mode != ModeEME {
		return ""
	}
	return "http://" + s.ln.Addr().String() + s.prefix + segment.DASHManifest
}

// Manifest is the verified segment manifest.
func (s *Session) Manifest() *segment.Manifest { return s.m }

// PeerID is this session's libp2p peer ID ("" without P2P).
func (s *Session) PeerID() string {
	if s.host == nil {
		return ""
	}
	return s.host.ID().String()
}

// Host is the session's libp2p host (nil without P2P).
func (s *Session) Host() *transport.Host { return s.host }

// Close stops serving and fetching, wipes the keys, leaves the swarm and
// closes the host the session made. It is safe to call more than once.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := s.srv.Shutdown(ctx); err != nil {
				s.srv.Close()
			}
			cancel()
		}
		s.cancel()
		s.schedMu.Lock()
		for _, sc := range s.scheds {
			sc.Close()
		}
		s.schedMu.Unlock()
		s.wg.Wait()
		if s.keys != nil {
			s.keys.wipe()
		}
		if s.swarm != nil {
			errs = append(errs, s.swarm.Close())
		}
		if s.own && s.host != nil {
			errs = append(errs, s.host.Close())
		}
		if s.store != nil {
			errs = append(errs, s.store.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
