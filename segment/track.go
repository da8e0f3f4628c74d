package segment

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Errors for inputs the packager cannot use; each message says what to change.
var (
	ErrUnsupportedInput     = errors.New("unsupported input")
	ErrNoSyncSamples        = errors.New("input has no sync samples")
	ErrMismatchedRenditions = errors.New("renditions do not line up")
)

// track is one output CMAF track: its clear sample entry and its segments.
type track struct {
	id        string // output folder name
	kind      string // "video" or "audio"
	codec     string // RFC 6381
	width     int
	height    int
	timescale uint32
	lang      string
	entry     []byte // encoded clear sample entry (avc1, hvc1, mp4a ...)
	src       sampleSource
	segs      []segSpan // one per output media segment
	input     string
	idx       *sampleIndex
	// ladderCuts are the start times of an input ladder's segments; the
	// reference track keeps them, other tracks are cut to match.
	ladderCuts []uint64
	// base is subtracted from the source's decode times so that every
	// output track starts at zero on a timeline shared with the others.
	base uint64
}

// sampleIndex is the timing of a track's samples, whatever the source.
type sampleIndex struct {
	dts  []uint64 // decode time of sample i+1; dts[n] is the end time
	sync []bool   // sync flag of sample i+1
}

func (x *sampleIndex) n() int { return len(x.sync) }

// syncTimes returns the decode times of the sync samples and the end time.
func (x *sampleIndex) syncTimes() (times []uint64, end uint64) {
	for i, s := range x.sync {
		if s {
			times = append(times, x.dts[i])
		}
	}
	return times, x.dts[x.n()]
}

// cutTrack sets t's segments to start at the given times (in t's
// timescale), each at the sample starting nearest the time. Video tracks
// must have a sync sample at every cut.
func cutTrack(t *track, cuts []uint64) error {
	x := t.idx
	n := x.n()
	t.segs = t.segs[:0]
	idx := 0
	starts := make([]uint32, 0, len(cuts))
	for _, c := range cuts {
		for idx < n && x.dts[idx+1] <= c {
			idx++
		}
		if idx >= n {
			return fmt.Errorf("%w: %s track of %s ends at %.3fs, before the cut at %.3fs; give renditions of equal length",
				ErrMismatchedRenditions, t.kind, t.input, float64(x.dts[n])/float64(t.timescale), float64(c)/float64(t.timescale))
		}
		// sample idx covers c: choose it or the next, whichever starts nearer.
		if idx+1 < n && x.dts[idx+1]-c < c-x.dts[idx] {
			idx++
		}
		if t.kind == "video" && !x.sync[idx] {
			return fmt.Errorf("%w: %s has no keyframe at %.3fs where the first rendition cuts a segment; encode every rendition with the same keyframe interval (e.g. ffmpeg -g 48 -keyint_min 48 -sc_threshold 0)",
				ErrMismatchedRenditions, t.input, float64(c)/float64(t.timescale))
		}
		if len(starts) > 0 && uint32(idx+1) <= starts[len(starts)-1] {
			return fmt.Errorf("%w: %s: segments shorter than one sample", ErrMismatchedRenditions, t.input)
		}
		starts = append(starts, uint32(idx+1))
	}
	for i, s := range starts {
		last := uint32(n)
		if i+1 < len(starts) {
			last = starts[i+1] - 1
		}
		t.segs = append(t.segs, segSpan{start: x.dts[s-1], end: x.dts[last], first: s, last: last, count: int(last - s + 1)})
	}
	return nil
}

// segSpan is one media segment of a track, in the track's timescale.
type segSpan struct {
	start, end  uint64 // decode time [start, end)
	first, last uint32 // 1-based sample numbers, inclusive
	count       int    // number of samples
}

// sampleSource reads the samples of one segment of a track. It returns the
// samples and their payloads concatenated in order (each sample's Data is a
// slice of it), so the segment's mdat needs no copy. Safe for concurrent use.
type sampleSource interface {
	samples(t *track, i int) ([]mp4.FullSample, []byte, error)
	close() error
}

