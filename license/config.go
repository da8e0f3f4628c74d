package license

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"golang.org/x/time/rate"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license/token"
	"github.com/sealmesh/sealmesh/segment"
)

// Defaults for the zero values of Config.
const (
	DefaultListen                 = "127.0.0.1:8443"
	DefaultAdminListen            = "127.0.0.1:0" // a free port, printed and written to <state>.admin.json: two servers on one host never collide
	DefaultLicenseTTL             = 5 * time.Minute
	DefaultTicketTTL              = 2 * time.Minute
	DefaultMaxTicketsPerAccount   = 4
	DefaultNonceTTL               = 60 * time.Second
	DefaultMaxBody                = 64 << 10
	DefaultMaxStreamsPerAccount   = 4
	DefaultAccountRate            = rate.Limit(5) // requests per second per account
	DefaultAccountBurst           = 20
	DefaultIPRate                 = rate.Limit(50) // requests per second per client IP
	DefaultIPBurst                = 100
	DefaultMaxLimiters            = 100_000 // tracked IPs and accounts, each
	DefaultTrackerPeersPerContent = 10_000
	DefaultTokenCacheSize         = 10_000
)

// Config tunes a Server. Every zero value means the documented default, so
// Config{} is a working development configuration.
type Config struct {
	// Listen is the address the command line listens on; the Server itself
	// serves any listener given to Serve. Default "127.0.0.1:8443".
	Listen string

	// LicenseTTL is how long a license (and the session it renews) stays
	// valid. Default 5 minutes: a leaked license exposes at most the two
	// crypto periods it carries, and only until it expires.
	LicenseTTL time.Duration

	// RenewAfter is when, after issue, a player should renew. Default 60% of
	// LicenseTTL (3 minutes for the default TTL). Must be below LicenseTTL.
	RenewAfter time.Duration

	// TicketTTL is how long a swarm ticket, and a tracker entry announced
	// with it, stays valid. Default 2 minutes: peers renew at 80% of it, and
	// a revoked peer that no announce answer names (a seed without a
	// tracker) is cut off when its last ticket runs out.
	TicketTTL time.Duration

	// MaxTicketsPerAccount is how many peer IDs of one account may hold a
	// live ticket for one content at once (a renewal for the same peer
	// reuses its slot). Default 4; negative means no limit.
	MaxTicketsPerAccount int

	// NonceTTL is how long a nonce from POST /v1/nonce may be used. Default 60 s.
	NonceTTL time.Duration

	// MaxBody caps every request body, in bytes. Default 64 KiB; larger
	// bodies get 413 body_too_large. A real request is well under 4 KiB
	// (the hybrid HPKE public key, the largest field, is 1,216 bytes).
	MaxBody int64

	// MaxStreamsPerAccount is how many sessions an account may hold at
	// once. A session counts from its license until its expiry, and keeps
	// counting while it is renewed. Default 4; negative means no limit.
	MaxStreamsPerAccount int

	// AccountRate and AccountBurst limit requests per account (after the
	// token is verified); IPRate and IPBurst limit requests per client IP
	// (before anything else). Zero means the default (5/s burst 20 per
	// account, 50/s burst 100 per IP); rate.Inf disables a limit.
	AccountRate  rate.Limit
	AccountBurst int
	IPRate       rate.Limit
	IPBurst      int

	// MaxLimiters bounds how many IPs and how many accounts are tracked for
	// rate limiting (each). When full, the least recently seen half is
	// forgotten. Default 100,000.
	MaxLimiters int

	// TrustProxyHeaders makes the client IP come from the first address of
	// X-Forwarded-For. Only set it behind a proxy that overwrites that
	// header; otherwise clients choose their own rate limit bucket.
	TrustProxyHeaders bool

	// CORSOrigins lists the origins browsers may call the API from (Clear
	// Key players on web pages), e.g. "https://player.example.com". "*"
	// allows any origin. Empty: no CORS headers, so browsers on other
	// origins cannot read responses.
	CORSOrigins []string

	// TokenCacheSize bounds the cache of verified entitlement tokens (see
	// tokencache.go for what it skips and what it still checks). Default
	// 10,000 entries; negative disables the cache.
	TokenCacheSize int

	// TrackerPeersPerContent bounds the tracker's entries per content.
	// When full, the entry closest to expiry is dropped. Default 10,000.
	TrackerPeersPerContent int

	// NetworkGroup maps an address to the network it belongs to, for the
	// tracker's nearest-first ordering. Default: the /24 of an IPv4 address
	// or the /48 of an IPv6 address (see PrefixGroup).
	NetworkGroup func(netip.Addr) string

	// KeyWindow paces the crypto periods a session may get keys for by its
	// wall time (see window.go). The zero value: on for native licenses at
	// up to twice real time, off for Clear Key.
	KeyWindow KeyWindow

	// Logger receives one line per server fault and per issued license or
	// ticket. It never sees tokens or key material. Default slog.Default().
	Logger *slog.Logger
	// AccessLog, when set, receives one Info line per request: method,
	// path (never the query), status, duration and remote address. Headers,
	// bodies and so tokens never appear. Default: no access log.
	AccessLog *slog.Logger

	// Now is the clock. Default time.Now. Tests inject their own.
	Now func() time.Time
}

