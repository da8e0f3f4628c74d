// Package transport moves CENC ciphertext between viewers over libp2p, and
// gives nothing to a peer that holds no swarm ticket.
//
// Entry points:
//
//   - [NewHost] starts a libp2p host (TCP and QUIC; Noise and TLS 1.3;
//     yamux) with a resource manager sized for a set-top box, a connection
//     manager and a connection gater that refuses banned and evicted peers.
//   - [Host.Join] joins one content's swarm with its signed manifest, a
//     [TicketVerifier], a [TicketSource] and a [Store], and returns a [Swarm].
//   - [Swarm.Fetch] gets one file from one peer, verified against the
//     manifest; [Swarm.Candidates] and [Swarm.Peers] say who has what and
//     how fast it was; [Swarm.Announce] tells peers about a stored file.
//   - [Host.AddPeers] takes peers from any discovery source; [Tracker],
//     mDNS ([Config.MDNS]) and a private Kademlia DHT ([Config.DHT]) feed it.
//   - [Host.Stats] and [Config.Registerer] expose counters.
//   - [Config.BrowserTransports] adds WebTransport and WebRTC-direct
//     listeners on the QUIC port for browser peers (web/, @sealmesh/web),
//     admitted by ticket like any other peer.
//
// Scheduling (which file from which peer, when to fall back to the origin)
// is the caller's job; this package answers "can this peer give me this
// file, and is it right?".
//
// # What transport never sees
//
// Keys. This package imports neither keys nor license (a test checks the
// import graph). Segments stay encrypted end to end through it; tickets are
// opaque bytes, checked through the TicketVerifier interface that cmd and
// player wire to the license server's verifier. No plaintext, key, ticket or
// token is ever logged.
//
// # Admission
//
// The secure channel (Noise or TLS 1.3) authenticates the remote peer ID.
// After each new connection, and for every joined content, the dialer opens
// a TicketProtocol stream and presents its ticket for that content. The
// receiver passes it to TicketVerifier.VerifyTicket with the authenticated
// remote peer ID, and on success records an admission (peer, content,
// expiry, and the ticket's opaque per-account Budget); only then does it
// present its own ticket to the dialer. A host shows its tickets only to a
// peer it dialed or has admitted, never to a connection that has shown
// nothing. A ticket copied off another peer therefore admits nobody (it
// names the wrong ID), and a stranger that dials a seed gets no ticket.
//
// Until admitted to a content, a peer gets no segment byte of it (the
// segment handler answers NotAdmitted before looking at the store) and no
// have-map (ours is sent only to peers we admitted; theirs is read only once
// we admitted them). A peer that is admitted to none of this host's contents
// within Config.AdmissionGrace (5 s) of connecting, whose ticket is rejected,
// or whose admission expires without a renewed ticket, is disconnected and
// refused by the gater for Config.EvictFor (1 min). Bootstrap peers are
// exempt from eviction (not from admission), and a host that joined no
// content evicts nobody (a DHT bootstrap node).
//
// Each swarm asks its TicketSource again once 80% of the current ticket's
// lifetime has passed and, when it gets new bytes, presents them to every
// connected peer it may show them to, which extends the admission.
//
// A Tracker answer may list revoked peers: the swarm drops their admission,
// disconnects them (unless admitted to another content) and refuses their
// tickets for 10 minutes, though those still verify.
//
// Privacy note: a dialer presents before the listener has shown anything.
// The ticket message names the swarm by a tag, and license tickets carry a
// content tag and an opaque budget, not the content ID or an account
// pseudonym, so the listener learns the content only by guessing its ID.
//
// # Wire formats
//
// Integers are big-endian. Every length is checked against its bound before
// anything is allocated; a message over its bound is refused. Content IDs
// follow segment.ValidContentID (1-128 bytes).
//
// TicketProtocol "/sealmesh/ticket/2.0.0", one stream per presentation:
//
//	request:  version u8 (2) | swarm tag (32: SHA-256("sealmesh swarm tag v1\x00" || content))
//	          | ticket length u16 (1..4096) | ticket
//	reply:    status u8: 0 admitted, 1 rejected, 2 content not joined
//
// SegmentProtocol "/sealmesh/segment/1.0.0", one stream per file:
//
//	request:  version u8 (1) | content length u8 | content
//	          | path length u16 (1..512) | path            (at most 1 KiB)
//	response: status u8 | size u64 | size bytes of ciphertext
//	          status 0 OK, 1 not admitted, 2 not found, 3 busy, 4 unknown
//	          content; size is 0 unless status is OK
//
// The requester closes its write side after the request; the server closes
// after the last byte (a FIN, not a reset), so "size bytes then EOF" is the
// only well-formed OK answer.
//
// HaveProtocol "/sealmesh/have/1.0.0", one long-lived stream per admitted
// peer, content and direction, written only by the side that announces:
//
//	hello:    type u8 (1) | version u8 (1) | content length u8 | content
//	          | manifest digest [32] | nbits u32 | bitfield (ceil(nbits/8))
//	have:     type u8 (2) | index u32
//	bitfield: type u8 (3) | nbits u32 | bitfield   (resync after overflow)
//
// Bit i (most significant bit first) stands for file i of the manifest's
// init and media files in segment.Manifest.Files order; playlists are not
// announced. nbits must equal that count, bits past nbits must be zero, and
// an index must be below nbits. The manifest digest is SHA-256 over every
// init and media file's path, size and hash; a peer with another digest
// packaged the content differently and is never asked for files (not
// banned). A peer that sends a malformed have frame is evicted.
//
// # Integrity and banning
//
// Fetch reads at most the manifest's size for the path, then checks size
// and SHA-256 with segment.File.Check before the bytes are stored, served
// or returned. A peer that announces another size, ends the file early with
// a clean FIN, sends bytes past the size, sends bytes that fail the hash, or
// answers with an unknown status or an absurd header is banned for the
// session (Config.BanFor): the gater refuses it, its connections close, its
// other in-flight fetches are cancelled, and the error wraps ErrPeerBanned
// (and segment.ErrIntegrity for bad bytes). Resets, dropped connections,
// timeouts and "busy" are not offences: the fetch fails without a ban and
// the caller tries elsewhere.
//
// The server side checks every file against the manifest before serving it
// (SwarmOptions.TrustStore turns that off), so a rotting cache does not get
// its owner banned, and it serves only files the manifest lists.
//
// # Limits and timeouts
//
//	resource manager (Limits)   128 MiB memory, 96 connections, 256 streams,
//	                            128 FDs; per peer 8 MiB, 16 streams, 8 conns;
//	                            transient scope a quarter of each
//	connection manager          low 32, high 64 (admitted peers tagged)
//	fetch buffers               reserved from the host-wide memory budget
//	                            before allocation, sized by the manifest
//	stream deadline             30 s (StreamTimeout); uploads get extra time
//	                            for the file at 32 KiB/s and the rate limit
//	fetch idle timeout          5 s without a byte (IdleTimeout)
//	protocol negotiation        2 s for an inbound stream to name its
//	                            protocol, then reset; a peer with 4 such
//	                            resets is banned (NegotiationTimeout,
//	                            IdleStreamStrikes)
//	admission grace             5 s; eviction 1 min; ban for the session
//	upload (UploadPolicy)       2 concurrent (then "busy"; urgent requests
//	                            get 1 more and most of the rate), optional shared
//	                            token bucket (MaxRate), consume-only
//
// # Discovery
//
// Discovered peers are only dialled; they still need tickets. A Tracker
// (the license server's /v1/announce) is asked every TrackerInterval. mDNS
// advertises service "sealmesh". The DHT is a private Kademlia network
// (protocol prefix /sealmesh, server mode, provider records only); each
// swarm with a SwarmOptions.DiscoveryKey provides [DiscoveryCID] of that
// key (a per-content secret the license server gives ticket holders only)
// and looks its providers up every DiscoveryInterval, so a swarm keeps
// finding itself when the tracker is down, and strangers cannot compute
// where a title's holders are listed. Peers of different contents
// evict one another after the grace period, so the DHT of a mixed swarm
// relies on bootstrap nodes (exempt) and on peers of the same content.
//
// # Metrics
//
// Host.Stats and Swarm.Stats give bytes fetched (verified) and served,
// failed fetches, banned and admitted peers, per content; Swarm.Peers gives
// them per peer with a throughput EWMA. With Config.Registerer set, the
// same counters are exported as sealmesh_transport_* Prometheus metrics
// (per content, never per peer: peer IDs would make the label set
// unbounded), next to libp2p's own.
//
// # Compatibility
//
// Protocol IDs carry a version; an incompatible change gets a new ID and
// hosts keep speaking the old one for a release. The version byte inside
// segment and hello messages is 1, inside ticket messages 2. Ticket 2.0.0
// replaced 1.0.0 outright: its tickets (license v2, no content ID inside)
// do not verify on a 1.0.0 host anyway.
package transport
