package transport

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Inbound budgets per source, in front of the resource manager.
//
// The resource manager's scopes are shared: every handshake of every
// stranger draws on one transient scope (a quarter of Limits.Conns), and
// every connected peer, ticket or not, on the system's connection and
// stream slots. go-libp2p's own per-IP limits exempt loopback and do not
// tell a connection that is still handshaking, or whose peer has shown no
// ticket, from one that is serving. The limiter below does: it counts, per
// source address and per subnet, the connections in each of those two
// states and refuses the one over budget before the resource manager sees
// it, and it keeps a peer without an admission to a few streams of the
// ticket protocol. The rest of the budget stays for other sources and for
// admitted peers.

// errInboundBudget is wrapped by the limiter's refusals; it wraps the
// resource manager's own error, so libp2p treats it as one.
var errInboundBudget = fmt.Errorf("transport: inbound budget: %w", network.ErrResourceLimitExceeded)

// unadmittedProtocols are the protocols a peer without an admission may
// choose: the ticket exchange, and libp2p identify, which every connection
// runs at once in both directions and whose handler only writes (the
// dialer learns its observed address from it).
var unadmittedProtocols = map[protocol.ID]bool{
	TicketProtocol:   true,
	"/ipfs/id/1.0.0": true,
}

// sourceOf returns the budget keys of a remote address: the address (IPv6:
// its /64) and its subnet (/24, IPv6: /56). ok is false for a non-IP
// address (a relay circuit, which this host does not accept) and, unless
// limitLoopback, for loopback.
func sourceOf(a ma.Multiaddr, limitLoopback bool) (ip, subnet netip.Prefix, ok bool) {
	if a == nil {
		return ip, subnet, false
	}
	nip, err := manet.ToIP(a)
	if err != nil {
		return ip, subnet, false
	}
	addr, okAddr := netip.AddrFromSlice(nip)
	if !okAddr {
		return ip, subnet, false
	}
	addr = addr.Unmap()
	if addr.IsLoopback() && !limitLoopback {
		return ip, subnet, false
	}
	if addr.Is4() {
		ip, _ = addr.Prefix(32)
		subnet, _ = addr.Prefix(24)
	} else {
		ip, _ = addr.Prefix(64)
		subnet, _ = addr.Prefix(56)
	}
	return ip, subnet, true
}

// inboundLimiter holds the per-source budgets. It is created with the
// resource manager, before the Host; until the Host calls setPolicy every
// peer counts as admitted (nothing joined, nothing to protect).
type inboundLimiter struct {
	lim Limits

	// restricted reports whether p is held to the unadmitted budgets now:
	// the host has joined a content, evicts unadmitted peers, and p is
	// neither admitted nor exempt.
	restricted atomic.Pointer[func(peer.ID) bool]

	mu         sync.Mutex
	handshakes map[netip.Prefix]int                       // by source and by subnet
	unadmitted map[netip.Prefix]int                       // by source and by subnet
	waiting    map[peer.ID]map[*limitedConnScope]struct{} // connections counted in unadmitted
	streams    map[peer.ID]int                            // inbound streams of restricted peers

	refusedHandshakes, refusedUnadmitted, refusedStreams atomic.Int64
}

func newInboundLimiter(l Limits) *inboundLimiter {
	return &inboundLimiter{
		lim:        l,
		handshakes: make(map[netip.Prefix]int),
		unadmitted: make(map[netip.Prefix]int),
		waiting:    make(map[peer.ID]map[*limitedConnScope]struct{}),
		streams:    make(map[peer.ID]int),
	}
}

func (l *inboundLimiter) setPolicy(restricted func(peer.ID) bool) { l.restricted.Store(&restricted) }

func (l *inboundLimiter) isRestricted(p peer.ID) bool {
	f := l.restricted.Load()
	return f != nil && (*f)(p)
}

// take adds one to m at ip and subnet unless that passes perIP or
// perSubnet (negative: unbounded). l.mu must be held.
func take(m map[netip.Prefix]int, ip, subnet netip.Prefix, perIP, perSubnet int) bool {
	if (perIP >= 0 && m[ip] >= perIP) || (perSubnet >= 0 && m[subnet] >= perSubnet) {
		return false
	}
	m[ip]++
	m[subnet]++
	return true
}

// give undoes take. l.mu must be held.
func give(m map[netip.Prefix]int, ip, subnet netip.Prefix) {
	for _, k := range [2]netip.Prefix{ip, subnet} {
		if m[k] <= 1 {
			delete(m, k)
		} else {
			m[k]--
		}
	}
}

// admitted is called when p is admitted: its connections leave the
// unadmitted budget of their sources.
func (l *inboundLimiter) admitted(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.waiting[p] {
		give(l.unadmitted, c.ip, c.subnet)
		c.state = connFree
	}
	delete(l.waiting, p)
}

// Connection states of a limitedConnScope.
const (
	connHandshaking = iota // counted in handshakes
	connUnadmitted         // counted in unadmitted and waiting
	connFree               // counted nowhere (admitted, refused or done)
)

// limitedConnScope follows one inbound connection through the budgets.
type limitedConnScope struct {
	network.ConnManagementScope
	l          *inboundLimiter
	ip, subnet netip.Prefix
	state      int // guarded by l.mu
	p          peer.ID
}

