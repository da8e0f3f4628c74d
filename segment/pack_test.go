package segment_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

var schemes = []segment.Scheme{segment.SchemeCBCS, segment.SchemeCENC}

// TestPackRoundTrip decrypts every segment of every track, for both schemes,
// with and without key rotation, and compares the samples with the clear
// source byte for byte.
func TestPackRoundTrip(t *testing.T) {
	for _, scheme := range schemes {
		for _, period := range []time.Duration{0, 8 * time.Second} {
			t.Run(string(scheme)+"/period="+period.String(), func(t *testing.T) {
				p := packClip(t, scheme, period)
				if period == 0 {
					require.Len(t, p.m.Periods, 1)
				} else {
					require.Len(t, p.m.Periods, 2)
					require.Equal(t, 8.0, p.m.Periods[1].Start)
				}
				clip := clipPaths(t)
				cases := []struct {
					id, src, handler string
				}{
					{"video-640x360", clip[0], "vide"},
					{"video-320x180", clip[1], "vide"},
					{"audio", clip[0], "soun"},
				}
				for _, c := range cases {
					want := sourceSamples(t, c.src, c.handler)
					r := p.rendition(t, c.id)
					var got [][]byte
					for _, f := range r.Files {
						if f.Kind != segment.KindMedia {
							continue
						}
						init := p.read(t, initFor(r, f).Path)
						d, err := segment.NewDecryptor(init)
						require.NoError(t, err)
						require.Equal(t, p.m.Periods[f.Period].KID, hex.EncodeToString(func() []byte { k := d.KID(); return k[:] }()))
						enc := p.read(t, f.Path)
						encSamples := segmentSamples(t, init, enc)
						clear, err := d.Decrypt(enc, p.keys)
						require.NoError(t, err)
						clearSamples := segmentSamples(t, d.ClearInit(), clear)
						require.Equal(t, len(encSamples), len(clearSamples))
						changed := 0
						for i := range clearSamples {
							if !bytes.Equal(encSamples[i], clearSamples[i]) {
								changed++
							}
						}
						// Every segment really is encrypted: most samples differ from the clear ones.
						require.Greater(t, changed, len(clearSamples)/2, "%s looks unencrypted", f.Path)
						got = append(got, clearSamples...)
					}
					require.Equal(t, len(want), len(got), "%s: sample count (last sample dropped?)", c.id)
					for i := range want {
						require.True(t, bytes.Equal(want[i], got[i]), "%s: sample %d differs after decryption", c.id, i+1)
					}
				}
			})
		}
	}
}

func TestDecryptWrongKey(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 0)
	r := p.rendition(t, "video-640x360")
	d, err := segment.NewDecryptor(p.read(t, r.Files[0].Path))
	require.NoError(t, err)
	_, err = d.Decrypt(p.read(t, r.Files[1].Path), map[[16]byte][]byte{{1}: make([]byte, 16)})
	require.ErrorIs(t, err, segment.ErrNoKey)
	_, err = segment.NewDecryptor([]byte("not an mp4"))
	require.ErrorIs(t, err, segment.ErrBadSegment)
}

// TestCENCIVsNeverRepeat collects every per-sample IV of every cenc track
// under each key and requires them all distinct.
func TestCENCIVsNeverRepeat(t *testing.T) {
	p := packClip(t, segment.SchemeCENC, 8*time.Second)
	seen := map[string]string{}
	for _, r := range p.m.Renditions {
		for _, f := range r.Files {
			if f.Kind != segment.KindMedia {
				continue
			}
			init := p.read(t, initFor(r, f).Path)
			fi, err := mp4.DecodeFile(bytes.NewReader(init))
			require.NoError(t, err)
			fs, err := mp4.DecodeFile(bytes.NewReader(p.read(t, f.Path)))
			require.NoError(t, err)
			require.NoError(t, fs.Segments[0].ParseSenc(fi.Init))
			senc := fs.Segments[0].Fragments[0].Moof.Traf.Senc
			require.NotNil(t, senc, f.Path)
			for i, iv := range senc.IVs {
				k := p.m.Periods[f.Period].KID + "/" + hex.EncodeToString(iv)
				where := f.Path + "#" + string(rune('0'+i%10))
				require.NotContains(t, seen, k, "IV reused under one key: %s and %s", seen[k], where)
				seen[k] = where
			}
		}
	}
	require.Greater(t, len(seen), 500)
}

