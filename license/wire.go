package license

import (
	"bytes"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"

	"github.com/sealmesh/sealmesh/keys"
)

// Bounds on request fields. A request is parsed completely, and refused
// with 400 malformed_request, before any key is read or any crypto runs.
const (
	maxIDLen         = 256 // content, device and session IDs, accounts
	maxLicenseKIDs   = 2   // a license carries the current and next crypto period only
	maxClearKeyKIDs  = 16  // a Clear Key request lists the KIDs of one init segment or a few
	maxAddrs         = 16  // multiaddrs per announce
	maxAddrLen       = 256
	maxWant          = 50
	defaultWant      = 20
	minPeerIDLen     = 32
	maxPeerIDLen     = 128
	maxPosition      = 1e9 // seconds (31 years)
	maxEncodedPubKey = 2048
	maxEncodedTicket = 4096
)

// Suite names the HPKE ciphersuite that wraps content keys in a license.
// Both use HKDF-SHA256 and AES-128-GCM; they differ in the KEM.
type Suite string

const (
	// SuiteX25519 is DHKEM(X25519, HKDF-SHA256): a 32-byte public key. The default.
	SuiteX25519 Suite = "x25519"
	// SuiteMLKEM768X25519 is the ML-KEM-768 + X25519 hybrid (X-Wing), which
	// stays safe against a future quantum computer recording licenses today:
	// a 1,216-byte public key.
	SuiteMLKEM768X25519 Suite = "mlkem768x25519"
)

func (s Suite) kem() (hpke.KEM, error) {
	switch s {
	case SuiteX25519:
		return hpke.DHKEM(ecdhX25519), nil
	case SuiteMLKEM768X25519:
		return hpke.MLKEM768X25519(), nil
	}
	return nil, fmt.Errorf("unknown suite %q", string(s))
}

// LicenseRequest is the body of POST /v1/license.
type LicenseRequest struct {
	Content       string   `json:"content"`
	KIDs          []string `json:"kids,omitempty"`     // hex; at most 2
	Position      *float64 `json:"position,omitempty"` // seconds into the content
	HPKEPublicKey string   `json:"hpke_public_key"`    // base64url
	Suite         Suite    `json:"suite,omitempty"`    // default "x25519"
	Nonce         string   `json:"nonce"`
	DeviceID      string   `json:"device_id,omitempty"`
}

// RenewRequest is the body of POST /v1/license/renew.
type RenewRequest struct {
	SessionID     string   `json:"session_id"`
	Content       string   `json:"content,omitempty"` // optional; must match the session's
	KIDs          []string `json:"kids,omitempty"`
	Position      *float64 `json:"position,omitempty"`
	HPKEPublicKey string   `json:"hpke_public_key"`
	Suite         Suite    `json:"suite,omitempty"`
	Nonce         string   `json:"nonce"`
}

// ClearKeyRequest is the W3C EME Clear Key license request.
type ClearKeyRequest struct {
	KIDs []string `json:"kids"` // base64url 16-byte KIDs
	Type string   `json:"type,omitempty"`
}

// ClearKeyResponse is the W3C EME Clear Key license: a JWK set.
type ClearKeyResponse struct {
	Keys []ClearKeyJWK `json:"keys"`
	Type string        `json:"type"`
}

// ClearKeyJWK is one key of a Clear Key license.
type ClearKeyJWK struct {
	Kty string `json:"kty"` // "oct"
	KID string `json:"kid"` // base64url, no padding
	K   string `json:"k"`   // base64url, no padding
}

// TicketRequest is the body of POST /v1/ticket. Time and Signature (and
// PublicKey for peer IDs that do not embed their key) prove possession of
// the peer ID's libp2p key: see proof.go. Client.Ticket fills them.
type TicketRequest struct {
	PeerID    string `json:"peer_id"`
	Content   string `json:"content"`
	PublicKey string `json:"public_key,omitempty"`
	Time      int64  `json:"time"`      // Unix milliseconds
	Signature string `json:"signature"` // base64url, by the peer's libp2p key
}

