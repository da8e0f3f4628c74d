package segment_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/segment"
)

// TestPlayersWithoutLicenseURL: output packed with no license URL (pack
// --no-license-url) plays in Shaka Player and dash.js 5 and 4 (DASH) and hls.js (HLS, whose
// EXT-X-KEY URI is then a data: URI of the KID) when the app configures the
// Clear Key server, across the key rotation at 4 s (the pages play to 5 s).
func TestPlayersWithoutLicenseURL(t *testing.T) {
	interop.Chromium(t)
	assets := interop.PlayerAssets(t)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, path := range []string{interop.ShakaPlayerJSPath, interop.HlsJSPath, interop.DashJS5Path, interop.DashJS4Path} {
		mux.Handle(path, assets)
	}

	p := packClip(t, segment.SchemeCBCS, 4*time.Second)
	require.Len(t, p.m.Periods, 3)
	keys := map[string][]byte{}
	for i, per := range p.m.Periods {
		keys[per.KID] = p.periods[i]
	}
	lic := srv.URL + "/license"
	mux.Handle("/media/", http.StripPrefix("/media/", http.FileServer(http.Dir(p.dir))))
	mux.Handle("/license", interop.ClearKeyHandler(keys))
	mux.Handle("/shaka", interop.ServeHTML(interop.ShakaPlayerPage(srv.URL+"/media/manifest.mpd", lic)))
	mux.Handle("/hlsjs", interop.ServeHTML(interop.HlsJsPage(srv.URL+"/media/master.m3u8", lic)))
	mux.Handle("/dashjs5", interop.ServeHTML(interop.PlayerPage(interop.PageConfig{Player: interop.DashJS5Player, SourceURL: srv.URL + "/media/manifest.mpd", LicenseURL: lic})))
	mux.Handle("/dashjs4", interop.ServeHTML(interop.PlayerPage(interop.PageConfig{Player: interop.DashJS4Player, SourceURL: srv.URL + "/media/manifest.mpd", LicenseURL: lic})))
	for _, page := range []string{"shaka", "hlsjs", "dashjs5", "dashjs4"} {
		t.Run(page, func(t *testing.T) {
			res := interop.PlayInChromium(t, srv.URL+"/"+page, 45*time.Second)
			if res.Error != "" || res.CurrentTime < 5 || res.DecodedFrames < 100 {
				t.Fatalf("playback failed: currentTime %.2f, %d frames, error %q (code %d)\nlogs:\n%s",
					res.CurrentTime, res.DecodedFrames, res.Error, res.ErrorCode, strings.Join(res.Logs, "\n"))
			}
		})
	}
}
