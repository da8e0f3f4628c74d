package license

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sealmesh/sealmesh/keys"
)

// Errors of the Client's license checks; they wrap exactly one of these.
// Errors from the server come back as *APIError instead.
var (
	// ErrLicenseMalformed: the response is not a license.
	ErrLicenseMalformed = errors.New("license: response malformed")
	// ErrLicenseSignature: the signature does not verify under a pinned key.
	ErrLicenseSignature = errors.New("license: signature does not verify")
	// ErrLicenseMismatch: a signed license that does not answer our request
	// (other nonce, content, session, suite or KIDs), or whose keys do not
	// open with our private key.
	ErrLicenseMismatch = errors.New("license: license does not match the request")
	// ErrLicenseExpired: the license is outside its validity period.
	ErrLicenseExpired = errors.New("license: license expired or not yet valid")
)

// maxResponse bounds what the client reads from the server.
const maxResponse = 1 << 20

// ClientConfig configures NewClient.
type ClientConfig struct {
	// BaseURL is the server's URL, e.g. "https://license.example.com". Required.
	BaseURL string
	// ServerKeys are the pinned Ed25519 keys of the license server (current
	// and previous). Required: a license is never trusted on TLS alone.
	ServerKeys []ed25519.PublicKey
	// Token returns the entitlement token for each request. Required.
	Token func(ctx context.Context) (string, error)
	// DeviceID is sent with license requests (optional).
	DeviceID string
	// Suite is the HPKE suite to ask for. Default SuiteX25519.
	Suite Suite
	// HTTPClient defaults to a client with a 15 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on not_before/expiry. Default 30 s.
	Leeway time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Client asks a license server for licenses, renews them, and gets swarm
// tickets and peers. It is safe for concurrent use.
type Client struct {
	cfg  ClientConfig
	kem  hpke.KEM
	keys map[string]ed25519.PublicKey

	// clockOffset (nanoseconds) corrects this device's clock for proofs of
	// possession, whose time the server checks against its own: learnt from
	// the server's Date header after a proof_time refusal (set-top boxes
	// often boot with a wrong clock).
	clockOffset atomic.Int64
	lastDate    atomic.Pointer[dateSample]
	lastProof   atomic.Int64 // Unix milliseconds of the last proof sent
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.BaseURL == "" || cfg.Token == nil || len(cfg.ServerKeys) == 0 {
		return nil, errors.New("license: client needs BaseURL, Token and ServerKeys")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Suite == "" {
		cfg.Suite = SuiteX25519
	}
	kem, err := cfg.Suite.kem()
	if err != nil {
		return nil, fmt.Errorf("license: client: %w", err)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, kem: kem, keys: make(map[string]ed25519.PublicKey)}
	for i, k := range cfg.ServerKeys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("license: client: server key %d is not an Ed25519 public key", i)
		}
		c.keys[keys.SigningKeyID(k)] = append(ed25519.PublicKey(nil), k...)
	}
	return c, nil
}

// KeyRequest says which keys a license should carry: KIDs (at most 2), or
// a position in seconds (the server picks that period and the next), or
// neither (the start of the content).
type KeyRequest struct {
	Content  string
	KIDs     []keys.KID
	Position *float64
}

