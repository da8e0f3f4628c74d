package segment

import (
	"fmt"
	"io"
	"os"

	"github.com/Eyevinn/mp4ff/mp4"
)

// progressive reads samples from a progressive (non-fragmented) MP4 file. The
// mdat is never loaded whole: samples are read per segment with ReadAt, so
// memory stays at one segment per track however long the input is.
type progressive struct {
	f     *os.File
	file  *mp4.File
	path  string
	traks map[*track]*progTrak
}

type progTrak struct {
	trak  *mp4.TrakBox
	n     uint32   // number of samples
	dts   []uint64 // decode time of sample i+1; dts[n] is the end time
	sync  []bool   // sync flag of sample i+1
	shift int32    // composition offset removed to honour the edit list
}

func openProgressive(path string) (*progressive, []*track, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	p := &progressive{f: f, path: path, traks: map[*track]*progTrak{}}
	tracks, err := p.load()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return p, tracks, nil
}

func (p *progressive) load() ([]*track, error) {
	mf, err := mp4.DecodeFile(p.f, mp4.WithDecodeMode(mp4.DecModeLazyMdat))
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not a readable MP4 file: %s", ErrUnsupportedInput, p.path, mp4Problem(err))
	}
	if mf.IsFragmented() {
		return nil, fmt.Errorf("%w: %s is fragmented MP4; give its HLS playlist (.m3u8) instead", ErrUnsupportedInput, p.path)
	}
	if mf.Moov == nil || mf.Mdat == nil {
		return nil, fmt.Errorf("%w: %s has no moov or mdat box", ErrUnsupportedInput, p.path)
	}
	p.file = mf
	var out []*track
	for _, trak := range mf.Moov.Traks {
		if trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil {
			continue
		}
		switch trak.Mdia.Hdlr.HandlerType {
		case "vide", "soun":
		default:
			continue // subtitles, timecode and other tracks are not packaged
		}
		stbl := trak.Mdia.Minf.Stbl
		if stbl.Stsd == nil || stbl.Stsz == nil || stbl.Stts == nil || stbl.Stsc == nil || (stbl.Stco == nil && stbl.Co64 == nil) {
			return nil, fmt.Errorf("%w: %s: track %d lacks sample tables", ErrUnsupportedInput, p.path, trak.Tkhd.TrackID)
		}
		kind, codec, w, h, entry, err := sampleEntryInfo(stbl.Stsd, p.path)
		if err != nil {
			return nil, err
		}
		raw, err := encodeBox(entry)
		if err != nil {
			return nil, fmt.Errorf("encode sample entry: %w", err)
		}
		pt, err := indexTrak(trak, kind)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.path, err)
		}
		lang := trak.Mdia.Mdhd.GetLanguage()
		t := &track{
			id: trackID(kind, w, h, lang), kind: kind, codec: codec, width: w, height: h,
			timescale: trak.Mdia.Mdhd.Timescale, lang: lang, entry: raw, src: p, input: p.path,
		}
		if t.timescale == 0 {
			return nil, fmt.Errorf("%w: %s: track %d has timescale 0", ErrUnsupportedInput, p.path, trak.Tkhd.TrackID)
		}
		p.traks[t] = pt
		t.idx = &sampleIndex{dts: pt.dts, sync: pt.sync}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s has no audio or video track", ErrUnsupportedInput, p.path)
	}
	return out, nil
}

