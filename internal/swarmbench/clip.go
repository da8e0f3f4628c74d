package swarmbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sealmesh/sealmesh"
)

// BundledSeconds is the length of the bundled clip (embedded in the
// binary, see package sealmesh).
const BundledSeconds = sealmesh.ClipSeconds

// Ladder is the generated content's bitrate ladder: the top rendition is
// about 1 Mbit/s with its audio, as in the benchmark's goals.
var Ladder = []struct {
	Name, Size string
	VideoKbit  int
}{
	{"360p", "640x360", 900},
	{"180p", "320x180", 300},
}

// DefaultCacheDir is where generated content is kept between runs:
// $XDG_CACHE_HOME/sealmesh/bench (~/.cache/sealmesh/bench), or a folder
// under the system's temporary folder when there is no home.
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "sealmesh", "bench")
	}
	return filepath.Join(os.TempDir(), "sealmesh-bench-cache")
}

// Content returns the inputs for content of the given length, kept in
// cacheDir: the bundled clip (written out of the binary) when seconds is
// BundledSeconds or less, otherwise the Ladder, generated once with ffmpeg
// ($SEALMESH_FFMPEG, $FFMPEG or ffmpeg on PATH). Nothing from the
// repository is needed.
func Content(ctx context.Context, seconds int, cacheDir string, logf func(string, ...any)) ([]string, error) {
	if seconds <= BundledSeconds {
		return sealmesh.WriteClip(filepath.Join(cacheDir, "clip"))
	}
	ffmpeg := ffmpegPath()
	var out []string
	for _, r := range Ladder {
		f := filepath.Join(cacheDir, fmt.Sprintf("swarm-%s-%ds.mp4", r.Name, seconds))
		out = append(out, f)
		if _, err := os.Stat(f); err == nil {
			continue
		}
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("content cache: %w", err)
		}
		logf("making %s (%d s, %s, %d kbit/s video) with %s\n", f, seconds, r.Size, r.VideoKbit, ffmpeg)
		tmp := f + ".tmp.mp4"
		cmd := exec.CommandContext(ctx, ffmpeg, LongClipArgs(tmp, seconds, r.Size, r.VideoKbit)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			if errors.Is(err, exec.ErrNotFound) {
				return nil, fmt.Errorf("content of %d s is generated with ffmpeg, which is not installed: install it, set SEALMESH_FFMPEG, pass --in FILE.mp4, or use --content %d for the bundled clip", seconds, BundledSeconds)
			}
			return nil, fmt.Errorf("make %s with ffmpeg: %v: %s (pass --in FILE.mp4, or --content %d for the bundled clip)", filepath.Base(f), err, strings.TrimSpace(string(b)), BundledSeconds)
		}
		if err := os.Rename(tmp, f); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func ffmpegPath() string {
	for _, env := range []string{"SEALMESH_FFMPEG", "FFMPEG"} {
		if p := os.Getenv(env); p != "" {
			return p
		}
	}
	return "ffmpeg"
}

// LongClipArgs are ffmpeg's arguments for a synthetic clip of the given
// length, size (WxH) and video bitrate, the same shape as the bundled clip
// (testdata/make-long-clip.sh makes the same): H.264 High yuv420p 24 fps
// with an IDR every 2 s exactly, AAC-LC stereo 48 kHz 64 kbit/s, faststart.
func LongClipArgs(dst string, seconds int, size string, videoKbit int) []string {
	vbr := fmt.Sprintf("%dk", videoKbit)
	return []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=24:duration=%d", size, seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=exprs='0.25*sin(2*PI*(330+55*mod(floor(t),12))*t)|0.25*sin(2*PI*(220+20*mod(t,12))*t)':sample_rate=48000:channel_layout=stereo:duration=%d", seconds),
		"-map", "0:v:0", "-map", "1:a:0",
		"-c:v", "libx264", "-profile:v", "high", "-pix_fmt", "yuv420p", "-r", "24", "-preset", "veryfast",
		"-b:v", vbr, "-maxrate", vbr, "-bufsize", vbr,
		"-g", "48", "-keyint_min", "48", "-sc_threshold", "0",
		"-c:a", "aac", "-profile:a", "aac_low", "-aac_pns", "0", "-b:a", "64k", "-ar", "48000", "-ac", "2",
		"-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
		"-map_metadata", "-1", "-movflags", "+faststart",
		"-t", fmt.Sprint(seconds), dst}
}
