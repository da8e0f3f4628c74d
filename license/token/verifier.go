package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTokenSize is the largest token Verify will parse, in bytes.
//
// A real entitlement token is a few hundred bytes. Verify runs before any
// authentication, so without a cap an anonymous client could make the server
// base64-decode and JSON-parse megabytes per request. The cap is checked before
// any parsing.
const MaxTokenSize = 8 << 10

// MaxLeeway is the largest clock skew a Verifier tolerates.
const MaxLeeway = 60 * time.Second

const (
	defaultLeeway         = 30 * time.Second
	defaultReloadInterval = 5 * time.Second
	// DefaultMaxLifetime is the longest validity a Verifier accepts by
	// default (VerifierConfig.MaxLifetime).
	DefaultMaxLifetime = 24 * time.Hour
)

// allowedAlgorithms pins the signature algorithms. Letting the token choose its
// own algorithm is the root of the classic JWT attacks: "none" skips the
// signature, and HS256 with a public key used as the HMAC secret lets anyone
// who knows the (public) key mint tokens. EdDSA and ES256 are the only
// algorithms our keys are for; everything else is refused while parsing.
var allowedAlgorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}

// VerifierConfig configures a Verifier. Zero values are documented per field.
type VerifierConfig struct {
	// KeySetFile is a JWK Set (RFC 7517) JSON file holding the public keys
	// whose tokens are accepted: Ed25519 ("kty":"OKP") and ECDSA P-256
	// ("kty":"EC"). Private keys, other key types and duplicate "kid"s are
	// refused. The file is re-read when it changes (inode, size or mtime),
	// checked at most every ReloadInterval and whenever a token names an
	// unknown "kid". A file that fails to load keeps the previous keys.
	// Empty: only ExtraKeys are trusted.
	KeySetFile string
	// Audience is this server's name; a token's "aud" must contain it.
	// Required.
	Audience string
	// Issuers lists the accepted "iss" values. Empty: "iss" is not checked
	// (any or none is accepted); set it whenever the signing keys are shared
	// with other token kinds or issuers.
	Issuers []string
	// MaxLifetime is the longest a token may be valid: a token whose "exp"
	// is more than MaxLifetime after its "iat", or after now, is refused
	// (ErrLifetime), so that a token leaked or minted by mistake with a
	// far expiry does not work for years. Zero: DefaultMaxLifetime (24h);
	// negative: no limit.
	MaxLifetime time.Duration
	// Leeway is the clock skew allowed on "exp", "nbf" and "iat".
	// Zero: 30s. More than MaxLeeway (60s) is refused.
	Leeway time.Duration
	// ReloadInterval is how often the key set file is checked for changes.
	// Zero: 5s.
	ReloadInterval time.Duration
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// Logger receives key set reloads and reload failures. It never sees a
	// token. Zero: discard.
	Logger *slog.Logger
	// ExtraKeys are trusted in addition to the file's keys (for example the
	// development issuer's key with --dev-tokens). Private keys are reduced
	// to their public part. Optional.
	ExtraKeys []jose.JSONWebKey
}

// Verifier checks entitlement tokens. It is safe for concurrent use.
type Verifier struct {
	path           string
	audience       string
	issuers        []string
	maxLifetime    time.Duration
	leeway         time.Duration
	reloadInterval time.Duration
	now            func() time.Time
	log            *slog.Logger
	extra          []trustedKey

	keys      atomic.Pointer[keySet]
	nextCheck atomic.Int64 // unix nanos of the next periodic file check
	closed    atomic.Bool

	mu       sync.Mutex  // serializes reloads
	lastFile os.FileInfo // guarded by mu: the file last loaded or tried
}