// SetPeer is called once the security handshake has authenticated p: the
// connection leaves the handshake budget and, if p holds no admission,
// enters the unadmitted one or is refused.
func (c *limitedConnScope) SetPeer(p peer.ID) error {
	restricted := c.l.isRestricted(p)
	c.l.mu.Lock()
	if c.state == connHandshaking {
		give(c.l.handshakes, c.ip, c.subnet)
		c.state = connFree
		if restricted {
			if !take(c.l.unadmitted, c.ip, c.subnet, c.l.lim.UnadmittedPerIP, c.l.lim.UnadmittedPerSubnet) {
				c.l.mu.Unlock()
				c.l.refusedUnadmitted.Add(1)
				return fmt.Errorf("%w: too many connections without a ticket from %s", errInboundBudget, c.subnet)
			}
			c.state, c.p = connUnadmitted, p
			w := c.l.waiting[p]
			if w == nil {
				w = make(map[*limitedConnScope]struct{})
				c.l.waiting[p] = w
			}
			w[c] = struct{}{}
		}
	}
	c.l.mu.Unlock()
	if restricted && !c.l.isRestricted(p) {
		c.l.admitted(p) // admitted meanwhile, on another connection
	}
	if err := c.ConnManagementScope.SetPeer(p); err != nil {
		c.release()
		return err
	}
	return nil
}

// Done releases whatever the connection holds. It is idempotent, like the
// resource manager's.
func (c *limitedConnScope) Done() {
	c.release()
	c.ConnManagementScope.Done()
}

func (c *limitedConnScope) release() {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	switch c.state {
	case connHandshaking:
		give(c.l.handshakes, c.ip, c.subnet)
	case connUnadmitted:
		give(c.l.unadmitted, c.ip, c.subnet)
		if w := c.l.waiting[c.p]; w != nil {
			delete(w, c)
			if len(w) == 0 {
				delete(c.l.waiting, c.p)
			}
		}
	}
	c.state = connFree
}

// limitedStreamScope is an inbound stream of a restricted peer.
type limitedStreamScope struct {
	network.StreamManagementScope
	l    *inboundLimiter
	p    peer.ID
	once sync.Once
}

// SetProtocol refuses any protocol but the ticket exchange (and identify)
// while the peer holds no admission; libp2p then resets the stream before
// any handler runs.
func (s *limitedStreamScope) SetProtocol(proto protocol.ID) error {
	if !unadmittedProtocols[proto] && s.l.isRestricted(s.p) {
		s.l.refusedStreams.Add(1)
		return fmt.Errorf("%w: %s before a ticket", errInboundBudget, proto)
	}
	return s.StreamManagementScope.SetProtocol(proto)
}

func (s *limitedStreamScope) Done() {
	s.once.Do(func() {
		s.l.mu.Lock()
		if s.l.streams[s.p] <= 1 {
			delete(s.l.streams, s.p)
		} else {
			s.l.streams[s.p]--
		}
		s.l.mu.Unlock()
	})
	s.StreamManagementScope.Done()
}

// limitedRcmgr is the resource manager with the limiter in front.
type limitedRcmgr struct {
	network.ResourceManager
	l *inboundLimiter
}

var (
	_ network.ResourceManager = (*limitedRcmgr)(nil)
	_ connmgr.GetConnLimiter  = (*limitedRcmgr)(nil)
)

// OpenConnection counts an inbound connection against its source's
// handshake budget before the resource manager gives it a transient slot.
func (r *limitedRcmgr) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	if dir != network.DirInbound {
		return r.ResourceManager.OpenConnection(dir, usefd, endpoint)
	}
	ip, subnet, ok := sourceOf(endpoint, r.l.lim.LimitLoopback)
	if !ok {
		return r.ResourceManager.OpenConnection(dir, usefd, endpoint)
	}
	r.l.mu.Lock()
	ok = take(r.l.handshakes, ip, subnet, r.l.lim.HandshakesPerIP, r.l.lim.HandshakesPerSubnet)
	r.l.mu.Unlock()
	if !ok {
		r.l.refusedHandshakes.Add(1)
		return nil, fmt.Errorf("%w: too many handshakes from %s", errInboundBudget, subnet)
	}
	sc, err := r.ResourceManager.OpenConnection(dir, usefd, endpoint)
	if err != nil {
		r.l.mu.Lock()
		give(r.l.handshakes, ip, subnet)
		r.l.mu.Unlock()
		return nil, err
	}
	return &limitedConnScope{ConnManagementScope: sc, l: r.l, ip: ip, subnet: subnet}, nil
}

// OpenStream holds a restricted peer to UnadmittedStreams inbound streams.
func (r *limitedRcmgr) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	if dir != network.DirInbound || !r.l.isRestricted(p) {
		return r.ResourceManager.OpenStream(p, dir)
	}
	r.l.mu.Lock()
	if r.l.streams[p] >= r.l.lim.UnadmittedStreams {
		r.l.mu.Unlock()
		r.l.refusedStreams.Add(1)
		return nil, fmt.Errorf("%w: %d streams open before a ticket", errInboundBudget, r.l.lim.UnadmittedStreams)
	}
	r.l.streams[p]++
	r.l.mu.Unlock()
	sc, err := r.ResourceManager.OpenStream(p, dir)
	if err != nil {
		r.l.mu.Lock()
		if r.l.streams[p] <= 1 {
			delete(r.l.streams, p)
		} else {
			r.l.streams[p]--
		}
		r.l.mu.Unlock()
		return nil, err
	}
	return &limitedStreamScope{StreamManagementScope: sc, l: r.l, p: p}, nil
}

// GetConnLimit lets libp2p check the connection manager's watermarks
// against the resource manager's limit, as it does without the wrapper.
func (r *limitedRcmgr) GetConnLimit() int {
	if g, ok := r.ResourceManager.(connmgr.GetConnLimiter); ok {
		return g.GetConnLimit()
	}
	return 0
}
