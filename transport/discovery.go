package transport

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
)

// Tracker is the license server's peer list (/v1/announce), wired by
// cmd/player. Announce registers this host's addrs for content (the
// implementation proves to the server that the announce is this host's own,
// with its libp2p key) and returns other peers in the swarm. It must be safe
// for concurrent use.
type Tracker interface {
	Announce(ctx context.Context, content string, addrs []ma.Multiaddr) (TrackerAnswer, error)
}

// TrackerAnswer is what an announce returns.
type TrackerAnswer struct {
	// Peers to dial.
	Peers []peer.AddrInfo
	// Revoked are peers whose entitlement the license server revoked while
	// their ticket is still valid: the swarm drops their admission and
	// disconnects them, and refuses their tickets for a while (L5: seeds
	// learn revocations within one TrackerInterval, not one ticket lifetime).
	Revoked []peer.ID
}

// MDNSService is the mDNS service name sealmesh hosts advertise.
const MDNSService = "sealmesh"

// DHTPrefix is the private Kademlia DHT's protocol prefix: sealmesh peers do
// not join the public IPFS DHT.
const DHTPrefix = "/sealmesh"

type mdnsNotifee struct{ h *Host }

func (n mdnsNotifee) HandlePeerFound(p peer.AddrInfo) { n.h.AddPeers([]peer.AddrInfo{p}) }

func (h *Host) startDiscovery(ctx context.Context) error {
	if h.cfg.MDNS {
		h.mdns = mdns.NewMdnsService(h.h, MDNSService, mdnsNotifee{h})
		if err := h.mdns.Start(); err != nil {
			return fmt.Errorf("start mDNS: %w", err)
		}
	}
	if h.cfg.DHT {
		// Server mode: set-top boxes behind NAT still answer the peers that
		// reach them, and a swarm of a few hundred boxes needs every one of
		// them to hold records. Values are off: only provider records are used.
		d, err := dht.New(h.h,
			dht.ProtocolPrefix(DHTPrefix),
			dht.Mode(dht.ModeServer),
			dht.DisableValues(),
			dht.BootstrapPeers(h.cfg.Bootstrap...),
		)
		if err != nil {
			return fmt.Errorf("start DHT: %w", err)
		}
		h.dht = d
		if err := d.Bootstrap(h.ctx); err != nil {
			return fmt.Errorf("bootstrap DHT: %w", err)
		}
	}
	for _, b := range h.cfg.Bootstrap {
		if err := h.Connect(ctx, b); err != nil {
			h.log.Warn("bootstrap peer unreachable", "remote", b.ID.String(), "err", err)
		}
	}
	return nil
}

// DiscoveryCID is the DHT key under which a content's swarm members
// provide: a raw CIDv1 of the SHA-256 multihash of "sealmesh dht v2\x00" ||
// key, where key is the content's secret discovery key
// (SwarmOptions.DiscoveryKey). It used to be computed from the content ID,
// so anyone could list who held a title; the secret comes only with a
// ticket. DHT nodes that store the record still see which peers provide the
// key, but not which content it stands for.
func DiscoveryCID(key []byte) cid.Cid {
	mh, err := multihash.Sum(append([]byte("sealmesh dht v2\x00"), key...), multihash.SHA2_256, -1)
	if err != nil {
		panic(err) // SHA2_256 is always registered
	}
	return cid.NewCidV1(cid.Raw, mh)
}

func (s *Swarm) startDiscovery() {
	if s.opts.Tracker != nil {
		s.wg.Add(1)
		go s.trackerLoop()
	}
	if s.h.dht != nil && len(s.opts.DiscoveryKey) > 0 {
		s.wg.Add(1)
		go s.dhtLoop()
	} else if s.h.dht != nil {
		s.log.Info("no discovery key for this content: not using the DHT for it")
	}
}

func (s *Swarm) trackerLoop() {
	defer s.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.h.cfg.StreamTimeout)
		ans, err := s.opts.Tracker.Announce(ctx, s.content, s.h.Addrs())
		cancel()
		if err != nil {
			s.log.Warn("tracker announce", "err", err)
		} else {
			s.revokePeers(ans.Revoked)
			s.h.AddPeers(ans.Peers)
		}
		t.Reset(s.opts.TrackerInterval)
	}
}

// dhtLoop publishes a provider record for the content and looks up the
// other providers every DiscoveryInterval, re-publishing every tenth round
// (and every round until the first publication succeeds).
func (s *Swarm) dhtLoop() {
	defer s.wg.Done()
	key := DiscoveryCID(s.opts.DiscoveryKey)
	t := time.NewTimer(0)
	defer t.Stop()
	for round := 0; ; round++ {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.h.cfg.StreamTimeout)
		if round%10 == 0 {
			if err := s.h.dht.Provide(ctx, key, true); err != nil {
				s.log.Debug("DHT provide", "err", err)
				round = -1 // retry next round
			}
		}
		var found []peer.AddrInfo
		for ai := range s.h.dht.FindProvidersAsync(ctx, key, 20) {
			if ai.ID != s.h.ID() {
				found = append(found, ai)
			}
		}
		cancel()
		s.h.AddPeers(found)
		t.Reset(s.opts.DiscoveryInterval)
	}
}
