// Package swarmbench runs swarms of sealmesh viewers against an in-process
// control plane and origin (internal/stack) and measures what operators
// choose a peer-assisted CDN on: how much traffic leaves the origin, how fast
// playback starts and whether it stalls. 'sealmesh demo' and
// 'sealmesh-bench swarm' are thin wrappers around it.
//
// # Entry points
//
//   - Peer plays one viewer in this process: a player.Session (license,
//     swarm ticket, libp2p swarm, scheduler, in-memory decryption) consumed
//     by an internal/viewer headless HLS player. The demo uses it directly.
//   - Run runs a whole benchmark (Options: peers, scenario, joins, speed,
//     shaping) and returns a Report: per-viewer results, a summary with the
//     demo's JSON keys, origin egress sampled every second and the
//     scenario's own findings (the poisoner's bans, the leech's bytes).
//   - RunChild is the body of a viewer run as its own OS process (the
//     processes mode), so its peak RSS is its own.
//   - WriteCSV turns reports into a CSV file; the subpackage plots draws
//     them as PNG plots (gonum.org/v1/plot), in a package of its own so that
//     only cmd/sealmesh-bench links the plotting stack, never cmd/sealmesh.
//   - Content writes the bundled clip out of the binary, or generates longer
//     content with ffmpeg, into a cache folder: no repository needed.
//
// # Shaping
//
// Shaping is done inside each viewer, in process, with token buckets: the
// viewer's HTTP client (origin and license server) gets a download cap and
// an added round-trip latency per request, and its swarm gets an upload cap
// (transport.UploadPolicy.MaxRate). Bytes a viewer downloads from peers are
// limited only by the senders' upload caps, not by the receiver's download
// cap, and peer traffic gets no added latency: the player's libp2p host
// offers no hook for either. Nothing here touches the kernel's queues.
//
// # Adversaries
//
// The poisoning peer and the leech are built from transport directly (the
// player SDK has no way to misbehave): the poisoner holds a genuine swarm
// ticket from the license server and serves every file with one bit
// flipped, bypassing the serving-side re-hash with SwarmOptions.TrustStore;
// the leeches hold no ticket, or a genuine ticket that names another peer,
// and ask every viewer for every file.
//
// Nothing here holds key material beyond what a player holds; tokens are
// minted by the stack's development issuer and never printed.
package swarmbench
