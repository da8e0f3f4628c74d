package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/segment"
)

func TestLicenseServeTokenRevoke(t *testing.T) {
	dir := t.TempDir()
	r := sealmesh(t, dir, nil, "keys", "init", "--keystore", "keys.db")
	require.Equal(t, 0, r.code, r.stderr)

	// Refusals before anything starts.
	r = sealmesh(t, dir, nil, "license", "serve", "--keystore", "keys.db", "--state", "st.db", "--listen", "0.0.0.0:0", "--dev-tokens")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "refusing plain HTTP")
	r = sealmesh(t, dir, nil, "license", "serve", "--keystore", "keys.db", "--state", "st.db", "--listen", "127.0.0.1:0")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--jwks")

	tok := sealmesh(t, dir, nil, "token", "issue", "--state", "st.db", "--account", "acct-1", "--content", "movie-*", "--ttl", "10m")
	require.Equal(t, 0, tok.code, tok.stderr)
	require.Len(t, strings.Split(strings.TrimSpace(tok.stdout), "."), 3)
	fi, err := os.Stat(filepath.Join(dir, "st.db.devkey.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	cmd := exec.Command(binary, "license", "serve", "--keystore", "keys.db", "--state", "st.db", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--dev-tokens")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), keys.PassphraseEnv+"="+testPass)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	sc := bufio.NewScanner(out)
	require.True(t, sc.Scan(), "no output; stderr: %s", stderr.String())
	line := sc.Text()
	require.Contains(t, line, "license server listening on http://127.0.0.1:")
	url := strings.Fields(strings.TrimPrefix(line, "license server listening on "))[0]

	resp, err := http.Get(url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	clearkey := func() (int, string) {
		kid := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
		req, _ := http.NewRequest("POST", url+"/v1/clearkey", strings.NewReader(`{"kids":["`+kid+`"]}`))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok.stdout))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var eb license.ErrorBody
		b, _ := io.ReadAll(resp.Body)
		require.NoError(t, json.Unmarshal(b, &eb), "%s", b)
		return resp.StatusCode, eb.Error.Code
	}
	// The dev token is trusted (the KID is merely unknown).
	status, code := clearkey()
	require.Equal(t, 404, status)
	require.Equal(t, license.CodeUnknownKID, code)

	// Revocation reaches the running server through its admin endpoint.
	fi, err = os.Stat(filepath.Join(dir, "st.db.admin.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	r = sealmesh(t, dir, nil, "license", "revoke", "--state", "st.db", "--account", "acct-1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "via the server")
	status, code = clearkey()
	require.Equal(t, 403, status)
	require.Equal(t, license.CodeAccountRevoked, code)

	r = sealmesh(t, dir, nil, "license", "revoke", "--state", "st.db", "--account", "a", "--peer", "p")
	require.Equal(t, 2, r.code)

	// Graceful shutdown on SIGTERM.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { _, _ = io.Copy(io.Discard, out); done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop on SIGTERM")
	}
	_, err = os.Stat(filepath.Join(dir, "st.db.admin.json"))
	require.True(t, os.IsNotExist(err), "admin file removed at exit")

	// With no server running, unrevoke writes the state file directly.
	r = sealmesh(t, dir, nil, "license", "unrevoke", "--state", "st.db", "--account", "acct-1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "via the state file")
}

func TestLicenseHelp(t *testing.T) {
	for _, args := range [][]string{{"license", "--help"}, {"license", "serve", "--help"}, {"token", "issue", "--help"}, {"license", "revoke", "--help"},
		{"license", "audit", "--help"}, {"license", "revocations", "--help"}} {
		r := sealmesh(t, t.TempDir(), nil, args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stdout, "Examples:", "%v: help goes to stdout", args)
	}
}

// syncBuffer is a bytes.Buffer that the child's stderr copier and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// auditLines parses `license audit --json` output.
func auditLines(t *testing.T, out string) []license.AuditEntry {
	t.Helper()
	var list []license.AuditEntry
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e license.AuditEntry
		require.NoError(t, json.Unmarshal([]byte(l), &e), l)
		list = append(list, e)
	}
	return list
}

