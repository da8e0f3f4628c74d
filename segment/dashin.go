package segment

import (
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"
)

// The subset of a static DASH MPD that describes a clear fMP4 ladder:
// one Period, Representations addressed by SegmentTemplate (with or without
// SegmentTimeline) or SegmentList.
type mpdDoc struct {
	Type     string      `xml:"type,attr"`
	Duration string      `xml:"mediaPresentationDuration,attr"`
	BaseURL  []string    `xml:"BaseURL"`
	Periods  []mpdPeriod `xml:"Period"`
}

type mpdPeriod struct {
	BaseURL []string  `xml:"BaseURL"`
	Sets    []mpdASet `xml:"AdaptationSet"`
}

type mpdASet struct {
	ContentType string       `xml:"contentType,attr"`
	MimeType    string       `xml:"mimeType,attr"`
	Protection  []struct{}   `xml:"ContentProtection"`
	Template    *mpdTemplate `xml:"SegmentTemplate"`
	List        *mpdList     `xml:"SegmentList"`
	Reps        []mpdRep     `xml:"Representation"`
}

type mpdRep struct {
	ID         string       `xml:"id,attr"`
	Bandwidth  string       `xml:"bandwidth,attr"`
	MimeType   string       `xml:"mimeType,attr"`
	BaseURL    []string     `xml:"BaseURL"`
	Protection []struct{}   `xml:"ContentProtection"`
	Template   *mpdTemplate `xml:"SegmentTemplate"`
	List       *mpdList     `xml:"SegmentList"`
}

type mpdTemplate struct {
	Timescale      uint64 `xml:"timescale,attr"`
	Duration       uint64 `xml:"duration,attr"`
	StartNumber    *int   `xml:"startNumber,attr"`
	Initialization string `xml:"initialization,attr"`
	Media          string `xml:"media,attr"`
	Timeline       *struct {
		S []struct {
			T *uint64 `xml:"t,attr"`
			D uint64  `xml:"d,attr"`
			R int     `xml:"r,attr"`
		} `xml:"S"`
	} `xml:"SegmentTimeline"`
}

type mpdList struct {
	Init *struct {
		URL string `xml:"sourceURL,attr"`
	} `xml:"Initialization"`
	URLs []struct {
		Media string `xml:"media,attr"`
	} `xml:"SegmentURL"`
}

