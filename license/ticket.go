package license

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sealmesh/sealmesh/keys"
)

// Swarm tickets.
//
// A ticket lets one libp2p peer ID join the swarm of one content for a few
// minutes. Its encoded form, which the transport layer carries as opaque
// bytes, is ASCII:
//
//	base64url(payload JSON) "." base64url(Ed25519 signature) "." key ID
//
// where the signature is over "sealmesh ticket v2\x00" || payload JSON bytes
// (the bytes as sent: no canonical JSON needed), made with the license
// server's "license" signing key, and the key ID (16 hex digits,
// keys.SigningKeyID) picks the verifying key. The payload is TicketPayload.
// The context prefix keeps ticket signatures apart from license and manifest
// signatures made with the same key (and v2 tickets apart from v1 ones,
// which named the content and the account hash in clear).
//
// The ticket binds the peer ID, which TLS 1.3 / Noise authenticate on every
// connection, to an entitlement: a stolen ticket is useless to any other
// peer ID, and expires within TicketTTL. It is issued only to a caller that
// proves it holds the peer ID's key (proof.go), so it is never a bearer
// credential: not for joining a swarm, not for announcing.
//
// A ticket is shown to the peers a host admits (and by a dialer to the host
// it dials), so it carries no plain content ID and no stable account
// pseudonym: a content tag only a holder of the content ID can check, and
// an opaque budget value, stable per account and content, that seeds cap
// inbound streams by (see ticketbook.go).
const ticketSigContext = "sealmesh ticket v2\x00"

// Ticket verification errors; Verify's errors wrap exactly one of them.
var (
	ErrTicketMalformed = errors.New("license: ticket malformed")
	ErrTicketSignature = errors.New("license: ticket signature does not verify")
	ErrTicketExpired   = errors.New("license: ticket expired or not yet valid")
	ErrTicketPeer      = errors.New("license: ticket names another peer")
	ErrTicketContent   = errors.New("license: ticket is for another content")
	ErrTicketRevoked   = errors.New("license: ticket's peer or account is revoked")
)

// TicketPayload is the signed content of a ticket.
type TicketPayload struct {
	TicketID string `json:"ticket_id"`
	PeerID   string `json:"peer_id"`
	// ContentTag is base64url SHA-256("sealmesh ticket content v1\x00" ||
	// ticket_id || 0x00 || content): Verify checks it against the content
	// the verifier serves.
	ContentTag string `json:"content_tag"`
	// Budget is opaque: the same for every ticket of one account for one
	// content, different across contents, and not the account hash. Seeds
	// cap inbound streams per Budget.
	Budget    string    `json:"budget"`
	NotBefore time.Time `json:"not_before"`
	Expiry    time.Time `json:"expiry"`
}

// Ticket is a verified ticket.
type Ticket = TicketPayload

// TicketResponse is the answer of POST /v1/ticket.
type TicketResponse struct {
	Ticket    string `json:"ticket"`    // base64url payload JSON
	Signature string `json:"signature"` // base64url Ed25519 signature
	KeyID     string `json:"key_id"`
	// Encoded is the ticket as the transport carries it and /v1/announce
	// takes it: Ticket "." Signature "." KeyID.
	Encoded string    `json:"encoded"`
	Expiry  time.Time `json:"expiry"`
	// DiscoveryKey (base64url, 32 bytes) is the content's secret DHT key:
	// the same for every ticket of the content, given only with a ticket and
	// never inside one. Peers publish and look up the content's DHT provider
	// records under it, so strangers cannot list a title's holders.
	DiscoveryKey string `json:"discovery_key"`
}

func signTicket(signer crypto.Signer, keyID string, p *TicketPayload) (*TicketResponse, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	sig, err := signer.Sign(nil, append([]byte(ticketSigContext), body...), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign ticket: %w", err)
	}
	t := &TicketResponse{Ticket: b64.EncodeToString(body), Signature: b64.EncodeToString(sig), KeyID: keyID, Expiry: p.Expiry}
	t.Encoded = t.Ticket + "." + t.Signature + "." + t.KeyID
	return t, nil
}

