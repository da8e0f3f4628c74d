package interop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// toolTimeout bounds one run of ffmpeg or shaka-packager.
const toolTimeout = 3 * time.Minute

// FrameMD5 decodes data, an init segment followed by one or more media segments (or any
// MP4 whose moov comes first), with ffmpeg, and returns the MD5 of every decoded frame of
// the chosen stream, in decode order of output: the hash column of ffmpeg's framemd5 muxer.
//
// stream is "v"/"video" or "a"/"audio". keyHex, if not empty, is the 32-digit hex content
// key passed as -decryption_key (ffmpeg applies it to every sample, whatever the KID).
// The command is
//
//	ffmpeg -hide_banner -loglevel error [-decryption_key K] -f mp4 -i pipe:0 -map 0:v:0 -f framemd5 -
//
// A non-zero exit fails the test, quoting stderr. A wrong key does NOT make ffmpeg fail:
// it decodes garbage (different hashes) and complains on stderr, which is logged.
//
// Video: a segment that starts with an IDR decodes to exactly the source's frames.
// Audio: the first decoded AAC frame of a fragment differs from a whole-file decode (the
// priming frame that an edit list hides, or the missing overlap with the previous frame),
// so compare from the second frame on, e.g. IndexRun(clear, got[1:]). AAC noise
// substitution (PNS) makes even those differ; testdata/make-clip.sh turns it off.
func FrameMD5(t testing.TB, ffmpegPath string, data []byte, keyHex string, stream string) []string {
	t.Helper()
	args := []string{"-hide_banner", "-nostats", "-loglevel", "error"}
	if keyHex != "" {
		args = append(args, "-decryption_key", keyHex)
	}
	args = append(args, "-f", "mp4", "-i", "pipe:0")
	return frameMD5(t, ffmpegPath, args, bytes.NewReader(data), stream)
}

// FrameMD5File is FrameMD5 for a clear MP4 file on disk (progressive or fragmented).
func FrameMD5File(t testing.TB, ffmpegPath, path string, stream string) []string {
	t.Helper()
	args := []string{"-hide_banner", "-nostats", "-nostdin", "-loglevel", "error", "-i", path}
	return frameMD5(t, ffmpegPath, args, nil, stream)
}

func frameMD5(t testing.TB, ffmpegPath string, args []string, stdin io.Reader, stream string) []string {
	t.Helper()
	sel, err := streamSelector(stream)
	if err != nil {
		t.Fatalf("interop: FrameMD5: %v", err)
	}
	args = append(args, "-map", "0:"+sel+":0", "-f", "framemd5", "-")
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpegPath, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("interop: %s %s: %v\nstderr:\n%s", ffmpegPath, strings.Join(args, " "), err, tail(stderr.String(), 40))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("interop: ffmpeg stderr (exit 0):\n%s", tail(s, 10))
	}
	hashes, err := ParseFrameMD5(&stdout)
	if err != nil {
		t.Fatalf("interop: parse framemd5 output: %v", err)
	}
	if len(hashes) == 0 {
		t.Fatalf("interop: ffmpeg decoded no %s frames\nstderr:\n%s", stream, tail(stderr.String(), 40))
	}
	return hashes
}

func streamSelector(stream string) (string, error) {
	switch stream {
	case "v", "video":
		return "v", nil
	case "a", "audio":
		return "a", nil
	}
	return "", fmt.Errorf("stream %q: want \"video\" or \"audio\"", stream)
}

// ParseFrameMD5 returns the hash column of ffmpeg's framemd5 output, skipping the
// "#" comment lines. Each data line is "stream, dts, pts, duration, size, hash".
func ParseFrameMD5(r io.Reader) ([]string, error) {
	var hashes []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ",")
		if len(fields) < 6 {
			return nil, fmt.Errorf("line %d: %d fields, want 6: %q", n, len(fields), line)
		}
		h := strings.TrimSpace(fields[len(fields)-1])
		if len(h) != 32 {
			return nil, fmt.Errorf("line %d: hash %q is not 32 hex digits", n, h)
		}
		hashes = append(hashes, h)
	}
	return hashes, sc.Err()
}

// IndexRun returns the index at which needle occurs as a contiguous run in haystack,
// or -1. Useful to place a segment's decoded frames within the clear source's frames:
// AAC priming and decoder warm-up mean a segment's first few audio frames may differ
// from the source, so callers can compare from an offset.
func IndexRun(haystack, needle []string) int {
	if len(needle) == 0 {
		return 0
	}
outer:
	for i := 0; i+len(needle) <= len(haystack); i++ {
		for j := range needle {
			if haystack[i+j] != needle[j] {
				continue outer
			}
		}
		return i
	}
	return -1
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines cut]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
