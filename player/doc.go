// Package player is the SDK an app embeds to play sealmesh content: it gets
// a license and a swarm ticket from the license server, fetches verified
// ciphertext from peers and the origin, decrypts it in memory, and serves the
// platform player a clear HLS stream on 127.0.0.1.
//
// # Use
//
//	s, err := player.Open(ctx, player.Config{
//		Content:      "film",
//		OriginURL:    "https://cdn.example.com/film/",
//		LicenseURL:   "https://license.example.com",
//		Token:        func(ctx context.Context) (string, error) { return backend.Token(ctx) },
//		LicenseKeys:  []ed25519.PublicKey{licensePub},           // pinned, shipped with the app
//		ManifestKeys: segment.TrustedKeys{manifestKeyID: manifestPub},
//	})
//	if err != nil { ... }           // errors.Is: ErrNoLicense (refused), ErrLicenseUnavailable (server down: retry later)
//	defer s.Close()
//	platformPlayer.Open(s.URL())   // http://127.0.0.1:PORT/<128-bit secret>/master.m3u8
//	st := s.Stats()                 // start-up time, stalls, bytes per source, peers
//
// Open fails unless the license server grants a license: without one no
// byte is ever decrypted. Its error wraps ErrNoLicense when the server
// refused (or its answer did not verify) and ErrLicenseUnavailable when it
// could not be reached or failed, with the cause kept for errors.Is/As.
//
// The session renews the license at the license's renew-after time and asks
// for the keys of the next crypto periods as playback moves on (by playback
// position, or by KIDs from the manifest when the server has no catalog of
// period start times). A failed renewal is retried with jittered exponential
// backoff, never sooner than the server's Retry-After (Config.LicenseRetry),
// logged, and shown in Stats (LicenseErr, NextRenewal, RenewFailures); a
// session that lapsed meanwhile is replaced by a new license. While a
// license lacks a segment's key the gateway answers with a JSON body: 503
// with Retry-After while the server is only unavailable (the platform
// player should retry; playback resumes once a renewal succeeds), 403 when
// the server refused. Either way nothing is decrypted without a valid
// license.
//
// # What is protected how
//
//   - The segment manifest is fetched from the origin and verified against
//     ManifestKeys before anything else; every file from a peer, the origin
//     or the cache is checked against it before it is stored, relayed or
//     decrypted, and a peer that sends bad bytes is banned for the session.
//   - An older manifest of the content, validly signed but replaced since,
//     is refused: its digest is not the one the license names, and its
//     sequence number is lower than one the History has seen.
//   - Licenses and tickets are verified against LicenseKeys. Pin both key
//     sets: keys that are not pinned are fetched from the license server
//     over https only (over http only with InsecureHTTPTrustAnchors).
//     Content keys live in memory only, are wiped when a license is
//     replaced and on Close, and are never logged.
//   - Decrypted media exists only in memory and on the loopback connection to
//     the platform player, behind an unguessable path; Listen must be a
//     loopback address. The cache (CacheDir) holds ciphertext only.
//   - Other peers must present a ticket from the same license server naming
//     their peer ID before they get a byte (package transport).
//
// # Modes
//
// ModeClear (the default) serves decrypted fMP4 HLS for players without DRM
// (ffplay, VLC, mpv, a native player). ModeEME serves the packaged
// ciphertext playlists (HLS and DASH) and segments from the swarm, and the
// browser player (Shaka Player, hls.js) gets its keys from the license
// server's W3C Clear Key endpoint itself. SeedOnly fetches and serves
// ciphertext without any license: an edge box that holds no key.
//
// # Playback model
//
// The gateway cannot see the platform player's clock, so it models it:
// playback starts when the first media segment is served, content time then
// advances at Speed, and it cannot pass the end of what has been served.
// Reaching that end is a stall, ended by the next segment; Stats counts a
// stall while it lasts (Stalled), whatever held the segment back (peers,
// the origin, or keys the license server could not renew). The scheduler
// fetches ahead of this playhead (BufferTarget) and hands segments due within
// UrgentWindow to the origin unless a peer is expected to deliver in time;
// before playback starts, the first segment's deadline is StartupBudget. A
// viewer joining a swarm the tracker says is populated waits up to half the
// start-up budget to be admitted, so its first segments can come from peers.
//
// # Compatibility
//
// The gateway's URL layout may change between versions; use URL and
// DASHURL rather than building paths.
package player
