package transport

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
)

const yamuxID = yamux.ID

func quicTransport() any                  { return quic.NewTransport }
func yamuxTransport() network.Multiplexer { return yamux.DefaultTransport }

// securityOptions returns the secure channels offered on TCP in preference
// order. Both authenticate the remote peer ID, which admission relies on.
func securityOptions(s string) ([]libp2p.Option, error) {
	n := libp2p.Security(noise.ID, noise.New)
	t := libp2p.Security(tls.ID, tls.New)
	switch s {
	case "noise+tls":
		return []libp2p.Option{n, t}, nil
	case "tls+noise":
		return []libp2p.Option{t, n}, nil
	case "tls":
		return []libp2p.Option{t}, nil
	case "noise":
		return []libp2p.Option{n}, nil
	}
	return nil, fmt.Errorf("security %q", s)
}

// newResourceManager builds a fixed limiter from libp2p's defaults scaled to
// l.Memory and l.FD, with the system, transient and per-peer scopes capped
// at l's values, behind the per-source budgets of in (inbound.go).
func newResourceManager(l Limits, in *inboundLimiter) (network.ResourceManager, error) {
	rm, err := newFixedResourceManager(l)
	if err != nil {
		return nil, err
	}
	return &limitedRcmgr{ResourceManager: rm, l: in}, nil
}

func newFixedResourceManager(l Limits) (network.ResourceManager, error) {
	base := rcmgr.DefaultLimits.Scale(l.Memory, l.FD)
	lv := func(n int) rcmgr.LimitVal { return rcmgr.LimitVal(n) }
	lv64 := func(n int64) rcmgr.LimitVal64 { return rcmgr.LimitVal64(n) }
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: lv(l.Conns), ConnsInbound: lv(l.Conns), ConnsOutbound: lv(l.Conns),
			Streams: lv(l.Streams), StreamsInbound: lv(l.Streams), StreamsOutbound: lv(l.Streams),
			FD: lv(l.FD), Memory: lv64(l.Memory),
		},
		// Connections and streams not yet attributed to a peer or protocol
		// (handshakes, multistream negotiation) get a quarter, so a flood of
		// half-open connections cannot take the whole budget.
		Transient: rcmgr.ResourceLimits{
			Conns: lv(max(l.Conns/4, 1)), ConnsInbound: lv(max(l.Conns/4, 1)), ConnsOutbound: lv(max(l.Conns/4, 1)),
			Streams: lv(max(l.Streams/4, 1)), StreamsInbound: lv(max(l.Streams/4, 1)), StreamsOutbound: lv(max(l.Streams/4, 1)),
			FD: lv(max(l.FD/4, 1)), Memory: lv64(max(l.Memory/4, 1)),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns: lv(l.PeerConns), ConnsInbound: lv(l.PeerConns), ConnsOutbound: lv(l.PeerConns),
			Streams: lv(l.PeerStreams), StreamsInbound: lv(l.PeerStreams), StreamsOutbound: lv(l.PeerStreams),
			Memory: lv64(l.PeerMemory),
		},
		// Fetch buffers are reserved in the sealmesh service scope, which is
		// bounded by the system memory only.
		Service: map[string]rcmgr.ResourceLimits{
			serviceName: {
				Streams: lv(l.Streams), StreamsInbound: lv(l.Streams), StreamsOutbound: lv(l.Streams),
				Memory: lv64(l.Memory),
			},
		},
		// Per peer, the sealmesh service gets the peer's stream budget.
		ServicePeer: map[string]rcmgr.ResourceLimits{
			serviceName: {
				Streams: lv(l.PeerStreams), StreamsInbound: lv(l.PeerStreams), StreamsOutbound: lv(l.PeerStreams),
				Memory: lv64(l.PeerMemory),
			},
		},
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(base)))
}
