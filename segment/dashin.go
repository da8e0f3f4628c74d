package segment

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Bounds on what an input MPD may make the packager read, and on a
// template's %0Nd width (no file name needs more; a wider one would only
// make the packager build long strings).
const (
	maxMPDSegments   = 100_000
	maxTemplateWidth = 32
)

func openDASHLadder(path string) (sampleSource, []*track, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	if st.Size() > maxLadderPlaylist {
		return nil, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrUnsupportedInput, path, maxLadderPlaylist)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	if err := wellFormedXML(data); err != nil {
		return nil, nil, fmt.Errorf("%w: %s is not a DASH MPD: %v", ErrUnsupportedInput, path, err)
	}
	doc, err := mpd.MPDFromBytes(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s is not a DASH MPD: %v", ErrUnsupportedInput, path, err)
	}
	if doc.GetType() == mpd.DYNAMIC_TYPE {
		return nil, nil, fmt.Errorf("%w: %s is a live (dynamic) MPD; give a static one", ErrUnsupportedInput, path)
	}
	if len(doc.Periods) != 1 {
		return nil, nil, fmt.Errorf("%w: %s has %d Periods; only single-Period MPDs are supported", ErrUnsupportedInput, path, len(doc.Periods))
	}
	if len(doc.BaseURL)+len(doc.Periods[0].BaseURLs) > 0 {
		return nil, nil, fmt.Errorf("%w: %s uses BaseURL; only files beside the MPD are supported", ErrUnsupportedInput, path)
	}
	l := &hlsLadder{segFiles: map[*track][]string{}, trex: map[*track]*mp4.TrexBox{}, loc: map[*track][]sampleLoc{}}
	var tracks []*track
	for _, set := range doc.Periods[0].AdaptationSets {
		for _, rep := range set.Representations {
			if len(set.ContentProtections)+len(rep.ContentProtections) > 0 {
				return nil, nil, fmt.Errorf("%w: %s: representation %q is already encrypted; use --import instead", ErrUnsupportedInput, path, rep.Id)
			}
			if len(rep.BaseURLs)+len(set.BaseURLs) > 0 {
				return nil, nil, fmt.Errorf("%w: %s: representation %q uses BaseURL; only files beside the MPD are supported", ErrUnsupportedInput, path, rep.Id)
			}
			initURI, media, err := mpdFiles(set, rep, doc.MediaPresentationDuration)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: %s: representation %q: %v", ErrUnsupportedInput, path, rep.Id, err)
			}
			initPath, err := localRef(path, initURI)
			if err != nil {
				return nil, nil, err
			}
			var segs []string
			for _, m := range media {
				p, err := localRef(path, m)
				if err != nil {
					return nil, nil, err
				}
				segs = append(segs, p)
			}
			t, err := l.openTrack(path, initPath, segs)
			if err != nil {
				return nil, nil, err
			}
			tracks = append(tracks, t)
		}
	}
	if len(tracks) == 0 {
		return nil, nil, fmt.Errorf("%w: %s has no Representation", ErrUnsupportedInput, path)
	}
	return l, tracks, nil
}

// wellFormedXML checks data with the standard library's decoder before the
// DASH library's decoder (a fork of encoding/xml, v0.17.0) sees it: the
// fork spins forever on a raw '>' in character data (legal XML, e.g.
// <BaseURL>a>b</BaseURL>; FuzzLadderInput found it, its inputs are kept as
// seeds), and a packager that hangs on bad input is worse than one that
// refuses it. Accepted here: strict syntax, one root element, no text
// outside it, every element closed, and no raw '>' in text (write &gt;).
func wellFormedXML(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	depth, roots := 0, 0
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if depth != 0 || roots != 1 {
				return fmt.Errorf("XML document with %d root elements and %d unclosed", roots, depth)
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return errors.New("text outside the root element")
			}
			raw := data[start:d.InputOffset()]
			if !bytes.HasPrefix(raw, []byte("<![CDATA[")) && bytes.IndexByte(raw, '>') >= 0 {
				return fmt.Errorf("line %d: a raw '>' in text; write &gt;", 1+bytes.Count(data[:start], []byte("\n")))
			}
		}
	}
}

