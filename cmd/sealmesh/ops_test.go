package main_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/keys"
)

// proc is a sealmesh process whose stdout lines arrive on a channel and
// whose stderr is kept.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string
	mu     sync.Mutex
	stderr strings.Builder
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}
func (p *proc) errText() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

func startProc(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), lines: make(chan string, 100)}
	p.cmd.Dir = dir
	p.cmd.Env = append(append(os.Environ(), keys.PassphraseEnv+"="+testPass), env...)
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = p
	require.NoError(t, p.cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Signal(syscall.SIGTERM); _ = p.cmd.Wait() })
	return p
}

// waitLine returns the first stdout line containing want, failing after a
// generous bound (the process may be slow on a shared machine, the test
// asserts nothing about time).
func (p *proc) waitLine(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			require.True(t, ok, "process ended before printing %q; stderr: %s", want, p.errText())
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line with %q; stderr: %s", want, p.errText())
		}
	}
}

func httpGet(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// TestPeerSeedMetrics runs 'peer seed --metrics' as a real process against
// a real license server and origin, with the content ID after the flags,
// and scrapes Prometheus text with the transport, player and Go series;
// --log-format json makes every log line a JSON object.
func TestPeerSeedMetrics(t *testing.T) {
	dir := t.TempDir()
	st, err := stack.Start(context.Background(), stack.Options{Dir: dir, Inputs: []string{clip(t, "180p.mp4")}, ContentID: "film", SegmentDuration: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	tok, err := st.Token("edge-1", time.Hour)
	require.NoError(t, err)
	args := []string{"peer", "seed", "--origin", st.OriginURL, "--license", st.LicenseURL,
		"--license-key", hex.EncodeToString(st.LicenseKeys[0]), "--metrics", "127.0.0.1:0",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--log-level", "debug", "--log-format", "json"}
	for id, k := range st.ManifestKeys {
		args = append(args, "--manifest-key", id+":"+hex.EncodeToString(k))
	}
	args = append(args, "film") // the content ID after the flags
	p := startProc(t, dir, []string{"SEALMESH_TOKEN=" + tok}, args...)
	line := p.waitLine(t, "metrics at http://")
	url := strings.TrimPrefix(line[strings.Index(line, "http://"):], "")

	// The seed fetches the whole content from the origin: wait until the
	// player series count bytes from it.
	originBytes := regexp.MustCompile(`(?m)^sealmesh_player_bytes_total\{content="film",source="origin"\} ([0-9.e+]+)$`)
	var body string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(90 * time.Second)
	for {
		code, hdr, b := httpGet(t, url)
		require.Equal(t, http.StatusOK, code, b)
		require.True(t, strings.HasPrefix(hdr.Get("Content-Type"), "text/plain"), hdr.Get("Content-Type"))
		body = b
		if m := originBytes.FindStringSubmatch(body); m != nil && m[1] != "0" {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no origin bytes in the metrics; last scrape:\n%s\nstderr: %s", body, p.errText())
		}
	}
	for _, series := range []string{
		"# TYPE sealmesh_player_bytes_total counter",
		`sealmesh_player_peers{content="film"}`,
		`sealmesh_player_stalls_total{content="film"}`,
		"# TYPE sealmesh_transport_banned_peers gauge",
		"sealmesh_transport_bans_total{peer_id=",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		require.Contains(t, body, series)
	}
	require.NotContains(t, body, tok, "no token in the metrics")

	// Every log line is JSON (stderr also carries the status line).
	logs := 0
	for _, l := range strings.Split(p.errText(), "\n") {
		if strings.HasPrefix(l, "{") {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &m), l)
			require.Contains(t, m, "level")
			logs++
		}
	}
	require.Positive(t, logs, "--log-level debug logged nothing: %s", p.errText())
	require.NotContains(t, p.errText(), tok, "no token in the logs")
}

// TestLicenseServeOps: two license servers on one host with the default
// admin address both start (the admin port is a free one, printed); the
// start-up lines list every endpoint; /metrics answers on the admin
// listener only; --access-log writes one JSON line per request.
func TestLicenseServeOps(t *testing.T) {
	dir := t.TempDir()
	r := sealmesh(t, dir, nil, "keys", "init", "--keystore", "keys.db")
	require.Equal(t, 0, r.code, r.stderr)
	var api, admin []string
	var procs []*proc
	for i, state := range []string{"a.db", "b.db"} {
		p := startProc(t, dir, nil, "license", "serve", "--keystore", "keys.db", "--state", state, "--listen", "127.0.0.1:0",
			"--dev-tokens", "--access-log", "-", "--log-format", "json")
		procs = append(procs, p)
		first := p.waitLine(t, "license server listening on http://127.0.0.1:")
		base := strings.Fields(strings.TrimPrefix(first, "license server listening on "))[0]
		endpoints := p.waitLine(t, "API http://")
		for _, e := range []string{"/healthz", "/v1/keys", "/v1/nonce", "/v1/license", "/v1/license/renew", "/v1/clearkey", "/v1/ticket", "/v1/announce"} {
			require.Contains(t, strings.Fields(endpoints), e, "server %d: %s", i, endpoints)
		}
		require.NotContains(t, endpoints, "/metrics")
		adminLine := p.waitLine(t, "admin endpoint http://127.0.0.1:")
		require.Contains(t, adminLine, "/metrics")
		require.Contains(t, adminLine, "/admin/revoke")
		adminURL := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(adminLine, "  admin endpoint "))[0], ":")
		api, admin = append(api, base), append(admin, adminURL)
	}
	require.NotEqual(t, admin[0], admin[1], "two servers, two admin ports")

	code, _, _ := httpGet(t, api[0]+"/healthz")
	require.Equal(t, http.StatusOK, code)
	code, _, body := httpGet(t, api[0]+"/metrics")
	require.Equal(t, http.StatusNotFound, code, "public /metrics: %s", body)
	code, hdr, body := httpGet(t, admin[0]+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.True(t, strings.HasPrefix(hdr.Get("Content-Type"), "text/plain"))
	require.Contains(t, body, `sealmesh_license_requests_total{code="ok",route="healthz"} 1`)

	// The access log: the /healthz and /metrics requests above, as JSON.
	want := map[string]bool{"/healthz": false, "/metrics": false}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, l := range strings.Split(procs[0].errText(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "request" {
				continue
			}
			require.Equal(t, "GET", m["method"])
			require.Contains(t, m, "status")
			require.Contains(t, m, "duration")
			require.Equal(t, "127.0.0.1", m["remote"])
			want[m["path"].(string)] = true
		}
		if want["/healthz"] && want["/metrics"] {
			break
		}
		require.True(t, time.Now().Before(deadline), "access log lines missing: %v; stderr: %s", want, procs[0].errText())
		time.Sleep(50 * time.Millisecond) // polling a bounded condition: the child flushes stderr on its own schedule
	}
}

func TestVersion(t *testing.T) {
	dir := t.TempDir()
	r := sealmesh(t, dir, nil, "version")
	require.Equal(t, 0, r.code, r.stderr)
	require.True(t, strings.HasPrefix(r.stdout, "github.com/sealmesh/sealmesh "), r.stdout)
	r = sealmesh(t, dir, nil, "version", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var v struct {
		Module, Version, Revision, Go string
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), r.stdout)
	require.Equal(t, "github.com/sealmesh/sealmesh", v.Module)
	require.NotEmpty(t, v.Version)
	require.NotEmpty(t, v.Go)
	// The revision is the one Go stamped into the binary (go version -m);
	// stamping needs a git checkout and -buildvcs (this project's CI sets
	// GOFLAGS=-buildvcs=false, and git worktrees are not stamped), so both
	// may be empty, but they must agree.
	mods, err := exec.Command("go", "version", "-m", binary).Output()
	require.NoError(t, err)
	stamped := ""
	if m := regexp.MustCompile(`(?m)^\s*build\s+vcs\.revision=(\S+)$`).FindSubmatch(mods); m != nil {
		stamped = string(m[1])
	}
	require.Equal(t, stamped, v.Revision)
}

// TestHelpOnStdout: --help is output the user asked for: stdout, exit 0,
// nothing on stderr.
func TestHelpOnStdout(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"-h"}, {"pack", "--help"}, {"keys", "--help"}, {"keys", "list", "--help"}, {"demo", "-h"},
		{"license", "--help"}, {"license", "serve", "--help"}, {"license", "audit", "--help"}, {"token", "--help"}, {"token", "issue", "--help"},
		{"peer", "--help"}, {"peer", "play", "--help"}, {"peer", "seed", "film", "--help"}, {"version", "--help"},
	} {
		r := sealmesh(t, dir, nil, args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stdout, "Usage", "%v", args)
		require.Empty(t, r.stderr, "%v", args)
	}
	r := sealmesh(t, dir, nil, "license", "serve", "--help")
	for _, f := range []string{"--log-level", "--log-format", "--access-log", "--admin-listen"} {
		require.Contains(t, r.stdout, strings.TrimPrefix(f, "-"), "license serve --help lacks %s", f)
	}
	r = sealmesh(t, dir, nil, "peer", "play", "--help")
	for _, f := range []string{"-log-level", "-log-format", "-metrics"} {
		require.Contains(t, r.stdout, f)
	}
}

