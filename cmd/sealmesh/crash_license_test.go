package main_test

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
)

// TestLicenseServerKill9DuringWrites backs the "license server crash" row
// of SECURITY.md. `sealmesh license serve` is killed with SIGKILL while 16
// clients fire nonce + license requests at it (every license is a fsynced
// write: the session and the used nonce), then restarted on the same
// --state and --keystore. It must start, and what it answered before the
// kill must hold:
//
//   - every nonce whose license request got 200 before the kill is refused
//     (409 nonce_replayed): a 200 is only sent once the write is durable;
//   - a session created before the kill can be renewed;
//   - a revocation made before the kill still refuses the account;
//   - the key store lists the same KIDs (keys export).
func TestLicenseServerKill9DuringWrites(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("dials from 127.0.x.y, which only Linux routes to loopback by default")
	}
	dir := t.TempDir()
	ks := initStore(t, dir)
	r := sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", clip(t, "360p.mp4"), "--out", filepath.Join(dir, "film"),
		"--content", "film", "--crypto-period", "4s", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	kidsBefore := exportedKIDs(t, dir, ks)
	require.NotEmpty(t, kidsBefore)

	state := filepath.Join(dir, "state.db")
	issue := func(account string) string {
		r := sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", account, "--content", "film", "--ttl", "1h")
		require.Equal(t, 0, r.code, r.stderr)
		return strings.TrimSpace(r.stdout)
	}
	const workers = 16
	var toks []string
	for i := range workers {
		toks = append(toks, issue(fmt.Sprintf("load-%d", i)))
	}
	renewerTok, victimTok := issue("renewer"), issue("victim")

	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"license", "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin-listen", "127.0.0.1:0",
		"--keystore", ks, "--state", state, "--dev-tokens", "--max-streams", "-1"}
	srv := startLicenseProc(t, dir, base, args)

	// Before the load: a session to renew later, and a revoked account.
	status, body := licenseRequest(t, base, renewerTok, "")
	require.Equal(t, http.StatusOK, status, "%s", body)
	session := sessionOf(t, body)
	status, _ = licenseRequest(t, base, victimTok, "")
	require.Equal(t, http.StatusOK, status)
	r = sealmesh(t, dir, nil, "license", "revoke", "--state", state, "--account", "victim")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "via the server")

	// The load, and the kill in the middle of it. Each worker dials from a
	// loopback address of its own, so the server's per-IP rate limit (on by
	// default) sees 16 clients, not one.
	var mu sync.Mutex
	var granted []string // nonces whose license request got 200
	var stopLoad atomic.Bool
	var wg sync.WaitGroup
	for w := range workers {
		hc := clientFrom(fmt.Sprintf("127.0.5.%d", w+1))
		wg.Go(func() {
			for !stopLoad.Load() {
				nonce, err := fetchNonce(hc, base)
				if err != nil {
					if strings.Contains(err.Error(), "status") {
						time.Sleep(10 * time.Millisecond)
						continue // rate limited: slow down
					}
					return // the server is gone
				}
				st, _, err := postLicense(hc, base, toks[w], nonce, "")
				if err != nil {
					return
				}
				if st == http.StatusOK {
					mu.Lock()
					granted = append(granted, nonce)
					mu.Unlock()
				}
			}
		})
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(granted) >= 200 }, 30*time.Second, time.Millisecond)
	require.NoError(t, srv.Process.Signal(syscall.SIGKILL))
	killedAt := time.Now()
	mu.Lock()
	snapshot := slices.Clone(granted) // every 200 answered so far
	mu.Unlock()
	stopLoad.Store(true)
	wg.Wait()
	_, _ = srv.Process.Wait()
	mu.Lock()
	t.Logf("killed the server after %d licenses (%d answered 200 in all)", len(snapshot), len(granted))
	snapshot = slices.Clone(granted) // 200s that raced the kill were durable too
	mu.Unlock()

	// Restart on the same files.
	srv = startLicenseProc(t, dir, base, args)
	t.Logf("restarted %v after the kill", time.Since(killedAt).Round(time.Millisecond))

	// Used nonces stay used. They are still within their 60 s TTL, so the
	// only reason to refuse them is that they were recorded.
	for i, n := range snapshot {
		hc := clientFrom(fmt.Sprintf("127.0.6.%d", 1+i/50)) // 50 requests per address, within the burst
		st, b, err := postLicense(hc, base, toks[i%workers], n, "")
		require.NoError(t, err)
		require.Equal(t, http.StatusConflict, st, "nonce %d of %d granted before the kill was accepted again: %s", i, len(snapshot), b)
		require.Equal(t, license.CodeNonceReplayed, errorCode(t, b))
	}
	// The session survives.
	status, body = licenseRequest(t, base, renewerTok, session)
	require.Equal(t, http.StatusOK, status, "renewing a session created before the kill: %s", body)
	require.Equal(t, session, sessionOf(t, body))
	// The revocation survives.
	status, body = licenseRequest(t, base, victimTok, "")
	require.Equal(t, http.StatusForbidden, status, "%s", body)
	require.Equal(t, license.CodeAccountRevoked, errorCode(t, body))
	// New work is served.
	status, body = licenseRequest(t, base, toks[0], "")
	require.Equal(t, http.StatusOK, status, "%s", body)

	require.NoError(t, srv.Process.Signal(syscall.SIGTERM))
	_, _ = srv.Process.Wait()
	require.Equal(t, kidsBefore, exportedKIDs(t, dir, ks), "keys lost or changed across the crash")
}

