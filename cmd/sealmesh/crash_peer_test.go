package main_test

import (
	"bufio"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/segment"
)

// TestPeerKill9MidDownload backs the "crash or damage on the peer's disk"
// row of SECURITY.md. A `sealmesh peer seed --cache DIR` fetching a 20 s
// 720p content from a throttled origin is killed with SIGKILL once part of
// the content is cached. Before the restart the test adds what a crash in
// the middle of a write (or a damaged disk) leaves: a stray temp file and a
// file truncated under its real name. The seed restarted on the same --cache
// must start, drop both, and complete the content; at the end every file in
// the cache matches the signed manifest (checked here with the manifest key
// from `sealmesh keys list --json`) and no temp file is left.
func TestPeerKill9MidDownload(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	dir := t.TempDir()
	long := filepath.Join(dir, "long.mp4")
	gen := exec.Command(filepath.Join(repoRoot(t), "testdata", "make-long-clip.sh"), long, "20", "1280x720")
	gen.Env = append(os.Environ(), "FFMPEG="+ffmpeg)
	out, err := gen.CombinedOutput()
	require.NoError(t, err, "%s", out)
	ks := initStore(t, dir)
	originDir := filepath.Join(dir, "origin")
	r := sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", long, "--out", filepath.Join(originDir, "film"), "--content", "film", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	m := manifestOf(t, dir, ks, filepath.Join(originDir, "film"))

	port := freePort(t)
	lic := fmt.Sprintf("http://127.0.0.1:%d", port)
	state := filepath.Join(dir, "state.db")
	startLicenseServer(t, dir, lic, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--keystore", ks,
		"--state", state, "--dev-tokens", "--admin-listen", "off")
	r = sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", "edge", "--content", "film", "--ttl", "1h")
	require.Equal(t, 0, r.code, r.stderr)
	tok := strings.TrimSpace(r.stdout)

	// The origin sends about 2 MiB/s, so that the download takes seconds
	// and the kill lands in the middle of it.
	files := http.FileServer(http.Dir(originDir))
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		files.ServeHTTP(throttled{w}, req)
	}))
	defer origin.Close()

	cacheDir := filepath.Join(dir, "cache")
	args := []string{"peer", "seed", "film", "--origin", origin.URL + "/film/", "--license", lic,
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--cache", cacheDir, "--verbose", "--insecure-http-keys"}
	contentDir := filepath.Join(cacheDir, "film")
	var all []segment.File // what a seed caches: every rendition's files (playlists are not cached)
	for _, r := range m.Renditions {
		all = append(all, r.Files...)
	}
	seed, seedOut, seedErr := startSeed(t, dir, tok, args)
	require.Contains(t, firstLine(t, seedOut), "seeding")
	waitFor(t, 60*time.Second, time.Millisecond, func() bool { return len(cachedFiles(contentDir)) >= 3 },
		func() string { return fmt.Sprintf("the seed cached nothing\nseed log:\n%s", seedErr) })
	require.NoError(t, seed.Process.Signal(syscall.SIGKILL))
	_ = seed.Wait()
	left := cachedFiles(contentDir)
	temps := tempFiles(t, contentDir)
	t.Logf("killed the seed with %d of %d files cached and %d temp files", len(left), len(all), len(temps))
	require.Less(t, len(left), len(all), "the seed finished before the kill")

	// What a kill during a write, or a damaged disk, leaves behind.
	var whole, missing segment.File
	for _, f := range all {
		if _, ok := left[f.Path]; ok && f.Kind == segment.KindMedia {
			whole = f
		} else if !ok && f.Kind == segment.KindMedia && missing.Path == "" {
			missing = f
		}
	}
	require.NotEmpty(t, whole.Path)
	require.NotEmpty(t, missing.Path)
	data, err := os.ReadFile(filepath.Join(originDir, "film", filepath.FromSlash(missing.Path)))
	require.NoError(t, err)
	straytemp := filepath.Join(contentDir, filepath.FromSlash(filepath.Dir(missing.Path)), "."+filepath.Base(missing.Path)+".tmp-4242")
	require.NoError(t, os.MkdirAll(filepath.Dir(straytemp), 0o755))
	require.NoError(t, os.WriteFile(straytemp, data[:len(data)/2], 0o644))
	truncated := filepath.Join(contentDir, filepath.FromSlash(whole.Path))
	require.NoError(t, os.Truncate(truncated, whole.Size/2))

	seed, seedOut, seedErr = startSeed(t, dir, tok, args)
	require.Contains(t, firstLine(t, seedOut), "seeding", "the seed must start on the cache a SIGKILL left")
	waitFor(t, 60*time.Second, 50*time.Millisecond, func() bool { return len(cachedFiles(contentDir)) == len(all) && complete(all, m, contentDir) },
		func() string {
			return fmt.Sprintf("the restarted seed did not complete the content: %d of %d files\nseed log:\n%s", len(cachedFiles(contentDir)), len(all), seedErr)
		})
	stopPeer(t, seed)

	// Every file on disk is a manifest file with the manifest's bytes; no
	// temp file is left.
	require.Empty(t, tempFiles(t, contentDir), "temp files left in the cache")
	got := cachedFiles(contentDir)
	require.Len(t, got, len(all))
	for p := range got {
		b, err := os.ReadFile(filepath.Join(contentDir, filepath.FromSlash(p)))
		require.NoError(t, err)
		require.NoError(t, m.CheckFile(p, b), "cached %s", p)
	}
}

