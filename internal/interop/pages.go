package interop

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Paths at which the pages below load the player scripts; [PlayerAssets] serves them.
const (
	ShakaPlayerJSPath = "/shaka-player.compiled.js"
	HlsJSPath         = "/hls.js"
)

// Page timing, in seconds of the page's own clock. PlayInChromium's timeout should exceed
// pageGiveUpSeconds so that a stuck player is reported by the page, with its state.
const (
	targetSeconds     = 5
	pageGiveUpSeconds = 25
)

// ShakaPlayerPage returns an HTML page that plays mpdURL with Shaka Player (loaded from
// [ShakaPlayerJSPath]) in a muted autoplay <video>, with the Clear Key license server
// clearKeyURL ({drm: {servers: {'org.w3.clearkey': clearKeyURL}}}), and sets
// window.__result once currentTime >= 5 s, on the first error, or after 25 s:
//
//	{currentTime, decodedFrames (getVideoPlaybackQuality().totalVideoFrames), error, errorCode}
//
// error is "" on success. errorCode is the shaka.util.Error code (e.g. 6007 license
// request failed, 3016 media error), a MediaError code 1-4 for <video> errors, -1 for other
// exceptions, -2 when the 25 s ran out.
func ShakaPlayerPage(mpdURL, clearKeyURL string) string {
	return renderPage("Shaka Player", ShakaPlayerJSPath, `
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) { finish('shaka: browser not supported', -1); return; }
  const player = new shaka.Player();
  window.__player = player;
  await player.attach(video);
  player.configure({drm: {servers: {'org.w3.clearkey': LICENSE_URL}}});
  player.addEventListener('error', (ev) => finish(describe(ev.detail), ev.detail.code || -1));
  try {
    await player.load(SOURCE_URL);
  } catch (e) {
    finish(describe(e), (e && e.code) || -1);
    return;
  }
  video.play().catch((e) => log('play(): ' + e));
`, mpdURL, clearKeyURL)
}

// HlsJsPage is ShakaPlayerPage for hls.js (loaded from [HlsJSPath]) playing m3u8URL with
// EME Clear Key ({emeEnabled: true, drmSystems: {'org.w3.clearkey': {licenseUrl}}}).
// Fatal hls.js errors set errorCode 1 and error "hls.js TYPE: DETAILS ...".
//
// hls.js plays SAMPLE-AES fMP4 only when the playlist's EXT-X-KEY says
// KEYFORMAT="org.w3.clearkey" (the KID may be in a data: URI, as shaka-packager writes it);
// shaka-packager's raw-key playlists say KEYFORMAT="identity" and must be rewritten first.
func HlsJsPage(m3u8URL, clearKeyURL string) string {
	return renderPage("hls.js", HlsJSPath, `
  if (!Hls.isSupported()) { finish('hls.js: MSE not supported', -1); return; }
  const hls = new Hls({
    emeEnabled: true,
    drmSystems: {'org.w3.clearkey': {licenseUrl: LICENSE_URL}},
  });
  window.__player = hls;
  hls.on(Hls.Events.ERROR, (ev, data) => {
    const msg = 'hls.js ' + data.type + ': ' + data.details + (data.error ? ': ' + data.error : '') + (data.reason ? ' (' + data.reason + ')' : '');
    if (data.fatal) finish(msg, 1); else log('non-fatal ' + msg);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => log('play(): ' + e)));
  hls.attachMedia(video);
  hls.loadSource(SOURCE_URL);
`, m3u8URL, clearKeyURL)
}

