package segment

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Maximum sizes of a clear ladder's files that the packager reads whole.
const (
	maxLadderPlaylist = 8 << 20
	maxLadderInit     = 1 << 20
	maxLadderSegment  = 256 << 20
)

// hlsLadder reads an existing clear fMP4/CMAF ladder described by HLS
// playlists (EXT-X-MAP + segment URIs, local files). Its segmentation is kept.
type hlsLadder struct {
	segFiles map[*track][]string
	trex     map[*track]*mp4.TrexBox
	loc      map[*track][]sampleLoc // per sample: where it lives
}

// sampleLoc places one sample of a ladder track: the input segment file and
// the sample's position in it.
type sampleLoc struct {
	file, pos int
}

// readHLS reads a local playlist of at most limit bytes through [ParseHLS].
func readHLS(path string, limit int64) (*HLSMultivariant, *HLSMedia, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	if st.Size() > limit {
		return nil, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrUnsupportedInput, path, limit)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	mv, md, err := ParseHLS(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrUnsupportedInput, path, err)
	}
	return mv, md, nil
}

// localRef resolves a playlist URI against the playlist's folder. Only plain
// relative file references are followed: the packager reads local files and
// must not be steered to arbitrary paths or URLs by an input playlist.
func localRef(base, uri string) (string, error) {
	if strings.Contains(uri, "://") || strings.HasPrefix(uri, "/") || strings.ContainsAny(uri, "?#") {
		return "", fmt.Errorf("%w: %q: only relative file URIs are supported in input playlists", ErrUnsupportedInput, uri)
	}
	// No "..": a playlist may name files in its folder and below, never
	// elsewhere on the packaging machine.
	if !filepath.IsLocal(filepath.FromSlash(uri)) {
		return "", fmt.Errorf("%w: %q leaves the playlist's folder; only relative file URIs below it are supported", ErrUnsupportedInput, uri)
	}
	return filepath.Join(filepath.Dir(base), filepath.FromSlash(uri)), nil
}

func openHLSLadder(path string) (sampleSource, []*track, error) {
	mv, md, err := readHLS(path, maxLadderPlaylist)
	if err != nil {
		return nil, nil, err
	}
	l := &hlsLadder{segFiles: map[*track][]string{}, trex: map[*track]*mp4.TrexBox{}, loc: map[*track][]sampleLoc{}}
	if md != nil {
		t, err := l.openMedia(path, md)
		if err != nil {
			return nil, nil, err
		}
		return l, []*track{t}, nil
	}
	var mediaPaths []string
	for _, m := range mv.Media {
		if m.Type == "AUDIO" && m.URI != "" {
			p, err := localRef(path, m.URI)
			if err != nil {
				return nil, nil, err
			}
			mediaPaths = append(mediaPaths, p)
		}
	}
	for _, v := range mv.Variants {
		p, err := localRef(path, v.URI)
		if err != nil {
			return nil, nil, err
		}
		mediaPaths = append(mediaPaths, p)
	}
	if len(mediaPaths) == 0 {
		return nil, nil, fmt.Errorf("%w: %s lists no media playlists", ErrUnsupportedInput, path)
	}
	var tracks []*track
	for _, mp := range mediaPaths {
		_, md, err := readHLS(mp, maxLadderPlaylist)
		if err == nil && md == nil {
			err = fmt.Errorf("%w: %s is not a media playlist", ErrUnsupportedInput, mp)
		}
		if err != nil {
			return nil, nil, err
		}
		t, err := l.openMedia(mp, md)
		if err != nil {
			return nil, nil, err
		}
		tracks = append(tracks, t)
	}
	return l, tracks, nil
}

func (l *hlsLadder) openMedia(path string, md *HLSMedia) (*track, error) {
	var initPath string
	var segs []string
	for _, s := range md.Segments {
		if s.Map != "" {
			if initPath != "" {
				return nil, fmt.Errorf("%w: %s has more than one EXT-X-MAP", ErrUnsupportedInput, path)
			}
			var err error
			if initPath, err = localRef(path, s.Map); err != nil {
				return nil, err
			}
		}
		if s.Key != nil && s.Key.Method != "NONE" {
			return nil, fmt.Errorf("%w: %s is already encrypted; use --import to register its keys instead", ErrUnsupportedInput, path)
		}
		p, err := localRef(path, s.URI)
		if err != nil {
			return nil, err
		}
		segs = append(segs, p)
	}
	if initPath == "" {
		return nil, fmt.Errorf("%w: %s has no EXT-X-MAP: only fMP4/CMAF ladders are supported (not MPEG-TS)", ErrUnsupportedInput, path)
	}
	return l.openTrack(path, initPath, segs)
}

