package license

import (
	"crypto/sha256"
	"encoding/base64"
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
// token, entitlement, revocation, rate limits — and counts as a stream.
//
// Streams. A Clear Key request carries no session of ours (the CDM writes
// the body), so a player is told apart by what it cannot choose freely:
// its token, the content and the client IP. The first response for such a
// triple starts a session that holds a stream slot of the account for
// LicenseTTL; later requests of the same triple (the next crypto period's
// KID, another tab of the same household) extend it. Players on other
// addresses take slots of their own, so one token no longer serves any
// number of concurrent players (it did when the session was per token).
// What this does not catch: players behind one NAT share a slot, and a
// player whose address changes takes a second slot until the first lapses.
// Behind a reverse proxy the address is the proxy's unless
// Config.TrustProxyHeaders is set.
//
// Key window. For content that KeyWindow.ClearKey names, the session
// follows the same window as native licenses (window.go): the answer holds
// the requested keys that fit the window (at first, the lowest period asked
// for and the next), and a request none of whose keys fit is refused with
// 429 key_window_ahead and a Retry-After. For other content every entitled
// key asked for is answered, because browser players fetch the keys of all
// the periods they see at load (see SECURITY.md for which players play
// under the window, and how).
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
	// Every key read is wiped when the handler returns, answered or not.
	defer func() {
		for _, ks := range byContent {
			wipeKeys(ks)
		}
	}()
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
	ip := s.clientIP(r).String()
	var answer []keys.ContentKey
	for _, content := range contents {
		ks := byContent[content]
		var win *windowCheck
		if s.cfg.KeyWindow.clearKeyWindowed(content) {
			if win, err = s.windowFor(ctx, content, ks, true); err != nil {
				return err
			}
			win.kidPeriod = make(map[string]int, len(ks))
			for _, k := range ks {
				win.kidPeriod[k.KID().String()] = k.Period()
			}
		}
		sid := clearKeySessionID(auth.accountHash, auth.claims.ID, content, ip)
		err := s.deps.State.startSession(ctx, now, startParams{
			sess:       session{ID: sid, AccountHash: auth.accountHash, Content: content, Device: device, Created: now.UTC(), Expiry: now.Add(s.cfg.LicenseTTL).UTC()},
			maxStreams: s.cfg.MaxStreamsPerAccount, reuse: true, window: win,
			audit: AuditEntry{Time: now.UTC(), Event: "clearkey", SessionID: sid, AccountHash: auth.accountHash,
				Content: content, KIDs: kidStrings(ks), Device: device, TokenID: auth.claims.ID},
		})
		if err != nil {
			return err
		}
		for _, ck := range ks {
			if win == nil || win.granted[ck.Period()] {
				answer = append(answer, ck)
			}
		}
	}
	defer wipeKeys(answer)
	s.metrics.licenses.WithLabelValues("clearkey").Inc()
	writeClearKey(w, answer)
	return nil
}

// writeClearKey writes the Clear Key response (a JWK set) for ks, then
// overwrites the body buffer: the keys' base64 never becomes a Go string,
// which could not be wiped (see wipeKeys for what wiping can promise). The
// bytes handed to the ResponseWriter are copied into its buffer and the
// socket's; those copies are net/http's.
func writeClearKey(w http.ResponseWriter, ks []keys.ContentKey) {
	enc := base64.RawURLEncoding
	// Sized for the whole body (32 bytes of frame, 74 per key), so that
	// appending never moves key bytes to a new array and leaves the old one
	// unwiped.
	buf := make([]byte, 0, 32+len(ks)*80)
	buf = append(buf, `{"keys":[`...)
	for i, ck := range ks {
		if i > 0 {
			buf = append(buf, ',')
		}
		kid := ck.KID()
		buf = append(buf, `{"kty":"oct","kid":"`...)
		buf = enc.AppendEncode(buf, kid[:])
		buf = append(buf, `","k":"`...)
		raw := ck.InsecureRawKey()
		buf = enc.AppendEncode(buf, raw)
		clear(raw)
		buf = append(buf, `"}`...)
	}
	buf = append(buf, "],\"type\":\"temporary\"}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
	clear(buf[:cap(buf)])
}

// clearKeySessionID names the session of a Clear Key player: one per
// token, content and client address, so a player's successive key
// requests share it and players elsewhere do not.
func clearKeySessionID(accountHash, tokenID, content, ip string) string {
	h := sha256.Sum256([]byte("sealmesh clearkey session v2\x00" + accountHash + "\x00" + tokenID + "\x00" + content + "\x00" + ip))
	return "ck-" + b64.EncodeToString(h[:16])
}