func TestClearLead(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 0, func(c *segment.Config) { c.ClearLead = 1 })
	require.Equal(t, 1, p.m.ClearLead)
	r := p.rendition(t, "video-640x360")
	init := p.read(t, r.Files[0].Path)
	want := sourceSamples(t, clipPaths(t)[0], "vide")
	first := segmentSamples(t, init, p.read(t, r.Files[1].Path))
	for i := range first {
		require.Equal(t, want[i], first[i], "clear-lead sample %d", i)
	}
	second := segmentSamples(t, init, p.read(t, r.Files[2].Path))
	require.NotEqual(t, want[len(first)], second[0], "segment 2 must be encrypted")
}

// TestPackBadInput feeds the packager inputs it must refuse, and checks that
// each refusal says so clearly and leaves nothing behind.
func TestPackBadInput(t *testing.T) {
	clip := clipPaths(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mp4")
	require.NoError(t, os.WriteFile(garbage, []byte("this is not an mp4 file at all"), 0o644))
	avc3 := rewriteClip(t, dir, "avc3.mp4", func(f *mp4.File) {
		for _, tr := range f.Moov.Traks {
			if tr.Mdia.Hdlr.HandlerType == "vide" {
				tr.Mdia.Minf.Stbl.Stsd.AvcX.SetType("avc3")
			}
		}
	})
	mp4v := rewriteClip(t, dir, "mp4v.mp4", func(f *mp4.File) {
		for _, tr := range f.Moov.Traks {
			if tr.Mdia.Hdlr.HandlerType == "vide" {
				tr.Mdia.Minf.Stbl.Stsd.AvcX.SetType("mp4v")
			}
		}
	})
	noSync := rewriteClip(t, dir, "nosync.mp4", func(f *mp4.File) {
		for _, tr := range f.Moov.Traks {
			if tr.Mdia.Hdlr.HandlerType == "vide" {
				tr.Mdia.Minf.Stbl.Stss.SampleNumber = tr.Mdia.Minf.Stbl.Stss.SampleNumber[1:]
			}
		}
	})
	// A rendition whose keyframe at 4 s is gone no longer lines up.
	misaligned := rewriteClip(t, dir, "misaligned.mp4", func(f *mp4.File) {
		for _, tr := range f.Moov.Traks {
			if tr.Mdia.Hdlr.HandlerType == "vide" {
				var keep []uint32
				for _, n := range tr.Mdia.Minf.Stbl.Stss.SampleNumber {
					if n != 97 {
						keep = append(keep, n)
					}
				}
				tr.Mdia.Minf.Stbl.Stss.SampleNumber = keep
			}
		}
	}, clip[1])
	dynamicMPD := filepath.Join(dir, "live.mpd")
	require.NoError(t, os.WriteFile(dynamicMPD, []byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic"><Period/></MPD>`), 0o644))
	tsHLS := filepath.Join(dir, "ts.m3u8")
	require.NoError(t, os.WriteFile(tsHLS, []byte("#EXTM3U\n#EXTINF:4,\nseg1.ts\n#EXT-X-ENDLIST\n"), 0o644))
	absHLS := filepath.Join(dir, "abs.m3u8")
	require.NoError(t, os.WriteFile(absHLS, []byte("#EXTM3U\n#EXT-X-MAP:URI=\"/etc/passwd\"\n#EXTINF:4,\n1.m4s\n"), 0o644))
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		inputs []string
		mod    func(*segment.Config)
		want   error
		msg    string
	}{
		{"missing file", []string{filepath.Join(dir, "nope.mp4")}, nil, os.ErrNotExist, "open input"},
		{"not mp4", []string{garbage}, nil, segment.ErrUnsupportedInput, "not a readable MP4"},
		{"avc3", []string{avc3}, nil, segment.ErrUnsupportedInput, "avc1"},
		{"unsupported codec", []string{mp4v}, nil, segment.ErrUnsupportedInput, "is not supported; use H.264"},
		{"no sync samples", []string{noSync}, nil, segment.ErrNoSyncSamples, "keyframe"},
		{"misaligned renditions", []string{clip[0], misaligned}, nil, segment.ErrMismatchedRenditions, "same keyframe interval"},
		{"live dash input", []string{dynamicMPD}, nil, segment.ErrUnsupportedInput, "dynamic"},
		{"hls without init", []string{tsHLS}, nil, segment.ErrUnsupportedInput, "EXT-X-MAP"},
		{"hls escaping its folder", []string{absHLS}, nil, segment.ErrUnsupportedInput, "relative file URIs"},
		{"bad content id", clip, func(c *segment.Config) { c.ContentID = "../etc" }, nil, "content ID"},
		{"bad scheme", clip, func(c *segment.Config) { c.Scheme = "aes128" }, nil, "use cbcs or cenc"},
		{"crypto period too short", clip, func(c *segment.Config) { c.CryptoPeriod = time.Second }, nil, "crypto period"},
		{"existing foreign output", clip, func(c *segment.Config) {
			os.MkdirAll(c.OutDir, 0o755)
			os.WriteFile(filepath.Join(c.OutDir, "index.html"), []byte("origin"), 0o644)
			c.Force = true
		}, segment.ErrForeignOutput, "--force replaces only sealmesh output"},
		{"key source fails", clip, func(c *segment.Config) {
			c.Keys = func(int) (segment.Key, error) { return segment.Key{}, errors.New("store locked") }
		}, nil, "store locked"},
		{"commit hook fails", clip, func(c *segment.Config) {
			c.BeforeCommit = func(*segment.Manifest) error { return errors.New("keys not registered") }
		}, nil, "keys not registered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			cfg := segment.Config{
				Inputs: tc.inputs, OutDir: filepath.Join(parent, "out"), ContentID: "c", Signer: priv, SigningKeyID: "k",
				Keys: func(int) (segment.Key, error) { return randomKey(t), nil },
			}
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			existed := dirExists(cfg.OutDir)
			_, err := segment.Pack(context.Background(), cfg)
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			require.Contains(t, err.Error(), tc.msg)
			entries, _ := os.ReadDir(parent)
			if existed {
				require.Len(t, entries, 1, "only the pre-existing output may remain")
			} else {
				require.Empty(t, entries, "a failed run must leave nothing behind")
			}
		})
	}
}