// TestUsageErrors: a mistake gets one line on stderr that names it and says
// where to look, exit 2, and no manual dumped in front of it.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"unknown flag", []string{"pack", "--bogus"}, "-bogus"},
		{"flag without value", []string{"keys", "list", "--keystore"}, "--help"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"unknown subcommand", []string{"keys", "rotate"}, "init, list or export"},
		{"stray argument", []string{"keys", "list", "extra"}, `unexpected argument "extra"`},
		{"bad log level", []string{"demo", "--log-level", "loud"}, "--log-level"},
		{"bad log format", []string{"license", "serve", "--dev-tokens", "--log-format", "xml"}, "--log-format"},
		{"second content ID", []string{"peer", "play", "film", "other", "--origin", "http://127.0.0.1:1/", "--license", "http://127.0.0.1:1"}, `unexpected argument "other"`},
		{"bench moved", []string{"bench", "swarm"}, "cmd/sealmesh-bench"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sealmesh(t, dir, nil, tc.args...)
			require.Equal(t, 2, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.msg)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			require.True(t, strings.HasPrefix(r.stderr, "sealmesh: "), r.stderr)
			require.Empty(t, r.stdout)
		})
	}
}

// TestPositionalAnyOrder: the content ID of 'peer play|seed' may come
// before or after the flags. Without a token the command stops right after
// parsing, so the error says which of the two it got to.
func TestPositionalAnyOrder(t *testing.T) {
	dir := t.TempDir()
	flags := []string{"--origin", "http://127.0.0.1:1/film/", "--license", "http://127.0.0.1:1"}
	noToken := []string{"SEALMESH_TOKEN="}
	for _, args := range [][]string{
		append([]string{"peer", "play", "film"}, flags...),
		append(append([]string{"peer", "play"}, flags...), "film"),
		{"peer", "seed", "--origin", "http://127.0.0.1:1/film/", "film", "--license", "http://127.0.0.1:1", "--no-p2p"},
	} {
		r := sealmesh(t, dir, noToken, args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, "no token", "%v: the content ID was not taken", args)
	}
	r := sealmesh(t, dir, noToken, append([]string{"peer", "play"}, flags...)...)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "give the content ID")
}