// withDefaults returns a copy of c with defaults filled in, or an error for
// values that make no sense.
func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.LicenseTTL == 0 {
		c.LicenseTTL = DefaultLicenseTTL
	}
	if c.RenewAfter == 0 {
		c.RenewAfter = c.LicenseTTL * 6 / 10
	}
	if c.TicketTTL == 0 {
		c.TicketTTL = DefaultTicketTTL
	}
	if c.NonceTTL == 0 {
		c.NonceTTL = DefaultNonceTTL
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxTicketsPerAccount == 0 {
		c.MaxTicketsPerAccount = DefaultMaxTicketsPerAccount
	}
	if c.MaxStreamsPerAccount == 0 {
		c.MaxStreamsPerAccount = DefaultMaxStreamsPerAccount
	}
	if c.AccountRate == 0 {
		c.AccountRate = DefaultAccountRate
	}
	if c.AccountBurst == 0 {
		c.AccountBurst = DefaultAccountBurst
	}
	if c.IPRate == 0 {
		c.IPRate = DefaultIPRate
	}
	if c.IPBurst == 0 {
		c.IPBurst = DefaultIPBurst
	}
	if c.MaxLimiters == 0 {
		c.MaxLimiters = DefaultMaxLimiters
	}
	if c.TokenCacheSize == 0 {
		c.TokenCacheSize = DefaultTokenCacheSize
	}
	if c.TrackerPeersPerContent == 0 {
		c.TrackerPeersPerContent = DefaultTrackerPeersPerContent
	}
	if c.NetworkGroup == nil {
		c.NetworkGroup = PrefixGroup
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.CORSOrigins = append([]string(nil), c.CORSOrigins...)
	var err error
	if c.KeyWindow, err = c.KeyWindow.withDefaults(); err != nil {
		return c, err
	}
	switch {
	case c.LicenseTTL < 0 || c.TicketTTL < 0 || c.NonceTTL < 0 || c.RenewAfter < 0:
		return c, errors.New("license: negative TTL in Config")
	case c.RenewAfter >= c.LicenseTTL:
		return c, fmt.Errorf("license: RenewAfter %v must be below LicenseTTL %v", c.RenewAfter, c.LicenseTTL)
	case c.MaxBody < 1024:
		return c, fmt.Errorf("license: MaxBody %d is too small (at least 1024)", c.MaxBody)
	case c.AccountRate < 0 || c.IPRate < 0 || c.AccountBurst < 0 || c.IPBurst < 0:
		return c, errors.New("license: negative rate limit in Config")
	case c.MaxLimiters < 2 || c.TrackerPeersPerContent < 1:
		return c, errors.New("license: MaxLimiters and TrackerPeersPerContent must be positive")
	}
	return c, nil
}

// KeySource is where content keys come from: a *keys.FileStore or a
// keys.Reader (which reads the store while the packager writes it).
//
// ContentKeys returns the keys of a content sorted by period, or an error
// wrapping keys.ErrNotFound. ContentKey finds a key by KID, with its content
// ID, or fails with an error wrapping keys.ErrNotFound. Keys are unsealed by
// the source at the call and dropped by the server after use.
type KeySource interface {
	ContentKeys(ctx context.Context, contentID string) ([]keys.ContentKey, error)
	ContentKey(ctx context.Context, kid keys.KID) (string, keys.ContentKey, error)
}

// TokenVerifier checks entitlement tokens, as *token.Verifier does. Verify
// returns the claims of a valid token, or an error wrapping one of the
// token package's sentinel errors (token.ErrExpired, ...).
type TokenVerifier interface {
	Verify(raw string) (*token.Claims, error)
}

// ContentCatalog knows the crypto periods of a content, with their start
// times, typically from its signed segment manifest. It is optional: without
// it a license request must name its KIDs (or ask for position 0).
//
// Periods returns the periods sorted by index, or an error wrapping
// keys.ErrNotFound when the content is unknown to the catalog.
//
// ManifestDigest returns the digest (segment.Manifest.Digest) of the
// content's current signed manifest, which licenses name so that players
// refuse any other manifest of the content (an older one replayed: a
// rollback), or an error wrapping keys.ErrNotFound when the content is
// unknown. An empty digest means the catalog cannot tell; licenses then
// name none.
type ContentCatalog interface {
	Periods(ctx context.Context, contentID string) ([]segment.Period, error)
	ManifestDigest(ctx context.Context, contentID string) (string, error)
}

// Deps are the Server's collaborators. Keys, Signer, Tokens and State are
// required; Catalog is optional.
type Deps struct {
	Keys    KeySource
	Tokens  TokenVerifier
	Catalog ContentCatalog
	// Signer signs licenses and tickets: an Ed25519 key, normally the key
	// store's "license" signing key (keys.SigningKey.Signer()).
	Signer crypto.Signer
	// State holds sessions, used nonces, revocations and the audit log. The
	// Server does not close it.
	State *State
	// ManifestKeys are published at GET /v1/keys beside the license key, for
	// players that do not pin them. Optional.
	ManifestKeys segment.TrustedKeys
}

// ManifestCatalog is a ContentCatalog over verified segment manifests held
// in memory, keyed by content ID.
type ManifestCatalog map[string]*segment.Manifest

// Periods implements ContentCatalog.
func (m ManifestCatalog) Periods(_ context.Context, contentID string) ([]segment.Period, error) {
	man, ok := m[contentID]
	if !ok || man == nil {
		return nil, fmt.Errorf("catalog: content %q: %w", contentID, keys.ErrNotFound)
	}
	return man.Periods, nil
}

// ManifestDigest implements ContentCatalog. Manifests that were neither
// parsed nor signed by the segment package have no digest ("").
func (m ManifestCatalog) ManifestDigest(_ context.Context, contentID string) (string, error) {
	man, ok := m[contentID]
	if !ok || man == nil {
		return "", fmt.Errorf("catalog: content %q: %w", contentID, keys.ErrNotFound)
	}
	return man.Digest(), nil
}

// signerKey checks that s is an Ed25519 signer and returns its public key and ID.
func signerKey(s crypto.Signer) (ed25519.PublicKey, string, error) {
	if s == nil {
		return nil, "", errors.New("license: Deps.Signer is nil")
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok {
		return nil, "", fmt.Errorf("license: Deps.Signer is %T, want an Ed25519 key", s.Public())
	}
	return pub, keys.SigningKeyID(pub), nil
}
