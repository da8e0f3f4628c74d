package interop_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
)

func TestClearKeyHandler(t *testing.T) {
	kid := []byte("0123456789abcdef")
	key := []byte("fedcba9876543210")
	h := interop.ClearKeyHandler(map[string][]byte{"30313233343536373839616263646566": key})
	b64 := base64.RawURLEncoding.EncodeToString

	tests := []struct {
		name     string
		method   string
		body     string
		wantCode int
		wantKeys map[string]string // kid b64url -> key b64url
	}{
		{
			name: "known kid", method: http.MethodPost,
			body:     `{"kids":["` + b64(kid) + `"],"type":"temporary"}`,
			wantCode: http.StatusOK, wantKeys: map[string]string{b64(kid): b64(key)},
		},
		{
			name: "padded kid is accepted", method: http.MethodPost,
			body:     `{"kids":["` + base64.URLEncoding.EncodeToString(kid) + `"],"type":"temporary"}`,
			wantCode: http.StatusOK, wantKeys: map[string]string{b64(kid): b64(key)},
		},
		{
			name: "known and unknown kids answer the known one", method: http.MethodPost,
			body:     `{"kids":["` + b64([]byte("xxxxxxxxxxxxxxxx")) + `","` + b64(kid) + `"],"type":"temporary"}`,
			wantCode: http.StatusOK, wantKeys: map[string]string{b64(kid): b64(key)},
		},
		{
			name: "unknown kid", method: http.MethodPost,
			body:     `{"kids":["` + b64([]byte("xxxxxxxxxxxxxxxx")) + `"],"type":"temporary"}`,
			wantCode: http.StatusNotFound,
		},
		{name: "short kid", method: http.MethodPost, body: `{"kids":["AAEC"]}`, wantCode: http.StatusBadRequest},
		{name: "no kids", method: http.MethodPost, body: `{"kids":[]}`, wantCode: http.StatusBadRequest},
		{name: "not json", method: http.MethodPost, body: `kids`, wantCode: http.StatusBadRequest},
		{name: "too large", method: http.MethodPost, body: `{"kids":["` + strings.Repeat("A", 70<<10) + `"]}`, wantCode: http.StatusRequestEntityTooLarge},
		{name: "preflight", method: http.MethodOptions, wantCode: http.StatusNoContent},
		{name: "get", method: http.MethodGet, wantCode: http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/license", strings.NewReader(tc.body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.wantCode, rec.Code, rec.Body.String())
			assert.Equal(t, "*", rec.Header().Get("Access-Control-Allow-Origin"))
			if tc.wantKeys == nil {
				return
			}
			var resp struct {
				Keys []struct{ Kty, Kid, K string }
				Type string
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &resp))
			assert.Equal(t, "temporary", resp.Type)
			got := map[string]string{}
			for _, k := range resp.Keys {
				assert.Equal(t, "oct", k.Kty)
				assert.NotContains(t, k.Kid+k.K, "=", "EME wants base64url without padding")
				got[k.Kid] = k.K
			}
			assert.Equal(t, tc.wantKeys, got)
		})
	}
}

func TestParseFrameMD5(t *testing.T) {
	out := "#format: frame checksums\n#version: 2\n#stream#, dts,        pts, duration,     size, hash\n" +
		"0,          0,          0,        1,   345600, c1113e9eaa53cf4feb19c2db5fad3a4f\n" +
		"0,          1,          1,        1,   345600, 22a305f8affa41ade6d97245de6f1204\n"
	got, err := interop.ParseFrameMD5(strings.NewReader(out))
	require.NoError(t, err)
	assert.Equal(t, []string{"c1113e9eaa53cf4feb19c2db5fad3a4f", "22a305f8affa41ade6d97245de6f1204"}, got)

	_, err = interop.ParseFrameMD5(strings.NewReader("0, 0, 0, 1, 2, nothex\n"))
	assert.Error(t, err)
}

func TestIndexRun(t *testing.T) {
	tests := []struct {
		name     string
		hay, ndl []string
		want     int
	}{
		{"empty needle", []string{"a"}, nil, 0},
		{"prefix", []string{"a", "b", "c"}, []string{"a", "b"}, 0},
		{"middle", []string{"a", "b", "c"}, []string{"b", "c"}, 1},
		{"absent", []string{"a", "b", "c"}, []string{"c", "b"}, -1},
		{"longer than haystack", []string{"a"}, []string{"a", "a"}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, interop.IndexRun(tc.hay, tc.ndl))
		})
	}
}

func TestPagesEscapeURLs(t *testing.T) {
	page := interop.ShakaPlayerPage(`http://127.0.0.1/x.mpd?a=</script>`, "http://127.0.0.1/license")
	assert.NotContains(t, page, "a=</script>")
	assert.Contains(t, page, interop.ShakaPlayerJSPath)
	assert.Contains(t, interop.HlsJsPage("http://127.0.0.1/m.m3u8", "http://127.0.0.1/l"), interop.HlsJSPath)
	for _, p := range interop.Players {
		page := interop.PlayerPage(interop.PageConfig{Player: p, SourceURL: "http://127.0.0.1/x", LicenseURL: "http://127.0.0.1/l", Token: "a</script><script>alert(1)"})
		assert.NotContains(t, page, "a</script>", "%s: the token is escaped", p)
		assert.Contains(t, page, `const TOKEN = "a\u003c/script\u003e`, "%s", p)
	}
}
