package license

import (
	"crypto/sha256"
	"net/http"
	"sync"
	"time"
)

// Verified-token cache.
//
// A player sends the same entitlement token with every request of a
// session (nonce, license, renewals, Clear Key per period), and checking
// its signature costs more than anything else the server does for a Clear
// Key answer. The server therefore remembers, for a while, the claims of
// tokens it has verified:
//
//   - The key is SHA-256 of the raw token. Only a byte-identical token hits:
//     a token differing in any byte (header, claims or signature) is a miss
//     and is verified in full, so the cache can never make a token valid
//     that the verifier would refuse at its first sight. The raw token is
//     not kept.
//   - An entry lives until min(token exp, 60 s after it was verified), and
//     that is checked against the server's clock (Config.Now, injectable) on
//     every hit. Past it, the token is verified again by the verifier, which
//     then applies its own rules (including its clock leeway), so an
//     expired token is refused exactly as without the cache.
//   - What the cache saves is the signature check and claim parsing only.
//     Revocation of the account and device, the per-account rate limit,
//     entitlement to the content and the stream limit still run on every
//     request, against the claims.
//   - What it costs: a token signed by a key that is removed from the JWK
//     set stays accepted for at most 60 s after its last full verification
//     (revoke the account to cut it off at once). Refused tokens are never
//     cached, so garbage is verified (and refused) every time; the per-IP
//     rate limit bounds that.
//   - It is bounded (Config.TokenCacheSize, default 10,000 entries); when
//     full, an arbitrary entry is evicted (Go's randomized map order), which
//     an attacker cannot steer into a slowdown worse than no cache.
//
// Cached claims are shared between requests and never modified.
const tokenCacheTTL = 60 * time.Second

type tokenCache struct {
	max int
	mu  sync.Mutex
	m   map[[sha256.Size]byte]tokenEntry
}

type tokenEntry struct {
	auth     *authInfo
	verified time.Time
	until    time.Time
}

// newTokenCache returns a cache of at most max entries, or nil (no cache)
// for max <= 0.
func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{max: max, m: make(map[[sha256.Size]byte]tokenEntry, min(max, 1024))}
}

// get returns the cached authInfo of raw if it was verified and is still
// within its cache lifetime at now.
func (c *tokenCache) get(raw string, now time.Time) (*authInfo, [sha256.Size]byte, bool) {
	if c == nil {
		return nil, [sha256.Size]byte{}, false
	}
	h := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	e, ok := c.m[h]
	if ok && (!now.Before(e.until) || now.Before(e.verified)) {
		// Lapsed (or the clock went back before the verification): verify again.
		delete(c.m, h)
		ok = false
	}
	c.mu.Unlock()
	return e.auth, h, ok
}

// put remembers a just-verified token's authInfo until min(exp, now+60 s).
func (c *tokenCache) put(h [sha256.Size]byte, a *authInfo, now time.Time) {
	if c == nil {
		return
	}
	until := now.Add(tokenCacheTTL)
	if exp := a.claims.Expiry; !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	if _, ok := c.m[h]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[h] = tokenEntry{auth: a, verified: now, until: until}
	c.mu.Unlock()
}

// verifyToken verifies raw through the cache: a hit skips the signature
// check only (see above); the caller still checks revocation, rate limits
// and entitlement.
func (s *Server) verifyToken(raw string) (*authInfo, error) {
	now := s.cfg.Now()
	a, h, ok := s.tokens.get(raw, now)
	if ok {
		return a, nil
	}
	claims, err := s.deps.Tokens.Verify(raw)
	if err != nil {
		return nil, tokenError(err)
	}
	if claims == nil || claims.Account == "" {
		return nil, fail(http.StatusUnauthorized, CodeInvalidToken, "the token names no account")
	}
	a = &authInfo{claims: claims, accountHash: s.deps.State.AccountHash(claims.Account)}
	s.tokens.put(h, a, now)
	return a, nil
}
