package player

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/segment"
)

// ErrInsecureTrustAnchors: the trust anchors (the license server's and the
// packager's public keys) are not pinned and would have to be fetched over
// plain HTTP. Open wraps it together with ErrConfig.
var ErrInsecureTrustAnchors = errors.New("player: refusing to fetch trust anchors over plain HTTP")

// maxKeysResponse bounds the answer of GET /v1/keys: a handful of keys.
const maxKeysResponse = 64 << 10

// needsAnchors reports whether Open must fetch keys that were not pinned.
func (c *Config) needsAnchors() bool { return len(c.LicenseKeys) == 0 || len(c.ManifestKeys) == 0 }

// checkAnchorSource refuses, before anything is fetched, to take trust
// anchors from a plain-HTTP license URL.
//
// Why: every signature the player checks (manifests, licenses, tickets)
// is only as good as the key it checks against. Keys fetched over plain HTTP
// can be replaced by anyone on the path, who then adds a manifest key of
// their own and serves a forged manifest whose hashes match tampered
// segments: the player would accept both (issue 12, L2). Loopback is no
// exception: a URL naming 127.0.0.1 may still reach a forwarded port, a
// container's proxy or another local user's listener, and pinning costs a
// flag. InsecureHTTPTrustAnchors is the explicit, loudly named way out for
// test setups.
func (c *Config) checkAnchorSource() error {
	if !c.needsAnchors() {
		return nil
	}
	u, err := url.Parse(c.LicenseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%w: LicenseURL %q: want the license server's https:// base URL", ErrConfig, c.LicenseURL)
	}
	if u.Scheme == "https" || c.InsecureHTTPTrustAnchors {
		return nil
	}
	return fmt.Errorf("%w: %w: the license and manifest signing keys are not pinned and %s is plain HTTP, where anyone on the path could substitute keys of their own (and have a forged manifest accepted): pin them (Config.LicenseKeys and Config.ManifestKeys), use an https:// license URL, or set Config.InsecureHTTPTrustAnchors for a test setup",
		ErrConfig, ErrInsecureTrustAnchors, c.LicenseURL)
}

// fetchAnchors fills in the keys that were not pinned from the license
// server's GET /v1/keys, trusting its TLS certificate (or, only with
// InsecureHTTPTrustAnchors, nothing). Pinned keys are never replaced or
// extended by fetched ones.
func fetchAnchors(ctx context.Context, c *Config) error {
	if !c.needsAnchors() {
		return nil
	}
	if err := c.checkAnchorSource(); err != nil {
		return err
	}
	keysURL := strings.TrimRight(c.LicenseURL, "/") + "/v1/keys"
	client := *c.HTTPClient
	if strings.HasPrefix(keysURL, "https://") {
		// An https URL that redirects to http would fetch the keys in the
		// clear after all.
		next := client.CheckRedirect
		client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return fmt.Errorf("%w: %s redirects to %s", ErrInsecureTrustAnchors, keysURL, req.URL.Redacted())
			}
			if next != nil {
				return next(req, via)
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, keysURL, nil)
	if err != nil {
		return fmt.Errorf("%w: LicenseURL: %v", ErrConfig, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, ErrInsecureTrustAnchors) {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		return fmt.Errorf("%w: fetch the trust anchors from %s: %w (or pin them)", ErrLicenseUnavailable, keysURL, err)
	}
	defer resp.Body.Close()
	var pk license.PublicKeys
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return fmt.Errorf("%w: fetch the trust anchors from %s: %s (or pin them)", ErrLicenseUnavailable, keysURL, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("player: fetch the trust anchors from %s: %s (or pin them)", keysURL, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxKeysResponse)).Decode(&pk); err != nil {
		return fmt.Errorf("player: trust anchors from %s: not the JSON of /v1/keys: %v", keysURL, err)
	}
	var lk []ed25519.PublicKey
	mk := segment.TrustedKeys{}
	for _, h := range pk.License {
		if b, err := hex.DecodeString(h); err == nil && len(b) == ed25519.PublicKeySize {
			lk = append(lk, b)
		}
	}
	for id, h := range pk.Manifest {
		if b, err := hex.DecodeString(h); err == nil && len(b) == ed25519.PublicKeySize && id != "" {
			mk[id] = b
		}
	}
	if len(c.LicenseKeys) == 0 {
		c.LicenseKeys = lk
	}
	if len(c.ManifestKeys) == 0 {
		c.ManifestKeys = mk
	}
	if len(c.LicenseKeys) == 0 || len(c.ManifestKeys) == 0 {
		return fmt.Errorf("%w: %s published no usable license or manifest key: pin them", ErrConfig, keysURL)
	}
	if c.InsecureHTTPTrustAnchors && !strings.HasPrefix(keysURL, "https://") {
		c.Logger.Warn("player: trust anchors fetched over plain HTTP (InsecureHTTPTrustAnchors): anyone on the path could have replaced them", "url", keysURL)
	}
	return nil
}
