package main_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
)

// TestDeploymentWalkthrough runs the README's deployment as separate OS
// processes: keys init, pack, license serve, a static origin, a seed (no
// keys) and a player whose local HLS URL ffmpeg decodes to the source's
// frames. The seed and the player are separate processes talking libp2p,
// with the public keys pinned by flag as the README shows.
func TestDeploymentWalkthrough(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	dir := t.TempDir()
	ks := initStore(t, dir)
	port := freePort(t)
	lic := fmt.Sprintf("http://127.0.0.1:%d", port)
	out := filepath.Join(dir, "origin", "film")
	r := sealmesh(t, dir, nil, "pack", "--keystore", ks, "--in", clip(t, "360p.mp4"), "--in", clip(t, "180p.mp4"),
		"--out", out, "--content", "film", "--crypto-period", "4s", "--license-url", lic+"/v1/clearkey")
	require.Equal(t, 0, r.code, r.stderr)
	state := filepath.Join(dir, "state.db")
	startLicenseServer(t, dir, lic, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--keystore", ks,
		"--state", state, "--dev-tokens", "--admin-listen", "off", "--content-dir", filepath.Join(dir, "origin"))
	origin := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "origin"))))
	defer origin.Close()
	r = sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", "edge", "--content", "film", "--ttl", "1h")
	require.Equal(t, 0, r.code, r.stderr)
	seedToken := strings.TrimSpace(r.stdout)
	r = sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", "viewer", "--content", "film", "--ttl", "1h")
	require.Equal(t, 0, r.code, r.stderr)
	viewerToken := strings.TrimSpace(r.stdout)

	// The README's pinned form: the public keys from `keys list --pins`,
	// nothing fetched from the plain-HTTP license server.
	r = sealmesh(t, dir, nil, "keys", "list", "--keystore", ks, "--pins")
	require.Equal(t, 0, r.code, r.stderr)
	pins := strings.Fields(r.stdout)
	require.Len(t, pins, 4, "keys list --pins printed %q", r.stdout)
	require.Equal(t, []string{"--license-key", "--manifest-key"}, []string{pins[0], pins[2]})
	common := append([]string{"--origin", origin.URL + "/film/", "--license", lic, "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}, pins...)
	seed, seedOut, seedErr := startSeed(t, dir, seedToken, append([]string{"peer", "seed", "film", "--status-every", "100ms"}, common...))
	require.Contains(t, firstLine(t, seedOut), "seeding")
	// The seed holds the whole content before the viewer starts, so that
	// the viewer can get it from the seed (asserted below).
	waitFor(t, 60*time.Second, 20*time.Millisecond, func() bool { return seedHoldsAll(seedErr.String()) },
		func() string { return "the seed did not fetch the content:\n" + seedErr.String() })
	play, playOut, playErr := startSeed(t, dir, viewerToken, append([]string{"peer", "play", "film", "--status-every", "100ms"}, common...))
	url := firstLine(t, playOut)
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), "peer play printed %q", url)
	waitFor(t, 30*time.Second, 20*time.Millisecond, func() bool { return admittedPeers.MatchString(playErr.String()) },
		func() string { return "the viewer was not admitted to the seed:\n" + playErr.String() })

	want := interop.FrameMD5File(t, ffmpeg, clip(t, "360p.mp4"), "video")
	got, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", url, "-map", "0:v:0", "-f", "framemd5", "-").Output()
	require.NoError(t, err)
	frames, err := interop.ParseFrameMD5(strings.NewReader(string(got)))
	require.NoError(t, err)
	require.Equal(t, want, frames, "frames from the peer's gateway differ from the source")
	// The origin serves everything too: only the viewer's own count shows
	// that the seed, a separate process over libp2p, delivered.
	sum := stopForSummary(t, play, playOut)
	require.Positive(t, peerBytes(t, sum), "the viewer got nothing from the seed:\n%s", sum)
	stopPeer(t, seed)
}

func firstLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() { l, _ := r.ReadString('\n'); ch <- strings.TrimSpace(l) }()
	select {
	case l := <-ch:
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("peer printed nothing within 30 s")
		return ""
	}
}

func stopPeer(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "peer did not exit cleanly on SIGTERM")
	case <-time.After(15 * time.Second):
		t.Fatal("peer did not stop on SIGTERM")
	}
}

// TestPeerRefusesKeysOverPlainHTTP: `peer play` and `peer seed` without
// pinned keys and with a plain-HTTP --license stop before fetching anything,
// saying how to pin the keys; a request to the license server would fail
// the test.
func TestPeerRefusesKeysOverPlainHTTP(t *testing.T) {
	var hits atomic.Int64
	lic := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1); http.NotFound(w, nil) }))
	defer lic.Close()
	for _, mode := range []string{"play", "seed"} {
		for _, pins := range [][]string{nil, {"--license-key", strings.Repeat("ab", 32)}} {
			r := sealmesh(t, t.TempDir(), []string{"SEALMESH_TOKEN=x"}, append([]string{"peer", mode, "film",
				"--origin", "http://127.0.0.1:1/film/", "--license", lic.URL, "--no-p2p"}, pins...)...)
			require.Equal(t, 2, r.code, "peer %s %v: %s", mode, pins, r.stderr)
			for _, want := range []string{"not pinned", "plain HTTP", "sealmesh keys list --pins", "--insecure-http-keys", "https://"} {
				require.Contains(t, r.stderr, want, "peer %s %v", mode, pins)
			}
		}
	}
	require.Zero(t, hits.Load(), "no request may reach a plain-HTTP license server for keys")
}
