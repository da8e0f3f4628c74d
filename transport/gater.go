package transport

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater refuses connections to and from banned and recently evicted peers.
// It decides on the peer ID, which is authenticated by the time
// InterceptSecured runs, so a banned peer cannot come back on another address;
// it can come back with another peer ID, but then it needs a ticket naming
// that ID, which the license server hands out per account.
type gater struct {
	now func() time.Time

	mu   sync.Mutex
	deny map[peer.ID]denial
}

type denial struct {
	until  time.Time // zero: for the session (until Host.Close)
	banned bool      // banned for bad bytes, rather than evicted for lacking admission
}

var _ connmgr.ConnectionGater = (*gater)(nil)

func newGater(now func() time.Time) *gater {
	return &gater{now: now, deny: make(map[peer.ID]denial)}
}

// ban refuses p until until (zero: for the session). A ban is never shortened.
func (g *gater) ban(p peer.ID, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, ok := g.deny[p]
	if ok && d.banned && (d.until.IsZero() || (!until.IsZero() && d.until.After(until))) {
		return
	}
	g.deny[p] = denial{until: until, banned: true}
}

// evict refuses p until until, unless it is banned for longer already.
func (g *gater) evict(p peer.ID, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d, ok := g.deny[p]; ok && (d.until.IsZero() || d.until.After(until)) {
		return
	}
	g.deny[p] = denial{until: until}
}

// state reports whether p is refused now, and whether for a ban.
func (g *gater) state(p peer.ID) (refused, banned bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, ok := g.deny[p]
	if !ok {
		return false, false
	}
	if !d.until.IsZero() && !g.now().Before(d.until) {
		delete(g.deny, p)
		return false, false
	}
	return true, d.banned
}

func (g *gater) refused(p peer.ID) bool { r, _ := g.state(p); return r }

func (g *gater) isBanned(p peer.ID) bool { _, b := g.state(p); return b }

func (g *gater) bannedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	n := 0
	for _, d := range g.deny {
		if d.banned && (d.until.IsZero() || now.Before(d.until)) {
			n++
		}
	}
	return n
}

func (g *gater) InterceptPeerDial(p peer.ID) bool             { return !g.refused(p) }
func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.refused(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
