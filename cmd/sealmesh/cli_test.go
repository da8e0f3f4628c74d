package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sealmesh-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sealmesh")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sealmesh: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

func clip(t testing.TB, name string) string {
	return filepath.Join(repoRoot(t), "testdata", "clip", name)
}

const testPass = "correct horse battery staple"

type result struct {
	code           int
	stdout, stderr string
}

// sealmesh runs the built binary in dir with the test passphrase set.
func sealmesh(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), keys.PassphraseEnv+"="+testPass)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run sealmesh: %v", err)
	}
	return result{code, out.String(), errb.String()}
}

func initStore(t *testing.T, dir string) string {
	t.Helper()
	ks := filepath.Join(dir, "ks.db")
	r := sealmesh(t, dir, nil, "keys", "init", "--keystore", ks)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "manifest signing key")
	return ks
}

type exported struct {
	KID    string `json:"kid"`
	Key    string `json:"key"`
	Period int    `json:"period"`
}

func TestPackAndExport(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	out := filepath.Join(dir, "out")
	r := sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", clip(t, "360p.mp4"), "--in", clip(t, "180p.mp4"),
		"--out", out, "--content", "film", "--crypto-period", "8s")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `packed "film"`)
	for _, f := range []string{"master.m3u8", "manifest.mpd", "sealmesh.json", "video-640x360/init.mp4", "video-640x360/init-1.mp4", "video-640x360/1.m4s", "audio/3.m4s"} {
		require.FileExists(t, filepath.Join(out, f))
	}

	r = sealmesh(t, dir, nil, "keys", "export", "--keystore", ks, "--content", "film")
	require.Equal(t, 2, r.code, "export without --insecure-cleartext must be refused")
	require.Contains(t, r.stderr, "--insecure-cleartext")

	r = sealmesh(t, dir, nil, "keys", "export", "--keystore", ks, "--content", "film", "--insecure-cleartext")
	require.Equal(t, 0, r.code, r.stderr)
	var list []exported
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	require.Len(t, list, 2)
	for i, k := range list {
		require.Equal(t, i, k.Period)
		require.Len(t, k.KID, 32)
		require.Len(t, k.Key, 32)
	}
	manifest, err := os.ReadFile(filepath.Join(out, "sealmesh.json"))
	require.NoError(t, err)
	require.Contains(t, string(manifest), list[1].KID)

	// The key store holds no content key in clear.
	raw, err := os.ReadFile(ks)
	require.NoError(t, err)
	for _, k := range list {
		kb := mustHex(t, k.Key)
		require.False(t, bytes.Contains(raw, kb), "content key of period %d found in clear in the key store", k.Period)
	}

	r = sealmesh(t, dir, nil, "keys", "list", "--keystore", ks)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "film")
	require.NotContains(t, r.stdout, list[0].Key, "list must never print keys")

	// Import: the same content as if another packager made it.
	require.NoError(t, os.Remove(filepath.Join(out, "sealmesh.json")))
	keysFile := filepath.Join(dir, "keys.json")
	require.NoError(t, os.WriteFile(keysFile, []byte(r0(t, dir, ks)), 0o600))
	r = sealmesh(t, dir, nil, "pack", "--import", "--keystore", ks, "--in", filepath.Join(out, "master.m3u8"), "--content", "film-imported", "--keys-file", keysFile)
	require.Equal(t, 1, r.code, "a KID belongs to one content only")
	require.Contains(t, r.stderr, "already belongs to content")
	require.NoFileExists(t, filepath.Join(out, "sealmesh.json"), "no manifest for keys that were not registered")
	// Migration into a new key store works.
	ks2 := filepath.Join(dir, "ks2.db")
	require.Equal(t, 0, sealmesh(t, dir, nil, "keys", "init", "--keystore", ks2).code)
	r = sealmesh(t, dir, nil, "pack", "--import", "--keystore", ks2, "--in", filepath.Join(out, "master.m3u8"), "--content", "film", "--keys-file", keysFile)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "imported")
	require.FileExists(t, filepath.Join(out, "sealmesh.json"))
}

