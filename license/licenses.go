package license

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/sealmesh/sealmesh/keys"
)

var ecdhX25519 = ecdh.X25519()

// licenseSigContext prefixes the signed bytes of a license, so that a
// license signature can never pass for a ticket or manifest signature made
// with the same key, or the other way round.
const licenseSigContext = "sealmesh license v1\x00"

// LicenseResponse is the answer of POST /v1/license and /v1/license/renew.
type LicenseResponse struct {
	License   string `json:"license"`   // base64url of the payload JSON bytes (LicensePayload)
	Signature string `json:"signature"` // base64url Ed25519 over "sealmesh license v1\x00" || payload bytes
	KeyID     string `json:"key_id"`    // the signing key's ID (keys.SigningKeyID)
}

// LicensePayload is the signed content of a license.
type LicensePayload struct {
	LicenseID   string       `json:"license_id"`
	SessionID   string       `json:"session_id"`
	AccountHash string       `json:"account_hash"`
	Content     string       `json:"content"`
	Nonce       string       `json:"nonce"` // the request's nonce, echoed
	DeviceID    string       `json:"device_id,omitempty"`
	NotBefore   time.Time    `json:"not_before"`
	Expiry      time.Time    `json:"expiry"`
	RenewAfter  time.Time    `json:"renew_after"`
	Policy      Policy       `json:"policy"`
	Suite       Suite        `json:"suite"`
	Enc         string       `json:"enc"` // base64url HPKE encapsulated key, one per license
	Keys        []WrappedKey `json:"keys"`
	// ManifestSHA256 is the digest of the content's signed segment manifest
	// this license was issued for (see manifestDigest in catalog.go).
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
}

// Policy says what the player may do with the keys.
type Policy struct {
	MaxResolution int  `json:"max_resolution,omitempty"` // lines; 0: no limit
	Persist       bool `json:"persist"`                  // always false: keys live in memory only
	Renewable     bool `json:"renewable"`
}

// WrappedKey is one content key sealed to the player's HPKE public key, in
// the HPKE context of its license (LicensePayload.Enc).
type WrappedKey struct {
	KID    string `json:"kid"` // 32 lowercase hex
	Period int    `json:"period"`
	CT     string `json:"ct"` // base64url AES-128-GCM ciphertext || tag (32 bytes)
}

// One HPKE context per license.
//
// The server makes one HPKE sender per license, bound by info to the
// license ID, and seals each content key in it with the KID and period as
// associated data; the license carries the encapsulated key ("enc") once
// and a ciphertext per key. This costs one KEM encapsulation (two X25519
// scalar multiplications) per license instead of one per key, and keeps
// every binding of the former one-shot-per-key construction:
//
//   - info = "sealmesh license v1" 0x00 license_id enters the key schedule,
//     so no ciphertext opens under another license's context, and the
//     context exists only for the holder of the player's private key;
//   - aad = "kid:" kid-hex "|period:" N is authenticated by AES-GCM, so a
//     ciphertext moved to another KID or period (in this license or any
//     other) fails to open: a key cannot be presented as another KID's key;
//   - the context's sequence number makes each Seal use its own nonce (RFC
//     9180 §5.2), and the recipient opens in the same order, so ciphertexts
//     reordered within a license fail to open as well.
//
// The Ed25519 signature over the payload covers enc and every ct besides.
const licenseInfoPrefix = "sealmesh license v1\x00"

func licenseInfo(licenseID string) []byte { return []byte(licenseInfoPrefix + licenseID) }

// keyAAD is the associated data of one wrapped key: its KID and period.
func keyAAD(kid keys.KID, period int) []byte {
	return []byte("kid:" + kid.String() + "|period:" + strconv.Itoa(period))
}

func hpkeKDF() hpke.KDF   { return hpke.HKDFSHA256() }
func hpkeAEAD() hpke.AEAD { return hpke.AES128GCM() }

// newSender makes the HPKE context of one license, bound to its ID. It
// fails for a public key the KEM cannot encapsulate to: for X25519, a
// low-order point (all zeros, and the few others), whose shared secret
// would be all zeros, which crypto/ecdh refuses. The license handlers call
// it before anything is committed (see checkPublicKey).
func newSender(pub hpke.PublicKey, licenseID string) ([]byte, *hpke.Sender, error) {
	enc, sender, err := hpke.NewSender(pub, hpkeKDF(), hpkeAEAD(), licenseInfo(licenseID))
	if err != nil {
		return nil, nil, fmt.Errorf("hpke sender: %w", err)
	}
	return enc, sender, nil
}

