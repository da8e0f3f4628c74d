package segment_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/segment"
)

// clearLadder decrypts a packaged folder into a clear fMP4 HLS ladder, the
// kind of input an operator with an existing CMAF pipeline brings.
func clearLadder(t *testing.T, p *packed) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ladder")
	var master strings.Builder
	master.WriteString("#EXTM3U\n")
	for _, r := range p.m.Renditions {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, r.ID), 0o755))
		var pl strings.Builder
		pl.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n")
		d, err := segment.NewDecryptor(p.read(t, r.Files[0].Path))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, r.ID, "init.mp4"), d.ClearInit(), 0o644))
		pl.WriteString("#EXT-X-MAP:URI=\"init.mp4\"\n")
		for _, f := range r.Files {
			if f.Kind != segment.KindMedia {
				continue
			}
			d, err := segment.NewDecryptor(p.read(t, initFor(r, f).Path))
			require.NoError(t, err)
			clear, err := d.Decrypt(p.read(t, f.Path), p.keys)
			require.NoError(t, err)
			name := fmt.Sprintf("seg_%03d.mp4", f.Index)
			require.NoError(t, os.WriteFile(filepath.Join(dir, r.ID, name), clear, 0o644))
			fmt.Fprintf(&pl, "#EXTINF:%.3f,\n%s\n", f.Duration, name)
		}
		pl.WriteString("#EXT-X-ENDLIST\n")
		require.NoError(t, os.WriteFile(filepath.Join(dir, r.ID, "media.m3u8"), []byte(pl.String()), 0o644))
		if r.Type == "audio" {
			fmt.Fprintf(&master, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",URI=\"%s/media.m3u8\"\n", r.ID)
		} else {
			fmt.Fprintf(&master, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AUDIO=\"a\"\n%s/media.m3u8\n", r.Bandwidth, r.ID)
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "master.m3u8"), []byte(master.String()), 0o644))
	return filepath.Join(dir, "master.m3u8")
}

func TestPackHLSLadderInput(t *testing.T) {
	src := packClip(t, segment.SchemeCBCS, 0)
	ladder := clearLadder(t, src)
	p := packClip(t, segment.SchemeCENC, 0, func(c *segment.Config) { c.Inputs = []string{ladder} })
	require.Len(t, p.m.Renditions, 3)
	want := sourceSamples(t, clipPaths(t)[0], "vide")
	var got [][]byte
	r := p.rendition(t, "video-640x360")
	for _, f := range r.Files[1:] {
		if f.Kind != segment.KindMedia {
			continue
		}
		d, err := segment.NewDecryptor(p.read(t, initFor(r, f).Path))
		require.NoError(t, err)
		clear, err := d.Decrypt(p.read(t, f.Path), p.keys)
		require.NoError(t, err)
		got = append(got, segmentSamples(t, d.ClearInit(), clear)...)
	}
	require.Equal(t, want, got)

	// An already-encrypted ladder is refused with advice to use --import.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	encrypted := filepath.Join(src.dir, segment.HLSMaster)
	_, err := segment.Pack(context.Background(), segment.Config{
		Inputs: []string{encrypted}, OutDir: filepath.Join(t.TempDir(), "x"), ContentID: "x", Signer: priv, SigningKeyID: "k",
		Keys: func(int) (segment.Key, error) { return randomKey(t), nil },
	})
	require.ErrorIs(t, err, segment.ErrUnsupportedInput)
	require.Contains(t, err.Error(), "--import")
}

func TestImport(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 8e9)
	require.NoError(t, os.Remove(filepath.Join(p.dir, segment.ManifestFile)))
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var kids [][16]byte
	for _, per := range p.m.Periods {
		var k [16]byte
		b, err := hex.DecodeString(per.KID)
		require.NoError(t, err)
		copy(k[:], b)
		kids = append(kids, k)
	}
	cfg := segment.ImportConfig{Playlist: filepath.Join(p.dir, segment.HLSMaster), ContentID: "imported", KIDs: kids[:1], Signer: priv, SigningKeyID: "imp"}
	_, err := segment.Import(context.Background(), cfg)
	require.ErrorContains(t, err, "no key was given", "a period whose key is missing must be refused")
	require.NoFileExists(t, filepath.Join(p.dir, segment.ManifestFile))

	cfg.KIDs = kids
	m, err := segment.Import(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, m.Periods, 2)
	require.Equal(t, 8.0, m.Periods[1].Start)
	parsed, err := segment.ParseManifest(p.read(t, segment.ManifestFile), segment.TrustedKeys{"imp": pub})
	require.NoError(t, err)
	for _, f := range parsed.Files() {
		require.NoError(t, parsed.CheckFile(f.Path, p.read(t, f.Path)))
	}
	_, err = segment.Import(context.Background(), cfg)
	require.ErrorIs(t, err, segment.ErrOutputExists)
}

// TestPackFFmpegLadders packs clear ladders written by ffmpeg's own HLS
// (fMP4) and DASH muxers, whose audio segments are cut at other instants
// than the video's, and checks that every sample of every track decrypts
// back to the source's bytes.
func TestPackFFmpegLadders(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	clip := clipPaths(t)
	base := []string{"-hide_banner", "-loglevel", "error", "-i", clip[0], "-i", clip[1], "-map", "0:v", "-map", "1:v", "-map", "0:a", "-c", "copy"}
	cases := map[string]struct {
		args  []string
		input string
	}{
		"hls": {[]string{"-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
			"-hls_segment_filename", "seg_%v_%03d.m4s", "-hls_fmp4_init_filename", "init.mp4", "-master_pl_name", "master.m3u8",
			"-var_stream_map", "v:0,agroup:aud v:1,agroup:aud a:0,agroup:aud", "stream_%v.m3u8"}, "master.m3u8"},
		"dash": {[]string{"-f", "dash", "-seg_duration", "4", "-use_template", "1", "-use_timeline", "1",
			"-adaptation_sets", "id=0,streams=v id=1,streams=a", "manifest.mpd"}, "manifest.mpd"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(ffmpeg, append(base, tc.args...)...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			p := packClip(t, segment.SchemeCENC, 8*time.Second, func(c *segment.Config) { c.Inputs = []string{filepath.Join(dir, tc.input)} })
			require.Len(t, p.m.Renditions, 3)
			for _, c := range []struct{ id, src, handler string }{
				{"video-640x360", clip[0], "vide"}, {"video-320x180", clip[1], "vide"}, {"audio", clip[0], "soun"},
			} {
				r := p.rendition(t, c.id)
				var got [][]byte
				for _, f := range r.Files {
					if f.Kind != segment.KindMedia {
						continue
					}
					d, err := segment.NewDecryptor(p.read(t, initFor(r, f).Path))
					require.NoError(t, err)
					clear, err := d.Decrypt(p.read(t, f.Path), p.keys)
					require.NoError(t, err)
					got = append(got, segmentSamples(t, d.ClearInit(), clear)...)
				}
				require.Equal(t, sourceSamples(t, c.src, c.handler), got, "%s differs from the source", c.id)
			}
			// Audio was re-cut to the video's segment boundaries.
			require.Len(t, p.rendition(t, "audio").Files, len(p.rendition(t, "video-640x360").Files))
		})
	}
}
