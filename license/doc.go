// Package license is sealmesh's control plane: the license server that
// decides who may decrypt (licenses and W3C Clear Key), who may join a
// content's swarm (tickets) and who their neighbours are (the tracker), and
// the client that players use to talk to it.
//
// # Entry points
//
//   - [New] builds a [Server] from a [Config] (every zero value is a
//     documented default) and [Deps]: a [KeySource] (keys.Reader or
//     keys.FileStore), a [TokenVerifier] (*token.Verifier), the Ed25519
//     signer of the key store's "license" key, a [State] from [OpenState],
//     and optionally a [ContentCatalog]. [Server.Serve] serves it,
//     [Server.Shutdown] drains, [Server.Close] cuts the rest.
//   - [NewClient] makes a [Client]: [Client.License], [Client.Renew],
//     [Client.Ticket], [Client.Announce].
//   - [NewTicketVerifier] checks swarm tickets; the transport layer calls
//     its Verify through an interface of its own.
//   - [ChangeRevocation] revokes through a running server or the state file.
//
// # Endpoints
//
// All bodies are JSON. Requests with a body need Content-Type:
// application/json (except /v1/clearkey, whose body a browser CDM writes)
// and at most Config.MaxBody bytes (64 KiB). Routes that act for an account
// need "Authorization: Bearer <entitlement token>" (see package
// license/token). Times are RFC 3339; binary values are base64url without
// padding.
//
//	GET  /healthz   → 200 {"status":"ok","key_id":"…"}; 503 while draining
//
// GET /metrics (Prometheus text format) is served only on the loopback
// admin listener (Server.ServeAdmin), never on this public API.
//
// POST /v1/nonce (no token) → a single-use nonce for the next license or renewal:
//
//	{"nonce":"AAAAAGnTb2s…","expires":"2026-03-01T12:01:00Z"}
//
// POST /v1/license (token) asks for a license and starts a session:
//
//	{"content":"movie-1",
//	 "kids":["0f1e2d3c4b5a69788796a5b4c3d2e1f0"],   // optional, at most 2; or
//	 "position":125.0,                           // optional, seconds (needs a ContentCatalog)
//	 "hpke_public_key":"<b64url X25519 public key, 32 bytes>",
//	 "suite":"x25519",                           // or "mlkem768x25519" (1,216-byte key)
//	 "nonce":"<from /v1/nonce>",
//	 "device_id":"stb-19"}                       // optional; a device-bound token fixes it
//
// With neither kids nor position the license carries the first two crypto
// periods. The answer:
//
//	{"license":"<b64url payload JSON>","signature":"<b64url Ed25519>","key_id":"9f2c41d07ab3e6c5"}
//
// where the signature is over "sealmesh license v1\x00" || payload bytes,
// made with the key whose keys.SigningKeyID is key_id, and the payload is
//
//	{"license_id":"…","session_id":"…",
//	 "account_hash":"<64 hex: HMAC-SHA256 of the account under a server secret>",
//	 "content":"movie-1","nonce":"<echoed>","device_id":"stb-19",
//	 "not_before":"2026-03-01T12:00:00Z","expiry":"2026-03-01T12:05:00Z",
//	 "renew_after":"2026-03-01T12:03:00Z",
//	 "policy":{"persist":false,"renewable":true},
//	 "suite":"x25519",
//	 "enc":"<b64url HPKE encapsulated key>",
//	 "keys":[{"kid":"0f1e…","period":3,"ct":"<b64url AES-GCM ciphertext || tag>"}, …],
//	 "manifest_sha256":"<64 hex>"}   // with a ContentCatalog: the content's current manifest
//
// manifest_sha256 is the SHA-256 of the exact signed bytes of the content's
// current segment manifest (segment.Manifest.Digest) as the ContentCatalog
// knows it; players refuse any other manifest, so an older one, however
// validly signed, cannot be replayed to them. It is absent when the server
// has no catalog or the catalog does not know the content.
//
// The content keys are sealed with HPKE (RFC 9180, crypto/hpke) in one
// context per license: KEM DHKEM(X25519, HKDF-SHA256) or ML-KEM-768+X25519,
// KDF HKDF-SHA256, AEAD AES-128-GCM, mode base, info = "sealmesh license
// v1" 0x00 license_id. The sender's encapsulated key is "enc"; each key is
// then sealed in list order (sequence numbers 0, 1) with aad = "kid:"
// kid-hex "|period:" N (N in decimal), and the player opens them in the
// same order with the same aad. A license carries at most two keys: the
// current crypto period and the next.
//
// POST /v1/license/renew (token) extends a session and returns a new license
// (same session_id, new license_id, same answer shape):
//
//	{"session_id":"…","nonce":"…","hpke_public_key":"…","kids":["…","…"]}   // or "position"
//
// A session that is not renewed before its expiry lapses (410 session_expired).
//
// Keys follow playback, and the server decides (the key window, window.go):
// a session starts at the period asked for and gets it and the next; later
// renewals may widen the range of periods it was given only as far as
// KeyWindow.Speed times the wall time since it began lets playback go, plus
// the next period. Beyond that: 429 key_window_ahead with Retry-After (when
// it would be allowed); to jump further, start a new session there.
//
// POST /v1/clearkey (token) is the W3C EME Clear Key license endpoint:
//
//	{"kids":["DxotPEtaaXiHlqW0w9Lh8A"],"type":"temporary"}
//	→ {"keys":[{"kty":"oct","kid":"DxotPEtaaXiHlqW0w9Lh8A","k":"<b64url key>"}],"type":"temporary"}
//
// With an empty body (or no kids) the KIDs come from ?kid=<hex> query
// parameters, which sealmesh HLS playlists append to the key URI. Only keys
// of content the token entitles are returned: KIDs of other content alone
// give 403 not_entitled, unknown KIDs alone 404 unknown_kid. OPTIONS
// answers the CORS preflight for Config.CORSOrigins. A Clear Key player is a
// session per token, content and client IP (a stream of the account). For
// content in KeyWindow.ClearKey the answer holds only the keys the window
// allows (429 key_window_ahead if none).
//
// POST /v1/ticket (token) → a swarm ticket for a libp2p peer ID, only to a
// caller that proves it holds that peer's key (see proof.go; [NewTicketRequest]
// builds the body):
//
//	{"peer_id":"12D3KooW…","content":"movie-1","time":1767225600000,"signature":"<b64url>"}
//	→ {"ticket":"<b64url payload>","signature":"…","key_id":"…","encoded":"<ticket>.<sig>.<key_id>",
//	   "expiry":"…","discovery_key":"<b64url>"}
//
// "signature" is the peer's libp2p key's signature over the ticket proof
// (peer ID, content, SHA-256 of the bearer token, "time" in Unix
// milliseconds); "public_key" (the libp2p-marshalled key) is needed only for
// peer IDs that do not embed their key. "time" must be within ProofSkew
// (2 minutes) of the server's clock and later than that peer's last proof.
// The payload is {"ticket_id","peer_id","content_tag","budget","not_before",
// "expiry"} (2 minutes by default): no content ID and no account hash, since
// peers show tickets to each other (ticket.go, ticketbook.go). At most
// Config.MaxTicketsPerAccount (4) peer IDs of an account hold a live ticket
// for one content; the next gets 429 too_many_tickets. "encoded" is what
// peers carry; "discovery_key" keys the content's DHT records and is never
// in a ticket.
//
// POST /v1/announce (the ticket, and a proof by its peer) registers a peer's
// listen addresses and returns other live peers of the same content, those
// in the announcer's network (same /24 or /48; Config.NetworkGroup) first,
// and the peers of the content whose entitlement was revoked while their
// ticket is live (seeds drop them):
//
//	{"ticket":"<encoded>","addrs":["/ip4/203.0.113.7/tcp/4001"],"want":20,"time":…,"signature":"<b64url>"}
//	→ {"peers":[{"peer_id":"12D3KooX…","addrs":["/ip4/203.0.113.99/udp/4001/quic-v1"]}],"revoked":["12D3KooY…"]}
//
// The signature is over SHA-256 of the ticket, the time and every address
// ([NewAnnounceRequest]); a ticket alone gets 401 invalid_proof, a proof not
// later than the peer's last announce 409 proof_replayed.
//
// # Errors
//
// Every error is {"error":{"code":"<code>","message":"<text>"}} with a
// stable code (the Code constants) and status. Client mistakes are 4xx;
// 5xx means a server fault (logged) and never follows from input alone.
// A panic in a handler becomes 500 internal_error and a log line.
//
//	400 malformed_request       body is not the JSON the route takes, or a field is out of bounds
//	400 invalid_nonce           not a nonce of this server
//	400 nonce_expired           older than NonceTTL (60 s)
//	400 invalid_public_key      hpke_public_key does not decode for the suite, or is low-order
//	400 kids_not_adjacent       the KIDs of one request are not adjacent periods
//	400 unsupported_suite       suite is not x25519 / mlkem768x25519
//	400 too_many_kids           more than 2 KIDs (license) or 16 (Clear Key)
//	400 position_unsupported    position > 0 without a ContentCatalog
//	400 invalid_peer_id         not a base58btc / base32 CIDv1 peer ID
//	400 proof_time              a proof's time is more than 2 minutes off the server's clock
//	401 invalid_proof           no proof of possession of the peer's libp2p key, or it does not verify
//	401 missing_token           no Bearer token
//	401 invalid_token           malformed, bad signature, unknown key, missing claim
//	401 token_expired           past exp (beyond the verifier's leeway)
//	401 token_not_yet_valid     before nbf/iat
//	401 token_wrong_audience    aud does not name this server
//	401 token_bad_algorithm     alg none, HS*, RS*, or not the key's algorithm
//	401 token_wrong_issuer      iss is not an accepted issuer (when issuers are configured)
//	401 token_lifetime_too_long exp further than the maximum token lifetime from iat or now
//	401 invalid_ticket          ticket malformed or not signed by this server
//	401 ticket_expired          ticket outside its validity
//	403 not_entitled            the token does not cover the content
//	403 device_mismatch         the token is bound to another device
//	403 account_revoked, device_revoked, peer_revoked
//	403 ticket_peer_mismatch    the ticket names another peer ID
//	403 origin_not_allowed      CORS preflight from an origin not configured
//	404 unknown_content         no keys for the content
//	404 unknown_kid             a KID is unknown, or not of this content
//	404 unknown_session         no such session for this account
//	404 not_found               no such route
//	405 method_not_allowed
//	409 nonce_replayed          the nonce was used before
//	409 proof_replayed          a proof not later than the peer's last accepted one
//	410 session_expired         the session lapsed
//	413 body_too_large
//	415 unsupported_media_type
//	429 rate_limited            per-IP or per-account rate limit; Retry-After set
//	429 too_many_streams        the account's concurrent stream limit; Retry-After set
//	429 key_window_ahead        periods beyond the session's key window; Retry-After set
//	429 too_many_tickets        MaxTicketsPerAccount peer IDs hold live tickets for the content; Retry-After set
//	500 internal_error
//	503 unavailable             shutting down
//
// # Security reasoning
//
// A leaked license exposes minutes of content, not a film: it carries two
// crypto periods' keys, sealed to the ephemeral HPKE key of the player that
// asked, so a captured license is useless without that private key; the
// HPKE info binds the license ID and each key's associated data its KID and
// period, so a wrapped key cannot be moved to another license, KID or
// period (see "One HPKE context per license" in licenses.go); the Ed25519
// signature (with a context string of
// its own, apart from manifests and tickets) lets the player trust what it
// unwraps, from a pinned key rather than TLS alone.
//
// Replay: licenses are bound to a single-use server nonce (see nonce.go for
// why a server nonce rather than a client-signed jti). The nonce's single
// use is recorded durably in the same transaction as the session it starts,
// so it survives a restart.
//
// Accounts never appear in licenses, tickets, logs, metrics or the audit
// log: an HMAC under a secret in the state file stands for them.
//
// Concurrency: the stream limit is checked and the session recorded under
// one lock, so parallel requests cannot overshoot it. Revocations take
// effect at the next license, renewal, Clear Key request, ticket or
// announce; licenses already issued run out within LicenseTTL.
//
// Clear Key gives keys in clear to the browser (inside TLS): it is as
// strong as the browser, and exists for players without a commercial DRM.
// What software alone cannot do — stop a modified client from keeping the
// keys or capturing frames — is a non-goal.
//
// Every phase of an HTTP request has a timeout, bodies are bounded before
// parsing, and rate limits per IP (before the token is checked) and per
// account bound what one client can cost.
//
// # State and performance
//
// Sessions, used nonces and revocations live in memory and in a bbolt file
// (see state.go for the layout). The request path reads no disk; writes go
// through one committer that coalesces concurrent requests into one fsynced
// transaction (see commit.go), and a request is answered only once its
// write is durable; a license is sealed and signed while its write is being
// committed. Session IDs start with their creation time so that one commit
// touches few pages of the file. Verified entitlement tokens are cached for
// up to 60 s (see tokencache.go; revocation, entitlement and limits are
// still checked per request). Expired sessions and nonces are pruned every
// 30 s. The tracker is soft state in memory.
//
// Per license the server does one HPKE encapsulation (two X25519 scalar
// multiplications), two AES-GCM seals and one Ed25519 signature; with the
// token cached, those dominate its CPU time. TestLoadgen (loadgen_test.go)
// measures throughput and latency beside that crypto alone.
//
// # Compatibility
//
// The endpoints, JSON fields, error codes, signature contexts, HPKE info
// and associated data, and ticket encoding are versioned ("v1" in paths and contexts) and
// kept; new optional fields and codes may be added. The state file is
// versioned (1); later releases read it.
package license
