package interop

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// ShakaDecrypt decrypts the stream ("video" or "audio") of the CENC-protected MP4
// inputFile (an init segment followed by media segments, or a whole fragmented file) with
// shaka-packager, writing a clear MP4 to outFile. keys maps KID hex to key hex. The command is
//
//	packager in=IN,stream=video,output=OUT --enable_raw_key_decryption \
//	    --keys label=k0:key_id=KID:key=KEY[,label=k1:...]
//
// shaka-packager fails when a sample's KID has no key, but NOT when a key is wrong: it then
// writes garbage, so compare decoded frames ([FrameMD5File]) rather than trust success.
func ShakaDecrypt(t testing.TB, packagerPath, inputFile, outFile, stream string, keys map[string]string) {
	t.Helper()
	if stream != "video" && stream != "audio" {
		t.Fatalf("interop: ShakaDecrypt: stream %q: want \"video\" or \"audio\"", stream)
	}
	if len(keys) == 0 {
		t.Fatalf("interop: ShakaDecrypt: no keys")
	}
	checkDescriptorPath(t, inputFile)
	checkDescriptorPath(t, outFile)
	keyList, err := shakaKeys(keys)
	if err != nil {
		t.Fatalf("interop: ShakaDecrypt: %v", err)
	}
	runPackager(t, packagerPath, "",
		"in="+inputFile+",stream="+stream+",output="+outFile,
		"--enable_raw_key_decryption", "--keys", keyList)
}

// ShakaEncryptOptions says what [ShakaEncrypt] packages. Zero values are documented per field.
type ShakaEncryptOptions struct {
	Input  string // clear MP4 with one video and/or one audio stream; required
	OutDir string // output folder, created if missing; required

	KeyIDHex string // 32 hex digits; required
	KeyHex   string // 32 hex digits; required

	Scheme         string   // "cbcs" (zero value), "cenc", "cbc1" or "cens"
	SegmentSeconds int      // target segment duration; zero means 2
	Streams        []string // subset of "video", "audio"; nil means both
	HLS            bool     // also write master.m3u8 and one media playlist per stream
}

// ShakaOutput lists what [ShakaEncrypt] wrote. Paths are absolute.
type ShakaOutput struct {
	MPD       string              // OutDir/manifest.mpd (static, SegmentTemplate with $Number$)
	HLSMaster string              // OutDir/master.m3u8, or "" without HLS; media playlists are OutDir/STREAM.m3u8
	Init      map[string]string   // stream -> OutDir/STREAM/init.mp4
	Segments  map[string][]string // stream -> OutDir/STREAM/1.m4s, 2.m4s, ... in order
}

