package player_test

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/player"
	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

func clip(t testing.TB) []string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "testdata", "clip")
	return []string{filepath.Join(dir, "360p.mp4"), filepath.Join(dir, "180p.mp4")}
}

func startStack(t testing.TB, o stack.Options) *stack.Stack {
	t.Helper()
	o.Dir = t.TempDir()
	o.Inputs = clip(t)
	st, err := stack.Start(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

func config(st *stack.Stack, account string) player.Config {
	return player.Config{
		Content: st.ContentID, OriginURL: st.OriginURL, LicenseURL: st.LicenseURL,
		Token: st.TokenFunc(account), LicenseKeys: st.LicenseKeys, ManifestKeys: st.ManifestKeys,
		P2P: player.P2P{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}},
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// TestFFmpegPlaysTheGateway has ffmpeg open the SDK's local HLS URL: the
// decoded frames must equal the clear source's, through key rotation.
func TestFFmpegPlaysTheGateway(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	st := startStack(t, stack.Options{CryptoPeriod: 4 * time.Second})
	cfg := config(st, "viewer")
	cfg.P2P.Disable = true
	s, err := player.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer s.Close()
	want := interop.FrameMD5File(t, ffmpeg, clip(t)[0], "video")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", s.URL(), "-map", "0:v:0", "-f", "framemd5", "-").Output()
	require.NoError(t, err)
	got, err := interop.ParseFrameMD5(strings.NewReader(string(out)))
	require.NoError(t, err)
	require.Equal(t, want, got, "ffmpeg decoded other frames from the gateway")
	stats := s.Stats()
	require.True(t, stats.Started)
	require.Zero(t, stats.Refused)
}

func TestGatewayRefusesStrangers(t *testing.T) {
	st := startStack(t, stack.Options{})
	cfg := config(st, "viewer")
	cfg.P2P.Disable = true
	s, err := player.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer s.Close()
	code, _ := get(t, s.URL())
	require.Equal(t, http.StatusOK, code)
	base := s.URL()[:strings.Index(s.URL()[7:], "/")+7]
	code, body := get(t, base+"/master.m3u8")
	require.Equal(t, http.StatusNotFound, code, "the gateway must not answer without its secret path")
	require.NotContains(t, string(body), "EXTM3U")
}

// TestSecondViewerFetchesFromTheFirst: two sessions, real libp2p hosts, the
// license server's tracker and tickets: the second viewer's media comes
// mostly from the first.
func TestSecondViewerFetchesFromTheFirst(t *testing.T) {
	st := startStack(t, stack.Options{SegmentDuration: 2 * time.Second})
	first, err := player.Open(context.Background(), withTracker(config(st, "a")))
	require.NoError(t, err)
	defer first.Close()
	playAll(t, first)
	second, err := player.Open(context.Background(), withTracker(config(st, "b")))
	require.NoError(t, err)
	defer second.Close()
	// Let the second viewer's scheduler fetch ahead, as it would while a
	// player plays: the buffer target (30 s) covers the whole clip.
	want := playedFiles(second.Manifest())
	require.Eventually(t, func() bool { return second.Stats().Held >= want }, 30*time.Second, 10*time.Millisecond,
		"the second viewer did not fetch ahead")
	playAll(t, second)
	s1, s2 := first.Stats(), second.Stats()
	t.Logf("first: peers %d origin %d; second: peers %d origin %d (share %.2f)", s1.BytesFromPeers, s1.BytesFromOrigin, s2.BytesFromPeers, s2.BytesFromOrigin, s2.PeerShare())
	require.Greater(t, s2.PeerShare(), 0.5)
	require.Greater(t, first.Stats().BytesUploaded, int64(0))
}

// playedFiles is how many files a viewer fetches: those of the best video
// rendition and the first audio one (the session's default choice).
func playedFiles(m *segment.Manifest) int {
	video, audio := -1, -1
	for i, r := range m.Renditions {
		switch {
		case r.Type == "video" && (video < 0 || r.Bandwidth > m.Renditions[video].Bandwidth):
			video = i
		case r.Type == "audio" && audio < 0:
			audio = i
		}
	}
	n := 0
	for _, i := range []int{video, audio} {
		if i >= 0 {
			n += len(m.Renditions[i].Files)
		}
	}
	return n
}

func withTracker(c player.Config) player.Config {
	c.P2P.TrackerInterval = 200 * time.Millisecond
	return c
}

// playAll fetches every segment of the clear playlists like a player would.
func playAll(t *testing.T, s *player.Session) {
	t.Helper()
	base := strings.TrimSuffix(s.URL(), "master.m3u8")
	for _, track := range []string{"video", "audio"} {
		code, pl := get(t, base+track+"/index.m3u8")
		require.Equal(t, http.StatusOK, code)
		for _, line := range strings.Split(string(pl), "\n") {
			if strings.HasSuffix(line, ".m4s") || strings.HasPrefix(line, "#EXT-X-MAP") {
				name := line
				if strings.HasPrefix(line, "#EXT-X-MAP") {
					name = strings.TrimSuffix(strings.TrimPrefix(line, `#EXT-X-MAP:URI="`), `"`)
				}
				code, body := get(t, base+track+"/"+name)
				require.Equal(t, http.StatusOK, code, "%s: %s", name, body)
			}
		}
	}
}

var _ = transport.SegmentProtocol

// TestEMEModeServesCiphertext: for browser players the gateway serves the
// packaged ciphertext, byte for byte as the manifest lists it.
func TestEMEModeServesCiphertext(t *testing.T) {
	st := startStack(t, stack.Options{})
	cfg := config(st, "viewer")
	cfg.P2P.Disable = true
	cfg.Mode = player.ModeEME
	s, err := player.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer s.Close()
	base := strings.TrimSuffix(s.URL(), "master.m3u8")
	for _, f := range s.Manifest().Files() {
		code, body := get(t, base+f.Path)
		require.Equal(t, http.StatusOK, code, f.Path)
		require.NoError(t, f.Check(body), "%s is not the packaged ciphertext", f.Path)
	}
	require.True(t, strings.HasSuffix(s.DASHURL(), "/manifest.mpd"))
}

// TestOriginDownSwarmCompletes: once one viewer holds the content, a second
// plays it all with the origin answering 503 to everything.
func TestOriginDownSwarmCompletes(t *testing.T) {
	var down atomic.Bool
	st := startStack(t, stack.Options{SegmentDuration: 2 * time.Second, Origin: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() && !strings.HasSuffix(r.URL.Path, "sealmesh.json") {
				http.Error(w, "origin down", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	first, err := player.Open(context.Background(), withTracker(config(st, "a")))
	require.NoError(t, err)
	defer first.Close()
	playAll(t, first)
	down.Store(true)
	second, err := player.Open(context.Background(), withTracker(config(st, "b")))
	require.NoError(t, err)
	defer second.Close()
	playAll(t, second)
	require.Zero(t, second.Stats().BytesFromOrigin)
	require.Greater(t, second.Stats().BytesFromPeers, int64(0))
}
