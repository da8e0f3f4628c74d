package segment

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// FuzzLadderInput fuzzes the parsers of clear HLS and DASH ladders that
// `sealmesh pack --in` reads (openHLSLadder, openDASHLadder) with the bytes
// of a playlist or MPD, written to a temp folder that also holds a real
// clear ladder (the 360p test clip packed, then decrypted) so that inputs
// can reach the init and segment parsers. Seeds: the packager's own HLS
// output, a clear fMP4 HLS ladder, ffmpeg-style DASH (SegmentTemplate with
// and without SegmentTimeline, SegmentList), and references that climb out
// of the playlist's folder.
//
// Neither parser may panic, and neither may read a file outside the input
// playlist's folder: a copy of the ladder sits one level up (decoys), and
// reading any decoy fails the target (seen through its access time, which
// the test resets to long before its modification time so that relatime
// updates it), as does a parsed track naming a file outside the folder.
func FuzzLadderInput(f *testing.F) {
	root := f.TempDir()
	in := filepath.Join(root, "in")
	seeds := buildLadderFixture(f, in)
	for _, s := range seeds {
		f.Add(s)
	}
	decoys := copyTree(f, in, root)
	atimeWorks := resetATimes(f, decoys)

	f.Fuzz(func(t *testing.T, input []byte) {
		for _, name := range []string{"input.m3u8", "input.mpd"} {
			p := filepath.Join(in, name)
			if err := os.WriteFile(p, input, 0o644); err != nil {
				t.Fatal(err)
			}
			var src sampleSource
			var err error
			if name == "input.m3u8" {
				src, _, err = openHLSLadder(p)
			} else {
				src, _, err = openDASHLadder(p)
			}
			if atimeWorks {
				if read := readDecoys(decoys); len(read) > 0 {
					resetATimes(t, decoys)
					t.Fatalf("%s: parsing read files outside the input folder: %v", name, read)
				}
			}
			if err == nil {
				l := src.(*hlsLadder)
				for _, segs := range l.segFiles {
					for _, s := range segs {
						if rel, rerr := filepath.Rel(in, s); rerr != nil || !filepath.IsLocal(rel) {
							t.Fatalf("%s: a track reads %s, outside the input folder %s", name, s, in)
						}
					}
				}
				_ = src.close()
			}
		}
	})
}