// fillTemplate expands a SegmentTemplate's $identifier$s (ISO/IEC
// 23009-1 5.3.9.4.4) in one pass over tmpl; t is nil without a
// SegmentTimeline, where $Time$ has no value.
func fillTemplate(tmpl string, rep *mpd.RepresentationType, number uint64, t *uint64) (string, error) {
	var b strings.Builder
	for rest := tmpl; rest != ""; {
		i := strings.IndexByte(rest, '$')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		j := strings.IndexByte(rest[i+1:], '$')
		if j < 0 {
			return "", fmt.Errorf("template %q: unpaired $", tmpl)
		}
		ident := rest[i+1 : i+1+j]
		rest = rest[i+2+j:]
		if ident == "" { // $$ is a literal $
			b.WriteByte('$')
			continue
		}
		name, format, hasFormat := strings.Cut(ident, "%")
		width := 0
		if hasFormat {
			w, ok := strings.CutSuffix(strings.TrimPrefix(format, "0"), "d")
			n, err := strconv.Atoi(w)
			if !ok || err != nil || n < 1 || !strings.HasPrefix(format, "0") {
				return "", fmt.Errorf("template %q: format %%%s is not %%0Nd", tmpl, format)
			}
			if n > maxTemplateWidth {
				return "", fmt.Errorf("template %q: width %d is wider than %d", tmpl, n, maxTemplateWidth)
			}
			width = n
		}
		var v string
		switch name {
		case "RepresentationID":
			if hasFormat {
				return "", fmt.Errorf("template %q: $RepresentationID$ takes no format", tmpl)
			}
			b.WriteString(rep.Id)
			continue
		case "Bandwidth":
			v = strconv.FormatUint(uint64(rep.Bandwidth), 10)
		case "Number":
			v = strconv.FormatUint(number, 10)
		case "Time":
			if t == nil {
				return "", fmt.Errorf("template %q uses $Time$ without a SegmentTimeline", tmpl)
			}
			v = strconv.FormatUint(*t, 10)
		default:
			return "", fmt.Errorf("template %q: unknown identifier $%s$", tmpl, ident)
		}
		if pad := width - len(v); pad > 0 {
			b.WriteString(strings.Repeat("0", pad))
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// mpdFiles lists a representation's init and media file URIs in order.
func mpdFiles(set *mpd.AdaptationSetType, rep *mpd.RepresentationType, duration *mpd.Duration) (string, []string, error) {
	if rep.SegmentList != nil || (rep.SegmentTemplate == nil && set.SegmentList != nil) {
		list := rep.SegmentList
		if list == nil {
			list = set.SegmentList
		}
		if list.Initialization == nil || list.Initialization.SourceURL == "" {
			return "", nil, fmt.Errorf("SegmentList without Initialization sourceURL")
		}
		if len(list.SegmentURL) == 0 || len(list.SegmentURL) > maxMPDSegments {
			return "", nil, fmt.Errorf("SegmentList with %d segments", len(list.SegmentURL))
		}
		var media []string
		for _, u := range list.SegmentURL {
			if u.MediaRange != "" {
				return "", nil, fmt.Errorf("SegmentURL with mediaRange (byte ranges) is not supported")
			}
			media = append(media, string(u.Media))
		}
		return string(list.Initialization.SourceURL), media, nil
	}
	tmpl := rep.SegmentTemplate
	if tmpl == nil {
		tmpl = set.SegmentTemplate
	}
	if tmpl == nil || tmpl.Media == "" || tmpl.Initialization == "" {
		return "", nil, fmt.Errorf("no SegmentTemplate (with media and initialization) or SegmentList")
	}
	init, err := fillTemplate(tmpl.Initialization, rep, 0, nil)
	if err != nil {
		return "", nil, err
	}
	number := uint64(1)
	if tmpl.StartNumber != nil {
		number = uint64(*tmpl.StartNumber)
	}
	var media []string
	add := func(t *uint64) error {
		if len(media) >= maxMPDSegments {
			return fmt.Errorf("more than %d segments", maxMPDSegments)
		}
		m, err := fillTemplate(tmpl.Media, rep, number, t)
		if err != nil {
			return err
		}
		media = append(media, m)
		number++
		return nil
	}
	if tl := tmpl.SegmentTimeline; tl != nil {
		var t uint64
		for _, s := range tl.S {
			if s.T != nil {
				t = *s.T
			}
			if s.R < 0 {
				return "", nil, fmt.Errorf("open-ended SegmentTimeline repeat (r=-1) is not supported")
			}
			if s.R >= maxMPDSegments {
				return "", nil, fmt.Errorf("more than %d segments", maxMPDSegments)
			}
			for range s.R + 1 {
				if err := add(&t); err != nil {
					return "", nil, err
				}
				t += s.D
			}
		}
		return init, media, nil
	}
	if tmpl.Duration == nil || *tmpl.Duration == 0 {
		return "", nil, fmt.Errorf("SegmentTemplate has neither SegmentTimeline nor duration")
	}
	if duration == nil {
		return "", nil, fmt.Errorf("SegmentTemplate@duration without mediaPresentationDuration")
	}
	ts := float64(tmpl.GetTimescale())
	n := math.Ceil(duration.Seconds()*ts/float64(*tmpl.Duration) - 1e-9)
	if !(n >= 1 && n <= maxMPDSegments) {
		return "", nil, fmt.Errorf("%.0f segments", n)
	}
	for range int(n) {
		if err := add(nil); err != nil {
			return "", nil, err
		}
	}
	return init, media, nil
}
