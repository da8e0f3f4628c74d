package segment_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/segment"
)

// TestHEVC packs an HEVC (hvc1) clip made by ffmpeg/libx265 with both schemes
// and has ffmpeg decrypt every segment to the source's frames.
func TestHEVC(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	src := filepath.Join(t.TempDir(), "hevc.mp4")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=8",
		"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=48:min-keyint=48:scenecut=0:open-gop=0:log-level=error",
		"-pix_fmt", "yuv420p", "-tag:v", "hvc1", "-an", src).CombinedOutput()
	require.NoError(t, err, "%s", out)
	clear := interop.FrameMD5File(t, ffmpeg, src, "video")
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			p := packClip(t, scheme, 0, func(c *segment.Config) { c.Inputs = []string{src} })
			require.Len(t, p.m.Renditions, 1)
			r := p.m.Renditions[0]
			require.Contains(t, r.Codec, "hvc1.")
			var got []string
			for _, f := range r.Files[1:] {
				data := append(p.read(t, r.Files[0].Path), p.read(t, f.Path)...)
				got = append(got, interop.FrameMD5(t, ffmpeg, data, keyHex(p, 0), "video")...)
			}
			require.Equal(t, clear, got)
		})
	}
}
