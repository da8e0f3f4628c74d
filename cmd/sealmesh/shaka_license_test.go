package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/keys"
)

// TestShakaPlaysWithLicenseServer is the end-to-end check of issues 3 and
// 13: every browser player (Shaka Player, hls.js, dash.js 5 and dash.js 4)
// in headless Chromium plays the default `sealmesh pack` output with keys
// from /v1/clearkey of a running `sealmesh license serve` (a subprocess, on
// another port than the page, so CORS and the preflight of the
// Authorization header are exercised), with a token from `sealmesh token
// issue` sent as a bearer token, each with the configuration README.md
// gives (interop.PlayerPage); Shaka and dash.js play the MPD, hls.js the
// HLS playlists. With an expired token Shaka fails with its license error
// 6007. Both a single-key cbcs package and a cbcs package with key rotation
// (three periods, so players ask the server once per period) are played.
//
// Checked by mutation (2026-12-06): with the W3C common-PSSH
// ContentProtection put back into the MPD, dash.js 5 fails here with
// "DRM: unable to create session ... TypeError" (113); without
// withCredentials: false in the page's protection data, dash.js 5 and 4
// fail the license request on CORS (114).
func TestShakaPlaysWithLicenseServer(t *testing.T) {
	interop.Chromium(t)
	assets := interop.PlayerAssets(t)
	dir := t.TempDir()
	ks := initStore(t, dir)
	state := filepath.Join(dir, "license.state")

	// The page's server first, so its origin can be given to --cors-origin.
	mux := http.NewServeMux()
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	for _, path := range []string{interop.ShakaPlayerJSPath, interop.HlsJSPath, interop.DashJS5Path, interop.DashJS4Path} {
		mux.Handle(path, assets)
	}

	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	licenseURL := base + "/v1/clearkey"

	type variant struct {
		name, content, period string
	}
	variants := []variant{{"cbcs", "clip", "0s"}, {"cbcs-rotation", "clip-rot", "4s"}}
	for _, v := range variants {
		out := filepath.Join(dir, v.content)
		r := sealmesh(t, dir, nil, "pack", "--keystore", ks, "--in", clip(t, "360p.mp4"), "--in", clip(t, "180p.mp4"),
			"--out", out, "--content", v.content, "--crypto-period", v.period, "--license-url", licenseURL, "--quiet")
		require.Equal(t, 0, r.code, r.stderr)
		mux.Handle("/"+v.content+"/", http.StripPrefix("/"+v.content+"/", http.FileServer(http.Dir(out))))
	}

	startLicenseServer(t, dir, base, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin-listen", "127.0.0.1:0",
		"--keystore", ks, "--state", state, "--dev-tokens", "--cors-origin", page.URL)

	issue := func(account, content, ttl string) string {
		r := sealmesh(t, dir, nil, "token", "issue", "--state", state, "--account", account, "--content", content, "--ttl", ttl)
		require.Equal(t, 0, r.code, r.stderr)
		return strings.TrimSpace(r.stdout)
	}
	pages := 0
	play := func(t *testing.T, player interop.Player, content, tok string) interop.PlayResult {
		pages++
		path := fmt.Sprintf("/play-%d", pages)
		source := page.URL + "/" + content + "/manifest.mpd"
		if player == interop.HlsJSPlayer {
			source = page.URL + "/" + content + "/master.m3u8"
		}
		mux.Handle(path, interop.ServeHTML(interop.PlayerPage(interop.PageConfig{Player: player, SourceURL: source, LicenseURL: licenseURL, Token: tok})))
		return interop.PlayInChromium(t, page.URL+path, 45*time.Second)
	}

	for _, v := range variants {
		for _, player := range interop.Players {
			t.Run(v.name+"/"+string(player), func(t *testing.T) {
				res := play(t, player, v.content, issue("acct-"+v.name, v.content, "10m"))
				if res.Error != "" || res.CurrentTime < 5 || res.DecodedFrames < 100 {
					t.Fatalf("%s playback failed: currentTime %.2f, %d frames, error %q (code %d)\nlogs:\n%s",
						player, res.CurrentTime, res.DecodedFrames, res.Error, res.ErrorCode, strings.Join(res.Logs, "\n"))
				}
			})
		}
	}

	// The audit log (read through the running server's admin endpoint)
	// shows the Clear Key answers, with keys of more than one crypto period
	// for the rotated content: Shaka asked again at the period change.
	r := sealmesh(t, dir, nil, "license", "audit", "--state", state, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	kids := map[string]bool{}
	for _, e := range auditLines(t, r.stdout) {
		if e.Event == "clearkey" && e.Content == "clip-rot" {
			for _, k := range e.KIDs {
				kids[k] = true
			}
		}
	}
	require.GreaterOrEqual(t, len(kids), 2, "Clear Key answers for clip-rot: %s", r.stdout)

	t.Run("expired-token", func(t *testing.T) {
		// A negative --ttl mints a token that expired 2 minutes ago: past the
		// verifier's clock leeway (30 s), so no waiting is needed.
		res := play(t, interop.ShakaPlayer, "clip", issue("acct-expired", "clip", "-2m"))
		require.Equal(t, 6007, res.ErrorCode, "want Shaka LICENSE_REQUEST_FAILED; got %+v\nlogs:\n%s", res, strings.Join(res.Logs, "\n"))
		require.Less(t, res.CurrentTime, 1.0)
		require.Contains(t, res.Error, "401", "the license server refused the token")
	})

	t.Run("not-entitled", func(t *testing.T) {
		res := play(t, interop.ShakaPlayer, "clip-rot", issue("acct-other", "clip", "10m"))
		require.Equal(t, 6007, res.ErrorCode, "%+v", res)
		require.Contains(t, res.Error, "403")
	})
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// license URL written into the packaged playlists must be known before the
// server starts, so the server cannot pick its own port.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// startLicenseServer runs `sealmesh license <args>` in dir, waits for
// base/healthz to answer 200, and returns a function that stops it with
// SIGTERM and checks that it exited cleanly (also run when the test ends;
// later calls do nothing). It returns the server's stderr too.
func startLicenseServer(t *testing.T, dir, base string, args ...string) (stop func(), stderr *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"license"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), keys.PassphraseEnv+"="+testPass)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(out)); done <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("license server exited with %v\nstderr:\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("license server did not stop on SIGTERM")
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, stderr
			}
		}
		select {
		case err := <-done:
			t.Fatalf("license server exited early: %v\nstderr:\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("license server did not answer /healthz: %v\nstderr:\n%s", err, stderr.String())
		}
	}
}