// NewVerifier validates cfg, loads the key set file and returns a Verifier.
// It fails if the file cannot be loaded or no key is trusted at all.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Audience == "" {
		return nil, errors.New("token: VerifierConfig.Audience is required")
	}
	v := &Verifier{
		path:           cfg.KeySetFile,
		audience:       cfg.Audience,
		issuers:        slices.Clone(cfg.Issuers),
		maxLifetime:    cfg.MaxLifetime,
		leeway:         cfg.Leeway,
		reloadInterval: cfg.ReloadInterval,
		now:            cfg.Now,
		log:            cfg.Logger,
	}
	if v.leeway == 0 {
		v.leeway = defaultLeeway
	}
	// A generous leeway quietly extends every token's lifetime and lets a
	// token be used before its nbf; clocks synced by NTP are off by far less
	// than a minute, so anything larger hides a broken clock.
	if v.leeway < 0 || v.leeway > MaxLeeway {
		return nil, fmt.Errorf("token: Leeway %v out of range [0, %v]", cfg.Leeway, MaxLeeway)
	}
	if v.maxLifetime == 0 {
		v.maxLifetime = DefaultMaxLifetime
	}
	if slices.Contains(v.issuers, "") {
		return nil, errors.New("token: VerifierConfig.Issuers has an empty issuer")
	}
	if v.reloadInterval == 0 {
		v.reloadInterval = defaultReloadInterval
	}
	if v.reloadInterval < 0 {
		return nil, fmt.Errorf("token: negative ReloadInterval %v", cfg.ReloadInterval)
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for i, k := range cfg.ExtraKeys {
		if !k.IsPublic() {
			k = k.Public()
		}
		tk, err := toTrustedKey(k)
		if err != nil {
			return nil, fmt.Errorf("token: ExtraKeys[%d]: %w", i, err)
		}
		v.extra = append(v.extra, tk)
	}

	var fileKeys []trustedKey
	if v.path != "" {
		keys, fi, err := readKeySetFile(v.path)
		if err != nil {
			return nil, fmt.Errorf("token: load key set %s: %w", v.path, err)
		}
		fileKeys, v.lastFile = keys, fi
	}
	set, err := v.buildSet(fileKeys)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	v.keys.Store(set)
	v.nextCheck.Store(v.now().Add(v.reloadInterval).UnixNano())
	v.log.Info("token key set loaded", "file", v.path, "keys", len(set.all))
	return v, nil
}

func (v *Verifier) buildSet(fileKeys []trustedKey) (*keySet, error) {
	all := slices.Concat(fileKeys, v.extra)
	if len(all) == 0 {
		return nil, errNoKeys
	}
	return newKeySet(all)
}

// Close stops the Verifier; later calls to Verify fail with ErrClosed. Close is
// idempotent and always returns nil.
func (v *Verifier) Close() error {
	v.closed.Store(true)
	return nil
}

