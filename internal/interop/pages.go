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
	DashJS5Path       = "/dash.js-5.js"
	DashJS4Path       = "/dash.js-4.js"
)

// Page timing, in seconds of the page's own clock. PlayInChromium's timeout should exceed
// pageGiveUpSeconds so that a stuck player is reported by the page, with its state.
const (
	targetSeconds     = 5
	pageGiveUpSeconds = 25
)

// Player is a browser player that [PlayerPage] drives.
type Player string

// The players of the interop tests, pinned in scripts/node/package.json.
const (
	ShakaPlayer   Player = "Shaka Player" // shaka-player: plays the MPD (not HLS with Clear Key: error 4026)
	HlsJSPlayer   Player = "hls.js"       // hls.js: plays the HLS output
	DashJS5Player Player = "dash.js 5"    // dashjs5 (npm:dashjs@5.x): plays the MPD
	DashJS4Player Player = "dash.js 4"    // dashjs4 (npm:dashjs@4.7.x): plays the MPD
)

// Players lists every [Player].
var Players = []Player{ShakaPlayer, HlsJSPlayer, DashJS5Player, DashJS4Player}

// PageConfig says what a player page plays.
type PageConfig struct {
	Player     Player
	SourceURL  string // an MPD for Shaka and dash.js, a multivariant playlist for hls.js
	LicenseURL string // the W3C Clear Key license endpoint
	// Token, when set, is sent as "Authorization: Bearer TOKEN" on every
	// license request (never on media requests), as a web app sends the
	// entitlement token to `sealmesh license serve`.
	Token string
}

// PlayerPage returns an HTML page that plays c.SourceURL with c.Player (loaded from the
// player's path above) in a muted autoplay <video>, with Clear Key keys from c.LicenseURL,
// and sets window.__result once currentTime >= 5 s, on the first error, or after 25 s:
//
//	{currentTime, decodedFrames (getVideoPlaybackQuality().totalVideoFrames), error, errorCode}
//
// error is "" on success. errorCode is the player's error code (Shaka: a shaka.util.Error
// code, e.g. 6007 license request failed; dash.js: its error code, e.g. 111 for a failed
// license request; hls.js: 1 for any fatal error), a MediaError code 1-4 for <video>
// errors, -1 for other exceptions, -2 when the 25 s ran out.
//
// The configurations are the ones README.md's "Browser players" section gives:
//   - Shaka: drm.servers['org.w3.clearkey'], the token added by a LICENSE request filter.
//   - hls.js: emeEnabled, drmSystems['org.w3.clearkey'].licenseUrl, the token set in
//     licenseXhrSetup. hls.js plays SAMPLE-AES fMP4 only when EXT-X-KEY says
//     KEYFORMAT="org.w3.clearkey" (shaka-packager's raw-key playlists say "identity" and must
//     be rewritten first).
//   - dash.js 4 and 5: protection data {serverURL, httpRequestHeaders: {Authorization},
//     withCredentials: false}. dash.js 4.7 sends cookies (withCredentials) once a header is
//     configured unless told not to, and a server that allows one origin without
//     credentials then fails CORS.
func PlayerPage(c PageConfig) string {
	var script, body string
	switch c.Player {
	case ShakaPlayer:
		script, body = ShakaPlayerJSPath, shakaBody
	case HlsJSPlayer:
		script, body = HlsJSPath, hlsJSBody
	case DashJS5Player:
		script, body = DashJS5Path, dashJSBody
	case DashJS4Player:
		script, body = DashJS4Path, dashJSBody
	default:
		panic("interop: unknown player " + string(c.Player))
	}
	return renderPage(string(c.Player), script, body, c.SourceURL, c.LicenseURL, c.Token)
}

// ShakaPlayerPage is PlayerPage for Shaka Player playing mpdURL without a token.
func ShakaPlayerPage(mpdURL, clearKeyURL string) string {
	return PlayerPage(PageConfig{Player: ShakaPlayer, SourceURL: mpdURL, LicenseURL: clearKeyURL})
}

// HlsJsPage is PlayerPage for hls.js playing m3u8URL without a token. Fatal hls.js
// errors set errorCode 1 and error "hls.js TYPE: DETAILS ...".
func HlsJsPage(m3u8URL, clearKeyURL string) string {
	return PlayerPage(PageConfig{Player: HlsJSPlayer, SourceURL: m3u8URL, LicenseURL: clearKeyURL})
}

