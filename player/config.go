package player

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// Mode says what the local gateway serves the platform player.
type Mode int

const (
	// ModeClear decrypts in memory and serves clear fMP4 HLS: for ffplay,
	// VLC, mpv, AVPlayer, ExoPlayer without DRM.
	ModeClear Mode = iota
	// ModeEME serves the ciphertext playlists and segments as packaged; the
	// player (Shaka Player, hls.js, dash.js) gets its keys from the license
	// server's W3C Clear Key endpoint.
	ModeEME
)

// Config configures Open. Fields marked required must be set; every other
// zero value is documented.
type Config struct {
	// Content is the content ID to play. Required.
	Content string
	// OriginURL is the base URL of the packaged folder on the origin or CDN
	// (the folder holding sealmesh.json). Required.
	OriginURL string
	// LicenseURL is the license server's base URL. Required unless SeedOnly
	// is set and P2P is disabled.
	LicenseURL string
	// Token returns the viewer's entitlement token for each license server
	// request. Required (a seed needs it for its swarm ticket too).
	Token func(ctx context.Context) (string, error)
	// LicenseKeys are the license server's pinned Ed25519 public keys:
	// licenses and tickets are verified against them. Zero: fetched (see
	// below).
	LicenseKeys []ed25519.PublicKey
	// ManifestKeys are the trusted manifest signing keys by key ID. Zero:
	// fetched.
	//
	// Pin both (an app ships them; `sealmesh keys list --pins` prints them
	// as flags). A key that is not pinned is fetched from the license
	// server's GET /v1/keys, trusting its TLS certificate; from an http://
	// LicenseURL Open refuses with ErrInsecureTrustAnchors, since anyone on
	// the path could add a key of their own, unless InsecureHTTPTrustAnchors
	// is set.
	ManifestKeys segment.TrustedKeys
	// InsecureHTTPTrustAnchors lets Open fetch keys that were not pinned
	// over plain HTTP. For test setups only: see ManifestKeys.
	InsecureHTTPTrustAnchors bool
	// History remembers the newest manifest (by sequence number) accepted
	// per content, and Open refuses an older one (a rollback). Zero: a file
	// in CacheDir when it is set, otherwise a history of this session only
	// (then the digest a license names is the only rollback defence, and a
	// seed, which has no license, has none across restarts).
	History *ManifestHistory
	// Video is the video rendition ID to play. Zero: the highest bandwidth
	// not above MaxBandwidth.
	Video string
	// MaxBandwidth caps the automatic rendition choice (bits/s). Zero: none.
	MaxBandwidth int
	// Mode selects clear HLS (default) or ciphertext for EME players.
	Mode Mode
	// Listen is the gateway's address; it must be a loopback address, since
	// decrypted media must not leave the machine. Zero: 127.0.0.1:0.
	Listen string
	// CacheDir holds verified ciphertext between runs. Zero: memory only
	// (nothing is written to disk). Decrypted bytes never touch the disk.
	CacheDir string
	// CacheBytes caps the cache. Zero: 512 MiB on disk, 16 MiB in memory
	// (with a 30 s buffer target that still holds the window plus recent
	// segments of 2.5 Mbit/s video for other peers, and keeps a set-top box
	// under 64 MiB). A seed's memory cache defaults to the whole content.
	CacheBytes int64
	// P2P configures the swarm.
	P2P P2P
	// BufferTarget is how far ahead of the playhead segments are fetched.
	// Zero: 30 s.
	BufferTarget time.Duration
	// UrgentWindow: a segment due sooner than this goes to the origin unless
	// a peer is expected to deliver it in time. Zero: 4 s.
	UrgentWindow time.Duration
	// StartupBudget is the time allowed for the first segment, which peers
	// may deliver if they can do it within it. Zero: 1 s.
	StartupBudget time.Duration
	// Speed is the playback speed the scheduler plans for. Zero: 1.
	Speed float64
	// LicenseRetry paces license renewals after a failure (jittered
	// exponential backoff honouring Retry-After). Zero: 1 s doubling to 30 s.
	LicenseRetry RetryPolicy
	// SeedOnly fetches and serves ciphertext without a license and without
	// a gateway: an edge box that holds no key.
	SeedOnly bool
	// HTTPClient is used for the origin and the license server. Zero: a
	// client with a 20 s timeout.
	HTTPClient *http.Client
	// Registerer receives Prometheus collectors. Zero: none.
	Registerer prometheus.Registerer
	// Logger receives structured logs; never key material or tokens. Zero:
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
}