// ShakaEncrypt packages opts.Input with shaka-packager into encrypted, segmented CMAF
// with a DASH manifest (and HLS playlists if asked), one raw key for every stream and
// no clear lead: every sample of every segment is encrypted. The command is
//
//	packager 'in=IN,stream=video,init_segment=video/init.mp4,segment_template=video/$Number$.m4s' ... \
//	    --enable_raw_key_encryption --keys label=:key_id=KID:key=KEY \
//	    --protection_scheme cbcs --clear_lead 0 --protection_systems CommonSystem \
//	    --segment_duration 2 --generate_static_live_mpd --mpd_output manifest.mpd \
//	    [--hls_master_playlist_output master.m3u8 --hls_playlist_type VOD]
//
// run inside OutDir. Init segments carry a v1 Common System PSSH; the MPD carries
// mp4protection with cenc:default_KID and the Common System ContentProtection (no
// dashif:Laurl: players are given the license URL). HLS playlists use
// KEYFORMAT="identity" with the KID in a data: URI; hls.js needs that rewritten to
// "org.w3.clearkey" (see [HlsJsPage]).
func ShakaEncrypt(t testing.TB, packagerPath string, opts ShakaEncryptOptions) ShakaOutput {
	t.Helper()
	if opts.Input == "" || opts.OutDir == "" {
		t.Fatalf("interop: ShakaEncrypt: Input and OutDir are required")
	}
	if _, err := shakaKeys(map[string]string{opts.KeyIDHex: opts.KeyHex}); err != nil {
		t.Fatalf("interop: ShakaEncrypt: %v", err)
	}
	scheme := opts.Scheme
	if scheme == "" {
		scheme = "cbcs"
	}
	segSeconds := opts.SegmentSeconds
	if segSeconds == 0 {
		segSeconds = 2
	}
	streams := opts.Streams
	if streams == nil {
		streams = []string{"video", "audio"}
	}
	checkDescriptorPath(t, opts.Input)
	outDir, err := filepath.Abs(opts.OutDir)
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatalf("interop: %v", err)
	}

	var args []string
	for _, s := range streams {
		if s != "video" && s != "audio" {
			t.Fatalf("interop: ShakaEncrypt: stream %q: want \"video\" or \"audio\"", s)
		}
		d := fmt.Sprintf("in=%s,stream=%s,init_segment=%s/init.mp4,segment_template=%s/$Number$.m4s", opts.Input, s, s, s)
		if opts.HLS {
			d += ",playlist_name=" + s + ".m3u8"
			if s == "audio" {
				d += ",hls_group_id=audio,hls_name=audio"
			}
		}
		args = append(args, d)
	}
	args = append(args,
		"--enable_raw_key_encryption",
		"--keys", "label=:key_id="+strings.ToLower(opts.KeyIDHex)+":key="+strings.ToLower(opts.KeyHex),
		"--protection_scheme", scheme,
		"--clear_lead", "0",
		"--protection_systems", "CommonSystem",
		"--segment_duration", strconv.Itoa(segSeconds),
		"--generate_static_live_mpd",
		"--mpd_output", "manifest.mpd",
	)
	out := ShakaOutput{
		MPD:      filepath.Join(outDir, "manifest.mpd"),
		Init:     map[string]string{},
		Segments: map[string][]string{},
	}
	if opts.HLS {
		args = append(args, "--hls_master_playlist_output", "master.m3u8", "--hls_playlist_type", "VOD")
		out.HLSMaster = filepath.Join(outDir, "master.m3u8")
	}
	runPackager(t, packagerPath, outDir, args...)

	for _, s := range streams {
		out.Init[s] = filepath.Join(outDir, s, "init.mp4")
		for n := 1; ; n++ {
			p := filepath.Join(outDir, s, strconv.Itoa(n)+".m4s")
			if _, err := os.Stat(p); err != nil {
				break
			}
			out.Segments[s] = append(out.Segments[s], p)
		}
		if len(out.Segments[s]) == 0 {
			t.Fatalf("interop: shaka-packager wrote no %s segments in %s", s, outDir)
		}
	}
	return out
}

// ReadConcat returns the concatenated contents of files, e.g. an init segment and
// media segments, ready for [FrameMD5].
func ReadConcat(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("interop: %v", err)
		}
		buf.Write(b)
	}
	return buf.Bytes()
}

// shakaKeys formats keys for --keys, sorted by KID so the command line is stable.
func shakaKeys(keys map[string]string) (string, error) {
	kids := make([]string, 0, len(keys))
	for kid, key := range keys {
		for _, h := range []string{kid, key} {
			if b, err := hex.DecodeString(h); err != nil || len(b) != 16 {
				return "", fmt.Errorf("KID/key %q: want 32 hex digits", h)
			}
		}
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	parts := make([]string, len(kids))
	for i, kid := range kids {
		parts[i] = fmt.Sprintf("label=k%d:key_id=%s:key=%s", i, strings.ToLower(kid), strings.ToLower(keys[kid]))
	}
	return strings.Join(parts, ","), nil
}

// checkDescriptorPath rejects paths that shaka-packager's stream descriptor syntax
// (comma-separated key=value pairs) would split.
func checkDescriptorPath(t testing.TB, p string) {
	t.Helper()
	if strings.ContainsAny(p, ",") {
		t.Fatalf("interop: shaka-packager cannot take a path containing ',': %q", p)
	}
}

func runPackager(t testing.TB, packagerPath, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, packagerPath, args...)
	cmd.Dir = dir
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Run(); err != nil {
		t.Fatalf("interop: %s %s: %v\noutput:\n%s", packagerPath, strings.Join(args, " "), err, tail(outBuf.String(), 40))
	}
	// shaka-packager 3.4 can log "Packaging Error" and still exit 0 for some inputs.
	if s := outBuf.String(); strings.Contains(s, "Packaging Error") || !strings.Contains(s, "Packaging completed successfully") {
		t.Fatalf("interop: %s %s: failed\noutput:\n%s", packagerPath, strings.Join(args, " "), tail(s, 40))
	}
}