// sampleEntryInfo describes the sample entry of trak, refusing codecs the
// packager cannot encrypt to a standard that players decrypt.
func sampleEntryInfo(stsd *mp4.StsdBox, input string) (kind, codec string, w, h int, entry mp4.Box, err error) {
	if len(stsd.Children) != 1 {
		return "", "", 0, 0, nil, fmt.Errorf("%w: %s: a track with %d sample descriptions; re-mux with one", ErrUnsupportedInput, input, len(stsd.Children))
	}
	switch se := stsd.Children[0].(type) {
	case *mp4.VisualSampleEntryBox:
		switch se.Type() {
		case "avc1":
			if se.AvcC == nil || len(se.AvcC.SPSnalus) == 0 || len(se.AvcC.PPSnalus) == 0 {
				return "", "", 0, 0, nil, fmt.Errorf("%w: %s: avc1 without SPS/PPS in avcC; re-mux with ffmpeg -c copy", ErrUnsupportedInput, input)
			}
			sps, perr := avc.ParseSPSNALUnit(se.AvcC.SPSnalus[0], false)
			if perr != nil {
				return "", "", 0, 0, nil, fmt.Errorf("%w: %s: parse SPS: %v", ErrUnsupportedInput, input, perr)
			}
			return "video", avc.CodecString("avc1", sps), int(se.Width), int(se.Height), se, nil
		case "avc3":
			// cbcs slice-header parsing needs SPS/PPS out of band; avc3 keeps them in band.
			return "", "", 0, 0, nil, fmt.Errorf("%w: %s: H.264 'avc3' (parameter sets in band) cannot be encrypted safely; re-mux to avc1, e.g. ffmpeg -i IN -c copy -tag:v avc1 OUT.mp4", ErrUnsupportedInput, input)
		case "hvc1", "hev1":
			if se.HvcC == nil {
				return "", "", 0, 0, nil, fmt.Errorf("%w: %s: %s without hvcC", ErrUnsupportedInput, input, se.Type())
			}
			codec := se.Type()
			for _, arr := range se.HvcC.NaluArrays {
				if arr.NaluType() == hevc.NALU_SPS && len(arr.Nalus) > 0 {
					if sps, perr := hevc.ParseSPSNALUnit(arr.Nalus[0]); perr == nil {
						codec = hevc.CodecString(se.Type(), sps)
					}
				}
			}
			return "video", codec, int(se.Width), int(se.Height), se, nil
		default:
			return "", "", 0, 0, nil, fmt.Errorf("%w: %s: video codec %q is not supported; use H.264 (avc1) or HEVC (hvc1)", ErrUnsupportedInput, input, se.Type())
		}
	case *mp4.AudioSampleEntryBox:
		if se.Type() != "mp4a" || se.Esds == nil || se.Esds.DecConfigDescriptor.ObjectType != 0x40 {
			return "", "", 0, 0, nil, fmt.Errorf("%w: %s: audio codec %q; use AAC (mp4a)", ErrUnsupportedInput, input, se.Type())
		}
		aot := 2
		if dsi := se.Esds.DecConfigDescriptor.DecSpecificInfo; dsi != nil && len(dsi.DecConfig) > 0 {
			aot = int(dsi.DecConfig[0] >> 3)
		}
		return "audio", fmt.Sprintf("mp4a.40.%d", aot), 0, 0, se, nil
	default:
		return "", "", 0, 0, nil, fmt.Errorf("%w: %s: codec %q is not supported; use H.264 (avc1), HEVC (hvc1) or AAC (mp4a)", ErrUnsupportedInput, input, stsd.Children[0].Type())
	}
}

func encodeBox(b mp4.Box) ([]byte, error) {
	var buf bytes.Buffer
	if err := b.Encode(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// newInit builds a fresh single-track init segment from t's clear sample entry.
// A fresh one per output matters: mp4ff's InitProtect rewrites the sample
// entry in place.
func (t *track) newInit() (*mp4.InitSegment, error) {
	entry, err := mp4.DecodeBox(0, bytes.NewReader(t.entry))
	if err != nil {
		return nil, fmt.Errorf("copy sample entry: %w", err)
	}
	init := mp4.CreateEmptyInit()
	init.Moov.Mvhd.Timescale = 1000
	lang := t.lang
	if lang == "" {
		lang = "und"
	}
	trak := init.AddEmptyTrack(t.timescale, t.kind, lang)
	if t.kind == "video" {
		trak.Tkhd.Width = mp4.Fixed32(t.width << 16)
		trak.Tkhd.Height = mp4.Fixed32(t.height << 16)
	}
	trak.Mdia.Minf.Stbl.Stsd.AddChild(entry)
	return init, nil
}

// trackID builds a folder name for a track: video-640x360, audio, audio-fra.
func trackID(kind string, w, h int, lang string) string {
	if kind == "video" {
		return fmt.Sprintf("video-%dx%d", w, h)
	}
	if lang == "" || lang == "und" {
		return "audio"
	}
	return "audio-" + strings.ToLower(lang)
}

var (
	// mp4ff reports a nested decode failure as a chain such as
	// `decode box "moov": decode trak pos 148: ... decode box "\f\r\x0e\x0f", size 134810123 too big`.
	decodePosRe = regexp.MustCompile(`decode ([a-z0-9]{4}) pos (\d+)`)
	decodeBoxRe = regexp.MustCompile(`decode box "([a-z0-9]{4})"`)
)

// mp4Problem says in words what is wrong with an MP4 file the parser
// refused: the innermost box it could name and where, never the parser's
// chain of offsets or the raw bytes it read as a box name.
func mp4Problem(err error) string {
	msg := err.Error()
	box, pos := "", ""
	for _, m := range decodePosRe.FindAllStringSubmatch(msg, -1) {
		box, pos = m[1], m[2]
	}
	if box == "" {
		for _, m := range decodeBoxRe.FindAllStringSubmatch(msg, -1) {
			box = m[1]
		}
	}
	switch {
	case box != "" && pos != "":
		return fmt.Sprintf("its %s box (at byte %s) is damaged or cut short", box, pos)
	case box != "":
		return fmt.Sprintf("its %s box is damaged or cut short", box)
	}
	return "its boxes cannot be read (a damaged or cut-short file, or not MP4 at all)"
}