// checkPublicKey makes the license's HPKE context now, so that a public key
// no license can be sealed to (low-order or otherwise unusable) is refused
// with 400 before the nonce is used up or a stream slot is taken. Without
// this the failure came from inside the committed session start: a 500, a
// burned nonce and a slot held until the session's expiry, so that four
// such requests locked an account out. The work is not wasted: the context
// made here seals the license.
func checkPublicKey(pub hpke.PublicKey, suite Suite, licenseID string) ([]byte, *hpke.Sender, error) {
	enc, sender, err := newSender(pub, licenseID)
	if err != nil {
		return nil, nil, fail(http.StatusBadRequest, CodeInvalidPublicKey, fmt.Sprintf(
			"hpke_public_key is not a usable %s public key (a low-order or invalid point): generate a fresh key pair", suite))
	}
	return enc, sender, nil
}

// wrapKeys seals ks in the license's HPKE context and returns the wrapped
// keys, in the order of ks. Each raw key copy exists only for its Seal.
func wrapKeys(sender *hpke.Sender, ks []keys.ContentKey) ([]WrappedKey, error) {
	out := make([]WrappedKey, 0, len(ks))
	for _, ck := range ks {
		raw := ck.InsecureRawKey()
		ct, err := sender.Seal(keyAAD(ck.KID(), ck.Period()), raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("hpke seal %s: %w", ck.KID(), err)
		}
		out = append(out, WrappedKey{KID: ck.KID().String(), Period: ck.Period(), CT: b64.EncodeToString(ct)})
	}
	return out, nil
}

// sealLicense wraps ks to pub into p, then signs the payload.
func sealLicense(signer crypto.Signer, keyID string, p *LicensePayload, pub hpke.PublicKey, ks []keys.ContentKey) (*LicenseResponse, error) {
	enc, sender, err := newSender(pub, p.LicenseID)
	if err != nil {
		return nil, err
	}
	return sealLicenseWith(signer, keyID, p, enc, sender, ks)
}

// sealLicenseWith wraps ks in the prepared HPKE context (enc, sender) into
// p, then signs the payload.
func sealLicenseWith(signer crypto.Signer, keyID string, p *LicensePayload, enc []byte, sender *hpke.Sender, ks []keys.ContentKey) (*LicenseResponse, error) {
	var err error
	p.Enc = b64.EncodeToString(enc)
	if p.Keys, err = wrapKeys(sender, ks); err != nil {
		return nil, err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, len(licenseSigContext)+len(body))
	msg = append(append(msg, licenseSigContext...), body...)
	sig, err := signer.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign license: %w", err)
	}
	return &LicenseResponse{License: b64.EncodeToString(body), Signature: b64.EncodeToString(sig), KeyID: keyID}, nil
}

// randomID returns 16 random bytes in base64url (22 characters).
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(b[:])
}

// newSessionID returns a session ID: 6 bytes of the time in milliseconds
// (big-endian) then 10 random bytes, in base64url (22 characters).
//
// The time prefix is for the state file: sessions are keyed by ID there,
// and IDs made close in time share a prefix, so the sessions of one group
// commit land in a few neighbouring B-tree pages instead of one page each
// (which made every commit rewrite most of the tree once it held tens of
// thousands of sessions). 80 random bits remain, and a session ID grants
// nothing alone: renewals check that the session is the token's account's.
// It reveals when the session started, which the license says anyway.
func newSessionID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	_, _ = rand.Read(b[6:])
	return b64.EncodeToString(b[:])
}