// P2P configures the session's libp2p side.
type P2P struct {
	// Disable plays from the origin only.
	Disable bool
	// Host, if set, is used instead of a host of the session's own (several
	// sessions in one process, as in the demo). The session does not close it.
	Host *transport.Host
	// ListenAddrs, IdentityFile, Security, MDNS, DHT and Bootstrap go to
	// transport.Config when the session makes its own host. Zero
	// ListenAddrs: TCP and QUIC on all interfaces, random ports.
	ListenAddrs  []string
	IdentityFile string
	Security     string
	MDNS, DHT    bool
	Bootstrap    []peer.AddrInfo
	// BrowserTransports also listens for browsers (WebTransport and
	// WebRTC-direct on the QUIC port); see transport.Config.
	BrowserTransports bool
	// Upload limits what this viewer serves to others.
	Upload transport.UploadPolicy
	// TrackerInterval is how often the license server's tracker is asked for
	// peers; its answers also list revoked peers, which a seed then cuts
	// off, so it bounds how late a seed learns of a revocation. Zero: 30 s.
	TrackerInterval time.Duration
}

// Errors Open and the gateway wrap; branch with errors.Is.
var (
	// ErrConfig: a required field is missing or a value is out of range.
	ErrConfig = errors.New("player: bad config")
	// ErrNoLicense: the license server refused (the token, the account,
	// the content), or its answer did not verify under the pinned keys, so
	// nothing will be decrypted. The cause is wrapped (a *license.APIError
	// with the server's code, or a license.ErrLicense... sentinel).
	ErrNoLicense = errors.New("player: no license")
	// ErrLicenseUnavailable: the license server could not be reached, timed
	// out, failed (5xx) or asked to be retried later (429); keys are only
	// temporarily unavailable and renewals keep being retried. The cause is
	// wrapped (a network error or a *license.APIError).
	ErrLicenseUnavailable = errors.New("player: license server unavailable")
	// ErrManifest: the segment manifest could not be fetched or verified.
	// A manifest older than one accepted before also wraps
	// segment.ErrRollback; one other than the license names also wraps
	// ErrManifestNotLicensed.
	ErrManifest = errors.New("player: segment manifest")
	// ErrManifestNotLicensed: the origin's manifest is not the one the
	// license was issued for (its digest differs).
	ErrManifestNotLicensed = errors.New("player: the manifest is not the one the license names")
)

func (c *Config) setDefaults() error {
	bad := func(format string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...)) }
	if err := segment.ValidContentID(c.Content); err != nil {
		return bad("%v", err)
	}
	u, err := url.Parse(c.OriginURL)
	if c.OriginURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return bad("OriginURL %q: want the http(s) URL of the packaged folder", c.OriginURL)
	}
	if !strings.HasSuffix(c.OriginURL, "/") {
		c.OriginURL += "/"
	}
	if c.Token == nil {
		return bad("no Token: the license server needs the viewer's entitlement token")
	}
	if c.LicenseURL == "" {
		return bad("no LicenseURL")
	}
	if err := c.checkAnchorSource(); err != nil {
		return err
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return bad("Listen %q: %v", c.Listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return bad("Listen %q is not a loopback address: decrypted media must not leave this machine", c.Listen)
	}
	if c.BufferTarget == 0 {
		c.BufferTarget = 30 * time.Second
	}
	if c.UrgentWindow == 0 {
		c.UrgentWindow = 4 * time.Second
	}
	if c.StartupBudget == 0 {
		c.StartupBudget = time.Second
	}
	if c.Speed == 0 {
		c.Speed = 1
	}
	if c.BufferTarget < 0 || c.UrgentWindow < 0 || c.StartupBudget < 0 || c.Speed < 0 || c.CacheBytes < 0 {
		return bad("negative durations, speed or sizes")
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 20 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c.LicenseRetry.setDefaults()
}
