package transport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	webtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"
	ma "github.com/multiformats/go-multiaddr"
)

// Browser transports (Config.BrowserTransports).
//
// A browser cannot open TCP or raw QUIC connections; it reaches a Go host
// over WebTransport (HTTP/3 on the QUIC port, the host's self-signed
// certificate pinned by the /certhash components of its address) or
// WebRTC-direct (DTLS fingerprint pinned by /certhash). Both authenticate
// the remote peer ID with a Noise handshake inside the session, so the
// ticket protocol, admission, the gater and the resource manager apply to
// browser connections exactly as to TCP and QUIC ones: a browser is just a
// peer ID that must present a ticket naming it.

// browserListenAddrs returns, for every bound QUIC address in addrs
// (".../udp/N/quic-v1"), the WebTransport address on the same UDP port
// (".../udp/N/quic-v1/webtransport") and the WebRTC-direct one
// (".../udp/N/webrtc-direct"). go-libp2p's quicreuse demultiplexes the three
// on one socket, so a host behind a firewall opens one UDP port for all.
// Addresses already in addrs are not repeated.
func browserListenAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	have := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		have[a.String()] = true
	}
	var out []ma.Multiaddr
	for _, a := range addrs {
		base, ok := strings.CutSuffix(a.String(), "/quic-v1")
		if !ok {
			continue
		}
		for _, s := range []string{a.String() + "/webtransport", base + "/webrtc-direct"} {
			m, err := ma.NewMultiaddr(s)
			if err == nil && !have[s] {
				have[s] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// browserOptions adds the WebTransport and WebRTC-direct transports when
// cfg.BrowserTransports is set; listenBrowser starts their listeners.
func browserOptions(cfg Config) []libp2p.Option {
	if !cfg.BrowserTransports {
		return nil
	}
	return []libp2p.Option{
		libp2p.Transport(webtransport.New),
		libp2p.Transport(libp2pwebrtc.New),
	}
}

// listenBrowser starts the browser listeners on the UDP ports QUIC is bound
// to. It runs after the host started because a configured port 0 is only
// known then.
func listenBrowser(cfg Config, h host.Host) error {
	if !cfg.BrowserTransports {
		return nil
	}
	extra := browserListenAddrs(h.Network().ListenAddresses())
	if len(extra) == 0 {
		return errors.New("browser transports need a QUIC listen address (/udp/N/quic-v1)")
	}
	if err := h.Network().Listen(extra...); err != nil {
		return fmt.Errorf("listen for browsers on %v: %w", extra, err)
	}
	return nil
}
