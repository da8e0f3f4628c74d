package segment

import (
	"strings"
	"testing"

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
		time          *uint64
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
