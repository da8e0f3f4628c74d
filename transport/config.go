package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures NewHost. The zero value is a usable host with an
// ephemeral identity listening on all interfaces.
type Config struct {
	// IdentityFile holds the host's persistent Ed25519 libp2p key; it is
	// created (mode 0600) when missing. Empty: a new key per process, so the
	// peer ID and any ticket naming it die with the process.
	IdentityFile string
	// ListenAddrs are multiaddrs to listen on. Empty:
	// /ip4/0.0.0.0/tcp/0 and /ip4/0.0.0.0/udp/0/quic-v1.
	ListenAddrs []string
	// Security picks the secure channels offered on TCP, in order of
	// preference: "noise+tls" (empty: the default), "tls+noise", "tls" or
	// "noise". QUIC always uses its own TLS 1.3.
	Security string
	// Limits are the resource manager's hard ceilings; zero fields take the
	// set-top-box defaults listed on Limits.
	Limits Limits
	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh connections it trims back to ConnLow, unadmitted peers first.
	// Zero: 32 and 64.
	ConnLow, ConnHigh int
	// AdmissionGrace is how long a connected peer has to present a valid
	// ticket for a content this host has joined before it is disconnected
	// and refused for EvictFor. Zero: 5 s. Negative: never disconnect
	// unadmitted peers (a DHT-only bootstrap node). Unadmitted peers get no
	// segment byte and no have-map either way. The grace period is counted
	// in real time, like stream deadlines; ticket expiry, bans and
	// evictions follow Now.
	AdmissionGrace time.Duration
	// EvictFor is how long the gater refuses a peer disconnected for lacking
	// admission. Zero: 1 min.
	EvictFor time.Duration
	// BanFor is how long a peer that sent bad bytes is refused. Zero: for the
	// session, until Close.
	BanFor time.Duration
	// StreamTimeout is the deadline on every protocol stream (plus the time
	// the upload rate limit needs for the file). Zero: 30 s.
	StreamTimeout time.Duration
	// IdleTimeout is how long a Fetch waits for the next byte (the response
	// header, or more of the file) before it gives up on the peer. A peer
	// killed without closing its QUIC connection is otherwise noticed only
	// at QUIC's 30 s idle timeout. Zero: 5 s.
	IdleTimeout time.Duration
	// NegotiationTimeout is how long an inbound stream may stay without a
	// protocol (multistream negotiation not finished) before it is reset.
	// Such streams sit in the resource manager's transient scope, a quarter
	// of Limits.Streams shared by everyone, so a few peers holding idle ones
	// would block every new stream; libp2p itself waits 10 s. A peer whose
	// streams are reset for this IdleStreamStrikes times while that scope is
	// at least half full is banned. Zero: 2 s. Negative: leave it to libp2p.
	NegotiationTimeout time.Duration
	// IdleStreamStrikes is how many streams of one peer may be reset by
	// NegotiationTimeout before the peer is banned (BanFor). Zero: 4.
	IdleStreamStrikes int
	// BrowserTransports adds the WebTransport and WebRTC-direct transports
	// and, for every QUIC listen address, a WebTransport listener on the same
	// UDP port and a WebRTC-direct listener, so browsers can dial the host
	// (see browser.go). Browser peers are admitted by ticket like any other.
	BrowserTransports bool
	// MDNS enables discovery on the local network (service "sealmesh").
	MDNS bool
	// DHT enables the private Kademlia DHT (protocol prefix /sealmesh) in
	// server mode, bootstrapped from Bootstrap.
	DHT bool
	// Bootstrap are DHT bootstrap peers (seed nodes). They are dialled at
	// start and never disconnected for lacking a ticket, though, like any
	// peer, they get no segment byte without one.
	Bootstrap []peer.AddrInfo
	// Registerer receives the host's Prometheus collectors (and libp2p's own).
	// Nil: no Prometheus metrics; Stats still works.
	Registerer prometheus.Registerer
	// Logger receives structured logs. Nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock for admissions, bans and evictions. Nil: time.Now.
	Now func() time.Time
}