// selectKeys picks the keys a license carries: the KIDs asked for (at most
// two, all of this content), or the keys of the crypto period that holds
// the position and of the one after it.
//
// A position needs each period's start time, which only the signed segment
// manifest knows; without a ContentCatalog only position 0 (or none: the
// start of the content) is answered, with the first two periods.
func (s *Server) selectKeys(ctx context.Context, content string, q keyQuery) ([]keys.ContentKey, error) {
	if len(q.kids) > 0 {
		out := make([]keys.ContentKey, 0, len(q.kids))
		for _, kid := range q.kids {
			owner, ck, err := s.deps.Keys.ContentKey(ctx, kid)
			switch {
			case errors.Is(err, keys.ErrNotFound) || (err == nil && owner != content):
				// A KID of other content is "unknown" here rather than "not
				// entitled", so the answer does not say what else exists.
				return nil, fail(http.StatusNotFound, CodeUnknownKID, fmt.Sprintf("KID %s is not a key of content %q", kid, content))
			case err != nil:
				return nil, internal(fmt.Errorf("content key %s: %w", kid, err))
			}
			out = append(out, ck)
		}
		return out, nil
	}
	all, err := s.deps.Keys.ContentKeys(ctx, content)
	// Every key of the content is in memory for this call; the two picked
	// are copied out and the rest wiped on return (see wipeKeys).
	defer wipeKeys(all)
	switch {
	case errors.Is(err, keys.ErrNotFound):
		return nil, fail(http.StatusNotFound, CodeUnknownContent, fmt.Sprintf("no keys for content %q", content))
	case err != nil:
		return nil, internal(fmt.Errorf("content keys of %q: %w", content, err))
	case len(all) == 0:
		return nil, fail(http.StatusNotFound, CodeUnknownContent, fmt.Sprintf("no keys for content %q", content))
	}
	period := all[0].Period()
	if q.position != nil && *q.position > 0 {
		if s.deps.Catalog == nil {
			return nil, fail(http.StatusBadRequest, CodePositionUnsupport, "this server has no catalog of crypto period start times: ask by kids instead of position")
		}
		periods, err := s.deps.Catalog.Periods(ctx, content)
		switch {
		case errors.Is(err, keys.ErrNotFound):
			return nil, fail(http.StatusBadRequest, CodePositionUnsupport, fmt.Sprintf("no period start times for content %q: ask by kids instead of position", content))
		case err != nil:
			return nil, internal(fmt.Errorf("catalog periods of %q: %w", content, err))
		}
		for _, p := range periods {
			if p.Start <= *q.position {
				period = p.Index
			}
		}
	}
	out := make([]keys.ContentKey, 0, 2)
	for _, ck := range all {
		if ck.Period() == period || ck.Period() == period+1 {
			out = append(out, ck)
		}
	}
	if len(out) == 0 {
		return nil, fail(http.StatusNotFound, CodeUnknownKID, fmt.Sprintf("content %q has no key for crypto period %d", content, period))
	}
	return out, nil
}

func kidStrings(ks []keys.ContentKey) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.KID().String()
	}
	return out
}

// sealInto returns a function that seals and signs the license p, in the
// prepared HPKE context, into *out.
func (s *Server) sealInto(out **LicenseResponse, p *LicensePayload, enc []byte, sender *hpke.Sender, ks []keys.ContentKey) func() error {
	return func() error {
		r, err := sealLicenseWith(s.deps.Signer, s.keyID, p, enc, sender, ks)
		if err != nil {
			return internal(err)
		}
		*out = r
		return nil
	}
}

// windowFor checks that ks are of adjacent periods and returns the key
// window check a session start or renewal must pass (nil when the window
// is off).
func (s *Server) windowFor(ctx context.Context, content string, ks []keys.ContentKey, some bool) (*windowCheck, error) {
	ps := make([]int, 0, len(ks))
	for _, k := range ks {
		ps = append(ps, k.Period())
	}
	slices.Sort(ps)
	ps = slices.Compact(ps)
	if !some {
		if _, _, err := periodRange(ks); err != nil {
			return nil, err
		}
		if s.cfg.KeyWindow.Off {
			return nil, nil
		}
	}
	pc, err := s.periodClockFor(ctx, content)
	if err != nil {
		return nil, err
	}
	return &windowCheck{periods: ps, some: some, speed: s.cfg.KeyWindow.Speed, pc: pc}, nil
}

// wipeKeys overwrites the content keys the server holds in ks.
//
// What this does and does not do: keys.ContentKey keeps its 16 bytes in an
// array inside the value, so zeroing the slice's elements overwrites the
// copies this slice owns. Go copies values freely (every call with a
// ContentKey argument, the key source's own unsealing buffers, AES key
// schedules inside crypto/hpke), the garbage collector may have moved or
// copied memory, and strings (base64 in a JSON body) cannot be overwritten
// at all; so this shortens how long keys sit in the heap, it does not
// guarantee none remain. The handlers build no string that holds a key:
// native licenses only carry HPKE ciphertexts, and Clear Key bodies are
// written from a byte buffer that is wiped after the write.
func wipeKeys(ks []keys.ContentKey) { clear(ks) }

