package main_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
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
	for _, args := range [][]string{{"license", "--help"}, {"license", "serve", "--help"}, {"token", "issue", "--help"}, {"license", "revoke", "--help"}} {
		r := sealmesh(t, t.TempDir(), nil, args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, "Examples:", "%v", args)
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
