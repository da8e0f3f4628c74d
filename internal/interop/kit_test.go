package interop_test

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
)

// Test key material, for tests only.
const (
	testKID      = "00112233445566778899aabbccddeeff"
	testKey      = "0f0e0d0c0b0a09080706050403020100"
	wrongKey     = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
	otherKID     = "ffeeddccbbaa99887766554433221100"
	framesPerSeg = 48 // 2 s at 24 fps, one IDR per segment (see testdata/make-clip.sh)
)

// TestKitEndToEnd proves the kit against itself and the real programs, with no sealmesh
// code involved: shaka-packager encrypts the committed clip (cbcs, no clear lead), then
// ffmpeg, shaka-packager and Shaka Player / hls.js in Chromium decrypt it.
func TestKitEndToEnd(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	packager := interop.ShakaPackager(t)
	clip := interop.Testdata(t, "clip", "360p.mp4")

	out := interop.ShakaEncrypt(t, packager, interop.ShakaEncryptOptions{
		Input: clip, OutDir: t.TempDir(), KeyIDHex: testKID, KeyHex: testKey, HLS: true,
	})
	require.Len(t, out.Segments["video"], 6, "12 s clip in 2 s segments")
	clearVideo := interop.FrameMD5File(t, ffmpeg, clip, "video")
	clearAudio := interop.FrameMD5File(t, ffmpeg, clip, "audio")
	require.Len(t, clearVideo, 288)

	t.Run("ffmpeg decrypts each video segment to the clear frames", func(t *testing.T) {
		for i, seg := range []int{0, 2, 5} {
			data := interop.ReadConcat(t, out.Init["video"], out.Segments["video"][seg])
			got := interop.FrameMD5(t, ffmpeg, data, testKey, "video")
			want := clearVideo[seg*framesPerSeg : (seg+1)*framesPerSeg]
			assert.Equal(t, want, got, "case %d: segment %d", i, seg+1)
		}
	})

	t.Run("ffmpeg decrypts audio segments to the clear samples", func(t *testing.T) {
		for _, seg := range []int{0, 1, 5} {
			data := interop.ReadConcat(t, out.Init["audio"], out.Segments["audio"][seg])
			got := interop.FrameMD5(t, ffmpeg, data, testKey, "audio")
			require.Greater(t, len(got), 80)
			// A fragment's first decoded AAC frame never matches the whole-file decode:
			// in segment 1 it is the priming frame that the clear file's edit list hides,
			// later it lacks the previous frame's overlap. The rest match sample for sample
			// (the clip has no AAC noise substitution, whose noise depends on decoder state).
			at := interop.IndexRun(clearAudio, got[1:])
			assert.GreaterOrEqual(t, at, 0, "audio segment %d is not the clear audio", seg+1)
			if seg == 0 {
				assert.Equal(t, 0, at)
			}
		}
	})

	t.Run("ffmpeg with a wrong key decodes something else", func(t *testing.T) {
		data := interop.ReadConcat(t, out.Init["video"], out.Segments["video"][0])
		got := interop.FrameMD5(t, ffmpeg, data, wrongKey, "video")
		want := clearVideo[:framesPerSeg]
		assert.Less(t, countSame(want, got), len(want)/4, "wrong key still gave the clear frames")
	})

	t.Run("shaka-packager decrypts", func(t *testing.T) {
		dir := t.TempDir()
		enc := filepath.Join(dir, "video-enc.mp4")
		segs := append([]string{out.Init["video"]}, out.Segments["video"]...)
		require.NoError(t, os.WriteFile(enc, interop.ReadConcat(t, segs...), 0o644))
		dec := filepath.Join(dir, "video-clear.mp4")
		interop.ShakaDecrypt(t, packager, enc, dec, "video", map[string]string{testKID: testKey, otherKID: wrongKey})
		assert.Equal(t, clearVideo, interop.FrameMD5File(t, ffmpeg, dec, "video"))
	})

	t.Run("browsers", func(t *testing.T) {
		testBrowsers(t, out)
	})
}

