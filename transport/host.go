package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
)

// serviceName is the resource manager service every sealmesh stream is
// attributed to.
const serviceName = "sealmesh"

// Host is a libp2p host that admits peers by swarm ticket and runs one Swarm
// per joined content. It is safe for concurrent use.
type Host struct {
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	h         host.Host
	gater     *gater
	cm        *connmgr.BasicConnMgr
	dht       *dht.IpfsDHT
	mdns      mdns.Service
	collector *collector
	exempt    map[peer.ID]bool // bootstrap peers: never evicted for lacking admission

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dials  chan struct{} // bounds AddPeers' concurrent dials

	mu       sync.Mutex
	closed   bool
	swarms   map[string]*Swarm
	pending  map[peer.ID]time.Time                        // connected, admitted nowhere, since
	dialing  map[peer.ID]bool                             // AddPeers dials under way
	inflight map[peer.ID]map[*context.CancelFunc]struct{} // Fetches per peer, cancelled on ban

	bans      atomic.Int64 // peers banned, total
	evictions atomic.Int64 // peers evicted for lacking admission, total

	idleResets  atomic.Int64           // inbound streams reset for not negotiating a protocol, total
	idleStrikes map[peer.ID]idleStrike // per peer; only the reaper goroutine touches it

	closeOnce sync.Once
	closeErr  error
}

// NewHost starts a libp2p host: TCP and QUIC, Noise and TLS 1.3, yamux, the
// resource manager with cfg.Limits, the connection manager, the ticket gater,
// and the ticket, segment and have protocols. It joins no content yet; see
// Join. ctx bounds the start only; Close stops the host.
func NewHost(ctx context.Context, cfg Config) (*Host, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	var sk crypto.PrivKey
	if cfg.IdentityFile != "" {
		if sk, err = LoadIdentity(cfg.IdentityFile); err != nil {
			return nil, fmt.Errorf("transport: %w", err)
		}
	} else if sk, _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
		return nil, fmt.Errorf("transport: identity: %w", err)
	}
	rm, err := newResourceManager(cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("transport: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("transport: connection manager: %w", err)
	}
	g := newGater(cfg.Now)
	opts, err := libp2pOptions(cfg, sk, rm, cm, g)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("transport: %w", err)
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("transport: start libp2p: %w", err)
	}
	if err := listenBrowser(cfg, lh); err != nil {
		lh.Close()
		return nil, fmt.Errorf("transport: %w", err)
	}
	hctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		cfg:      cfg,
		log:      cfg.Logger.With("peer", lh.ID().String()),
		now:      cfg.Now,
		h:        lh,
		gater:    g,
		cm:       cm,
		exempt:   make(map[peer.ID]bool),
		ctx:      hctx,
		cancel:   cancel,
		dials:    make(chan struct{}, 8),
		swarms:   make(map[string]*Swarm),
		pending:  make(map[peer.ID]time.Time),
		dialing:  make(map[peer.ID]bool),
		inflight: make(map[peer.ID]map[*context.CancelFunc]struct{}),

		idleStrikes: make(map[peer.ID]idleStrike),
	}
	for _, b := range cfg.Bootstrap {
		h.exempt[b.ID] = true
	}
	lh.SetStreamHandler(TicketProtocol, h.handleTicket)
	lh.SetStreamHandler(SegmentProtocol, h.handleSegment)
	lh.SetStreamHandler(HaveProtocol, h.handleHave)
	lh.Network().Notify(&network.NotifyBundle{ConnectedF: h.connected, DisconnectedF: h.disconnected})

	if cfg.Registerer != nil {
		h.collector = newCollector(h)
		if err := cfg.Registerer.Register(h.collector); err != nil {
			h.Close()
			return nil, fmt.Errorf("transport: register metrics: %w", err)
		}
	}
	if err := h.startDiscovery(ctx); err != nil {
		h.Close()
		return nil, fmt.Errorf("transport: %w", err)
	}
	h.wg.Add(1)
	go h.janitor()
	if cfg.NegotiationTimeout > 0 {
		h.wg.Add(1)
		go h.reapUnnegotiated()
	}
	return h, nil
}

func libp2pOptions(cfg Config, sk crypto.PrivKey, rm network.ResourceManager, cm *connmgr.BasicConnMgr, g *gater) ([]libp2p.Option, error) {
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcpTransport()),
		libp2p.Transport(quicTransport()),
		libp2p.Muxer(yamuxID, yamuxTransport()),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(g),
		// A set-top box relays nothing for strangers and is reached directly
		// or not at all.
		libp2p.DisableRelay(),
	}
	sec, err := securityOptions(cfg.Security)
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	opts = append(opts, browserOptions(cfg)...)
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	return opts, nil
}

// ID returns the host's peer ID.
func (h *Host) ID() peer.ID { return h.h.ID() }

// Addrs returns the addresses the host listens on (without /p2p/ID).
func (h *Host) Addrs() []ma.Multiaddr { return h.h.Addrs() }