// TicketVerifier checks tickets against the license server's public keys.
// The transport layer calls Verify through an interface of its own, so it
// never imports this package. It is safe for concurrent use.
type TicketVerifier struct {
	keys    map[string]ed25519.PublicKey
	leeway  time.Duration
	revoked func(*Ticket) bool
}

// TicketOption configures NewTicketVerifier.
type TicketOption func(*TicketVerifier) error

// WithTicketRevocation adds a revocation check: Verify refuses a ticket for
// which revoked returns true, with ErrTicketRevoked.
func WithTicketRevocation(revoked func(*Ticket) bool) TicketOption {
	return func(v *TicketVerifier) error {
		if revoked == nil {
			return errors.New("WithTicketRevocation: nil func")
		}
		v.revoked = revoked
		return nil
	}
}

// WithTicketLeeway sets the clock skew tolerated on not_before and expiry
// (default 30 s, at most 5 minutes).
func WithTicketLeeway(d time.Duration) TicketOption {
	return func(v *TicketVerifier) error {
		if d < 0 || d > 5*time.Minute {
			return fmt.Errorf("WithTicketLeeway: %v is outside 0..5m", d)
		}
		v.leeway = d
		return nil
	}
}

// NewTicketVerifier trusts tickets signed by any of pubs (the license
// server's current and previous keys).
func NewTicketVerifier(pubs []ed25519.PublicKey, opts ...TicketOption) (*TicketVerifier, error) {
	if len(pubs) == 0 {
		return nil, errors.New("license: ticket verifier needs at least one public key")
	}
	v := &TicketVerifier{keys: make(map[string]ed25519.PublicKey, len(pubs)), leeway: 30 * time.Second}
	for i, p := range pubs {
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("license: ticket verifier: key %d is %d bytes, want %d", i, len(p), ed25519.PublicKeySize)
		}
		v.keys[keys.SigningKeyID(p)] = append(ed25519.PublicKey(nil), p...)
	}
	for _, o := range opts {
		if err := o(v); err != nil {
			return nil, fmt.Errorf("license: %w", err)
		}
	}
	return v, nil
}

// Verify checks an encoded ticket: its signature, then that it names
// peerID and content, then its validity period at now, then the
// revocation check. Errors wrap ErrTicketMalformed, ErrTicketSignature,
// ErrTicketPeer, ErrTicketContent, ErrTicketExpired or ErrTicketRevoked.
// Nothing in the payload is trusted before the signature verifies.
func (v *TicketVerifier) Verify(raw []byte, peerID, content string, now time.Time) (*Ticket, error) {
	t, err := v.parse(raw)
	if err != nil {
		return nil, err
	}
	if t.PeerID != peerID {
		return nil, fmt.Errorf("%w: the ticket is for peer %s", ErrTicketPeer, t.PeerID)
	}
	if t.ContentTag != contentTag(t.TicketID, content) {
		return nil, fmt.Errorf("%w: its content tag is not %q's", ErrTicketContent, content)
	}
	return v.check(t, now)
}

func (v *TicketVerifier) check(t *Ticket, now time.Time) (*Ticket, error) {
	if now.Add(v.leeway).Before(t.NotBefore) || !now.Add(-v.leeway).Before(t.Expiry) {
		return nil, fmt.Errorf("%w: valid from %s to %s", ErrTicketExpired, t.NotBefore.Format(time.RFC3339), t.Expiry.Format(time.RFC3339))
	}
	if v.revoked != nil && v.revoked(t) {
		return nil, ErrTicketRevoked
	}
	return t, nil
}