// pageTemplate is shared by the player pages. {{...}} are replaced by renderPage.
const pageTemplate = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>sealmesh interop: {{TITLE}}</title></head>
<body>
<video id="v" muted autoplay playsinline width="640" height="360"></video>
<script src="{{SCRIPT}}"></script>
<script>
'use strict';
const SOURCE_URL = {{SOURCE}};
const LICENSE_URL = {{LICENSE}};
const TARGET_SECONDS = {{TARGET}};
const GIVE_UP_MS = {{GIVEUP}} * 1000;
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
// describe summarises an error (a shaka.util.Error, possibly nesting others) in one short
// line: stacks, request headers and init data are left out.
function describe(e) {
  if (!e) return 'unknown error';
  const skip = new Set(['stack', 'handled', 'initData', 'message']);
  const replacer = (k, v) => {
    if (skip.has(k)) return undefined;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).some((h) => h.startsWith('content-'))) return undefined; // headers
    if (ArrayBuffer.isView(v)) return '[' + v.byteLength + ' bytes]';
    return v;
  };
  let s = '';
  if (e.code !== undefined) s += 'code ' + e.code;
  if (e.category !== undefined) s += ' category ' + e.category;
  if (e.severity !== undefined) s += ' severity ' + e.severity;
  if (e.data !== undefined) { try { s += ' data ' + JSON.stringify(e.data, replacer); } catch (_) { s += ' data ' + String(e.data); } }
  if (!s && e.message) s = e.message;
  s = s.trim() || String(e);
  return s.length > 600 ? s.slice(0, 600) + '...' : s;
}
video.addEventListener('timeupdate', () => { if (video.currentTime >= TARGET_SECONDS) finish('', 0); });
video.addEventListener('error', () => {
  const me = video.error;
  finish('video element: MediaError ' + (me ? me.code + ' ' + me.message : '?'), me ? me.code : -1);
});
setTimeout(() => finish('timeout: currentTime ' + video.currentTime + ' after ' + (GIVE_UP_MS / 1000) + ' s', -2), GIVE_UP_MS);
window.addEventListener('error', (ev) => log('window error: ' + ev.message));
(async () => {
{{BODY}}
})().catch((e) => finish('page: ' + describe(e), -1));
</script>
</body>
</html>
`

func renderPage(title, script, body, sourceURL, licenseURL string) string {
	return strings.NewReplacer(
		"{{TITLE}}", title,
		"{{SCRIPT}}", script,
		"{{SOURCE}}", jsString(sourceURL),
		"{{LICENSE}}", jsString(licenseURL),
		"{{TARGET}}", jsonValue(targetSeconds),
		"{{GIVEUP}}", jsonValue(pageGiveUpSeconds),
		"{{BODY}}", body,
	).Replace(pageTemplate)
}

// jsString quotes s as a JavaScript string literal that is safe inside <script>:
// encoding/json escapes <, > and & as \u003c and so on.
func jsString(s string) string { return jsonValue(s) }

func jsonValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings and ints always marshal
	}
	return string(b)
}

// ShakaPlayerJS returns dist/shaka-player.compiled.js from the pinned npm workspace.
func ShakaPlayerJS(t testing.TB) []byte {
	t.Helper()
	return readNodeModule(t, "shaka-player", "dist", "shaka-player.compiled.js")
}

// HlsJS returns dist/hls.min.js (the full build, with EME) from the pinned npm workspace.
func HlsJS(t testing.TB) []byte {
	t.Helper()
	return readNodeModule(t, "hls.js", "dist", "hls.min.js")
}

func readNodeModule(t testing.TB, elem ...string) []byte {
	t.Helper()
	p := filepath.Join(append([]string{NodeDir(t), "node_modules"}, elem...)...)
	b, err := os.ReadFile(p)
	if err != nil {
		unavailable(t, filepath.Join(elem...), EnvNodeDir, err.Error())
	}
	return b
}

// PlayerAssets returns a handler that serves [ShakaPlayerJSPath] and [HlsJSPath], for a
// test server's mux:
//
//	mux.Handle(interop.ShakaPlayerJSPath, assets)
//	mux.Handle(interop.HlsJSPath, assets)
func PlayerAssets(t testing.TB) http.Handler {
	t.Helper()
	files := map[string][]byte{
		ShakaPlayerJSPath: ShakaPlayerJS(t),
		HlsJSPath:         HlsJS(t),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(b)
	})
}

// ServeHTML returns a handler that serves page as text/html.
func ServeHTML(page string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(page))
	})
}
