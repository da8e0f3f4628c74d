package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPeerPlayLicenseServerKilled: `sealmesh license serve` is killed with
// SIGKILL while `sealmesh peer play` serves an HTTP consumer, then started
// again on the same address. peer play must say so on its status output
// (stderr, not a terminal here: one line per interval), its gateway must
// answer a retryable 503 with Retry-After (not a 403), playback must resume
// once the server is back, and the summary printed on exit must count the
// stall and the failed renewals. All real processes; no sleeps: every wait
// is on a condition with a deadline.
func TestPeerPlayLicenseServerKilled(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	port := freePort(t)
	lic := fmt.Sprintf("http://127.0.0.1:%d", port)
	// One segment per crypto period: a license carries two periods, so the
	// third segment needs a renewal.
	r := sealmesh(t, dir, nil, "pack", "--keystore", ks, "--in", clip(t, "360p.mp4"), "--out", filepath.Join(dir, "origin", "film"),
		"--content", "film", "--segment-duration", "2s", "--crypto-period", "2s", "--license-url", lic+"/v1/clearkey", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	state := filepath.Join(dir, "state.db")
	serve := []string{"license", "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin-listen", "off",
		"--keystore", ks, "--state", state, "--dev-tokens", "--license-ttl", "4s"}
	srv := startLicenseProc(t, dir, lic, serve)
	r = sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", "viewer", "--content", "film", "--ttl", "1h")
	require.Equal(t, 0, r.code, r.stderr)
	origin := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "origin"))))
	defer origin.Close()

	tok := strings.TrimSpace(r.stdout)
	r = sealmesh(t, dir, nil, "keys", "list", "--keystore", ks, "--pins")
	require.Equal(t, 0, r.code, r.stderr)
	play, playOut, playErr := startSeed(t, dir, tok, append([]string{"peer", "play", "film",
		"--origin", origin.URL + "/film/", "--license", lic, "--no-p2p", "--status-every", "100ms"}, strings.Fields(r.stdout)...))
	url := firstLine(t, playOut)
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), "peer play printed %q", url)
	base := strings.TrimSuffix(url, "master.m3u8")
	seg := func(i int) string { return base + "video/" + strconv.Itoa(i) + ".m4s" }
	code, _, _ := gatewayGet(t, base+"video/init-0.mp4")
	require.Equal(t, http.StatusOK, code)
	code, _, _ = gatewayGet(t, seg(1))
	require.Equal(t, http.StatusOK, code)

	require.NoError(t, srv.Process.Signal(syscall.SIGKILL))
	waitFor(t, 10*time.Second, 10*time.Millisecond, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err != nil
	}, func() string { return "the killed license server still accepts connections" })

	// Play on until a segment needs keys the license lacks: 503, not 403.
	next, last := 2, 6 // the clip is 12 s
	var retryAfter, errCode string
	for ; next <= last; next++ {
		if code, retryAfter, errCode = gatewayGet(t, seg(next)); code != http.StatusOK {
			break
		}
	}
	require.LessOrEqual(t, next, last, "every segment was served with the license server dead")
	require.Equal(t, http.StatusServiceUnavailable, code, "keys only temporarily unavailable: want a retryable 503")
	require.Equal(t, "license_unavailable", errCode)
	require.Regexp(t, `^[1-9][0-9]*$`, retryAfter, "503 without a Retry-After")
	waitFor(t, 30*time.Second, 20*time.Millisecond, func() bool {
		s := playErr.String()
		return strings.Contains(s, "license: cannot renew, the license server is unreachable") &&
			strings.Contains(s, "(stalled now)") && strings.Contains(s, "license: server unavailable, retry in")
	}, func() string { return "peer play did not report the outage and the stall:\n" + playErr.String() })

	startLicenseProc(t, dir, lic, serve)
	waitFor(t, 60*time.Second, 50*time.Millisecond, func() bool { c, _, _ := gatewayGet(t, seg(next)); return c == http.StatusOK },
		func() string {
			return "playback did not resume after the license server came back:\n" + playErr.String()
		})
	for i := next + 1; i <= last; i++ {
		code, _, _ := gatewayGet(t, seg(i))
		require.Equal(t, http.StatusOK, code, "segment %d after the outage", i)
	}
	waitFor(t, 10*time.Second, 20*time.Millisecond, func() bool { return strings.Contains(playErr.String(), "license: renewed again after") },
		func() string { return "peer play did not report the recovery:\n" + playErr.String() })

	sum := stopForSummary(t, play, playOut)
	require.Regexp(t, `(?m)^  stalls +[1-9]`, sum, "the outage's stall is not counted")
	require.Regexp(t, `(?m)^  segments .* [1-9][0-9]* unavailable`, sum)
	require.Regexp(t, `(?m)^  license +[1-9][0-9]* renewals, [1-9][0-9]* failed attempts$`, sum)
	require.Regexp(t, `(?m)^  from origin .*\([1-9][0-9]* bytes\)`, sum)
}