// ParseKIDs parses KIDs in hex (as manifests list them) for a KeyRequest,
// so that callers need not import the keys package.
func ParseKIDs(hexKIDs ...string) ([]keys.KID, error) {
	out := make([]keys.KID, 0, len(hexKIDs))
	for _, h := range hexKIDs {
		k, err := keys.ParseKID(h)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// License is a verified license with its keys unwrapped. It prints its IDs
// and KIDs only, never a key.
type License struct {
	ID, SessionID, Content, AccountHash, DeviceID string
	NotBefore, Expiry, RenewAfter                 time.Time
	Policy                                        Policy
	// ManifestSHA256 is the digest (segment.Manifest.Digest) of the signed
	// manifest the license was issued for; "" when the server has no
	// catalog of manifests. A player refuses any other manifest.
	ManifestSHA256 string
	keys           []keys.ContentKey
}

// Keys returns the content keys, in the order the license lists them.
// Each prints as its KID only; the raw key is behind InsecureRawKey.
func (l *License) Keys() []keys.ContentKey { return append([]keys.ContentKey(nil), l.keys...) }

// String shows the license's IDs, KIDs and expiry, never a key.
func (l *License) String() string {
	kids := make([]string, len(l.keys))
	for i, k := range l.keys {
		kids[i] = k.KID().String()
	}
	return fmt.Sprintf("License{id=%s session=%s content=%q kids=[%s] expiry=%s}", l.ID, l.SessionID, l.Content, strings.Join(kids, " "), l.Expiry.Format(time.RFC3339))
}

// License gets a new license (and a new session) for q.
func (c *Client) License(ctx context.Context, q KeyRequest) (*License, error) {
	return c.get(ctx, "/v1/license", q, "")
}

// Renew renews the session of prev, returning a license for the keys q
// names (q.Content is ignored; a zero q asks for the same KIDs as prev). A
// session that is not renewed before its expiry lapses.
func (c *Client) Renew(ctx context.Context, prev *License, q KeyRequest) (*License, error) {
	q.Content = prev.Content
	if len(q.KIDs) == 0 && q.Position == nil {
		for _, k := range prev.keys {
			q.KIDs = append(q.KIDs, k.KID())
		}
	}
	return c.get(ctx, "/v1/license/renew", q, prev.SessionID)
}

func (c *Client) get(ctx context.Context, path string, q KeyRequest, sessionID string) (*License, error) {
	priv, err := c.kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("license: HPKE key: %w", err)
	}
	nonce, err := c.Nonce(ctx)
	if err != nil {
		return nil, err
	}
	kids := make([]string, len(q.KIDs))
	for i, k := range q.KIDs {
		kids[i] = k.String()
	}
	pub := b64.EncodeToString(priv.PublicKey().Bytes())
	var req any
	if sessionID == "" {
		req = LicenseRequest{Content: q.Content, KIDs: kids, Position: q.Position, HPKEPublicKey: pub, Suite: c.cfg.Suite, Nonce: nonce, DeviceID: c.cfg.DeviceID}
	} else {
		req = RenewRequest{SessionID: sessionID, Content: q.Content, KIDs: kids, Position: q.Position, HPKEPublicKey: pub, Suite: c.cfg.Suite, Nonce: nonce}
	}
	body, err := c.post(ctx, path, req, true)
	if err != nil {
		return nil, err
	}
	p, err := verifyLicenseResponse(body, c.keys)
	if err != nil {
		return nil, err
	}
	return c.accept(p, priv, q, nonce, sessionID)
}

// accept checks that a verified payload answers our request and unwraps its keys.
func (c *Client) accept(p *LicensePayload, priv hpke.PrivateKey, q KeyRequest, nonce, sessionID string) (*License, error) {
	now := c.cfg.Now()
	switch {
	case p.Nonce != nonce:
		return nil, fmt.Errorf("%w: nonce not echoed (a replayed license?)", ErrLicenseMismatch)
	case p.Content != q.Content:
		return nil, fmt.Errorf("%w: license for content %q", ErrLicenseMismatch, p.Content)
	case sessionID != "" && p.SessionID != sessionID:
		return nil, fmt.Errorf("%w: license for another session", ErrLicenseMismatch)
	case p.Suite != c.cfg.Suite:
		return nil, fmt.Errorf("%w: suite %q", ErrLicenseMismatch, p.Suite)
	case now.Add(c.cfg.Leeway).Before(p.NotBefore) || !now.Before(p.Expiry):
		return nil, fmt.Errorf("%w: valid %s to %s", ErrLicenseExpired, p.NotBefore.Format(time.RFC3339), p.Expiry.Format(time.RFC3339))
	case len(p.Keys) == 0 || len(p.Keys) > maxLicenseKIDs:
		return nil, fmt.Errorf("%w: %d keys", ErrLicenseMismatch, len(p.Keys))
	}
	var err error
	l := &License{ID: p.LicenseID, SessionID: p.SessionID, Content: p.Content, AccountHash: p.AccountHash, DeviceID: p.DeviceID,
		NotBefore: p.NotBefore, Expiry: p.Expiry, RenewAfter: p.RenewAfter, Policy: p.Policy, ManifestSHA256: p.ManifestSHA256}
	if l.keys, err = unwrapKeys(priv, p); err != nil {
		return nil, err
	}
	if len(q.KIDs) > 0 {
		if len(q.KIDs) != len(l.keys) {
			return nil, fmt.Errorf("%w: asked for %d keys, got %d", ErrLicenseMismatch, len(q.KIDs), len(l.keys))
		}
		for i, k := range q.KIDs {
			if l.keys[i].KID() != k {
				return nil, fmt.Errorf("%w: got KID %s, asked for %s", ErrLicenseMismatch, l.keys[i].KID(), k)
			}
		}
	}
	return l, nil
}

// unwrapKeys opens the wrapped keys of p with the player's private key, in
// the order listed (the HPKE context's sequence numbers follow it). It
// fails for any other private key, license ID, KID, period or order: see
// "One HPKE context per license" in licenses.go.
func unwrapKeys(priv hpke.PrivateKey, p *LicensePayload) ([]keys.ContentKey, error) {
	enc, err := b64.DecodeString(p.Enc)
	if err != nil || len(enc) == 0 || len(enc) > maxEncodedPubKey {
		return nil, fmt.Errorf("%w: enc is not base64url", ErrLicenseMalformed)
	}
	rcpt, err := hpke.NewRecipient(enc, priv, hpkeKDF(), hpkeAEAD(), licenseInfo(p.LicenseID))
	if err != nil {
		return nil, fmt.Errorf("%w: enc does not decapsulate with this player's private key", ErrLicenseMismatch)
	}
	out := make([]keys.ContentKey, 0, len(p.Keys))
	for _, wk := range p.Keys {
		kid, err := keys.ParseKID(wk.KID)
		if err != nil {
			return nil, fmt.Errorf("%w: bad KID", ErrLicenseMalformed)
		}
		ct, err := b64.DecodeString(wk.CT)
		if err != nil {
			return nil, fmt.Errorf("%w: key %s: ct is not base64url", ErrLicenseMalformed, kid)
		}
		raw, err := rcpt.Open(keyAAD(kid, wk.Period), ct)
		if err != nil {
			return nil, fmt.Errorf("%w: key %s (period %d) does not open with this player's private key", ErrLicenseMismatch, kid, wk.Period)
		}
		ck, err := keys.ContentKeyFromBytes(kid, wk.Period, raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLicenseMalformed, err)
		}
		out = append(out, ck)
	}
	return out, nil
}