// buildLadderFixture packs the 360p clip into in/packaged, writes its clear
// ladder into in/clear-<rendition>/ and ffmpeg-DASH-named copies into in/,
// and returns the seed playlists.
func buildLadderFixture(tb testing.TB, in string) [][]byte {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	clip := filepath.Join(filepath.Dir(filepath.Dir(file)), "testdata", "clip", "360p.mp4")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := NewKey([16]byte{1}, bytes.Repeat([]byte{7}, 16))
	if err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(in, "packaged")
	res, err := Pack(context.Background(), Config{
		Inputs: []string{clip}, OutDir: out, ContentID: "fuzz", Signer: priv, SigningKeyID: "k",
		Keys: func(int) (Key, error) { return key, nil },
	})
	if err != nil {
		tb.Fatal(err)
	}
	keys := map[[16]byte][]byte{key.KID(): key.InsecureRawKey()}
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(rel)))
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	write := func(rel string, b []byte) {
		p := filepath.Join(in, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}

	var seeds [][]byte
	var master, mpdTimeline, mpdList, mpdDuration strings.Builder
	master.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
	mpdHead := `<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="PT%.1fS" minBufferTime="PT4.0S">
	<Period id="0" start="PT0.0S">
`
	for _, b := range []*strings.Builder{&mpdTimeline, &mpdList, &mpdDuration} {
		fmt.Fprintf(b, mpdHead, res.Manifest.Duration)
	}
	for ri, r := range res.Manifest.Renditions {
		d, err := NewDecryptor(read(r.Files[0].Path))
		if err != nil {
			tb.Fatal(err)
		}
		dir := "clear-" + r.ID
		write(dir+"/init.mp4", d.ClearInit())
		write(fmt.Sprintf("init-stream%d.m4s", ri), d.ClearInit())
		var media strings.Builder
		media.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n")
		mime := "video/mp4"
		if r.Type == "audio" {
			mime = "audio/mp4"
		}
		fmt.Fprintf(&mpdTimeline, "\t\t<AdaptationSet id=\"%d\" contentType=\"%s\" segmentAlignment=\"true\">\n\t\t\t<Representation id=\"%d\" mimeType=\"%s\" codecs=\"%s\" bandwidth=\"%d\">\n"+
			"\t\t\t\t<SegmentTemplate timescale=\"%d\" initialization=\"init-stream$RepresentationID$.m4s\" media=\"chunk-stream$RepresentationID$-$Number%%05d$.m4s\" startNumber=\"1\">\n\t\t\t\t\t<SegmentTimeline>\n",
			ri, r.Type, ri, mime, r.Codec, r.Bandwidth, r.Timescale)
		fmt.Fprintf(&mpdDuration, "\t\t<AdaptationSet id=\"%d\" contentType=\"%s\">\n\t\t\t<Representation id=\"%d\" mimeType=\"%s\" bandwidth=\"%d\">\n"+
			"\t\t\t\t<SegmentTemplate timescale=\"%d\" duration=\"%d\" initialization=\"init-stream$RepresentationID$.m4s\" media=\"chunk-stream$RepresentationID$-$Number%%05d$.m4s\" startNumber=\"1\"/>\n\t\t\t</Representation>\n\t\t</AdaptationSet>\n",
			ri, r.Type, ri, mime, r.Bandwidth, r.Timescale, 4*r.Timescale)
		fmt.Fprintf(&mpdList, "\t\t<AdaptationSet id=\"%d\" contentType=\"%s\">\n\t\t\t<Representation id=\"%d\" mimeType=\"%s\" bandwidth=\"%d\">\n\t\t\t\t<SegmentList timescale=\"%d\" duration=\"%d\">\n\t\t\t\t\t<Initialization sourceURL=\"init-stream%d.m4s\"/>\n",
			ri, r.Type, ri, mime, r.Bandwidth, r.Timescale, 4*r.Timescale, ri)
		var t uint64
		for _, fl := range r.Files {
			if fl.Kind != KindMedia {
				continue
			}
			d, err := NewDecryptor(read(r.Files[0].Path))
			if err != nil {
				tb.Fatal(err)
			}
			clear, err := d.Decrypt(read(fl.Path), keys)
			if err != nil {
				tb.Fatal(err)
			}
			name := fmt.Sprintf("seg_%03d.mp4", fl.Index)
			write(dir+"/"+name, clear)
			chunk := fmt.Sprintf("chunk-stream%d-%05d.m4s", ri, fl.Index)
			write(chunk, clear)
			fmt.Fprintf(&media, "#EXTINF:%.3f,\n%s\n", fl.Duration, name)
			dur := uint64(fl.Duration * float64(r.Timescale))
			fmt.Fprintf(&mpdTimeline, "\t\t\t\t\t\t<S t=\"%d\" d=\"%d\" />\n", t, dur)
			fmt.Fprintf(&mpdList, "\t\t\t\t\t<SegmentURL media=\"%s\"/>\n", chunk)
			t += dur
		}
		media.WriteString("#EXT-X-ENDLIST\n")
		write(dir+"/media.m3u8", []byte(media.String()))
		mpdTimeline.WriteString("\t\t\t\t\t</SegmentTimeline>\n\t\t\t\t</SegmentTemplate>\n\t\t\t</Representation>\n\t\t</AdaptationSet>\n")
		mpdList.WriteString("\t\t\t\t</SegmentList>\n\t\t\t</Representation>\n\t\t</AdaptationSet>\n")
		if r.Type == "audio" {
			fmt.Fprintf(&master, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",DEFAULT=YES,URI=\"%s/media.m3u8\"\n", dir)
		} else {
			fmt.Fprintf(&master, "#EXT-X-STREAM-INF:BANDWIDTH=%d,CODECS=\"%s\",AUDIO=\"a\"\n%s/media.m3u8\n", r.Bandwidth, r.Codec, dir)
		}
		// A media playlist as the input itself (paths relative to in/).
		seeds = append(seeds, []byte(strings.ReplaceAll(strings.ReplaceAll(media.String(), "URI=\"init.mp4\"", "URI=\""+dir+"/init.mp4\""), "seg_", dir+"/seg_")))
	}
	for _, b := range []*strings.Builder{&mpdTimeline, &mpdList, &mpdDuration} {
		b.WriteString("\t</Period>\n</MPD>\n")
	}
	write("master.m3u8", []byte(master.String()))
	// The fixture must be one the parsers accept, or the fuzzer explores
	// only refusals.
	for name, text := range map[string]string{"check.mpd": mpdTimeline.String(), "check-list.mpd": mpdList.String(), "check-dur.mpd": mpdDuration.String()} {
		write(name, []byte(text))
		if _, tracks, err := openDASHLadder(filepath.Join(in, name)); err != nil || len(tracks) != len(res.Manifest.Renditions) {
			tb.Fatalf("the DASH seed %s does not parse: %v", name, err)
		}
		_ = os.Remove(filepath.Join(in, name))
	}
	if _, tracks, err := openHLSLadder(filepath.Join(in, "master.m3u8")); err != nil || len(tracks) != len(res.Manifest.Renditions) {
		tb.Fatalf("the HLS seed does not parse: %v", err)
	}
	seeds = append(seeds,
		[]byte(master.String()),
		[]byte(mpdTimeline.String()), []byte(mpdList.String()), []byte(mpdDuration.String()),
		// The packager's own (encrypted) output: refused, with advice.
		read(HLSMaster), read(DASHManifest),
		// References that climb out of the input folder.
		[]byte(strings.ReplaceAll(master.String(), "clear-", "../clear-")),
		[]byte(strings.ReplaceAll(mpdTimeline.String(), `initialization="init-stream`, `initialization="../init-stream`)),
		[]byte("#EXTM3U\n#EXT-X-MAP:URI=\"../clear-audio/init.mp4\"\n#EXTINF:4,\n../../../../../../../../etc/hostname\n"),
	)
	// The packager's HLS output, with its paths made relative to in/.
	for _, p := range res.Manifest.Playlists {
		b := read(p.Path)
		if strings.HasSuffix(p.Path, ".m3u8") && strings.Contains(p.Path, "/") {
			seeds = append(seeds, bytes.ReplaceAll(b, []byte("URI=\""), []byte("URI=\"packaged/"+filepath.Dir(p.Path)+"/")))
		}
	}
	return seeds
}

// copyTree copies every regular file under from to the same relative path
// under to (skipping from itself when it lies under to) and returns the copies.
func copyTree(tb testing.TB, from, to string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out = append(out, dst)
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

var decoyATime = time.Unix(1_000_000_000, 0)

// resetATimes sets every file's access time far before its modification
// time, so that the next read updates it (relatime), and reports whether
// the file system does update it.
func resetATimes(tb testing.TB, files []string) bool {
	tb.Helper()
	now := time.Now()
	for _, p := range files {
		if err := os.Chtimes(p, decoyATime, now); err != nil {
			tb.Fatal(err)
		}
	}
	if len(files) == 0 {
		return false
	}
	if _, err := os.ReadFile(files[0]); err != nil {
		tb.Fatal(err)
	}
	works := len(readDecoys(files[:1])) == 1
	if err := os.Chtimes(files[0], decoyATime, now); err != nil {
		tb.Fatal(err)
	}
	if !works {
		tb.Log("this file system does not update access times: only the parsed tracks' paths are checked")
	}
	return works
}
