package segment_test

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/segment"
)

const commonPSSHScheme = "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"

// TestDASHManifest reads the packager's MPD back with the DASH library and
// checks what players rely on: one Period per crypto period at the right
// start, the mp4protection descriptor with the period's default_KID, the
// Clear Key descriptor with the license URL, no W3C common-PSSH descriptor
// (dash.js 5 cannot use it: the PSSH stays in the init segments), and the
// audio sampling rate of the track.
func TestDASHManifest(t *testing.T) {
	lic := "https://lic.example/v1/clearkey?tenant=a&x=<y>"
	p := packClip(t, segment.SchemeCBCS, 8*time.Second, func(c *segment.Config) { c.LicenseURL = lic })
	doc, err := mpd.MPDFromBytes(p.read(t, segment.DASHManifest))
	require.NoError(t, err)
	require.Equal(t, mpd.STATIC_TYPE, doc.GetType())
	require.InDelta(t, p.m.Duration, doc.MediaPresentationDuration.Seconds(), 0.001)
	require.Len(t, doc.Periods, len(p.m.Periods))
	for i, per := range doc.Periods {
		require.InDelta(t, p.m.Periods[i].Start, per.Start.Seconds(), 0.001)
		require.Len(t, per.AdaptationSets, 2)
		for _, as := range per.AdaptationSets {
			schemes := map[string]*mpd.ContentProtectionType{}
			for _, cp := range as.ContentProtections {
				schemes[string(cp.SchemeIdUri)] = cp
			}
			require.NotContains(t, schemes, commonPSSHScheme, "the common PSSH belongs in the init segments only")
			require.Equal(t, "cbcs", schemes["urn:mpeg:dash:mp4protection:2011"].Value)
			require.Equal(t, kidUUID(p.m.Periods[i].KID), schemes["urn:mpeg:dash:mp4protection:2011"].DefaultKID)
			require.Equal(t, lic, string(schemes[mpd.DRM_CLEAR_KEY_DASHIF].LaURL.Value))
			for _, rep := range as.Representations {
				if as.ContentType == "audio" {
					require.Equal(t, "48000", string(*rep.AudioSamplingRate))
				} else {
					require.Nil(t, rep.AudioSamplingRate)
					require.Equal(t, uint32(p.rendition(t, rep.Id).Width), rep.Width)
				}
			}
		}
	}
}

// TestDASHSamplingRate44100 packs a 44.1 kHz source (made with ffmpeg): the
// MPD says so, where it once said 48000 whatever the source.
func TestDASHSamplingRate44100(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	clip := filepath.Join(t.TempDir(), "44k.mp4")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=4",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4",
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "48", "-keyint_min", "48", "-sc_threshold", "0", "-threads", "1",
		"-c:a", "aac", "-ar", "44100", "-ac", "2", "-b:a", "64k", "-movflags", "+faststart", clip).CombinedOutput()
	require.NoError(t, err, "%s", out)
	p := packClip(t, segment.SchemeCBCS, 0, func(c *segment.Config) { c.Inputs = []string{clip} })
	doc, err := mpd.MPDFromBytes(p.read(t, segment.DASHManifest))
	require.NoError(t, err)
	n := 0
	for _, as := range doc.Periods[0].AdaptationSets {
		for _, rep := range as.Representations {
			if as.ContentType == "audio" {
				require.NotNil(t, rep.AudioSamplingRate)
				require.Equal(t, "44100", string(*rep.AudioSamplingRate))
				n++
			}
		}
	}
	require.Equal(t, 1, n)
}