const shakaBody = `
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) { finish('shaka: browser not supported', -1); return; }
  const player = new shaka.Player();
  window.__player = player;
  await player.attach(video);
  player.configure({drm: {servers: {'org.w3.clearkey': LICENSE_URL}}});
  if (TOKEN) {
    player.getNetworkingEngine().registerRequestFilter((type, req) => {
      if (type === shaka.net.NetworkingEngine.RequestType.LICENSE) req.headers['Authorization'] = 'Bearer ' + TOKEN;
    });
  }
  player.addEventListener('error', (ev) => finish(describe(ev.detail), ev.detail.code || -1));
  try {
    await player.load(SOURCE_URL);
  } catch (e) {
    finish(describe(e), (e && e.code) || -1);
    return;
  }
  video.play().catch((e) => log('play(): ' + e));
`

const hlsJSBody = `
  if (!Hls.isSupported()) { finish('hls.js: MSE not supported', -1); return; }
  const hls = new Hls({
    emeEnabled: true,
    drmSystems: {'org.w3.clearkey': {licenseUrl: LICENSE_URL}},
    licenseXhrSetup: (xhr, url) => {
      if (!TOKEN) return;
      if (xhr.readyState === 0) xhr.open('POST', url, true);
      xhr.setRequestHeader('Authorization', 'Bearer ' + TOKEN);
    },
  });
  window.__player = hls;
  hls.on(Hls.Events.ERROR, (ev, data) => {
    const msg = 'hls.js ' + data.type + ': ' + data.details + (data.error ? ': ' + data.error : '') + (data.reason ? ' (' + data.reason + ')' : '');
    if (data.fatal) finish(msg, 1); else log('non-fatal ' + msg);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => log('play(): ' + e)));
  hls.attachMedia(video);
  hls.loadSource(SOURCE_URL);
`

// dashJSBody works with dash.js 4.7 and 5: both expose dashjs.MediaPlayer and the
// 'error' event ({error: {code, message}}).
const dashJSBody = `
  const player = dashjs.MediaPlayer().create();
  window.__player = player;
  log('dash.js ' + player.getVersion());
  const clearKey = {serverURL: LICENSE_URL, withCredentials: false};
  if (TOKEN) clearKey.httpRequestHeaders = {Authorization: 'Bearer ' + TOKEN};
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
    const err = (e && e.error) || {};
    finish('dash.js error ' + (err.code !== undefined ? err.code + ': ' : '') + (err.message || JSON.stringify(err)).slice(0, 600), err.code || -1);
  });
  player.initialize();
  player.setProtectionData({'org.w3.clearkey': clearKey});
  player.attachView(video);
  player.setAutoPlay(true);
  player.attachSource(SOURCE_URL);
`

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
const TOKEN = {{TOKEN}};
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

func renderPage(title, script, body, sourceURL, licenseURL, token string) string {
	return strings.NewReplacer(
		"{{TITLE}}", title,
		"{{SCRIPT}}", script,
		"{{SOURCE}}", jsString(sourceURL),
		"{{LICENSE}}", jsString(licenseURL),
		"{{TOKEN}}", jsString(token),
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

// DashJS returns the UMD build of dash.js (dash.all.min.js, with protection) of the
// given major version (4 or 5) from the pinned npm workspace (npm aliases dashjs4, dashjs5).
func DashJS(t testing.TB, major int) []byte {
	t.Helper()
	if major == 5 {
		return readNodeModule(t, "dashjs5", "dist", "modern", "umd", "dash.all.min.js")
	}
	return readNodeModule(t, "dashjs4", "dist", "dash.all.min.js")
}

// PlayerAssets returns a handler that serves every player script path above
// ([ShakaPlayerJSPath], [HlsJSPath], [DashJS5Path], [DashJS4Path]), for a test server's mux:
//
//	mux.Handle(interop.ShakaPlayerJSPath, assets) // and so on, or one prefix-free handler
func PlayerAssets(t testing.TB) http.Handler {
	t.Helper()
	files := map[string][]byte{
		ShakaPlayerJSPath: ShakaPlayerJS(t),
		HlsJSPath:         HlsJS(t),
		DashJS5Path:       DashJS(t, 5),
		DashJS4Path:       DashJS(t, 4),
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