func indexTrak(trak *mp4.TrakBox, kind string) (*progTrak, error) {
	stbl := trak.Mdia.Minf.Stbl
	n := stbl.Stsz.GetNrSamples()
	if n == 0 {
		return nil, fmt.Errorf("%w: %s track %d has no samples", ErrUnsupportedInput, kind, trak.Tkhd.TrackID)
	}
	pt := &progTrak{trak: trak, n: n, dts: make([]uint64, n+1), sync: make([]bool, n)}
	var t uint64
	i := 0
	for _, e := range zipStts(stbl.Stts) {
		for j := uint32(0); j < e.count && i < int(n); j++ {
			pt.dts[i] = t
			t += uint64(e.delta)
			i++
		}
	}
	if i != int(n) {
		return nil, fmt.Errorf("%w: track %d: stts covers %d of %d samples", ErrUnsupportedInput, trak.Tkhd.TrackID, i, n)
	}
	pt.dts[n] = t
	nSync := 0
	for s := uint32(1); s <= n; s++ {
		sync := stbl.Stss == nil || stbl.Stss.IsSyncSample(s)
		pt.sync[s-1] = sync
		if sync {
			nSync++
		}
	}
	if kind == "video" && (nSync == 0 || !pt.sync[0]) {
		return nil, fmt.Errorf("%w: video track %d does not start with a keyframe; re-encode with regular keyframes (e.g. ffmpeg -g 48 -keyint_min 48)", ErrNoSyncSamples, trak.Tkhd.TrackID)
	}
	// An edit list that starts the presentation at media time M (B-frame
	// delay) is folded into negative composition offsets, the CMAF way, so
	// fragmented output starts at presentation time 0 without an edit list.
	if kind == "video" && trak.Edts != nil && len(trak.Edts.Elst) > 0 {
		for _, e := range trak.Edts.Elst[0].Entries {
			if e.MediaTime > 0 {
				pt.shift = int32(e.MediaTime)
				break
			}
		}
	}
	return pt, nil
}

type sttsEntry struct{ count, delta uint32 }

func zipStts(s *mp4.SttsBox) []sttsEntry {
	out := make([]sttsEntry, len(s.SampleCount))
	for i := range s.SampleCount {
		out[i] = sttsEntry{s.SampleCount[i], s.SampleTimeDelta[i]}
	}
	return out
}

func (p *progressive) samples(t *track, i int) ([]mp4.FullSample, []byte, error) {
	pt := p.traks[t]
	span := t.segs[i]
	stbl := pt.trak.Mdia.Minf.Stbl
	ranges, err := pt.trak.GetRangesForSampleInterval(span.first, span.last)
	if err != nil {
		return nil, nil, fmt.Errorf("locate samples %d-%d: %w", span.first, span.last, err)
	}
	var total uint64
	for _, r := range ranges {
		total += r.Size
	}
	buf := make([]byte, total)
	pos := uint64(0)
	for _, r := range ranges {
		if _, err := p.f.ReadAt(buf[pos:pos+r.Size], int64(r.Offset)); err != nil {
			if err == io.EOF {
				return nil, nil, fmt.Errorf("%w: %s is truncated (sample data past the end of the file)", ErrUnsupportedInput, p.path)
			}
			return nil, nil, fmt.Errorf("read samples: %w", err)
		}
		pos += r.Size
	}
	out := make([]mp4.FullSample, 0, span.last-span.first+1)
	pos = 0
	for nr := span.first; nr <= span.last; nr++ {
		size := stbl.Stsz.GetSampleSize(int(nr))
		if pos+uint64(size) > total {
			return nil, nil, fmt.Errorf("%w: %s: sample %d overruns its chunk", ErrUnsupportedInput, p.path, nr)
		}
		var cto int32
		if stbl.Ctts != nil {
			cto = stbl.Ctts.GetCompositionTimeOffset(nr)
		}
		out = append(out, mp4.FullSample{
			Sample: mp4.Sample{
				Flags:                 sampleFlags(stbl, nr, pt.sync[nr-1]),
				Dur:                   uint32(pt.dts[nr] - pt.dts[nr-1]),
				Size:                  size,
				CompositionTimeOffset: cto - pt.shift,
			},
			DecodeTime: pt.dts[nr-1],
			Data:       buf[pos : pos+uint64(size)],
		})
		pos += uint64(size)
	}
	if pos != total {
		return nil, nil, fmt.Errorf("%w: %s: sample sizes and chunk ranges disagree", ErrUnsupportedInput, p.path)
	}
	return out, buf, nil
}

func sampleFlags(stbl *mp4.StblBox, nr uint32, sync bool) uint32 {
	var f mp4.SampleFlags
	f.SampleIsNonSync = !sync
	if sync {
		f.SampleDependsOn = 2
	}
	if stbl.Sdtp != nil && int(nr) <= len(stbl.Sdtp.Entries) {
		e := stbl.Sdtp.Entries[nr-1]
		f.IsLeading = e.IsLeading()
		f.SampleDependsOn = e.SampleDependsOn()
		f.SampleHasRedundancy = e.SampleHasRedundancy()
		f.SampleIsDependedOn = e.SampleIsDependedOn()
	}
	return f.Encode()
}

func (p *progressive) close() error { return p.f.Close() }