// AddrInfo returns the host's ID and addresses, as peers dial it.
func (h *Host) AddrInfo() peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

// LibP2P returns the underlying libp2p host, for benchmarks and diagnostics.
// Streams opened on it bypass nothing: the sealmesh handlers check admission
// whoever dials them.
func (h *Host) LibP2P() host.Host { return h.h }

// Connect dials p unless it is connected already. It fails for a banned or
// recently evicted peer.
func (h *Host) Connect(ctx context.Context, p peer.AddrInfo) error {
	if h.isClosed() {
		return ErrClosed
	}
	if refused, banned := h.gater.state(p.ID); refused {
		if banned {
			return fmt.Errorf("connect %s: %w", p.ID, ErrPeerBanned)
		}
		return fmt.Errorf("connect %s: peer recently evicted", p.ID)
	}
	if err := h.h.Connect(ctx, p); err != nil {
		return fmt.Errorf("connect %s: %w", p.ID, err)
	}
	return nil
}

// AddPeers records discovered peers and dials those not yet connected, in
// the background and a few at a time. Banned, evicted and known peers are
// skipped. Discovered peers still need a ticket to get anything.
func (h *Host) AddPeers(peers []peer.AddrInfo) {
	for _, p := range peers {
		if p.ID == "" || p.ID == h.ID() || len(p.Addrs) == 0 || h.gater.refused(p.ID) {
			continue
		}
		h.h.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.AddressTTL)
		if h.h.Network().Connectedness(p.ID) == network.Connected {
			continue
		}
		h.mu.Lock()
		if h.closed || h.dialing[p.ID] {
			h.mu.Unlock()
			continue
		}
		h.dialing[p.ID] = true
		h.wg.Add(1)
		h.mu.Unlock()
		go func(p peer.AddrInfo) {
			defer h.wg.Done()
			defer func() {
				h.mu.Lock()
				delete(h.dialing, p.ID)
				h.mu.Unlock()
			}()
			select {
			case h.dials <- struct{}{}:
				defer func() { <-h.dials }()
			case <-h.ctx.Done():
				return
			}
			ctx, cancel := context.WithTimeout(h.ctx, 15*time.Second)
			defer cancel()
			if err := h.Connect(ctx, p); err != nil {
				h.log.Debug("dial discovered peer", "remote", p.ID.String(), "err", err)
			}
		}(p)
	}
}

// Ban refuses p for cfg.BanFor (zero: the session), closes its connections,
// cancels its in-flight fetches and forgets its admissions and have-maps.
// Fetch calls it for a peer that sent bad bytes; a scheduler may call it too.
func (h *Host) Ban(p peer.ID, reason string) {
	if p == h.ID() {
		return
	}
	var until time.Time
	if h.cfg.BanFor > 0 {
		until = h.now().Add(h.cfg.BanFor)
	}
	already := h.gater.isBanned(p)
	h.gater.ban(p, until)
	if !already {
		h.bans.Add(1)
		h.log.Warn("peer banned", "remote", p.String(), "reason", reason)
	}
	h.mu.Lock()
	for c := range h.inflight[p] {
		(*c)()
	}
	delete(h.pending, p)
	swarms := h.swarmList()
	h.mu.Unlock()
	for _, s := range swarms {
		s.dropPeer(p)
	}
	_ = h.h.Network().ClosePeer(p)
}

// Banned reports whether p is banned now.
func (h *Host) Banned(p peer.ID) bool { return h.gater.isBanned(p) }

// trackFetch registers cancel as an in-flight fetch from p; the returned
// func unregisters it.
func (h *Host) trackFetch(p peer.ID, cancel *context.CancelFunc) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.inflight[p]
	if m == nil {
		m = make(map[*context.CancelFunc]struct{})
		h.inflight[p] = m
	}
	m[cancel] = struct{}{}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.inflight[p], cancel)
		if len(h.inflight[p]) == 0 {
			delete(h.inflight, p)
		}
	}
}

func (h *Host) swarm(content string) *Swarm {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.swarms[content]
}

// swarmList returns the joined swarms; h.mu must be held.
func (h *Host) swarmList() []*Swarm {
	out := make([]*Swarm, 0, len(h.swarms))
	for _, s := range h.swarms {
		out = append(out, s)
	}
	return out
}

func (h *Host) swarmsSnapshot() []*Swarm {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.swarmList()
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Close stops the swarms (their have streams and discovery loops), then
// discovery, then the libp2p host. It is idempotent; later calls return the
// first call's error.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		swarms := h.swarmList()
		h.mu.Unlock()
		for _, s := range swarms {
			s.Close()
		}
		h.cancel()
		var errs []error
		if h.mdns != nil {
			errs = append(errs, h.mdns.Close())
		}
		if h.dht != nil {
			errs = append(errs, h.dht.Close())
		}
		h.wg.Wait()
		if h.collector != nil {
			h.cfg.Registerer.Unregister(h.collector)
		}
		errs = append(errs, h.h.Close())
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}