// openTrack reads one clear ladder track: its init segment and, to index
// its samples, every media segment once.
func (l *hlsLadder) openTrack(path, initPath string, segs []string) (*track, error) {
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w: %s lists no segments", ErrUnsupportedInput, path)
	}
	init, err := decodeFileLimited(initPath, maxLadderInit)
	if err != nil {
		return nil, err
	}
	if init.Init == nil || len(init.Init.Moov.Traks) != 1 {
		return nil, fmt.Errorf("%w: %s: init segment must hold exactly one track", ErrUnsupportedInput, initPath)
	}
	trak := init.Init.Moov.Trak
	if se := trak.Mdia.Minf.Stbl.Stsd.Children; len(se) == 1 && (se[0].Type() == "encv" || se[0].Type() == "enca") {
		return nil, fmt.Errorf("%w: %s is already encrypted; use --import to register its keys instead", ErrUnsupportedInput, initPath)
	}
	kind, codec, w, h, entry, err := sampleEntryInfo(trak.Mdia.Minf.Stbl.Stsd, initPath)
	if err != nil {
		return nil, err
	}
	raw, err := encodeBox(entry)
	if err != nil {
		return nil, err
	}
	lang := trak.Mdia.Mdhd.GetLanguage()
	t := &track{id: trackID(kind, w, h, lang), kind: kind, codec: codec, width: w, height: h,
		timescale: trak.Mdia.Mdhd.Timescale, lang: lang, entry: raw, src: l, input: path}
	if t.timescale == 0 {
		return nil, fmt.Errorf("%w: %s: timescale 0", ErrUnsupportedInput, initPath)
	}
	var trex *mp4.TrexBox
	if init.Init.Moov.Mvex != nil {
		trex = init.Init.Moov.Mvex.Trex
	}
	return t, l.index(t, initPath, segs, trex)
}

// index reads every segment of a ladder track once to learn its samples'
// timing, so the track can be re-cut to line up with the others (ladders
// often cut audio at other instants than video).
func (l *hlsLadder) index(t *track, initPath string, segs []string, trex *mp4.TrexBox) error {
	l.trex[t] = trex
	l.segFiles[t] = segs
	x := &sampleIndex{}
	var end uint64
	for i := range segs {
		samples, err := l.readSegment(t, i)
		if err != nil {
			return err
		}
		first := samples[0]
		if i > 0 && first.DecodeTime != end {
			return fmt.Errorf("%w: %s starts at %d but the previous segment ends at %d (timescale %d): gaps and overlaps are not supported",
				ErrUnsupportedInput, segs[i], first.DecodeTime, end, t.timescale)
		}
		if t.kind == "video" && first.Flags&0x10000 != 0 { // sample_is_non_sync_sample
			return fmt.Errorf("%w: %s does not start with a keyframe", ErrNoSyncSamples, segs[i])
		}
		t.ladderCuts = append(t.ladderCuts, first.DecodeTime)
		for j, s := range samples {
			x.dts = append(x.dts, s.DecodeTime)
			x.sync = append(x.sync, t.kind != "video" || s.Flags&0x10000 == 0)
			l.loc[t] = append(l.loc[t], sampleLoc{file: i, pos: j})
			end = s.DecodeTime + uint64(s.Dur)
		}
	}
	x.dts = append(x.dts, end)
	t.idx = x
	return nil
}

func decodeFileLimited(path string, limit int64) (*mp4.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrUnsupportedInput, path, limit)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsupportedInput, path, err)
	}
	return f, nil
}

func (l *hlsLadder) readSegment(t *track, i int) ([]mp4.FullSample, error) {
	path := l.segFiles[t][i]
	f, err := decodeFileLimited(path, maxLadderSegment)
	if err != nil {
		return nil, err
	}
	var out []mp4.FullSample
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			fs, err := frag.GetFullSamples(l.trex[t])
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrUnsupportedInput, path, err)
			}
			out = append(out, fs...)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no samples", ErrUnsupportedInput, path)
	}
	return out, nil
}

func (l *hlsLadder) samples(t *track, i int) ([]mp4.FullSample, []byte, error) {
	span := t.segs[i]
	locs := l.loc[t][span.first-1 : span.last]
	var ss []mp4.FullSample
	for k := 0; k < len(locs); {
		file := locs[k].file
		fs, err := l.readSegment(t, file)
		if err != nil {
			return nil, nil, err
		}
		for ; k < len(locs) && locs[k].file == file; k++ {
			if locs[k].pos >= len(fs) {
				return nil, nil, fmt.Errorf("%w: %s changed while packing", ErrUnsupportedInput, l.segFiles[t][file])
			}
			s := fs[locs[k].pos]
			s.DecodeTime -= t.base
			ss = append(ss, s)
		}
	}
	n := 0
	for _, s := range ss {
		n += len(s.Data)
	}
	payload := make([]byte, 0, n)
	for j := range ss {
		payload = append(payload, ss[j].Data...)
		ss[j].Data = payload[len(payload)-len(ss[j].Data):]
	}
	return ss, payload, nil
}

func (l *hlsLadder) close() error { return nil }