// AnnounceRequest is the body of POST /v1/announce: the ticket, and a proof
// by the ticket's peer over the ticket, the time and the addrs.
type AnnounceRequest struct {
	Ticket    string   `json:"ticket"`            // the encoded ticket (Ticket bytes as a string)
	PeerID    string   `json:"peer_id,omitempty"` // optional; must be the ticket's peer
	Addrs     []string `json:"addrs"`             // multiaddrs the peer listens on
	Want      int      `json:"want,omitempty"`    // peers wanted, at most 50; default 20
	PublicKey string   `json:"public_key,omitempty"`
	Time      int64    `json:"time"`      // Unix milliseconds
	Signature string   `json:"signature"` // base64url, by the ticket's peer's libp2p key
}

// AnnounceResponse is the answer of POST /v1/announce.
type AnnounceResponse struct {
	Peers []TrackerPeer `json:"peers"`
	// Revoked lists peers of this content whose account or peer ID was
	// revoked while their ticket is still live: a seed drops and
	// disconnects them at once instead of serving them until the ticket
	// runs out.
	Revoked []string `json:"revoked,omitempty"`
}

// TrackerPeer is one peer of a content's swarm.
type TrackerPeer struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

func badRequest(format string, a ...any) *apiError {
	return fail(http.StatusBadRequest, CodeMalformedRequest, fmt.Sprintf(format, a...))
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body is not valid JSON for this endpoint: %s", jsonErrText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

// jsonErrText describes a decode error without echoing the input.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated or empty body"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "invalid JSON"
}

func checkID(name, v string, required bool) error {
	if v == "" {
		if required {
			return badRequest("%s is required", name)
		}
		return nil
	}
	if len(v) > maxIDLen {
		return badRequest("%s is longer than %d bytes", name, maxIDLen)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return badRequest("%s contains a control character or invalid UTF-8", name)
		}
	}
	return nil
}

// keyQuery is the part of license and renew requests that picks keys and
// the key to wrap them to.
type keyQuery struct {
	kids     []keys.KID
	position *float64
	suite    Suite
	pub      hpke.PublicKey
}

func parseKeyQuery(kidsHex []string, position *float64, suite Suite, pubEnc string) (keyQuery, error) {
	var q keyQuery
	if len(kidsHex) > maxLicenseKIDs {
		return q, fail(http.StatusBadRequest, CodeTooManyKIDs, fmt.Sprintf("a license carries at most %d KIDs (the current and next crypto period)", maxLicenseKIDs))
	}
	if len(kidsHex) > 0 && position != nil {
		return q, badRequest("give kids or position, not both")
	}
	seen := map[keys.KID]bool{}
	for i, h := range kidsHex {
		k, err := keys.ParseKID(h)
		if err != nil || k.IsZero() {
			return q, badRequest("kids[%d] is not a 32-digit hex KID", i)
		}
		if seen[k] {
			return q, badRequest("kids[%d] is repeated", i)
		}
		seen[k] = true
		q.kids = append(q.kids, k)
	}
	if position != nil {
		p := *position
		if math.IsNaN(p) || p < 0 || p > maxPosition {
			return q, badRequest("position must be a number of seconds from 0 to %g", float64(maxPosition))
		}
		q.position = &p
	}
	if suite == "" {
		suite = SuiteX25519
	}
	kem, err := suite.kem()
	if err != nil {
		return q, fail(http.StatusBadRequest, CodeUnsupportedSuite, `suite must be "x25519" or "mlkem768x25519"`)
	}
	q.suite = suite
	if pubEnc == "" {
		return q, badRequest("hpke_public_key is required")
	}
	if len(pubEnc) > maxEncodedPubKey {
		return q, fail(http.StatusBadRequest, CodeInvalidPublicKey, "hpke_public_key is too long")
	}
	raw, err := b64.DecodeString(pubEnc)
	if err != nil {
		return q, fail(http.StatusBadRequest, CodeInvalidPublicKey, "hpke_public_key is not base64url without padding")
	}
	if q.pub, err = kem.NewPublicKey(raw); err != nil {
		return q, fail(http.StatusBadRequest, CodeInvalidPublicKey, fmt.Sprintf("hpke_public_key is not a %s public key", suite))
	}
	return q, nil
}

