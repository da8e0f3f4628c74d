package segment

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

func TestKeyURI(t *testing.T) {
	kid := "00112233445566778899aabbccddeeff"
	for _, tc := range []struct{ license, want string }{
		{"https://lic.example/v1/clearkey", "https://lic.example/v1/clearkey?kid=" + kid},
		{"https://lic.example/ck?tenant=a", "https://lic.example/ck?tenant=a&kid=" + kid},
		// No license URL: the KID travels in a data: URI (hls.js reads the
		// first 16 bytes as the KID); the app names the license server.
		{"", "data:text/plain;base64,ABEiM0RVZneImaq7zN3u/w=="},
	} {
		if got := keyURI(tc.license, kid); got != tc.want {
			t.Errorf("keyURI(%q) = %q, want %q", tc.license, got, tc.want)
		}
	}
}

// TestFillTemplate covers the DASH input's $identifier$ expansion. The
// widths are bounded and padding is one strings.Repeat, so a huge %0Nd is
// refused at once instead of building a string one zero at a time.
func TestFillTemplate(t *testing.T) {
	rep := &mpd.RepresentationType{Id: "v1", Bandwidth: 500000}
	ts := uint64(90000)
	cases := map[string]struct {
		tmpl, want, err string
		time            *uint64
	}{
		"plain":          {tmpl: "seg.m4s", want: "seg.m4s"},
		"number":         {tmpl: "$RepresentationID$/$Number$.m4s", want: "v1/7.m4s"},
		"padded":         {tmpl: "chunk-$Number%05d$.m4s", want: "chunk-00007.m4s"},
		"narrow pad":     {tmpl: "$Number%01d$", want: "7"},
		"bandwidth":      {tmpl: "$Bandwidth$-$Number%03d$", want: "500000-007"},
		"time":           {tmpl: "t$Time$.m4s", want: "t90000.m4s", time: &ts},
		"dollar":         {tmpl: "a$$b$Number$", want: "a$b7"},
		"time, no value": {tmpl: "$Time$", err: "without a SegmentTimeline"},
		"unknown":        {tmpl: "$Foo$", err: "unknown identifier"},
		"unpaired":       {tmpl: "a$Number", err: "unpaired"},
		"bad format":     {tmpl: "$Number%5d$", err: "is not %0Nd"},
		"too wide":       {tmpl: "$Number%033d$", err: "wider than"},
		"huge width":     {tmpl: "$Number%0999999999999d$", err: "wider than"},
		"big width":      {tmpl: "$Number%0100000000d$", err: "wider than"},
		"id with format": {tmpl: "$RepresentationID%02d$", err: "takes no format"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := fillTemplate(tc.tmpl, rep, 7, tc.time)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("fillTemplate(%q) = %q, %v; want an error with %q", tc.tmpl, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("fillTemplate(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
			}
		})
	}
}

// TestDASHWriteParse writes the MPD of a packaged clip with key rotation,
// reads it back with the DASH library and expands every Representation's
// SegmentTemplate with the DASH input's own reader (mpdFiles): each period
// lists exactly the init and media files of the signed manifest.
func TestDASHWriteParse(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	clip := filepath.Join(filepath.Dir(filepath.Dir(file)), "testdata", "clip")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	res, err := Pack(t.Context(), Config{
		Inputs: []string{filepath.Join(clip, "360p.mp4"), filepath.Join(clip, "180p.mp4")}, OutDir: out, ContentID: "rt",
		Signer: priv, SigningKeyID: "k", CryptoPeriod: 4 * time.Second, LicenseURL: "https://lic.example/ck",
		Keys: func(int) (Key, error) {
			var kid [16]byte
			raw := make([]byte, KeySize)
			rand.Read(kid[:])
			rand.Read(raw)
			return NewKey(kid, raw)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if len(m.Periods) != 3 {
		t.Fatalf("%d crypto periods, want 3", len(m.Periods))
	}
	doc, err := mpd.ReadFromFile(filepath.Join(out, DASHManifest))
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Periods) != len(m.Periods) {
		t.Fatalf("%d Periods for %d crypto periods", len(doc.Periods), len(m.Periods))
	}
	for p, per := range doc.Periods {
		for _, as := range per.AdaptationSets {
			for _, rep := range as.Representations {
				init, media, err := mpdFiles(as, rep, doc.MediaPresentationDuration)
				if err != nil {
					t.Fatalf("period %d %s: %v", p, rep.Id, err)
				}
				var wantInit string
				var wantMedia []string
				for _, r := range m.Renditions {
					if r.ID != rep.Id {
						continue
					}
					for _, f := range r.Files {
						if f.Period == p && f.Kind == KindInit {
							wantInit = f.Path
						} else if f.Period == p && f.Kind == KindMedia {
							wantMedia = append(wantMedia, f.Path)
						}
					}
				}
				if init != wantInit || strings.Join(media, " ") != strings.Join(wantMedia, " ") {
					t.Errorf("period %d %s: MPD lists %s %v, manifest %s %v", p, rep.Id, init, media, wantInit, wantMedia)
				}
			}
		}
	}
}

// TestWellFormedXML: what the DASH library's decoder would spin on is
// refused first; ordinary MPD text passes.
func TestWellFormedXML(t *testing.T) {
	for in, ok := range map[string]bool{
		`<MPD><Period id="a&gt;b"><![CDATA[x>y]]><!-- a > b --></Period></MPD>`: true,
		`<?xml version="1.0"?>` + "\n<MPD>\n</MPD>\n":                           true,
		`<MPD id="a>b"></MPD>`:                 true,
		`<MPD><BaseURL>a>b</BaseURL></MPD>`:    false, // the library's decoder hangs on this
		`<MPD>a></MPD>`:                        false,
		`?xml <MPD></MPD>`:                     false,
		`<MPD></MPD><MPD></MPD>`:               false,
		`<MPD><Period>`:                        false,
		`<MPD><Period></Px></MPD>`:             false,
		`<MPD><BaseURL>a&gt;b</BaseURL></MPD>`: true,
	} {
		if err := wellFormedXML([]byte(in)); (err == nil) != ok {
			t.Errorf("wellFormedXML(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}