// Verify checks a compact-serialized JWT and returns its claims.
//
// It succeeds only if all of these hold, checked in this order; the error for
// the first that fails wraps the sentinel named:
//
//   - the token is at most MaxTokenSize bytes and parses (ErrMalformed);
//   - its "alg" is EdDSA or ES256 (ErrAlgorithm);
//   - its "kid" names a trusted key, or it has no kid and exactly one key is
//     trusted (ErrUnknownKey);
//   - that key is of the type the "alg" needs (ErrAlgorithm);
//   - the signature verifies (ErrSignature) and the claims are JSON of the
//     right types (ErrMalformed);
//   - "sub", "jti", "exp" and a non-empty "content" are present
//     (ErrMissingClaim), with no empty content entry (ErrMalformed);
//   - "aud" contains the verifier's audience (ErrAudience);
//   - "iss" is one of the verifier's issuers, if it has any (ErrIssuer);
//   - "exp" is at most MaxLifetime after "iat" and after now (ErrLifetime);
//   - "exp" is not more than the leeway in the past (ErrExpired);
//   - "nbf" and "iat" are not more than the leeway in the future
//     (ErrNotYetValid).
//
// After Close, Verify fails with ErrClosed.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	if v.closed.Load() {
		return nil, ErrClosed
	}
	// Size cap before any parsing: see MaxTokenSize.
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(raw), MaxTokenSize)
	}
	now := v.now()
	v.maybeReload(now, false)

	// jwt.ParseSigned refuses any "alg" not in allowedAlgorithms: the
	// algorithm is pinned by us, never chosen by the token.
	tok, err := jwt.ParseSigned(raw, allowedAlgorithms)
	if err != nil {
		return nil, classifyParseError(raw, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: %d signatures, want 1", ErrMalformed, len(tok.Headers))
	}
	hdr := tok.Headers[0]
	alg := jose.SignatureAlgorithm(hdr.Algorithm)
	if !slices.Contains(allowedAlgorithms, alg) { // defence in depth; ParseSigned checked
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, clip(hdr.Algorithm))
	}

	// The key is chosen by our key set, never by the token: an embedded "jwk",
	// "jku" or "x5c" header is ignored.
	key, ok := v.keys.Load().lookup(hdr.KeyID)
	if !ok && hdr.KeyID != "" && v.maybeReload(now, true) {
		// A new kid may be the first sign of a key rotation: re-check the file
		// once (it is only re-read if it changed) before refusing.
		key, ok = v.keys.Load().lookup(hdr.KeyID)
	}
	if !ok {
		if hdr.KeyID == "" {
			return nil, fmt.Errorf("%w: token has no kid and %d keys are trusted", ErrUnknownKey, len(v.keys.Load().all))
		}
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, clip(hdr.KeyID))
	}

	// Each key verifies exactly one algorithm. Without this check a token
	// whose kid names an ES256 key but whose alg says EdDSA would be handed to
	// the wrong verifier; go-jose would refuse today, but algorithm/key
	// confusion is the classic JWT hole, so we refuse explicitly and first.
	if key.alg != alg {
		return nil, fmt.Errorf("%w: token alg %s, key %q is for %s", ErrAlgorithm, alg, clip(key.kid), key.alg)
	}

	// Verify the signature before trusting a single byte of the payload.
	if err := tok.Claims(key.pub); err != nil {
		return nil, fmt.Errorf("%w: key %q", ErrSignature, clip(key.kid))
	}
	var wire wireClaims
	// The payload was verified by the call above; this only decodes it.
	if err := tok.UnsafeClaimsWithoutVerification(&wire); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	c := wire.toClaims()
	if err := v.checkClaims(c, now); err != nil {
		return nil, err
	}
	return c, nil
}