// parse splits, verifies the signature and decodes the payload.
func (v *TicketVerifier) parse(raw []byte) (*Ticket, error) {
	if len(raw) > maxEncodedTicket {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrTicketMalformed, maxEncodedTicket)
	}
	parts := bytes.Split(raw, []byte("."))
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: want payload.signature.key_id", ErrTicketMalformed)
	}
	body, err := b64.DecodeString(string(parts[0]))
	if err != nil || len(body) == 0 {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrTicketMalformed)
	}
	sig, err := b64.DecodeString(string(parts[1]))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is not a base64url Ed25519 signature", ErrTicketMalformed)
	}
	pub, ok := v.keys[string(parts[2])]
	if !ok {
		return nil, fmt.Errorf("%w: unknown signing key", ErrTicketSignature)
	}
	if !ed25519.Verify(pub, append([]byte(ticketSigContext), body...), sig) {
		return nil, ErrTicketSignature
	}
	var t Ticket
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrTicketMalformed, err)
	}
	if t.TicketID == "" || t.PeerID == "" || t.ContentTag == "" || t.Expiry.IsZero() {
		return nil, fmt.Errorf("%w: payload lacks ticket_id, peer_id, content_tag or expiry", ErrTicketMalformed)
	}
	return &t, nil
}

// handleTicket serves POST /v1/ticket. The order: the token (and the
// account's rate limit), the proof that the caller holds the peer ID's key
// over this token, the content and a fresh time, then revocation and
// entitlement, then the per-account cap with the replay check, atomically.
func (s *Server) handleTicket(w http.ResponseWriter, r *http.Request, body []byte) error {
	ctx := r.Context()
	auth, err := s.authorize(r)
	if err != nil {
		return err
	}
	req, err := parseTicketRequest(body)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	proofTime, err := req.proof.verify(req.PeerID, ticketProofMessage(req.PeerID, req.Content, bearerToken(r), req.proof.Time), now)
	if err != nil {
		return err
	}
	device, err := s.deviceOf(auth, "")
	if err != nil {
		return err
	}
	st := s.deps.State
	if st.isRevoked(RevokePeer, req.PeerID) {
		return fail(http.StatusForbidden, CodePeerRevoked, "this peer ID is revoked")
	}
	if !auth.claims.Entitles(req.Content) {
		return fail(http.StatusForbidden, CodeNotEntitled, fmt.Sprintf("the token does not entitle content %q", req.Content))
	}
	if err := s.contentExists(r, req.Content); err != nil {
		return err
	}
	id := randomID()
	p := &TicketPayload{TicketID: id, PeerID: req.PeerID, ContentTag: contentTag(id, req.Content),
		Budget:    st.ticketBudget(auth.accountHash, req.Content),
		NotBefore: now.UTC().Truncate(time.Second), Expiry: now.Add(s.cfg.TicketTTL).UTC().Truncate(time.Second)}
	if err := s.book.issue(auth.accountHash, req.Content, req.PeerID, id, proofTime, p.Expiry, now, s.cfg.MaxTicketsPerAccount); err != nil {
		return err
	}
	resp, err := signTicket(s.deps.Signer, s.keyID, p)
	if err != nil {
		return internal(err)
	}
	resp.DiscoveryKey = st.discoveryKey(req.Content)
	if err := st.logAudit(ctx, AuditEntry{Time: now.UTC(), Event: "ticket", TicketID: p.TicketID,
		AccountHash: auth.accountHash, Content: req.Content, Device: device, PeerID: p.PeerID, TokenID: auth.claims.ID}); err != nil {
		return internal(err)
	}
	s.metrics.licenses.WithLabelValues("ticket").Inc()
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// bearerToken returns the raw token of the Authorization header (authorize
// has checked it), which ticket proofs bind by its SHA-256.
func bearerToken(r *http.Request) string {
	_, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.TrimSpace(raw)
}

// contentExists answers 404 unknown_content for a content without keys.
func (s *Server) contentExists(r *http.Request, content string) error {
	if hc, ok := s.deps.Keys.(interface {
		HasContent(ctx context.Context, id string) bool
	}); ok {
		if !hc.HasContent(r.Context(), content) {
			return fail(http.StatusNotFound, CodeUnknownContent, fmt.Sprintf("no keys for content %q", content))
		}
		return nil
	}
	_, err := s.deps.Keys.ContentKeys(r.Context(), content)
	switch {
	case errors.Is(err, keys.ErrNotFound):
		return fail(http.StatusNotFound, CodeUnknownContent, fmt.Sprintf("no keys for content %q", content))
	case err != nil:
		return internal(err)
	}
	return nil
}