type licenseAsk struct {
	content, nonce, device string
	keyQuery
}

func parseLicenseRequest(body []byte) (*licenseAsk, error) {
	var r LicenseRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	if err := checkID("content", r.Content, true); err != nil {
		return nil, err
	}
	if err := checkID("device_id", r.DeviceID, false); err != nil {
		return nil, err
	}
	if r.Nonce == "" {
		return nil, badRequest("nonce is required: get one from POST /v1/nonce")
	}
	q, err := parseKeyQuery(r.KIDs, r.Position, r.Suite, r.HPKEPublicKey)
	if err != nil {
		return nil, err
	}
	return &licenseAsk{content: r.Content, nonce: r.Nonce, device: r.DeviceID, keyQuery: q}, nil
}

type renewAsk struct {
	session, content, nonce string
	keyQuery
}

func parseRenewRequest(body []byte) (*renewAsk, error) {
	var r RenewRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	if err := checkID("session_id", r.SessionID, true); err != nil {
		return nil, err
	}
	if err := checkID("content", r.Content, false); err != nil {
		return nil, err
	}
	if r.Nonce == "" {
		return nil, badRequest("nonce is required: get one from POST /v1/nonce")
	}
	q, err := parseKeyQuery(r.KIDs, r.Position, r.Suite, r.HPKEPublicKey)
	if err != nil {
		return nil, err
	}
	return &renewAsk{session: r.SessionID, content: r.Content, nonce: r.Nonce, keyQuery: q}, nil
}

// parseClearKeyRequest reads the KIDs of a Clear Key request from the body,
// or, when the body lists none, from the kid= query parameters (hex or UUID)
// that sealmesh HLS playlists append to the key URI. Unknown JSON fields are
// ignored: the body is written by the browser's CDM, not by us.
func parseClearKeyRequest(body []byte, query url.Values) ([]keys.KID, error) {
	var r ClearKeyRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&r); err != nil {
			return nil, badRequest("Clear Key request is not valid JSON: %s", jsonErrText(err))
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, badRequest("request body has data after the JSON object")
		}
		if r.Type != "" && r.Type != "temporary" {
			return nil, badRequest(`only "temporary" Clear Key sessions are supported`)
		}
	}
	var out []keys.KID
	seen := map[keys.KID]bool{}
	add := func(k keys.KID) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if len(r.KIDs) > 0 {
		if len(r.KIDs) > maxClearKeyKIDs {
			return nil, fail(http.StatusBadRequest, CodeTooManyKIDs, fmt.Sprintf("at most %d KIDs per Clear Key request", maxClearKeyKIDs))
		}
		for i, s := range r.KIDs {
			raw, err := decodeB64Lenient(s)
			if err != nil || len(raw) != 16 {
				return nil, badRequest("kids[%d] is not a base64url 16-byte KID", i)
			}
			add(keys.KID(raw))
		}
		return out, nil
	}
	qk := query["kid"]
	if len(qk) > maxClearKeyKIDs {
		return nil, fail(http.StatusBadRequest, CodeTooManyKIDs, fmt.Sprintf("at most %d KIDs per Clear Key request", maxClearKeyKIDs))
	}
	for i, s := range qk {
		k, err := keys.ParseKID(s)
		if err != nil {
			return nil, badRequest("kid query parameter %d is not a hex or UUID KID", i)
		}
		add(k)
	}
	if len(out) == 0 {
		return nil, badRequest(`a Clear Key request lists KIDs: {"kids":["<base64url>"],"type":"temporary"}`)
	}
	return out, nil
}

