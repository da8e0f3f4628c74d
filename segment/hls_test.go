package segment_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

// TestHLSRoundTrip writes playlists, parses them back and gets the same
// values.
func TestHLSRoundTrip(t *testing.T) {
	kid := "0x00112233445566778899aabbccddeeff"
	cases := map[string]struct {
		mv *segment.HLSMultivariant
		md *segment.HLSMedia
	}{
		"ladder": {mv: &segment.HLSMultivariant{Version: 7, IndependentSegments: true,
			Media: []segment.HLSRendition{
				{Type: "AUDIO", GroupID: "audio", Name: "en", Language: "en", Default: true, AutoSelect: true, URI: "audio-en/index.m3u8"},
				{Type: "AUDIO", GroupID: "audio", Name: "fr, dubbed", Language: "fr", AutoSelect: true, URI: "audio-fr/index.m3u8"},
			},
			Variants: []segment.HLSVariant{
				{Bandwidth: 505904, AverageBandwidth: 486132, Codecs: "avc1.64001E,mp4a.40.2", Width: 640, Height: 360, Audio: "audio", URI: "video-640x360/index.m3u8"},
				{Bandwidth: 237290, Codecs: "avc1.64000C,mp4a.40.2", Width: 320, Height: 180, Audio: "audio", URI: "video-320x180/index.m3u8"},
			}}},
		"audio only": {mv: &segment.HLSMultivariant{Variants: []segment.HLSVariant{{Bandwidth: 70000, Codecs: "mp4a.40.2", URI: "audio/index.m3u8"}}}},
		"key rotation": {md: &segment.HLSMedia{Version: 7, TargetDuration: 5, MediaSequence: 1, PlaylistType: "VOD", IndependentSegments: true, EndList: true,
			Segments: []segment.HLSSegment{
				{Key: &segment.HLSKey{Method: "SAMPLE-AES", URI: "https://lic.example/v1/clearkey?a=1&kid=00", KeyID: kid, KeyFormat: "org.w3.clearkey", KeyFormatVersions: "1"},
					Map: "init.mp4", Duration: 3.98933, URI: "1.m4s"},
				{Duration: 4.01067, URI: "2.m4s"},
				{Key: &segment.HLSKey{Method: "SAMPLE-AES-CTR", URI: "data:text/plain;base64,ABEiM0RVZneImaq7zN3u/w==", KeyID: kid, KeyFormat: "org.w3.clearkey", KeyFormatVersions: "1"},
					Map: "init-1.mp4", Duration: 4, URI: "3.m4s"},
			}}},
		"clear, no version": {md: &segment.HLSMedia{TargetDuration: 4, Segments: []segment.HLSSegment{{Map: "init.mp4", Duration: 4, URI: "seg 1.m4s"}}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var data []byte
			var err error
			if tc.mv != nil {
				data, err = tc.mv.Encode()
			} else {
				data, err = tc.md.Encode()
			}
			require.NoError(t, err)
			mv, md, err := segment.ParseHLS(data)
			require.NoError(t, err, "%s", data)
			require.Equal(t, tc.mv, mv, "%s", data)
			require.Equal(t, tc.md, md, "%s", data)
		})
	}
}

// TestHLSPackagerOutputRoundTrips parses every playlist the packager
// writes, with and without a license URL, and writes it back byte for byte.
func TestHLSPackagerOutputRoundTrips(t *testing.T) {
	for _, lic := range []string{"https://lic.example/v1/clearkey", "https://lic.example/ck?tenant=a&b=c"} {
		p := packClip(t, segment.SchemeCBCS, 4*time.Second, func(c *segment.Config) { c.LicenseURL = lic })
		n := 0
		for _, f := range p.m.Playlists {
			if !bytes.HasSuffix([]byte(f.Path), []byte(".m3u8")) {
				continue
			}
			n++
			data := p.read(t, f.Path)
			mv, md, err := segment.ParseHLS(data)
			require.NoError(t, err, f.Path)
			var again []byte
			if mv != nil {
				again, err = mv.Encode()
			} else {
				again, err = md.Encode()
				require.Len(t, md.Segments, 3, f.Path)
				require.Equal(t, lic+map[bool]string{true: "&", false: "?"}[strings.Contains(lic, "?")]+"kid="+p.m.Periods[0].KID, md.Segments[0].Key.URI)
			}
			require.NoError(t, err)
			require.Equal(t, string(data), string(again), f.Path)
		}
		require.Equal(t, 1+len(p.m.Renditions), n)
	}
}