// startLicenseProc starts `sealmesh <args>` in dir and waits until
// base/healthz answers 200. The test kills it; cleanup kills it too.
func startLicenseProc(t *testing.T, dir, base string, args []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), keys.PassphraseEnv+"="+testPass)
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd
			}
		}
		select {
		case <-exited:
			t.Fatalf("license server exited: %v\nstderr:\n%s", cmd.ProcessState, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "license server did not answer /healthz: %v\nstderr:\n%s", err, stderr.String())
	}
}

// clientFrom is an HTTP client whose connections come from the loopback address ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func fetchNonce(hc *http.Client, base string) (string, error) {
	resp, err := hc.Post(base+"/v1/nonce", "", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var n license.NonceResponse
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("nonce: status %d: %v", resp.StatusCode, err)
	}
	return n.Nonce, nil
}

var hpkePub = func() string {
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes())
}()

// postLicense asks for a license with nonce, or renews session when it is
// not empty, and returns the status and body.
func postLicense(hc *http.Client, base, tok, nonce, session string) (int, []byte, error) {
	var req any = license.LicenseRequest{Content: "film", HPKEPublicKey: hpkePub, Nonce: nonce}
	path := "/v1/license"
	if session != "" {
		req, path = license.RenewRequest{SessionID: session, HPKEPublicKey: hpkePub, Nonce: nonce}, "/v1/license/renew"
	}
	b, err := json.Marshal(req)
	if err != nil {
		return 0, nil, err
	}
	hr, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(hr)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// licenseRequest gets a fresh nonce and asks for a license (or renews session).
func licenseRequest(t *testing.T, base, tok, session string) (int, []byte) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	n, err := fetchNonce(hc, base)
	require.NoError(t, err)
	st, b, err := postLicense(hc, base, tok, n, session)
	require.NoError(t, err)
	return st, b
}

// sessionOf returns the session ID inside a license answer's payload.
func sessionOf(t *testing.T, body []byte) string {
	t.Helper()
	var lr struct {
		License string `json:"license"`
	}
	require.NoError(t, json.Unmarshal(body, &lr))
	payload, err := base64.RawURLEncoding.DecodeString(lr.License)
	require.NoError(t, err)
	var p struct {
		SessionID string `json:"session_id"`
	}
	require.NoError(t, json.Unmarshal(payload, &p))
	require.NotEmpty(t, p.SessionID)
	return p.SessionID
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var eb license.ErrorBody
	require.NoError(t, json.Unmarshal(body, &eb), "%s", body)
	return eb.Error.Code
}

// exportedKIDs lists the KIDs of film in the key store, sorted.
func exportedKIDs(t *testing.T, dir, ks string) []string {
	t.Helper()
	r := sealmesh(t, dir, nil, "keys", "export", "--keystore", ks, "--content", "film", "--insecure-cleartext")
	require.Equal(t, 0, r.code, r.stderr)
	var list []exported
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	var kids []string
	for _, k := range list {
		kids = append(kids, k.KID)
	}
	slices.Sort(kids)
	return kids
}