// decodeB64Lenient accepts base64url with or without padding: EME requires
// no padding, but some CDMs and tools add it.
func decodeB64Lenient(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

type ticketAsk struct {
	TicketRequest
	proof proof
}

func parseTicketRequest(body []byte) (*ticketAsk, error) {
	var r TicketRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	if err := checkID("content", r.Content, true); err != nil {
		return nil, err
	}
	if err := validPeerID(r.PeerID); err != nil {
		return nil, err
	}
	p, err := parseProof(r.PublicKey, r.Time, r.Signature)
	if err != nil {
		return nil, err
	}
	return &ticketAsk{TicketRequest: r, proof: p}, nil
}

func parseProof(pub string, ms int64, sig string) (proof, error) {
	switch {
	case sig == "" || ms == 0:
		return proof{}, badProof("time and signature are required: sign the request with the peer's libp2p key (see the license package documentation)")
	case len(sig) > 2*maxProofSigLen || len(pub) > 2*maxPublicKeyLen:
		return proof{}, badRequest("signature or public_key is too long")
	}
	return proof{PublicKey: pub, Time: ms, Signature: sig}, nil
}

type announceAsk struct {
	ticket []byte
	peerID string
	addrs  []string
	want   int
	proof  proof
}

func parseAnnounceRequest(body []byte) (*announceAsk, error) {
	var r AnnounceRequest
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	if r.Ticket == "" || len(r.Ticket) > maxEncodedTicket {
		return nil, badRequest("ticket is required (the encoded ticket from /v1/ticket, at most %d bytes)", maxEncodedTicket)
	}
	if r.PeerID != "" {
		if err := validPeerID(r.PeerID); err != nil {
			return nil, err
		}
	}
	if len(r.Addrs) > maxAddrs {
		return nil, badRequest("at most %d addrs", maxAddrs)
	}
	for i, a := range r.Addrs {
		if len(a) == 0 || len(a) > maxAddrLen || a[0] != '/' {
			return nil, badRequest("addrs[%d] is not a multiaddr (/ip4/.../tcp/...)", i)
		}
		for j := 0; j < len(a); j++ {
			if a[j] <= 0x20 || a[j] >= 0x7f {
				return nil, badRequest("addrs[%d] has a character a multiaddr string cannot have", i)
			}
		}
	}
	switch {
	case r.Want < 0 || r.Want > maxWant:
		return nil, badRequest("want must be 0 to %d", maxWant)
	case r.Want == 0:
		r.Want = defaultWant
	}
	p, err := parseProof(r.PublicKey, r.Time, r.Signature)
	if err != nil {
		return nil, err
	}
	return &announceAsk{ticket: []byte(r.Ticket), peerID: r.PeerID, addrs: r.Addrs, want: r.Want, proof: p}, nil
}

const (
	base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	base32Lower    = "abcdefghijklmnopqrstuvwxyz234567"
)

// validPeerID checks a libp2p peer ID's syntax loosely: a base58btc
// multihash ("12D3KooW...", "Qm...") or a base32 CIDv1 ("bafz..."), of a
// sane length. Only the syntax is checked; the transport layer, which
// authenticates peers, compares the ID for equality.
func validPeerID(id string) error {
	bad := fail(http.StatusBadRequest, CodeInvalidPeerID, "peer_id is not a libp2p peer ID (base58btc multihash or base32 CIDv1)")
	if len(id) < minPeerIDLen || len(id) > maxPeerIDLen {
		return bad
	}
	alphabet := base58Alphabet
	if id[0] == 'b' && strings.Trim(id[1:], base32Lower) == "" {
		alphabet = base32Lower
		id = id[1:]
	}
	if strings.Trim(id, alphabet) != "" {
		return bad
	}
	return nil
}
