package license_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license"
)

// TestMetricsOnlyOnAdmin: the public API has no /metrics (it would tell
// anyone how busy the server is and which errors it answers); the loopback
// admin listener serves it, without the admin token, while its other routes
// still need the token. Mutation check: putting the /metrics route back in
// routes() (server.go) fails the first assertion.
func TestMetricsOnlyOnAdmin(t *testing.T) {
	e := newEnv(t)
	r := e.do(t, http.MethodGet, "/metrics", "", nil)
	require.Equal(t, http.StatusNotFound, r.status, "public /metrics: %s", r.body)
	require.Equal(t, license.CodeNotFound, r.errCode(t))
	require.NotContains(t, e.srv.Endpoints(), "/metrics")
	require.Contains(t, e.srv.Endpoints(), "/v1/license")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeAdmin(ctx, ln, license.NewAdminToken()) }()
	t.Cleanup(func() { cancel(); <-done })
	admin := "http://" + ln.Addr().String()

	resp, err := http.Get(admin + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	require.Contains(t, string(body), `sealmesh_license_requests_total{code="not_found",route="unknown"} 1`, "the public 404 above was counted")
	require.Contains(t, string(body), "sealmesh_license_active_sessions")
	require.Contains(t, string(body), "go_goroutines")

	resp, err = http.Get(admin + "/admin/revocations")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "admin routes other than /metrics still need the token")
}

// syncBuf is a bytes.Buffer safe for the server's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestAccessLog: one structured line per request with method, path,
// status, duration and remote address, and never the token, the query or a
// body. Mutation check: logging r.URL.String() or the Authorization header
// in accessLog (server.go) fails the NotContains assertions.
func TestAccessLog(t *testing.T) {
	var buf syncBuf
	e := newEnv(t, withConfig(func(c *license.Config) {
		c.AccessLog = slog.New(slog.NewJSONHandler(&buf, nil))
	}))
	tok := e.token(t, "acct-access", []string{movie})
	kid := e.movieKeys[0].KID()
	r := e.do(t, http.MethodPost, "/v1/clearkey", tok, map[string]any{"kids": []string{b64.EncodeToString(kid[:])}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	r = e.do(t, http.MethodGet, "/nowhere?token=query-secret-123", "", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	r = e.do(t, http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.status)

	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	want := []struct {
		method, path string
		status       int
	}{{"POST", "/v1/clearkey", 200}, {"GET", "/nowhere", 404}, {"GET", "/healthz", 200}}
	for i, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		require.Equal(t, "request", m["msg"])
		require.Equal(t, want[i].method, m["method"], l)
		require.Equal(t, want[i].path, m["path"], l)
		require.EqualValues(t, want[i].status, m["status"], l)
		require.Equal(t, "127.0.0.1", m["remote"], l)
		require.Contains(t, m, "duration")
	}
	require.NotContains(t, out, tok)
	require.NotContains(t, out, "query-secret-123")
	require.NotContains(t, out, "Bearer")
	require.NotContains(t, out, `"keys"`, "no response body")
}
