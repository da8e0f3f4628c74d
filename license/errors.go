package license

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Error codes: the "code" member of every error body,
//
//	{"error":{"code":"<code>","message":"<human-readable detail>"}}
//
// Codes are stable: clients branch on them, never on the message, and a code
// keeps its meaning and its HTTP status in every later version. New codes may
// be added.
const (
	CodeMalformedRequest   = "malformed_request"      // 400: body is not the JSON the route takes, or a field is invalid
	CodeInvalidNonce       = "invalid_nonce"          // 400: the nonce was not issued by this server
	CodeNonceExpired       = "nonce_expired"          // 400: the nonce is older than NonceTTL; get a new one
	CodeInvalidPublicKey   = "invalid_public_key"     // 400: hpke_public_key does not decode for the suite
	CodeUnsupportedSuite   = "unsupported_suite"      // 400: suite is not "x25519" or "mlkem768x25519"
	CodeTooManyKIDs        = "too_many_kids"          // 400: more KIDs than one request may name
	CodePositionUnsupport  = "position_unsupported"   // 400: position > 0 but the server has no catalog of period start times
	CodeInvalidPeerID      = "invalid_peer_id"        // 400: peer_id is not a libp2p peer ID
	CodeProofTime          = "proof_time"             // 400: a proof of possession's time is more than ProofSkew from the server's clock
	CodeInvalidProof       = "invalid_proof"          // 401: no proof of possession of the peer's libp2p key, or it does not verify
	CodeInvalidTicket      = "invalid_ticket"         // 401: the ticket is malformed or its signature does not verify
	CodeTicketExpired      = "ticket_expired"         // 401: the ticket is past its expiry
	CodeMissingToken       = "missing_token"          // 401: no "Authorization: Bearer <token>" header
	CodeInvalidToken       = "invalid_token"          // 401: token malformed, badly signed, unknown key or missing claim
	CodeTokenExpired       = "token_expired"          // 401: token past "exp" (beyond the leeway)
	CodeTokenNotYetValid   = "token_not_yet_valid"    // 401: token before "nbf"/"iat" (beyond the leeway)
	CodeTokenAudience      = "token_wrong_audience"   // 401: "aud" does not name this server
	CodeTokenAlgorithm     = "token_bad_algorithm"    // 401: "alg" is none, HMAC, RSA or does not match the key
	CodeNotEntitled        = "not_entitled"           // 403: the token does not cover the content
	CodeDeviceMismatch     = "device_mismatch"        // 403: the token is bound to another device
	CodeAccountRevoked     = "account_revoked"        // 403: the account is revoked
	CodeDeviceRevoked      = "device_revoked"         // 403: the device is revoked
	CodePeerRevoked        = "peer_revoked"           // 403: the libp2p peer ID is revoked
	CodeTicketPeerMismatch = "ticket_peer_mismatch"   // 403: the ticket names another peer ID
	CodeOriginNotAllowed   = "origin_not_allowed"     // 403: CORS preflight from an origin not in CORSOrigins
	CodeForbidden          = "forbidden"              // 403: admin endpoint without the admin token
	CodeUnknownContent     = "unknown_content"        // 404: no keys for the content ID
	CodeUnknownKID         = "unknown_kid"            // 404: a KID is not in the key store (or not of this content)
	CodeUnknownSession     = "unknown_session"        // 404: no such session for this account and content
	CodeNotFound           = "not_found"              // 404: no such route
	CodeMethodNotAllowed   = "method_not_allowed"     // 405
	CodeNonceReplayed      = "nonce_replayed"         // 409: the nonce was already used
	CodeProofReplayed      = "proof_replayed"         // 409: a proof of possession not later than the peer's last one
	CodeSessionExpired     = "session_expired"        // 410: the session lapsed (not renewed before its expiry); start a new one
	CodeBodyTooLarge       = "body_too_large"         // 413: body larger than MaxBody
	CodeUnsupportedMedia   = "unsupported_media_type" // 415: Content-Type is not application/json
	CodeRateLimited        = "rate_limited"           // 429: too many requests from this IP or account; see Retry-After
	CodeTooManyStreams     = "too_many_streams"       // 429: the account has MaxStreamsPerAccount live sessions; see Retry-After
	CodeTooManyTickets     = "too_many_tickets"       // 429: the account holds MaxTicketsPerAccount live tickets for the content; see Retry-After
	CodeInternal           = "internal_error"         // 500: a server fault (logged); the request may be retried
	CodeUnavailable        = "unavailable"            // 503: the server is shutting down
)

// Error codes of the key window and the token checks of issue 12 (kept in
// their own block; the same stability promise holds).
const (
	CodeKIDsNotAdjacent = "kids_not_adjacent"       // 400: the KIDs of one request are not of adjacent crypto periods
	CodeTokenIssuer     = "token_wrong_issuer"      // 401: "iss" is not an issuer this server accepts
	CodeTokenLifetime   = "token_lifetime_too_long" // 401: "exp" is further from "iat" or now than the server's maximum token lifetime
	CodeKeyWindowAhead  = "key_window_ahead"        // 429: the periods asked for are beyond what playback can have reached since the session began; see Retry-After
)

// apiError is a failure of one request, as sent to the client. Handlers
// return it (wrapped or not); the error middleware writes it.
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter int // seconds; 0 means no Retry-After header
	err        error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.code + ": " + e.msg + ": " + e.err.Error()
	}
	return e.code + ": " + e.msg
}

func (e *apiError) Unwrap() error { return e.err }

func fail(status int, code, msg string) *apiError {
	return &apiError{status: status, code: code, msg: msg}
}

// internal turns a server fault into a 500 whose message says nothing about
// the cause; the cause goes to the log only.
func internal(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: "internal server error", err: err}
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// APIError is what the Client returns when the server answered with an error
// body. Branch on Code (one of the Code constants).
type APIError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the server's Retry-After (429, 503), zero if it sent none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return "license server: " + strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message
}

// writeAPIError writes e as JSON. It is the only place error bodies are made.
func writeAPIError(w http.ResponseWriter, e *apiError) {
	var body ErrorBody
	body.Error.Code, body.Error.Message = e.code, e.msg
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if rw, ok := w.(*statusWriter); ok {
		rw.code = e.code
	}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // our own types always marshal
		b, status = []byte(`{"error":{"code":"internal_error","message":"internal server error"}}`), http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// asAPIError finds the apiError in err, or makes a 500 of it.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return internal(err)
}
