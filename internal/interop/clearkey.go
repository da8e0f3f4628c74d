package interop

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxLicenseRequest bounds a Clear Key request body. A real request lists a handful of
// 16-byte KIDs; 64 KiB leaves room for hundreds while keeping a test server cheap to hit.
const maxLicenseRequest = 64 << 10

// ClearKeyHandler returns a W3C EME Clear Key license endpoint for tests
// (https://www.w3.org/TR/encrypted-media/#clear-key). keys maps KID hex (any case) to
// the 16-byte content key; the map is copied.
//
// A POST of {"kids":["<b64url KID>",...],"type":"temporary"} answers 200 with
// {"keys":[{"kty":"oct","kid":"<b64url>","k":"<b64url>"},...],"type":"temporary"} for the
// KIDs it knows, base64url without padding as EME requires. It answers 404 when it knows
// none of them (players then report a license error), 400 for a malformed request, 405
// for methods other than POST and OPTIONS. Every response allows any origin, and
// OPTIONS answers the CORS preflight, so a page on another port may call it.
func ClearKeyHandler(keys map[string][]byte) http.Handler {
	h := &clearKeyHandler{keys: make(map[string][]byte, len(keys))}
	for kid, k := range keys {
		h.keys[strings.ToLower(kid)] = append([]byte(nil), k...)
	}
	return h
}

type clearKeyHandler struct {
	keys map[string][]byte // lower-case KID hex -> key
}

type clearKeyRequest struct {
	KIDs []string `json:"kids"`
	Type string   `json:"type"`
}

type clearKeyJWK struct {
	Kty string `json:"kty"`
	KID string `json:"kid"`
	K   string `json:"k"`
}

type clearKeyResponse struct {
	Keys []clearKeyJWK `json:"keys"`
	Type string        `json:"type"`
}

func (h *clearKeyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	hdr.Set("Access-Control-Allow-Headers", "*")
	hdr.Set("Access-Control-Max-Age", "600")
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		hdr.Set("Allow", "POST, OPTIONS")
		http.Error(w, "POST a Clear Key license request", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLicenseRequest+1))
	if err != nil {
		http.Error(w, "read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxLicenseRequest {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	var req clearKeyRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.KIDs) == 0 {
		http.Error(w, fmt.Sprintf("want {\"kids\":[...]}: %v", err), http.StatusBadRequest)
		return
	}
	resp := clearKeyResponse{Keys: []clearKeyJWK{}, Type: req.Type}
	if resp.Type == "" {
		resp.Type = "temporary"
	}
	for _, k := range req.KIDs {
		kid, err := decodeB64URL(k)
		if err != nil || len(kid) != 16 {
			http.Error(w, fmt.Sprintf("kid %q: want 16 bytes of base64url", k), http.StatusBadRequest)
			return
		}
		key, ok := h.keys[hex.EncodeToString(kid)]
		if !ok {
			continue
		}
		resp.Keys = append(resp.Keys, clearKeyJWK{
			Kty: "oct",
			KID: base64.RawURLEncoding.EncodeToString(kid),
			K:   base64.RawURLEncoding.EncodeToString(key),
		})
	}
	if len(resp.Keys) == 0 {
		http.Error(w, "no key for the requested KIDs", http.StatusNotFound)
		return
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

// decodeB64URL decodes base64url with or without padding (EME says without; some
// players pad anyway).
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