func TestParseHLSRejects(t *testing.T) {
	cases := map[string]string{
		"empty":                   "",
		"no EXTM3U":               "#EXT-X-VERSION:7\n",
		"mixed":                   "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXTINF:4,\nb.m4s\n",
		"variant without URI":     "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-ENDLIST\n",
		"segment without URI":     "#EXTM3U\n#EXTINF:4,\n",
		"bad duration":            "#EXTM3U\n#EXTINF:four,\na.m4s\n",
		"NaN duration":            "#EXTM3U\n#EXTINF:NaN,\na.m4s\n",
		"negative duration":       "#EXTM3U\n#EXTINF:-1,\na.m4s\n",
		"unterminated quote":      "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\n#EXTINF:4,\na.m4s\n",
		"map without URI":         "#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n#EXTINF:4,\na.m4s\n",
		"key without METHOD":      "#EXTM3U\n#EXT-X-KEY:URI=\"k\"\n#EXTINF:4,\na.m4s\n",
		"map after last segment":  "#EXTM3U\n#EXTINF:4,\na.m4s\n#EXT-X-MAP:URI=\"init.mp4\"\n",
		"stray URI":               "#EXTM3U\n#EXT-X-TARGETDURATION:4\na.m4s\n",
		"duplicate attribute":     "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,BANDWIDTH=2\na.m3u8\n",
		"bad resolution":          "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=wide\na.m3u8\n",
		"text after quoted value": "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"a\"b\na.m3u8\n",
		"neither":                 "#EXTM3U\n#EXT-X-VERSION:7\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			mv, md, err := segment.ParseHLS([]byte(in))
			require.ErrorIs(t, err, segment.ErrBadPlaylist)
			require.Nil(t, mv)
			require.Nil(t, md)
		})
	}
}

func TestHLSEncodeRefusesWhatItCannotWrite(t *testing.T) {
	for name, pl := range map[string]interface{ Encode() ([]byte, error) }{
		"quote in a license URL": &segment.HLSMedia{Segments: []segment.HLSSegment{{Key: &segment.HLSKey{Method: "SAMPLE-AES", URI: `https://x/"`}, Duration: 1, URI: "a"}}},
		"line break in a URI":    &segment.HLSMedia{Segments: []segment.HLSSegment{{Duration: 1, URI: "a\n#EXT-X-ENDLIST"}}},
		"tag as a URI line":      &segment.HLSMultivariant{Variants: []segment.HLSVariant{{Bandwidth: 1, URI: "#EXT-X-ENDLIST"}}},
		"comma in a token":       &segment.HLSMultivariant{Media: []segment.HLSRendition{{Type: "AUDIO,URI=x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pl.Encode()
			require.True(t, errors.Is(err, segment.ErrBadPlaylist), "%v", err)
		})
	}
}

// FuzzParseHLS: the parser never panics, and whatever it accepts and the
// encoder writes parses back to something that encodes to the same bytes.
func FuzzParseHLS(f *testing.F) {
	for _, s := range []string{
		"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",DEFAULT=YES,URI=\"a/m.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1,mp4a\",RESOLUTION=2x2,AUDIO=\"a\"\nv/m.m3u8\n",
		"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k?kid=1\",KEYID=0x01,KEYFORMAT=\"org.w3.clearkey\"\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.00000,\n1.m4s\n#EXT-X-ENDLIST\n",
		"#EXTM3U\r\n#EXTINF:4,title\r\n a.m4s \r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		mv, md, err := segment.ParseHLS(in)
		if err != nil {
			if mv != nil || md != nil {
				t.Fatal("a playlist returned with an error")
			}
			return
		}
		if (mv == nil) == (md == nil) {
			t.Fatalf("want exactly one playlist, got %v %v", mv, md)
		}
		enc := func(mv *segment.HLSMultivariant, md *segment.HLSMedia) ([]byte, error) {
			if mv != nil {
				return mv.Encode()
			}
			return md.Encode()
		}
		once, err := enc(mv, md)
		if err != nil {
			return // values this encoder refuses to write
		}
		mv2, md2, err := segment.ParseHLS(once)
		if err != nil {
			t.Fatalf("own output does not parse: %v\n%s", err, once)
		}
		twice, err := enc(mv2, md2)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("not stable (%v):\n%s\n---\n%s", err, once, twice)
		}
	})
}