// gatewayGet fetches url and returns the status, Retry-After and the JSON
// error code of a failure.
func gatewayGet(t *testing.T, url string) (code int, retryAfter, errCode string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error struct{ Code string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &eb), "error body is not JSON: %s", body)
		errCode = eb.Error.Code
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), errCode
}

// stopForSummary stops a peer with SIGTERM and returns the rest of its
// stdout: the summary it prints on exit. It reads to EOF before Wait, which
// would close the pipe.
func stopForSummary(t *testing.T, cmd *exec.Cmd, out *bufio.Reader) string {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(out); rest <- string(b) }()
	var s string
	select {
	case s = <-rest:
	case <-time.After(15 * time.Second):
		t.Fatal("peer did not exit on SIGTERM")
	}
	require.NoError(t, cmd.Wait(), "peer did not exit cleanly on SIGTERM")
	require.Contains(t, s, "summary of", "no summary on exit")
	return s
}

var summaryBytes = regexp.MustCompile(`(?m)^  from peers +.*\((\d+) bytes\)$`)

// peerBytes is the "from peers" count of a summary.
func peerBytes(t *testing.T, summary string) int64 {
	t.Helper()
	m := summaryBytes.FindStringSubmatch(summary)
	require.NotNil(t, m, "no 'from peers' line in the summary:\n%s", summary)
	n, err := strconv.ParseInt(m[1], 10, 64)
	require.NoError(t, err)
	return n
}

var (
	heldAll       = regexp.MustCompile(`held ([1-9][0-9]*)/([0-9]+)`)
	admittedPeers = regexp.MustCompile(`peers +[1-9]`)
)

// seedHoldsAll: a seed's status line says it holds every file.
func seedHoldsAll(stderr string) bool {
	for _, m := range heldAll.FindAllStringSubmatch(stderr, -1) {
		if m[1] == m[2] {
			return true
		}
	}
	return false
}

// TestPeerPlayNamesTheLicenseCause: `peer play` tells a license server it
// cannot reach from one that refuses the token, so the user fixes the right
// thing (not "check your token" when the server is down).
func TestPeerPlayNamesTheLicenseCause(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	port := freePort(t)
	lic := fmt.Sprintf("http://127.0.0.1:%d", port)
	r := sealmesh(t, dir, nil, "pack", "--keystore", ks, "--in", clip(t, "180p.mp4"), "--out", filepath.Join(dir, "origin", "film"),
		"--content", "film", "--license-url", lic+"/v1/clearkey", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	r = sealmesh(t, dir, nil, "keys", "list", "--keystore", ks, "--pins")
	require.Equal(t, 0, r.code, r.stderr)
	pins := strings.Fields(r.stdout)
	origin := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "origin"))))
	defer origin.Close()
	play := func(token string) result {
		return sealmesh(t, dir, []string{"SEALMESH_TOKEN=" + token}, append([]string{"peer", "play", "film",
			"--origin", origin.URL + "/film/", "--license", lic, "--no-p2p"}, pins...)...)
	}

	// Nothing listens on the license server's port yet.
	r = play("any-token")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "is unreachable or failing")
	require.NotContains(t, r.stderr, "check the token")

	state := filepath.Join(dir, "state.db")
	startLicenseProc(t, dir, lic, []string{"license", "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin-listen", "off",
		"--keystore", ks, "--state", state, "--dev-tokens"})
	r = play("not-a-token")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "the license server refused")
	require.Contains(t, r.stderr, "invalid_token")
	require.NotContains(t, r.stderr, "unreachable")
}