// Limits are the resource manager's limits. The defaults are sized for a
// set-top box with a few hundred MiB of RAM that watches one content and
// serves a handful of neighbours.
type Limits struct {
	// Memory is the memory libp2p may reserve in total: yamux windows and
	// fetch buffers (each in-flight Fetch reserves the file's size). Zero:
	// 128 MiB. Over TCP every inbound stream reserves yamux's 256 KiB
	// initial window before any stream limit applies, and go-yamux closes
	// the whole connection when that fails, so Memory must stay well above
	// Streams × 256 KiB (64 MiB for the default 256 streams): with 64 MiB a
	// seed serving 50 downloaders lost connections.
	Memory int64
	// Conns is the hard connection ceiling. It sits above ConnHigh so the
	// connection manager, which trims only above ConnHigh, gets to act
	// before connections are refused. Zero: 96.
	Conns int
	// Streams is the ceiling on open streams: per admitted peer and content
	// two have streams, one ticket exchange and a few transfers. Zero: 256.
	Streams int
	// FD is the file descriptors libp2p may use. Zero: 128.
	FD int
	// PeerMemory is the memory one peer's connections may reserve (yamux
	// windows; fetch buffers count against the host-wide Memory only, so a
	// segment larger than PeerMemory can still be fetched). Zero: 8 MiB.
	PeerMemory int64
	// PeerStreams is the ceiling on one peer's open streams. Zero: 16.
	PeerStreams int
	// PeerConns is the ceiling on one peer's connections (TCP and QUIC, both
	// directions). Zero: 8.
	PeerConns int
}

// Default limits, see Limits.
const (
	DefaultMemory      = 128 << 20
	DefaultConns       = 96
	DefaultStreams     = 256
	DefaultFD          = 128
	DefaultPeerMemory  = 8 << 20
	DefaultPeerStreams = 16
	DefaultPeerConns   = 8
	DefaultConnLow     = 32
	DefaultConnHigh    = 64
	DefaultGrace       = 5 * time.Second
	DefaultEvictFor    = time.Minute
	DefaultTimeout     = 30 * time.Second
	DefaultIdleTimeout = 5 * time.Second

	DefaultNegotiationTimeout = 2 * time.Second
	DefaultIdleStreamStrikes  = 4
)

// withDefaults validates c and returns a copy with zero values filled in.
func (c Config) withDefaults() (Config, error) {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}
	} else {
		c.ListenAddrs = append([]string(nil), c.ListenAddrs...)
	}
	switch c.Security {
	case "":
		c.Security = "noise+tls"
	case "noise+tls", "tls+noise", "tls", "noise":
	default:
		return c, fmt.Errorf("security %q: use noise+tls, tls+noise, tls or noise", c.Security)
	}
	l := &c.Limits
	def64 := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def64(&l.Memory, DefaultMemory)
	def(&l.Conns, DefaultConns)
	def(&l.Streams, DefaultStreams)
	def(&l.FD, DefaultFD)
	def64(&l.PeerMemory, DefaultPeerMemory)
	def(&l.PeerStreams, DefaultPeerStreams)
	def(&l.PeerConns, DefaultPeerConns)
	if l.Memory < 0 || l.Conns < 0 || l.Streams < 0 || l.FD < 0 || l.PeerMemory < 0 || l.PeerStreams < 0 || l.PeerConns < 0 {
		return c, errors.New("resource limits must not be negative")
	}
	def(&c.ConnLow, DefaultConnLow)
	def(&c.ConnHigh, DefaultConnHigh)
	if c.ConnLow < 0 || c.ConnHigh < c.ConnLow {
		return c, fmt.Errorf("connection watermarks %d/%d: want 0 <= low <= high", c.ConnLow, c.ConnHigh)
	}
	if c.AdmissionGrace == 0 {
		c.AdmissionGrace = DefaultGrace
	}
	if c.EvictFor <= 0 {
		c.EvictFor = DefaultEvictFor
	}
	if c.BanFor < 0 {
		return c, errors.New("BanFor must not be negative")
	}
	if c.StreamTimeout <= 0 {
		c.StreamTimeout = DefaultTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.NegotiationTimeout == 0 {
		c.NegotiationTimeout = DefaultNegotiationTimeout
	}
	if c.IdleStreamStrikes < 0 {
		return c, errors.New("IdleStreamStrikes must not be negative")
	}
	def(&c.IdleStreamStrikes, DefaultIdleStreamStrikes)
	c.Bootstrap = append([]peer.AddrInfo(nil), c.Bootstrap...)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
