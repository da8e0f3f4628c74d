package segment_test

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/segment"
)

// These tests hand our output to programs we did not write: ffmpeg and
// shaka-packager decrypt it, Shaka Player plays it in Chromium. They skip
// without the tools unless SEALMESH_INTEROP=1 (as ./scripts/test sets).

func keyHex(p *packed, period int) string { return hex.EncodeToString(p.periods[period]) }

// TestFFmpegDecryptsEverySegment decrypts every media segment of every track,
// both schemes, with key rotation, one segment at a time as ffmpeg 5.1 can,
// and compares frame hashes with the clear source. A wrong key must give
// other frames.
func TestFFmpegDecryptsEverySegment(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	clip := clipPaths(t)
	clearVideo := map[string][]string{
		"video-640x360": interop.FrameMD5File(t, ffmpeg, clip[0], "video"),
		"video-320x180": interop.FrameMD5File(t, ffmpeg, clip[1], "video"),
	}
	clearAudio := interop.FrameMD5File(t, ffmpeg, clip[0], "audio")
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			p := packClip(t, scheme, 8*time.Second)
			for _, r := range p.m.Renditions {
				var got []string
				for _, f := range r.Files {
					if f.Kind != segment.KindMedia {
						continue
					}
					data := append(p.read(t, initFor(r, f).Path), p.read(t, f.Path)...)
					stream := r.Type
					frames := interop.FrameMD5(t, ffmpeg, data, keyHex(p, f.Period), stream)
					require.NotEmpty(t, frames, f.Path)
					if r.Type == "audio" {
						// A segment decoded on its own starts without the previous
						// AAC frame's overlap, so its first frame differs; the rest
						// must be a run of the clear audio.
						require.GreaterOrEqual(t, interop.IndexRun(clearAudio, frames[1:]), 0, "%s: decrypted audio is not the clear audio", f.Path)
						continue
					}
					got = append(got, frames...)
					wrong := interop.FrameMD5(t, ffmpeg, data, strings.Repeat("ab", 16), stream)
					require.Less(t, countSame(frames, wrong), len(frames)/4, "%s: a wrong key still gave the clear frames", f.Path)
				}
				if r.Type == "video" {
					require.Equal(t, clearVideo[r.ID], got, "%s: frames differ from the clear source", r.ID)
				}
			}
		})
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

// TestShakaPackagerDecrypts has shaka-packager, an independent implementation,
// decrypt each track of both schemes to frames equal to the source's.
func TestShakaPackagerDecrypts(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	packager := interop.ShakaPackager(t)
	clip := clipPaths(t)
	clearVideo := interop.FrameMD5File(t, ffmpeg, clip[0], "video")
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			p := packClip(t, scheme, 0)
			keys := map[string]string{p.m.Periods[0].KID: keyHex(p, 0)}
			for _, id := range []string{"video-640x360", "audio"} {
				r := p.rendition(t, id)
				var whole []byte
				for _, f := range r.Files {
					whole = append(whole, p.read(t, f.Path)...)
				}
				dir := t.TempDir()
				enc, dec := filepath.Join(dir, "enc.mp4"), filepath.Join(dir, "dec.mp4")
				require.NoError(t, os.WriteFile(enc, whole, 0o644))
				interop.ShakaDecrypt(t, packager, enc, dec, r.Type, keys)
				if r.Type == "video" {
					require.Equal(t, clearVideo, interop.FrameMD5File(t, ffmpeg, dec, "video"))
				} else {
					got := interop.FrameMD5File(t, ffmpeg, dec, "audio")
					require.GreaterOrEqual(t, interop.IndexRun(interop.FrameMD5File(t, ffmpeg, clip[0], "audio"), got[2:len(got)-2]), 0, "decrypted audio differs")
				}
			}
		})
	}
}

