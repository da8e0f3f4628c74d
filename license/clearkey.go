package license

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/sealmesh/sealmesh/keys"
)

// handleClearKey serves POST /v1/clearkey, the W3C EME Clear Key license
// endpoint (https://www.w3.org/TR/encrypted-media/#clear-key).
//
// Clear Key hands the browser's CDM the content keys in clear (inside TLS):
// it is the weakest path the server offers and exists for browser players
// without a commercial DRM. It gets the same checks as native licenses —
// token, entitlement, revocation, rate limits — and counts as a stream: the
// first response for a (token, content) pair starts a session that holds a
// stream slot of the account for LicenseTTL; later requests with the same
// token and content (the next crypto period's KID) extend that session
// instead of taking another slot.
func (s *Server) handleClearKey(w http.ResponseWriter, r *http.Request, body []byte) error {
	ctx := r.Context()
	auth, err := s.authorize(r)
	if err != nil {
		return err
	}
	kids, err := parseClearKeyRequest(body, r.URL.Query())
	if err != nil {
		return err
	}
	device, err := s.deviceOf(auth, "")
	if err != nil {
		return err
	}
	byContent := map[string][]keys.ContentKey{}
	unknown, refused := 0, 0
	for _, kid := range kids {
		owner, ck, err := s.deps.Keys.ContentKey(ctx, kid)
		switch {
		case errors.Is(err, keys.ErrNotFound):
			unknown++
			continue
		case err != nil:
			return internal(fmt.Errorf("content key %s: %w", kid, err))
		}
		if !auth.claims.Entitles(owner) {
			refused++
			continue
		}
		byContent[owner] = append(byContent[owner], ck)
	}
	if len(byContent) == 0 {
		if refused > 0 {
			return fail(http.StatusForbidden, CodeNotEntitled, "the token does not entitle the content of these KIDs")
		}
		return fail(http.StatusNotFound, CodeUnknownKID, "none of these KIDs is known to this server")
	}
	contents := make([]string, 0, len(byContent))
	for c := range byContent {
		contents = append(contents, c)
	}
	sort.Strings(contents)
	now := s.cfg.Now()
	resp := ClearKeyResponse{Type: "temporary", Keys: []ClearKeyJWK{}}
	for _, content := range contents {
		ks := byContent[content]
		sid := clearKeySessionID(auth.accountHash, auth.claims.ID, content)
		err := s.deps.State.startSession(ctx, now, startParams{
			sess:       session{ID: sid, AccountHash: auth.accountHash, Content: content, Device: device, Created: now.UTC(), Expiry: now.Add(s.cfg.LicenseTTL).UTC()},
			maxStreams: s.cfg.MaxStreamsPerAccount, reuse: true,
			audit: AuditEntry{Time: now.UTC(), Event: "clearkey", SessionID: sid, AccountHash: auth.accountHash,
				Content: content, KIDs: kidStrings(ks), Device: device, TokenID: auth.claims.ID},
		})
		if err != nil {
			return err
		}
		for _, ck := range ks {
			raw := ck.InsecureRawKey()
			kid := ck.KID()
			resp.Keys = append(resp.Keys, ClearKeyJWK{Kty: "oct", KID: b64.EncodeToString(kid[:]), K: b64.EncodeToString(raw)})
			clear(raw)
		}
	}
	s.metrics.licenses.WithLabelValues("clearkey").Inc()
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// clearKeySessionID names the session of a Clear Key player: one per
// token and content, so a player's successive key requests share it.
func clearKeySessionID(accountHash, tokenID, content string) string {
	h := sha256.Sum256([]byte("sealmesh clearkey session v1\x00" + accountHash + "\x00" + tokenID + "\x00" + content))
	return "ck-" + b64.EncodeToString(h[:16])
}
