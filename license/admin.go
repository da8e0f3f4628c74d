package license

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The admin endpoint.
//
// A running server holds the state file's lock, so "sealmesh license
// revoke" cannot write to it. The server therefore serves a small admin API
// on a loopback address (ServeAdmin), protected by a random bearer token,
// and writes the address and the token to "<state>.admin.json" (mode 0600,
// written atomically), where only the server's own user can read them.
// Revoke reads that file and calls the running server; when no server runs
// (the state is not locked) it writes the state file directly.
//
//	POST /admin/revoke    {"kind":"account|device|peer","value":"..."}  → 204
//	POST /admin/unrevoke  {"kind":...,"value":...}                      → 204
//	GET  /admin/revocations                                            → [Revocation...] (sorted)
//	GET  /admin/audit[?since=<RFC 3339>]                               → AuditEntry per line (NDJSON)
//	GET  /metrics                                                      → Prometheus text format (no token)
//
// /metrics needs no token, so that a Prometheus agent on the host can
// scrape it: the series carry no account, token or key, only counts by
// route and outcome, sessions and tracker size, and the listener is
// loopback only. The default admin address is 127.0.0.1:0 (a free port),
// printed at start-up; give a fixed one with --admin-listen to scrape it.
//
// ReadAudit and ReadRevocations (auditread.go) use the last two.

// AdminInfo is the content of the admin file.
type AdminInfo struct {
	Addr  string `json:"addr"`  // host:port, loopback
	Token string `json:"token"` // bearer token, base64url of 32 random bytes
}

// AdminFilePath returns where the admin file of a state file lives.
func AdminFilePath(statePath string) string { return statePath + ".admin.json" }

// NewAdminToken returns a fresh random admin token.
func NewAdminToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return b64.EncodeToString(b[:])
}

// WriteAdminFile writes info beside the state file, readable by the owner
// only, through a temporary file and a rename so that a reader never sees
// half of it.
func WriteAdminFile(statePath string, info AdminInfo) error {
	path := AdminFilePath(statePath)
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("license: write admin file: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return fmt.Errorf("license: write admin file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("license: write admin file: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("license: write admin file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("license: write admin file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("license: write admin file: %w", err)
	}
	return nil
}

// ServeAdmin serves the admin API on ln, which must be a loopback address,
// accepting only requests that carry adminToken. It returns like Serve.
func (s *Server) ServeAdmin(ctx context.Context, ln net.Listener, adminToken string) error {
	if len(adminToken) < 16 {
		return errors.New("license: admin token too short")
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		return fmt.Errorf("license: admin endpoint must listen on loopback, not %s", ln.Addr())
	}
	return s.serve(ctx, ln, s.adminHandler(adminToken))
}

// AdminEndpoints are the paths the admin listener serves.
var AdminEndpoints = []string{"/admin/revoke", "/admin/unrevoke", "/admin/revocations", "/admin/audit", "/metrics"}

type adminRequest struct {
	Kind  RevocationKind `json:"kind"`
	Value string         `json:"value"`
}

func (s *Server) adminHandler(adminToken string) http.Handler {
	mux := http.NewServeMux()
	authed := func(route, method string, h handlerFunc) http.Handler {
		return s.wrap(route, routeOpts{method: method, body: method == http.MethodPost}, func(w http.ResponseWriter, r *http.Request, body []byte) error {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(adminToken)) != 1 {
				return fail(http.StatusForbidden, CodeForbidden, "admin token required")
			}
			return h(w, r, body)
		})
	}
	change := func(revoke bool) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request, body []byte) error {
			var req adminRequest
			if err := decodeStrict(body, &req); err != nil {
				return err
			}
			var err error
			if revoke {
				err = s.deps.State.Revoke(r.Context(), req.Kind, req.Value, s.cfg.Now())
			} else {
				err = s.deps.State.Unrevoke(r.Context(), req.Kind, req.Value)
			}
			if err != nil {
				if errors.Is(err, ErrStateClosed) {
					return internal(err)
				}
				return badRequest("%v", err)
			}
			s.cfg.Logger.Info("license: revocation changed", "revoke", revoke, "kind", req.Kind)
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	mux.Handle("/admin/revoke", authed("admin_revoke", http.MethodPost, change(true)))
	mux.Handle("/admin/unrevoke", authed("admin_unrevoke", http.MethodPost, change(false)))
	mux.Handle("/admin/revocations", authed("admin_revocations", http.MethodGet, func(w http.ResponseWriter, _ *http.Request, _ []byte) error {
		writeJSON(w, http.StatusOK, s.deps.State.Revocations())
		return nil
	}))
	mux.Handle("/admin/audit", authed("admin_audit", http.MethodGet, s.handleAdminAudit))
	mux.Handle("/metrics", s.instrument("metrics", s.metrics.handler()))
	mux.Handle("/", s.wrap("admin_unknown", routeOpts{}, func(http.ResponseWriter, *http.Request, []byte) error {
		return fail(http.StatusNotFound, CodeNotFound, "no such admin endpoint")
	}))
	return mux
}

// ChangeRevocation revokes (or, with revoke false, unrevokes) an account,
// device or peer ID in the state at statePath: through the admin endpoint
// of the server that holds it when one runs, else directly in the file. It
// returns "server" or "state file" to say which.
func ChangeRevocation(ctx context.Context, statePath string, kind RevocationKind, value string, revoke bool) (string, error) {
	if b, err := os.ReadFile(AdminFilePath(statePath)); err == nil {
		var info AdminInfo
		if err := json.Unmarshal(b, &info); err == nil && info.Addr != "" {
			err := callAdmin(ctx, info, kind, value, revoke)
			if err == nil {
				return "server", nil
			}
			var ne net.Error
			var oe *net.OpError
			if !errors.As(err, &oe) && !errors.As(err, &ne) {
				return "", err // the server answered, and refused
			}
			// No server at that address: the file is stale; use the state file.
		}
	}
	st, err := OpenState(statePath, time.Second, nil)
	if errors.Is(err, ErrStateLocked) {
		return "", fmt.Errorf("the state %s is held by a running server whose admin endpoint did not answer (is %s current?): %w", statePath, AdminFilePath(statePath), err)
	}
	if err != nil {
		return "", err
	}
	defer st.Close()
	if revoke {
		err = st.Revoke(ctx, kind, value, time.Now())
	} else {
		err = st.Unrevoke(ctx, kind, value)
	}
	if err != nil {
		return "", err
	}
	return "state file", st.Close()
}

func callAdmin(ctx context.Context, info AdminInfo, kind RevocationKind, value string, revoke bool) error {
	path := "/admin/unrevoke"
	if revoke {
		path = "/admin/revoke"
	}
	body, _ := json.Marshal(adminRequest{Kind: kind, Value: value})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+info.Addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+info.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	return readAPIError(resp)
}

// readAPIError turns an error response into an *APIError.
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	// Retry-After in seconds (the only form this server sends; an HTTP date
	// from a proxy is ignored rather than trusted to be sane).
	var after time.Duration
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		after = time.Duration(n) * time.Second
	}
	var eb ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" {
		return &APIError{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: "the server answered without an error body", RetryAfter: after}
	}
	return &APIError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, RetryAfter: after}
}