// TestShakaPlayerPlaysInChromium plays our DASH output in Shaka Player with
// keys from a W3C Clear Key endpoint: both schemes, with and without key
// rotation; the cbcs HLS output in hls.js; the cenc MPD in dash.js 5 and 4.
// Without the key it must fail.
func TestShakaPlayerPlaysInChromium(t *testing.T) {
	interop.Chromium(t)
	assets := interop.PlayerAssets(t)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, path := range []string{interop.ShakaPlayerJSPath, interop.HlsJSPath, interop.DashJS5Path, interop.DashJS4Path} {
		mux.Handle(path, assets)
	}
	type variant struct {
		name   string
		scheme segment.Scheme
		period time.Duration
	}
	for _, v := range []variant{
		{"cbcs", segment.SchemeCBCS, 0},
		{"cenc", segment.SchemeCENC, 0},
		{"cbcs-rotation", segment.SchemeCBCS, 4 * time.Second},
		{"cenc-rotation", segment.SchemeCENC, 4 * time.Second},
	} {
		t.Run(v.name, func(t *testing.T) {
			lic := srv.URL + "/" + v.name + "/license"
			p := packClip(t, v.scheme, v.period, func(c *segment.Config) { c.LicenseURL = lic })
			if v.period > 0 {
				require.Len(t, p.m.Periods, 3)
			}
			keys := map[string][]byte{}
			for i, per := range p.m.Periods {
				keys[per.KID] = p.periods[i]
			}
			base := "/" + v.name + "/"
			mux.Handle(base+"media/", http.StripPrefix(base+"media/", http.FileServer(http.Dir(p.dir))))
			mux.Handle(base+"license", interop.ClearKeyHandler(keys))
			mux.Handle(base+"nokey", interop.ClearKeyHandler(map[string][]byte{strings.Repeat("00", 16): make([]byte, 16)}))
			mux.Handle(base+"play", interop.ServeHTML(interop.ShakaPlayerPage(srv.URL+base+"media/manifest.mpd", lic)))
			res := interop.PlayInChromium(t, srv.URL+base+"play", 45*time.Second)
			if res.Error != "" || res.CurrentTime < 5 || res.DecodedFrames < 100 {
				t.Fatalf("playback failed: currentTime %.2f, %d frames, error %q (code %d)\nlogs:\n%s",
					res.CurrentTime, res.DecodedFrames, res.Error, res.ErrorCode, strings.Join(res.Logs, "\n"))
			}
			if v.scheme == segment.SchemeCBCS {
				// hls.js plays the HLS output (SAMPLE-AES, KEYFORMAT org.w3.clearkey),
				// across the EXT-X-KEY/EXT-X-MAP change of a rotation too.
				mux.Handle(base+"hlsjs", interop.ServeHTML(interop.HlsJsPage(srv.URL+base+"media/master.m3u8", lic)))
				res := interop.PlayInChromium(t, srv.URL+base+"hlsjs", 45*time.Second)
				if res.Error != "" || res.CurrentTime < 5 || res.DecodedFrames < 100 {
					t.Fatalf("hls.js playback failed: currentTime %.2f, %d frames, error %q\nlogs:\n%s",
						res.CurrentTime, res.DecodedFrames, res.Error, strings.Join(res.Logs, "\n"))
				}
			}
			if v.scheme == segment.SchemeCENC {
				// dash.js 5 and 4 play the cenc MPD, across the Period (key)
				// change of a rotation too; cmd/sealmesh's license-server test
				// plays the cbcs output with them.
				for _, player := range []interop.Player{interop.DashJS5Player, interop.DashJS4Player} {
					path := base + "dashjs" + string(player[len(player)-1])
					mux.Handle(path, interop.ServeHTML(interop.PlayerPage(interop.PageConfig{Player: player, SourceURL: srv.URL + base + "media/manifest.mpd", LicenseURL: lic})))
					res := interop.PlayInChromium(t, srv.URL+path, 45*time.Second)
					if res.Error != "" || res.CurrentTime < 5 || res.DecodedFrames < 100 {
						t.Fatalf("%s playback failed: currentTime %.2f, %d frames, error %q\nlogs:\n%s",
							player, res.CurrentTime, res.DecodedFrames, res.Error, strings.Join(res.Logs, "\n"))
					}
				}
			}
			if v.name == "cbcs" {
				// The MPD's dashif:Laurl wins over drm.servers in Shaka, so point
				// the Laurl at the keyless endpoint by repacking.
				lic2 := srv.URL + base + "nokey"
				p2 := packClip(t, v.scheme, 0, func(c *segment.Config) { c.LicenseURL = lic2 })
				mux.Handle(base+"media2/", http.StripPrefix(base+"media2/", http.FileServer(http.Dir(p2.dir))))
				mux.Handle(base+"play-nokey", interop.ServeHTML(interop.ShakaPlayerPage(srv.URL+base+"media2/manifest.mpd", lic2)))
				res := interop.PlayInChromium(t, srv.URL+base+"play-nokey", 45*time.Second)
				require.NotEmpty(t, res.Error, "played without the key: %+v", res)
				require.Less(t, res.CurrentTime, 1.0)
			}
		})
	}
}