// handleLicense serves POST /v1/license.
func (s *Server) handleLicense(w http.ResponseWriter, r *http.Request, body []byte) error {
	ctx := r.Context()
	auth, err := s.authorize(r)
	if err != nil {
		return err
	}
	ask, err := parseLicenseRequest(body)
	if err != nil {
		return err
	}
	device, err := s.deviceOf(auth, ask.device)
	if err != nil {
		return err
	}
	if !auth.claims.Entitles(ask.content) {
		return fail(http.StatusForbidden, CodeNotEntitled, fmt.Sprintf("the token does not entitle content %q", ask.content))
	}
	now := s.cfg.Now()
	nonce, nonceExp, err := s.deps.State.checkNonce(ask.nonce, now)
	if err != nil {
		return err
	}
	licenseID := randomID()
	enc, sender, err := checkPublicKey(ask.pub, ask.suite, licenseID)
	if err != nil {
		return err
	}
	ks, err := s.selectKeys(ctx, ask.content, ask.keyQuery)
	if err != nil {
		return err
	}
	defer wipeKeys(ks)
	win, err := s.windowFor(ctx, ask.content, ks, false)
	if err != nil {
		return err
	}
	p := &LicensePayload{
		LicenseID: licenseID, SessionID: newSessionID(now), AccountHash: auth.accountHash,
		Content: ask.content, Nonce: ask.nonce, DeviceID: device,
		NotBefore: now.UTC().Truncate(time.Second), Expiry: now.Add(s.cfg.LicenseTTL).UTC().Truncate(time.Second),
		RenewAfter: now.Add(s.cfg.RenewAfter).UTC().Truncate(time.Second),
		Policy:     Policy{Persist: false, Renewable: true}, Suite: ask.suite,
	}
	p.ManifestSHA256 = s.manifestDigest(ctx, p.Content)
	// The license is sealed and signed while the session and the nonce's
	// use are made durable, and sent only after they are.
	var resp *LicenseResponse
	err = s.deps.State.startSession(ctx, now, startParams{
		sess:  session{ID: p.SessionID, AccountHash: p.AccountHash, Content: p.Content, Device: device, Created: now.UTC(), Expiry: p.Expiry},
		nonce: &nonce, nonceExp: nonceExp, maxStreams: s.cfg.MaxStreamsPerAccount, window: win,
		audit: AuditEntry{Time: now.UTC(), Event: "license", LicenseID: p.LicenseID, SessionID: p.SessionID, AccountHash: p.AccountHash,
			Content: p.Content, KIDs: kidStrings(ks), Device: device, TokenID: auth.claims.ID},
		during: s.sealInto(&resp, p, enc, sender, ks),
	})
	if err != nil {
		return err
	}
	s.metrics.licenses.WithLabelValues("license").Inc()
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// handleRenew serves POST /v1/license/renew.
func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request, body []byte) error {
	ctx := r.Context()
	auth, err := s.authorize(r)
	if err != nil {
		return err
	}
	ask, err := parseRenewRequest(body)
	if err != nil {
		return err
	}
	st := s.deps.State
	content, device, ok := st.sessionInfo(ask.session, auth.accountHash)
	if !ok || (ask.content != "" && ask.content != content) {
		return fail(http.StatusNotFound, CodeUnknownSession, "no such session for this account and content: start a new one with /v1/license")
	}
	// The token may have changed since the session began (a new token from
	// the backend): it must still be for this device and cover the content.
	if _, err := s.deviceOf(auth, device); err != nil {
		return err
	}
	if !auth.claims.Entitles(content) {
		return fail(http.StatusForbidden, CodeNotEntitled, fmt.Sprintf("the token does not entitle content %q", content))
	}
	now := s.cfg.Now()
	nonce, nonceExp, err := st.checkNonce(ask.nonce, now)
	if err != nil {
		return err
	}
	licenseID := randomID()
	enc, sender, err := checkPublicKey(ask.pub, ask.suite, licenseID)
	if err != nil {
		return err
	}
	ks, err := s.selectKeys(ctx, content, ask.keyQuery)
	if err != nil {
		return err
	}
	defer wipeKeys(ks)
	win, err := s.windowFor(ctx, content, ks, false)
	if err != nil {
		return err
	}
	p := &LicensePayload{
		LicenseID: licenseID, SessionID: ask.session, AccountHash: auth.accountHash,
		Content: content, Nonce: ask.nonce, DeviceID: device,
		NotBefore: now.UTC().Truncate(time.Second), Expiry: now.Add(s.cfg.LicenseTTL).UTC().Truncate(time.Second),
		RenewAfter: now.Add(s.cfg.RenewAfter).UTC().Truncate(time.Second),
		Policy:     Policy{Persist: false, Renewable: true}, Suite: ask.suite,
	}
	p.ManifestSHA256 = s.manifestDigest(ctx, p.Content)
	var resp *LicenseResponse
	if _, err := st.renewSession(ctx, now, ask.session, auth.accountHash, content, nonce, nonceExp, p.Expiry, win,
		AuditEntry{Time: now.UTC(), Event: "renew", LicenseID: p.LicenseID, AccountHash: p.AccountHash,
			Content: content, KIDs: kidStrings(ks), Device: device, TokenID: auth.claims.ID},
		s.sealInto(&resp, p, enc, sender, ks)); err != nil {
		return err
	}
	s.metrics.licenses.WithLabelValues("renew").Inc()
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// handleNonce serves POST /v1/nonce.
func (s *Server) handleNonce(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	n, err := s.deps.State.newNonce(s.cfg.Now(), s.cfg.NonceTTL)
	if err != nil {
		return internal(err)
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}
