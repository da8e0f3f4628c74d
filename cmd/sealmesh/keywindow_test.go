package main_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
)

// TestShakaUnderClearKeyWindow plays key-rotated content (4 s crypto periods,
// three periods) in Shaka Player in headless Chromium from a `sealmesh
// license serve` whose Clear Key answers follow the key window
// (--clearkey-window, real period start times from --content-dir, speed 1,
// so the third period's key is given 4 s after the first request).
//
// Shaka asks for every period's key at load (one request per period's
// PSSH). Under the window the request for the third period is answered 429
// key_window_ahead with a Retry-After. What each configuration does with
// that is the documented behaviour (SECURITY.md, "Key window"):
//
//   - Shaka's default retry policy (2 attempts, about 1 s apart) gives up
//     before the window opens, then fails the load for the missing key:
//     error 4012 (RESTRICTIONS_CANNOT_BE_MET), nothing plays.
//   - With drm.retryParameters that keep retrying for as long as a period
//     lasts (here: up to 60 attempts, 1 s apart: on a loaded machine 20 were
//     once not enough for the window to cover every key Shaka asks for at
//     once), Shaka plays through the period
//     boundaries: the key arrives while the first periods play.
func TestShakaUnderClearKeyWindow(t *testing.T) {
	interop.Chromium(t)
	assets := interop.PlayerAssets(t)
	dir := t.TempDir()
	ks := initStore(t, dir)
	state := filepath.Join(dir, "license.state")
	media := filepath.Join(dir, "media")
	require.NoError(t, os.Mkdir(media, 0o700))

	mux := http.NewServeMux()
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	mux.Handle(interop.ShakaPlayerJSPath, assets)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	licenseURL := base + "/v1/clearkey"

	out := filepath.Join(media, "clip-rot")
	r := sealmesh(t, dir, nil, "pack", "--keystore", ks, "--in", clip(t, "360p.mp4"),
		"--out", out, "--content", "clip-rot", "--crypto-period", "4s", "--license-url", licenseURL, "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	mux.Handle("/clip-rot/", http.StripPrefix("/clip-rot/", http.FileServer(http.Dir(out))))

	startLicenseServer(t, dir, base, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin-listen", "127.0.0.1:0",
		"--keystore", ks, "--state", state, "--dev-tokens", "--cors-origin", page.URL,
		"--content-dir", media, "--clearkey-window", "clip-*", "--key-window-speed", "1")

	issue := func(account string) string {
		r := sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", account, "--content", "clip-rot", "--ttl", "10m")
		require.Equal(t, 0, r.code, r.stderr)
		return strings.TrimSpace(r.stdout)
	}
	play := func(t *testing.T, name, drmConfig string) interop.PlayResult {
		html := shakaTokenPage(page.URL+"/clip-rot/manifest.mpd", licenseURL, issue("acct-"+name))
		// Play past the third period's start (8 s), with time to get there.
		html = strings.Replace(html, "video.currentTime >= 5", "video.currentTime >= 10", 1)
		html = strings.Replace(html, "after 25 s', -2), 25000", "after 40 s', -2), 40000", 1)
		// Timeline in the console: when playback starts, and when each license answer arrives.
		html = strings.Replace(html, "video.addEventListener('timeupdate'",
			"video.addEventListener('playing', () => log('playing at ' + Math.round(performance.now()) + ' ms'));\nvideo.addEventListener('timeupdate'", 1)
		html = strings.Replace(html, "  player.addEventListener('error'",
			"  player.getNetworkingEngine().registerResponseFilter((type) => { if (type === shaka.net.NetworkingEngine.RequestType.LICENSE) log('license answer at ' + Math.round(performance.now()) + ' ms'); });\n  player.addEventListener('error'", 1)
		if drmConfig != "" {
			old := "player.configure({drm: {servers: {'org.w3.clearkey': LICENSE_URL}}});"
			require.Contains(t, html, old)
			html = strings.Replace(html, old, "player.configure({drm: {servers: {'org.w3.clearkey': LICENSE_URL}, "+drmConfig+"}});", 1)
		}
		mux.Handle("/play-"+name, interop.ServeHTML(html))
		return interop.PlayInChromium(t, page.URL+"/play-"+name, 60*time.Second)
	}

	t.Run("default-retry-fails", func(t *testing.T) {
		res := play(t, "default", "")
		t.Logf("logs:\n%s", strings.Join(res.Logs, "\n"))
		// Shaka gives up on the third period's license after its second
		// 429, then fails the load for the key it lacks: 4012
		// RESTRICTIONS_CANNOT_BE_MET, with the missing KID.
		require.Equal(t, 4012, res.ErrorCode, "%+v", res)
		require.Contains(t, res.Error, "missingKeys")
		require.Contains(t, strings.Join(res.Logs, "\n"), "http 429: POST "+licenseURL)
		require.Less(t, res.CurrentTime, 1.0)
	})
	t.Run("patient-retry-plays", func(t *testing.T) {
		res := play(t, "patient", "retryParameters: {maxAttempts: 60, baseDelay: 1000, backoffFactor: 1, fuzzFactor: 0, timeout: 0}")
		t.Logf("logs:\n%s", strings.Join(res.Logs, "\n"))
		if res.Error != "" || res.CurrentTime < 10 || res.DecodedFrames < 200 {
			t.Fatalf("playback failed: currentTime %.2f, %d frames, error %q (code %d)\nlogs:\n%s",
				res.CurrentTime, res.DecodedFrames, res.Error, res.ErrorCode, strings.Join(res.Logs, "\n"))
		}
	})
}

// hlsTokenPage is interop.HlsJsPage with the token sent on license requests
// (licenseXhrSetup), a 10 s target and extra hls.js config.
func hlsTokenPage(t *testing.T, m3u8URL, licenseURL, token, config string) string {
	// The page sends the token in licenseXhrSetup (interop.PlayerPage).
	html := interop.PlayerPage(interop.PageConfig{Player: interop.HlsJSPlayer, SourceURL: m3u8URL, LicenseURL: licenseURL, Token: token})
	for old, new := range map[string]string{
		"const TARGET_SECONDS = 5;":     "const TARGET_SECONDS = 10;",
		"const GIVE_UP_MS = 25 * 1000;": "const GIVE_UP_MS = 40 * 1000;",
		"    emeEnabled: true,":         "    emeEnabled: true,\n" + config,
	} {
		require.Contains(t, html, old)
		html = strings.Replace(html, old, new, 1)
	}
	return html
}

// TestHlsJsUnderClearKeyWindow is TestShakaUnderClearKeyWindow for hls.js
// (HLS, one EXT-X-KEY per period). hls.js asks for a period's key when it
// loads that period's first fragment, and treats any 4xx license answer as
// fatal (no retry):
//
//   - with its default 30 s forward buffer it loads the third period's
//     fragments at once, gets 429 for its key and stops with
//     keySystemLicenseRequestFailed;
//   - with a forward buffer shorter than a crypto period (maxBufferLength
//     and maxMaxBufferLength 2 s here), it asks for each key only as
//     playback nears its period, which the window allows: it plays.
func TestHlsJsUnderClearKeyWindow(t *testing.T) {
	interop.Chromium(t)
	assets := interop.PlayerAssets(t)
	dir := t.TempDir()
	ks := initStore(t, dir)
	state := filepath.Join(dir, "license.state")
	media := filepath.Join(dir, "media")
	require.NoError(t, os.Mkdir(media, 0o700))

	mux := http.NewServeMux()
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	mux.Handle(interop.HlsJSPath, assets)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	licenseURL := base + "/v1/clearkey"

	out := filepath.Join(media, "clip-rot")
	r := sealmesh(t, dir, nil, "pack", "--keystore", ks, "--in", clip(t, "360p.mp4"),
		"--out", out, "--content", "clip-rot", "--crypto-period", "4s", "--license-url", licenseURL, "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	mux.Handle("/clip-rot/", http.StripPrefix("/clip-rot/", http.FileServer(http.Dir(out))))
	startLicenseServer(t, dir, base, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin-listen", "127.0.0.1:0",
		"--keystore", ks, "--state", state, "--dev-tokens", "--cors-origin", page.URL,
		"--content-dir", media, "--clearkey-window", "clip-*", "--key-window-speed", "1")
	play := func(t *testing.T, name, config string) interop.PlayResult {
		r := sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", "acct-"+name, "--content", "clip-rot", "--ttl", "10m")
		require.Equal(t, 0, r.code, r.stderr)
		html := hlsTokenPage(t, page.URL+"/clip-rot/master.m3u8", licenseURL, strings.TrimSpace(r.stdout), config)
		mux.Handle("/play-"+name, interop.ServeHTML(html))
		res := interop.PlayInChromium(t, page.URL+"/play-"+name, 60*time.Second)
		t.Logf("logs:\n%s", strings.Join(res.Logs, "\n"))
		return res
	}
	t.Run("default-buffer-fails", func(t *testing.T) {
		res := play(t, "default", "")
		require.Contains(t, res.Error, "keySystemLicenseRequestFailed", "%+v", res)
		require.Contains(t, strings.Join(res.Logs, "\n"), "http 429: POST "+licenseURL)
	})
	t.Run("short-buffer-plays", func(t *testing.T) {
		res := play(t, "short", "    maxBufferLength: 2, maxMaxBufferLength: 2,\n")
		if res.Error != "" || res.CurrentTime < 10 || res.DecodedFrames < 200 {
			t.Fatalf("playback failed: currentTime %.2f, %d frames, error %q (code %d)", res.CurrentTime, res.DecodedFrames, res.Error, res.ErrorCode)
		}
	})
}