// r0 exports film's keys as JSON.
func r0(t *testing.T, dir, ks string) string {
	r := sealmesh(t, dir, nil, "keys", "export", "--keystore", ks, "--content", "film", "--insecure-cleartext")
	require.Equal(t, 0, r.code, r.stderr)
	return r.stdout
}

func mustHex(t *testing.T, s string) []byte {
	var b []byte
	_, err := fmt.Sscanf(s, "%x", &b)
	require.NoError(t, err)
	return b
}

// TestPackErrors: each mistake gets a one-line message that says what to do,
// a non-zero exit, no output folder and no registered keys.
func TestPackErrors(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	garbage := filepath.Join(dir, "garbage.mp4")
	require.NoError(t, os.WriteFile(garbage, []byte("not a video"), 0o644))
	existing := filepath.Join(dir, "existing")
	require.NoError(t, os.Mkdir(existing, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(existing, "index.html"), []byte("an origin's page"), 0o644))
	good := clip(t, "360p.mp4")
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		msg  string
	}{
		{"no input", nil, []string{"pack", "--no-license-url", "--keystore", ks, "--out", "o", "--content", "c"}, 2, "no input"},
		{"missing input", nil, []string{"pack", "--no-license-url", "--keystore", ks, "--in", "nope.mp4", "--out", "o", "--content", "c"}, 2, "nope.mp4"},
		{"not a video", nil, []string{"pack", "--no-license-url", "--keystore", ks, "--in", garbage, "--out", "o", "--content", "c"}, 1, "not a readable MP4"},
		{"bad content id", nil, []string{"pack", "--no-license-url", "--keystore", ks, "--in", good, "--out", "o", "--content", "a/b"}, 2, "content ID"},
		{"bad scheme", nil, []string{"pack", "--no-license-url", "--keystore", ks, "--in", good, "--out", "o", "--content", "c", "--scheme", "aes"}, 1, "use cbcs or cenc"},
		{"existing output", nil, []string{"pack", "--no-license-url", "--keystore", ks, "--in", good, "--out", existing, "--content", "c"}, 1, "--force"},
		{"no license url", nil, []string{"pack", "--keystore", ks, "--in", good, "--out", "o", "--content", "c"}, 2, "--license-url https://"},
		{"license url and none", nil, []string{"pack", "--no-license-url", "--license-url", "https://l.example/v1/clearkey", "--keystore", ks, "--in", good, "--out", "o", "--content", "c"}, 2, "exclude each other"},
		{"bad license url", nil, []string{"pack", "--license-url", "license.example.com", "--keystore", ks, "--in", good, "--out", "o", "--content", "c"}, 2, "want an http(s) URL"},
		{"missing key store", nil, []string{"pack", "--no-license-url", "--keystore", filepath.Join(dir, "none.db"), "--in", good, "--out", "o", "--content", "c"}, 1, "sealmesh keys init"},
		{"wrong passphrase", []string{keys.PassphraseEnv + "=wrong passphrase"}, []string{"pack", "--no-license-url", "--keystore", ks, "--in", good, "--out", "o", "--content", "c"}, 1, "wrong passphrase"},
		{"no passphrase", []string{keys.PassphraseEnv + "="}, []string{"pack", "--no-license-url", "--keystore", ks, "--in", good, "--out", "o", "--content", "c"}, 1, keys.PassphraseEnv},
		{"not a key store", nil, []string{"pack", "--no-license-url", "--keystore", garbage, "--in", good, "--out", "o", "--content", "c"}, 1, "not a sealmesh key store"},
		{"unknown flag", nil, []string{"pack", "--bogus"}, 2, "bogus"},
		{"unknown command", nil, []string{"frobnicate"}, 2, "unknown command"},
		{"import without keys", nil, []string{"pack", "--import", "--keystore", ks, "--in", good, "--content", "c"}, 2, "--key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := sealmesh(t, dir, tc.env, tc.args...)
			require.Equal(t, tc.code, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, tc.msg)
			require.NotContains(t, r.stderr, "panic")
			require.NoDirExists(t, filepath.Join(dir, "o"))
		})
	}
	r := sealmesh(t, dir, nil, "keys", "list", "--keystore", ks, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"content": null`, "a failed pack registered keys")
}

func TestLockedKeyStore(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	held, err := keys.Open(ks, []byte(testPass))
	require.NoError(t, err)
	defer held.Close()
	r := sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", clip(t, "360p.mp4"), "--out", "o", "--content", "c")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "locked by another sealmesh process")
}

func TestHelpTeaches(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--help"}, {"pack", "--help"}, {"keys", "--help"}, {"demo", "--help"}, {"version", "--help"}} {
		r := sealmesh(t, dir, nil, args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		help := r.stdout + r.stderr
		require.True(t, strings.Contains(help, "Usage") || strings.Contains(help, "usage"), "%v: %s", args, help)
	}
}

// TestDemoRuns runs the whole demo (pack, license server, origin, a swarm
// of viewers) faster than real time and checks its JSON summary. Offload is
// checked loosely: the figure BENCHMARKS.md records comes from a real-time
// run, and this machine may be busy. It runs the built binary in an empty
// folder outside the repository: the clip is embedded, and the demo leaves
// nothing behind.
func TestDemoRuns(t *testing.T) {
	dir := t.TempDir()
	r := sealmesh(t, dir, nil, "demo", "--json", "--peers", "4", "--speed", "4", "--join-every", "300ms")
	require.Equal(t, 0, r.code, r.stderr)
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, left, "the demo left files in the working folder")
	var sum struct {
		Peers           int     `json:"peers"`
		Offload         float64 `json:"offload"`
		Stalls          *int    `json:"stalls"`
		StartupP50      *int64  `json:"startup_p50_ms"`
		StartupP95      *int64  `json:"startup_p95_ms"`
		BytesFromPeers  int64   `json:"bytes_from_peers"`
		BytesFromOrigin int64   `json:"bytes_from_origin"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)
	require.Equal(t, 4, sum.Peers)
	require.NotNil(t, sum.Stalls)
	require.NotNil(t, sum.StartupP95)
	require.Greater(t, sum.BytesFromOrigin, int64(0), "the first viewer must have used the origin")
	// Every viewer fetched the whole video and audio (about 0.74 MB) from
	// somewhere; how much came from peers depends on timing on this shared
	// machine, so only its range is checked here (BENCHMARKS.md has the
	// real-time figure).
	require.GreaterOrEqual(t, sum.BytesFromPeers+sum.BytesFromOrigin, int64(4*700_000))
	require.InDelta(t, 0.5, sum.Offload, 0.5)
}

func TestMasterKeyStore(t *testing.T) {
	dir := t.TempDir()
	ks := filepath.Join(dir, "ks.db")
	key := []string{"SEALMESH_KEYSTORE_KEY=" + strings.Repeat("5a", 32), keys.PassphraseEnv + "="}
	r := sealmesh(t, dir, key, "keys", "init", "--keystore", ks)
	require.Equal(t, 0, r.code, r.stderr)
	r = sealmesh(t, dir, key, "pack", "--no-license-url", "--keystore", ks, "--in", clip(t, "180p.mp4"), "--out", "o", "--content", "c")
	require.Equal(t, 0, r.code, r.stderr)
	r = sealmesh(t, dir, nil, "keys", "list", "--keystore", ks)
	require.Equal(t, 1, r.code, "a master-key store must not open with a passphrase")
	r = sealmesh(t, dir, []string{"SEALMESH_KEYSTORE_KEY=abcd"}, "keys", "list", "--keystore", ks)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "32 random bytes")
}