// shakaTokenPage is a Shaka Player page with the entitlement token sent as
// "Authorization: Bearer" on every license request (a Shaka request filter),
// kept as its own template for keywindow_test.go, which edits its text (the
// target time, the give-up time, the drm configuration). It keeps
// interop.PlayerPage's result protocol (window.__result = {currentTime,
// decodedFrames, error, errorCode}), so interop.PlayInChromium drives it.
// The other browser tests use interop.PlayerPage.
func shakaTokenPage(mpdURL, licenseURL, token string) string {
	js := func(s string) string { b, _ := json.Marshal(s); return string(b) } // escapes <, >, &
	return strings.NewReplacer("{{SCRIPT}}", interop.ShakaPlayerJSPath, "{{SOURCE}}", js(mpdURL),
		"{{LICENSE}}", js(licenseURL), "{{TOKEN}}", js(token)).Replace(shakaTokenPageTemplate)
}

const shakaTokenPageTemplate = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>sealmesh: Shaka Player with the license server</title></head>
<body>
<video id="v" muted autoplay playsinline width="640" height="360"></video>
<script src="{{SCRIPT}}"></script>
<script>
'use strict';
const SOURCE_URL = {{SOURCE}};
const LICENSE_URL = {{LICENSE}};
const TOKEN = {{TOKEN}};
const video = document.getElementById('v');
let done = false;
function log(s) { console.log('[page] ' + s); }
function frames() {
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  return q ? q.totalVideoFrames : 0;
}
function finish(error, errorCode) {
  if (done) return;
  done = true;
  window.__result = {currentTime: video.currentTime, decodedFrames: frames(), error: error || '', errorCode: errorCode || 0};
  log('result ' + JSON.stringify(window.__result));
}
function describe(e) {
  if (!e) return 'unknown error';
  let s = '';
  if (e.code !== undefined) s += 'code ' + e.code;
  if (e.category !== undefined) s += ' category ' + e.category;
  if (e.data !== undefined) {
    try {
      s += ' data ' + JSON.stringify(e.data, (k, v) => {
        if (k === 'stack' || k === 'initData' || k === 'headers') return undefined;
        if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return '[' + v.byteLength + ' bytes]';
        return v;
      });
    } catch (_) { s += ' data ' + String(e.data); }
  }
  s = s.trim() || (e.message || String(e));
  return s.length > 600 ? s.slice(0, 600) + '...' : s;
}
video.addEventListener('timeupdate', () => { if (video.currentTime >= 5) finish('', 0); });
video.addEventListener('error', () => {
  const me = video.error;
  finish('video element: MediaError ' + (me ? me.code + ' ' + me.message : '?'), me ? me.code : -1);
});
setTimeout(() => finish('timeout: currentTime ' + video.currentTime + ' after 25 s', -2), 25000);
(async () => {
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) { finish('shaka: browser not supported', -1); return; }
  const player = new shaka.Player();
  window.__player = player;
  await player.attach(video);
  player.configure({drm: {servers: {'org.w3.clearkey': LICENSE_URL}}});
  player.getNetworkingEngine().registerRequestFilter((type, req) => {
    if (type === shaka.net.NetworkingEngine.RequestType.LICENSE) req.headers['Authorization'] = 'Bearer ' + TOKEN;
  });
  player.addEventListener('error', (ev) => finish(describe(ev.detail), ev.detail.code || -1));
  try {
    await player.load(SOURCE_URL);
  } catch (e) {
    finish(describe(e), (e && e.code) || -1);
    return;
  }
  video.play().catch((e) => log('play(): ' + e));
})().catch((e) => finish('page: ' + describe(e), -1));
</script>
</body>
</html>
`