// Bounds on what an input MPD may make the packager read.
const maxMPDSegments = 100_000

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
	var doc mpdDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("%w: %s is not a DASH MPD: %v", ErrUnsupportedInput, path, err)
	}
	if doc.Type == "dynamic" {
		return nil, nil, fmt.Errorf("%w: %s is a live (dynamic) MPD; give a static one", ErrUnsupportedInput, path)
	}
	if len(doc.Periods) != 1 {
		return nil, nil, fmt.Errorf("%w: %s has %d Periods; only single-Period MPDs are supported", ErrUnsupportedInput, path, len(doc.Periods))
	}
	if len(doc.BaseURL)+len(doc.Periods[0].BaseURL) > 0 {
		return nil, nil, fmt.Errorf("%w: %s uses BaseURL; only files beside the MPD are supported", ErrUnsupportedInput, path)
	}
	l := &hlsLadder{segFiles: map[*track][]string{}, trex: map[*track]*mp4.TrexBox{}, loc: map[*track][]sampleLoc{}}
	var tracks []*track
	for _, set := range doc.Periods[0].Sets {
		for _, rep := range set.Reps {
			if len(set.Protection)+len(rep.Protection) > 0 {
				return nil, nil, fmt.Errorf("%w: %s: representation %q is already encrypted; use --import instead", ErrUnsupportedInput, path, rep.ID)
			}
			if len(rep.BaseURL) > 0 {
				return nil, nil, fmt.Errorf("%w: %s: representation %q uses BaseURL; only files beside the MPD are supported", ErrUnsupportedInput, path, rep.ID)
			}
			initURI, media, err := mpdFiles(set, rep, doc.Duration)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: %s: representation %q: %v", ErrUnsupportedInput, path, rep.ID, err)
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

var tmplVar = regexp.MustCompile(`\$(RepresentationID|Number|Bandwidth|Time)(%0(\d+)d)?\$`)

func fillTemplate(tmpl string, rep mpdRep, number int, t uint64) (string, error) {
	if strings.Contains(tmpl, "$Time$") && t == math.MaxUint64 {
		return "", fmt.Errorf("template %q uses $Time$ without a SegmentTimeline", tmpl)
	}
	out := tmplVar.ReplaceAllStringFunc(tmpl, func(m string) string {
		sub := tmplVar.FindStringSubmatch(m)
		var v string
		switch sub[1] {
		case "RepresentationID":
			return rep.ID
		case "Bandwidth":
			v = rep.Bandwidth
		case "Number":
			v = strconv.Itoa(number)
		case "Time":
			v = strconv.FormatUint(t, 10)
		}
		if sub[3] != "" {
			w, _ := strconv.Atoi(sub[3])
			for len(v) < w {
				v = "0" + v
			}
		}
		return v
	})
	return strings.ReplaceAll(out, "$$", "$"), nil
}

// mpdFiles lists a representation's init and media file URIs in order.
func mpdFiles(set mpdASet, rep mpdRep, duration string) (string, []string, error) {
	if rep.List != nil || (rep.Template == nil && set.List != nil) {
		list := rep.List
		if list == nil {
			list = set.List
		}
		if list.Init == nil || list.Init.URL == "" {
			return "", nil, fmt.Errorf("SegmentList without Initialization sourceURL")
		}
		var media []string
		for _, u := range list.URLs {
			media = append(media, u.Media)
		}
		if len(media) == 0 || len(media) > maxMPDSegments {
			return "", nil, fmt.Errorf("SegmentList with %d segments", len(media))
		}
		return list.Init.URL, media, nil
	}
	tmpl := rep.Template
	if tmpl == nil {
		tmpl = set.Template
	}
	if tmpl == nil || tmpl.Media == "" || tmpl.Initialization == "" {
		return "", nil, fmt.Errorf("no SegmentTemplate (with media and initialization) or SegmentList")
	}
	init, err := fillTemplate(tmpl.Initialization, rep, 0, 0)
	if err != nil {
		return "", nil, err
	}
	number := 1
	if tmpl.StartNumber != nil {
		number = *tmpl.StartNumber
	}
	var media []string
	add := func(t uint64) error {
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
	if tmpl.Timeline != nil {
		var t uint64
		for _, s := range tmpl.Timeline.S {
			if s.T != nil {
				t = *s.T
			}
			if s.R < 0 {
				return "", nil, fmt.Errorf("open-ended SegmentTimeline repeat (r=-1) is not supported")
			}
			for range s.R + 1 {
				if err := add(t); err != nil {
					return "", nil, err
				}
				t += s.D
			}
		}
		return init, media, nil
	}
	if tmpl.Duration == 0 {
		return "", nil, fmt.Errorf("SegmentTemplate has neither SegmentTimeline nor duration")
	}
	total, err := parseISODuration(duration)
	if err != nil {
		return "", nil, fmt.Errorf("mediaPresentationDuration: %v", err)
	}
	ts := float64(max(tmpl.Timescale, 1))
	n := int(math.Ceil(total*ts/float64(tmpl.Duration) - 1e-9))
	for range n {
		if err := add(math.MaxUint64); err != nil {
			return "", nil, err
		}
	}
	return init, media, nil
}

var isoDurRe = regexp.MustCompile(`^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$`)

func parseISODuration(s string) (float64, error) {
	m := isoDurRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a PT..H..M..S duration", s)
	}
	var sec float64
	for i, mult := range []float64{3600, 60, 1} {
		if m[i+1] != "" {
			v, _ := strconv.ParseFloat(m[i+1], 64)
			sec += v * mult
		}
	}
	return sec, nil
}