func testBrowsers(t *testing.T, out interop.ShakaOutput) {
	interop.Chromium(t)
	mediaDir := filepath.Dir(out.MPD)
	rewriteHLSKeyFormat(t, mediaDir)

	key, err := hex.DecodeString(testKey)
	require.NoError(t, err)
	bad, err := hex.DecodeString(wrongKey)
	require.NoError(t, err)

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux) // listens on 127.0.0.1: a secure context for EME
	t.Cleanup(srv.Close)
	assets := interop.PlayerAssets(t)
	mux.Handle(interop.ShakaPlayerJSPath, assets)
	mux.Handle(interop.HlsJSPath, assets)
	mux.Handle("/media/", http.StripPrefix("/media/", http.FileServer(http.Dir(mediaDir))))
	mux.Handle("/license/good", interop.ClearKeyHandler(map[string][]byte{testKID: key}))
	mux.Handle("/license/wrong", interop.ClearKeyHandler(map[string][]byte{testKID: bad}))
	mux.Handle("/license/missing", interop.ClearKeyHandler(map[string][]byte{otherKID: key}))
	mpd := srv.URL + "/media/manifest.mpd"
	m3u8 := srv.URL + "/media/master.m3u8"
	mux.Handle("/shaka/good", interop.ServeHTML(interop.ShakaPlayerPage(mpd, srv.URL+"/license/good")))
	mux.Handle("/shaka/wrong", interop.ServeHTML(interop.ShakaPlayerPage(mpd, srv.URL+"/license/wrong")))
	mux.Handle("/shaka/missing", interop.ServeHTML(interop.ShakaPlayerPage(mpd, srv.URL+"/license/missing")))
	mux.Handle("/hlsjs/good", interop.ServeHTML(interop.HlsJsPage(m3u8, srv.URL+"/license/good")))

	const timeout = 40 * time.Second
	t.Run("Shaka Player plays with the right key", func(t *testing.T) {
		res := interop.PlayInChromium(t, srv.URL+"/shaka/good", timeout)
		requirePlayed(t, res)
	})
	t.Run("Shaka Player fails without the key", func(t *testing.T) {
		res := interop.PlayInChromium(t, srv.URL+"/shaka/missing", timeout)
		assert.NotEmpty(t, res.Error, "played without a key: %+v", res)
		assert.Less(t, res.CurrentTime, 1.0)
	})
	t.Run("Shaka Player fails with a wrong key", func(t *testing.T) {
		res := interop.PlayInChromium(t, srv.URL+"/shaka/wrong", timeout)
		assert.NotEmpty(t, res.Error, "played with a wrong key: %+v", res)
	})
	t.Run("hls.js plays with the right key", func(t *testing.T) {
		res := interop.PlayInChromium(t, srv.URL+"/hlsjs/good", timeout)
		requirePlayed(t, res)
	})
}

func requirePlayed(t *testing.T, res interop.PlayResult) {
	t.Helper()
	if res.Error != "" || res.CurrentTime < 5 || res.DecodedFrames < 100 {
		t.Fatalf("playback failed: currentTime %.2f, %d frames, error %q (code %d)\nlogs:\n%s",
			res.CurrentTime, res.DecodedFrames, res.Error, res.ErrorCode, strings.Join(res.Logs, "\n"))
	}
}

// rewriteHLSKeyFormat turns shaka-packager's raw-key EXT-X-KEY (KEYFORMAT="identity",
// KID in a data: URI) into the Clear Key form that hls.js hands to EME.
func rewriteHLSKeyFormat(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"video.m3u8", "audio.m3u8"} {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		s := string(b)
		require.Contains(t, s, `KEYFORMAT="identity"`)
		s = strings.ReplaceAll(s, `KEYFORMAT="identity"`, `KEYFORMAT="org.w3.clearkey",KEYFORMATVERSIONS="1"`)
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
	}
}

func countSame(a, b []string) int {
	n := 0
	for i := range min(len(a), len(b)) {
		if a[i] == b[i] {
			n++
		}
	}
	return n
}