// TestKeysListPinFlags: 'keys list' prints the exact flags that pin the
// store's keys, --json carries them structured, and 'peer' accepts them.
func TestKeysListPinFlags(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	r := sealmesh(t, dir, nil, "keys", "list", "--keystore", ks, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var list struct {
		LicenseKey  struct{ ID, Public string } `json:"license_key"`
		ManifestKey struct{ ID, Public string } `json:"manifest_key"`
		PinFlags    string                      `json:"pin_flags"`
		PinArgs     []string                    `json:"pin_args"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list), r.stdout)
	require.Len(t, list.LicenseKey.Public, 64)
	require.Len(t, list.ManifestKey.Public, 64)
	require.Equal(t, []string{"--license-key", list.LicenseKey.Public, "--manifest-key", list.ManifestKey.ID + ":" + list.ManifestKey.Public}, list.PinArgs)
	require.Equal(t, strings.Join(list.PinArgs, " "), list.PinFlags)

	r = sealmesh(t, dir, nil, "keys", "list", "--keystore", ks)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, list.PinFlags)

	// The printed flags parse: with both keys pinned, peer never asks the
	// license server for keys, and stops at the (unreachable) origin.
	args := append([]string{"peer", "seed", "film", "--origin", "http://127.0.0.1:1/film/", "--license", "http://127.0.0.1:1", "--no-p2p"}, strings.Fields(list.PinFlags)...)
	r = sealmesh(t, dir, []string{"SEALMESH_TOKEN=x"}, args...)
	require.NotEqual(t, 0, r.code)
	require.NotContains(t, r.stderr, "/v1/keys", "pinned keys were fetched anyway: %s", r.stderr)
	require.NotContains(t, r.stderr, "--license-key:", r.stderr)
	require.NotContains(t, r.stderr, "--manifest-key", r.stderr)
	require.NotEmpty(t, filepath.Base(ks))
}