// TestLicenseContentDirAuditRevocations: with --content-dir, native
// licenses by playback position get the keys of that crypto period and the
// next (the period start times come from the signed manifest); a manifest
// that does not verify is skipped. `license audit` and `license
// revocations` read through the running server, then from the state file
// once it has stopped.
func TestLicenseContentDirAuditRevocations(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	media := filepath.Join(dir, "media")
	r := sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", clip(t, "180p.mp4"), "--out", filepath.Join(media, "film"),
		"--content", "film", "--crypto-period", "4s", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	// A forged manifest (signed by another key) is skipped, not trusted.
	require.NoError(t, os.MkdirAll(filepath.Join(media, "forged"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(media, "forged", "sealmesh.json"), []byte(`{"manifest":{},"key_id":"x","signature":"AAAA"}`), 0o644))

	kr, err := keys.NewReader(ks, []byte(testPass))
	require.NoError(t, err)
	lk, err := kr.SigningKey(context.Background(), keys.SigningKeyLicense)
	require.NoError(t, err)
	mk, err := kr.SigningKey(context.Background(), keys.SigningKeyManifest)
	require.NoError(t, err)
	require.NoError(t, kr.Close())
	raw, err := os.ReadFile(filepath.Join(media, "film", "sealmesh.json"))
	require.NoError(t, err)
	man, err := segment.ParseManifest(raw, segment.TrustedKeys{mk.ID(): mk.Public()})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(man.Periods), 3)

	state := filepath.Join(dir, "st.db")
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	stop, stderr := startLicenseServer(t, dir, base, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin-listen", "127.0.0.1:0",
		"--keystore", ks, "--state", state, "--dev-tokens", "--content-dir", media)
	require.Contains(t, stderr.String(), "skipping manifest")
	require.Contains(t, stderr.String(), "contents=1")

	tok := sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", "acct-9", "--content", "film", "--ttl", "10m")
	require.Equal(t, 0, tok.code, tok.stderr)
	c, err := license.NewClient(license.ClientConfig{BaseURL: base, ServerKeys: []ed25519.PublicKey{lk.Public()},
		Token: func(context.Context) (string, error) { return strings.TrimSpace(tok.stdout), nil }})
	require.NoError(t, err)
	for _, tc := range []struct {
		pos    float64
		period int
	}{{0, 0}, {man.Periods[1].Start + 0.5, 1}} {
		pos := tc.pos
		l, err := c.License(context.Background(), license.KeyRequest{Content: "film", Position: &pos})
		require.NoError(t, err, "position %v", pos)
		got := l.Keys()
		require.Len(t, got, 2)
		require.Equal(t, man.Periods[tc.period].KID, got[0].KID().String(), "position %v", pos)
		require.Equal(t, man.Periods[tc.period+1].KID, got[1].KID().String())
	}

	r = sealmesh(t, dir, nil, "license", "revoke", "--state", state, "--device", "stb-7")
	require.Equal(t, 0, r.code, r.stderr)
	r = sealmesh(t, dir, nil, "license", "revocations", "--state", state)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "stb-7")
	require.Contains(t, r.stderr, "read from the server")

	r = sealmesh(t, dir, nil, "license", "audit", "--state", state, "--json", "--since", "1h")
	require.Equal(t, 0, r.code, r.stderr)
	entries := auditLines(t, r.stdout)
	require.Len(t, entries, 2)
	for _, e := range entries {
		require.Equal(t, "license", e.Event)
		require.Equal(t, "film", e.Content)
		require.Len(t, e.AccountHash, 64)
		require.NotContains(t, r.stdout, "acct-9", "accounts appear as hashes only")
	}

	stop()
	r = sealmesh(t, dir, nil, "license", "audit", "--state", state)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "2 entries (read from the state file)")
	require.Contains(t, r.stdout, "TIME")
	r = sealmesh(t, dir, nil, "license", "revocations", "--state", state, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var revs []license.Revocation
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &revs))
	require.Equal(t, []license.Revocation{{Kind: license.RevokeDevice, Value: "stb-7", Time: revs[0].Time}}, revs)

	r = sealmesh(t, dir, nil, "license", "audit", "--state", filepath.Join(dir, "none.db"))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "is --state the server's state file?")
	require.NoFileExists(t, filepath.Join(dir, "none.db"), "a read-only command creates nothing")
}