// checkClaims checks required claims, audience and validity times.
func (v *Verifier) checkClaims(c *Claims, now time.Time) error {
	switch {
	case c.Account == "":
		return fmt.Errorf("%w: sub", ErrMissingClaim)
	case c.ID == "":
		// jti is what revocation and replay accounting key on.
		return fmt.Errorf("%w: jti", ErrMissingClaim)
	case c.Expiry.IsZero():
		// A token without exp would be valid forever.
		return fmt.Errorf("%w: exp", ErrMissingClaim)
	case len(c.Content) == 0:
		// No content listed must not mean "no restriction".
		return fmt.Errorf("%w: content", ErrMissingClaim)
	}
	for i, e := range c.Content {
		if e == "" {
			return fmt.Errorf("%w: content entry %d is empty", ErrMalformed, i)
		}
	}
	// Without an audience check a token minted for another service that
	// trusts the same signing key (or another operator's license server)
	// would be accepted here.
	if !slices.Contains(c.Audience, v.audience) {
		return fmt.Errorf("%w: want %q", ErrAudience, v.audience)
	}
	// Without an issuer check, any party whose key sits in the trusted set
	// (or a token kind of another service signed with the same key) mints
	// entitlements here.
	if len(v.issuers) > 0 && !slices.Contains(v.issuers, c.Issuer) {
		return fmt.Errorf("%w: %q", ErrIssuer, clip(c.Issuer))
	}
	// A bounded lifetime: a token valid for ten years, leaked once, is an
	// entitlement for ten years (revoking the account is the only cure, and
	// it cuts off the honest subscriber too). Both the issuer's stated
	// lifetime (exp - iat) and what remains of it (exp - now) are bounded,
	// so a token without iat is bounded as well.
	if v.maxLifetime > 0 {
		if !c.IssuedAt.IsZero() && c.Expiry.Sub(c.IssuedAt) > v.maxLifetime {
			return fmt.Errorf("%w: exp - iat is %s, limit %s", ErrLifetime, c.Expiry.Sub(c.IssuedAt).Round(time.Second), v.maxLifetime)
		}
		if c.Expiry.Sub(now) > v.maxLifetime+v.leeway {
			return fmt.Errorf("%w: exp is %s from now, limit %s", ErrLifetime, c.Expiry.Sub(now).Round(time.Second), v.maxLifetime)
		}
	}
	// Leeway absorbs clock skew between the operator's backend and us, and is
	// capped at MaxLeeway (see NewVerifier). A token is refused once now is
	// past exp+leeway, so with 60s leeway 59s past exp passes and 61s fails.
	if now.After(c.Expiry.Add(v.leeway)) {
		return fmt.Errorf("%w: at %s", ErrExpired, c.Expiry.Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Add(v.leeway).Before(c.NotBefore) {
		return fmt.Errorf("%w: nbf %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
	}
	// A token issued in the future means a broken or malicious issuer clock;
	// accepting it would stretch the lifetime the issuer intended.
	if !c.IssuedAt.IsZero() && now.Add(v.leeway).Before(c.IssuedAt) {
		return fmt.Errorf("%w: iat %s is in the future", ErrNotYetValid, c.IssuedAt.Format(time.RFC3339))
	}
	return nil
}

// classifyParseError maps a go-jose parse failure to ErrAlgorithm when the
// header is readable and names an algorithm we refuse, else to ErrMalformed.
// The go-jose error text is dropped: it may quote parts of the input.
func classifyParseError(raw string, _ error) error {
	if alg, ok := headerAlg(raw); ok && !slices.Contains(allowedAlgorithms, jose.SignatureAlgorithm(alg)) {
		return fmt.Errorf("%w: %q", ErrAlgorithm, clip(alg))
	}
	return fmt.Errorf("%w: not a compact JWS", ErrMalformed)
}

// headerAlg best-effort decodes the protected header's "alg", for error
// classification only; nothing here is trusted.
func headerAlg(raw string) (string, bool) {
	h, _, ok := strings.Cut(raw, ".")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return "", false
	}
	var hdr struct {
		Alg *string `json:"alg"`
	}
	if json.Unmarshal(b, &hdr) != nil || hdr.Alg == nil {
		return "", false
	}
	return *hdr.Alg, true
}

// clip bounds attacker-chosen strings (kid, alg) quoted in error messages.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// maybeReload re-reads the key set file if it changed. Unless force is set it
// checks at most once per reloadInterval; a forced check (unknown kid) stats
// the file, which is cheap, and re-reads it only if it changed. It reports
// whether the keys were replaced.
func (v *Verifier) maybeReload(now time.Time, force bool) bool {
	if v.path == "" {
		return false
	}
	if !force {
		next := v.nextCheck.Load()
		if now.UnixNano() < next {
			return false
		}
		// Exactly one caller wins the periodic check; the rest go on with
		// the current keys rather than queue behind the file system.
		if !v.nextCheck.CompareAndSwap(next, now.Add(v.reloadInterval).UnixNano()) {
			return false
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	fi, err := os.Stat(v.path)
	if err != nil {
		v.log.Warn("token key set check failed; keeping current keys", "file", v.path, "err", err)
		return false
	}
	if sameFile(fi, v.lastFile) {
		return false
	}
	keys, fi, err := readKeySetFile(v.path)
	if fi != nil {
		// Remember the failed version too, so a broken file is reported once
		// and not re-parsed on every check until it changes again.
		v.lastFile = fi
	}
	if err != nil {
		v.log.Warn("token key set reload failed; keeping current keys", "file", v.path, "err", err)
		return false
	}
	set, err := v.buildSet(keys)
	if err != nil {
		v.log.Warn("token key set reload failed; keeping current keys", "file", v.path, "err", err)
		return false
	}
	v.keys.Store(set)
	v.log.Info("token key set reloaded", "file", v.path, "keys", len(set.all))
	return true
}