// startSeed is startPeer with the peer's stderr kept for failure messages.
func startSeed(t *testing.T, dir, token string, args []string) (*exec.Cmd, *bufio.Reader, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), keys.PassphraseEnv+"="+testPass, "SEALMESH_TOKEN="+token)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewReader(out), stderr
}

// throttled writes at most 32 KiB per 15 ms: about 2 MiB/s.
type throttled struct{ http.ResponseWriter }

func (w throttled) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(len(b), 32<<10)
		k, err := w.ResponseWriter.Write(b[:c])
		n += k
		if err != nil {
			return n, err
		}
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		b = b[c:]
		time.Sleep(15 * time.Millisecond)
	}
	return n, nil
}

// manifestOf parses folder's signed manifest with the key store's manifest
// key, as listed by `sealmesh keys list --json`.
func manifestOf(t *testing.T, dir, ks, folder string) *segment.Manifest {
	t.Helper()
	r := sealmesh(t, dir, nil, "keys", "list", "--keystore", ks, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var list struct {
		SigningKeys map[string]string `json:"signing_keys"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &list))
	trusted := segment.TrustedKeys{}
	for name, pub := range list.SigningKeys {
		if id, ok := strings.CutPrefix(name, "manifest "); ok {
			b, err := hex.DecodeString(pub)
			require.NoError(t, err)
			trusted[id] = ed25519.PublicKey(b)
		}
	}
	require.NotEmpty(t, trusted, "no manifest key in %s", r.stdout)
	raw, err := os.ReadFile(filepath.Join(folder, segment.ManifestFile))
	require.NoError(t, err)
	m, err := segment.ParseManifest(raw, trusted)
	require.NoError(t, err)
	return m
}

// cachedFiles lists the regular files under root that are not temp files
// (names starting with '.'), by slash path relative to root.
func cachedFiles(root string) map[string]bool {
	out := map[string]bool{}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if rel, err := filepath.Rel(root, p); err == nil {
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	return out
}

// tempFiles lists the files under root whose names start with '.'.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			out = append(out, p)
		}
		return err
	}))
	return out
}

// waitFor polls cond every tick until it holds, or fails with msg() after d.
func waitFor(t *testing.T, d, tick time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(tick)
	}
}

// complete reports whether every one of files is under root with the bytes m lists.
func complete(files []segment.File, m *segment.Manifest, root string) bool {
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.Path)))
		if err != nil || m.CheckFile(f.Path, b) != nil {
			return false
		}
	}
	return true
}