func dirExists(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }

// rewriteClip decodes a clip, lets mod change its boxes and writes it to dir/name.
func rewriteClip(t *testing.T, dir, name string, mod func(*mp4.File), src ...string) string {
	t.Helper()
	in := clipPaths(t)[0]
	if len(src) > 0 {
		in = src[0]
	}
	data, err := os.ReadFile(in)
	require.NoError(t, err)
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	require.NoError(t, err)
	mod(f)
	out := filepath.Join(dir, name)
	require.NoError(t, mp4.WriteToFile(f, out))
	return out
}

func TestPackPlaylists(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 8*time.Second, func(c *segment.Config) { c.LicenseURL = "https://lic.example/v1/clearkey" })
	master := string(p.read(t, segment.HLSMaster))
	require.Contains(t, master, `CODECS="avc1.64001E,mp4a.40.2",RESOLUTION=640x360,AUDIO="audio"`)
	media := string(p.read(t, "video-640x360/index.m3u8"))
	require.Contains(t, media, `#EXT-X-KEY:METHOD=SAMPLE-AES,URI="https://lic.example/v1/clearkey?kid=`+p.m.Periods[1].KID+`",KEYID=0x`+p.m.Periods[1].KID+`,KEYFORMAT="org.w3.clearkey"`)
	require.Contains(t, media, `#EXT-X-MAP:URI="init-1.mp4"`)
	require.Contains(t, media, "#EXT-X-ENDLIST")
	// The MPD: see TestDASHManifest.
	cenc := packClip(t, segment.SchemeCENC, 0)
	require.Contains(t, string(cenc.read(t, "audio/index.m3u8")), "METHOD=SAMPLE-AES-CTR")
}

func kidUUID(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