// verifyLicenseResponse checks the signature of a license response under
// the pinned keys and only then decodes the payload.
func verifyLicenseResponse(body []byte, pinned map[string]ed25519.PublicKey) (*LicensePayload, error) {
	var r LicenseResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLicenseMalformed, err)
	}
	pub, ok := pinned[r.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: signed by key %q, which is not pinned", ErrLicenseSignature, r.KeyID)
	}
	payload, err := b64.DecodeString(r.License)
	if err != nil || len(payload) == 0 {
		return nil, fmt.Errorf("%w: license is not base64url", ErrLicenseMalformed)
	}
	sig, err := b64.DecodeString(r.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is not base64url Ed25519", ErrLicenseMalformed)
	}
	if !ed25519.Verify(pub, append([]byte(licenseSigContext), payload...), sig) {
		return nil, ErrLicenseSignature
	}
	var p LicensePayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrLicenseMalformed, err)
	}
	return &p, nil
}

// Nonce gets a fresh single-use nonce.
func (c *Client) Nonce(ctx context.Context) (string, error) {
	body, err := c.post(ctx, "/v1/nonce", nil, false)
	if err != nil {
		return "", err
	}
	var n NonceResponse
	if err := json.Unmarshal(body, &n); err != nil || n.Nonce == "" {
		return "", fmt.Errorf("%w: nonce response", ErrLicenseMalformed)
	}
	return n.Nonce, nil
}

func (c *Client) post(ctx context.Context, path string, v any, withToken bool) ([]byte, error) {
	tok := ""
	if withToken {
		var err error
		if tok, err = c.cfg.Token(ctx); err != nil {
			return nil, fmt.Errorf("license: token: %w", err)
		}
	}
	return c.postToken(ctx, path, v, tok)
}

// postToken posts v (nil: no body) with tok as the bearer token ("": none).
func (c *Client) postToken(ctx context.Context, path string, v any, tok string) ([]byte, error) {
	var rd io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+path, rd)
	if err != nil {
		return nil, err
	}
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("license: POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		c.lastDate.Store(&dateSample{server: d, local: c.cfg.Now()})
	}
	if resp.StatusCode != http.StatusOK {
		return nil, readAPIError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("license: POST %s: %w", path, err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("%w: response larger than %d bytes", ErrLicenseMalformed, maxResponse)
	}
	return body, nil
}
