package segment

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/Eyevinn/mp4ff/mp4"
)

// This file encrypts the tracks: init segments per crypto period, then every
// media segment on a pool of workers.

type trackResult struct {
	files  []File
	clear  map[int]bool // media index -> no encrypted byte
	peakBW int
	avgBW  int
}

// trackPlan is what every segment job of a track needs, prepared up front so
// that segments can be encrypted in any order on any core.
type trackPlan struct {
	t     *track
	ipds  []*mp4.InitProtectData // per period
	inits []File                 // per period
	ivs   [][]byte               // per segment: the IV it starts with
}

type segResult struct {
	file      File
	protected int64
}

// packAll writes every track's init segments, then encrypts all media
// segments of all tracks with cfg.Workers goroutines. Video carries almost
// all the bytes, so parallelism is per segment, not per track.
func packAll(ctx context.Context, cfg *Config, dir string, tracks []*track, plan periodPlan, keys []Key, cbcsIVs [][]byte) ([]trackResult, error) {
	plans := make([]*trackPlan, len(tracks))
	segs := make([][]segResult, len(tracks))
	total := 0
	for ti, t := range tracks {
		tp, err := prepareTrack(cfg, dir, ti, t, plan, keys, cbcsIVs)
		if err != nil {
			return nil, fmt.Errorf("track %s: %w", t.id, err)
		}
		plans[ti] = tp
		segs[ti] = make([]segResult, len(t.segs))
		total += len(t.segs)
	}
	type job struct{ ti, i int }
	jobs := make(chan job)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		done     atomic.Int64
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range min(cfg.Workers, total) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				tp := plans[j.ti]
				r, err := packSegment(cfg, dir, tp, j.i, plan, keys)
				if err != nil {
					fail(fmt.Errorf("track %s: segment %d: %w", tp.t.id, j.i+1, err))
					continue
				}
				segs[j.ti][j.i] = r
				if n := done.Add(1); cfg.Progress != nil {
					cfg.Progress(int(n), total)
				}
			}
		}()
	}
	// Feed segments in time order across tracks, so a slow disk sees a steady stream.
feed:
	for i := 0; ; i++ {
		any := false
		for ti, t := range tracks {
			if i >= len(t.segs) {
				continue
			}
			any = true
			select {
			case jobs <- job{ti, i}:
			case <-ctx.Done():
				break feed
			}
		}
		if !any {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]trackResult, len(tracks))
	for ti, tp := range plans {
		res := trackResult{clear: map[int]bool{}}
		var size int64
		next := 0
		for i, sr := range segs[ti] {
			// Each period's init goes just before its first segment.
			if p := plan.ofSeg[i]; next <= p {
				res.files = append(res.files, tp.inits[p])
				next = p + 1
			}
			f := sr.file
			res.files = append(res.files, f)
			res.clear[f.Index] = sr.protected == 0
			size += f.Size
			if f.Duration > 0 {
				res.peakBW = max(res.peakBW, int(float64(f.Size*8)/f.Duration))
			}
		}
		last := tp.t.segs[len(tp.t.segs)-1]
		if d := float64(last.end) / float64(tp.t.timescale); d > 0 {
			res.avgBW = int(float64(size*8) / d)
		}
		out[ti] = res
	}
	return out, nil
}

// prepareTrack writes a track's init segments (one per crypto period it
// spans) and works out the IV every segment starts with.
func prepareTrack(cfg *Config, dir string, ti int, t *track, plan periodPlan, keys []Key, cbcsIVs [][]byte) (*trackPlan, error) {
	if err := os.MkdirAll(filepath.Join(dir, t.id), 0o755); err != nil {
		return nil, err
	}
	tp := &trackPlan{t: t, ipds: make([]*mp4.InitProtectData, len(keys)), inits: make([]File, len(keys)), ivs: make([][]byte, len(t.segs))}
	var iv []byte
	for i, span := range t.segs {
		p := plan.ofSeg[i]
		if tp.ipds[p] == nil {
			name := "init.mp4"
			if p > 0 {
				name = fmt.Sprintf("init-%d.mp4", p)
			}
			data, ipd, err := protectInit(t, cfg.Scheme, keys[p], cbcsIVs[p])
			if err != nil {
				return nil, fmt.Errorf("init for period %d: %w", p, err)
			}
			rel := t.id + "/" + name
			if err := writeFile(filepath.Join(dir, rel), data); err != nil {
				return nil, err
			}
			f := fileEntry(rel, KindInit, data)
			f.Period = p
			tp.inits[p], tp.ipds[p] = f, ipd
			if cfg.Scheme == SchemeCENC {
				iv = cencStartIV(ti)
			} else {
				iv = cbcsIVs[p]
			}
		}
		tp.ivs[i] = iv
		if cfg.Scheme == SchemeCENC {
			// CTR: each sample takes the next 8-byte IV, so the segment after
			// this one starts span.count IVs later. Computing it here lets
			// segments be encrypted in parallel without any IV repeating.
			iv = addIV(iv, uint64(span.count))
		}
	}
	return tp, nil
}

// addIV returns the 8-byte big-endian counter iv plus n.
func addIV(iv []byte, n uint64) []byte {
	out := make([]byte, 8)
	binary.BigEndian.PutUint64(out, binary.BigEndian.Uint64(iv)+n)
	return out
}

func packSegment(cfg *Config, dir string, tp *trackPlan, i int, plan periodPlan, keys []Key) (segResult, error) {
	t := tp.t
	p := plan.ofSeg[i]
	samples, payload, err := t.src.samples(t, i)
	if err != nil {
		return segResult{}, err
	}
	data, next, protected, err := encryptSegment(uint32(i+1), samples, payload, keys[p].key[:], tp.ivs[i], tp.ipds[p], i < cfg.ClearLead)
	if err != nil {
		return segResult{}, fmt.Errorf("encrypt: %w", err)
	}
	if cfg.Scheme == SchemeCENC && i+1 < len(t.segs) && plan.ofSeg[i+1] == p && !bytes.Equal(next, tp.ivs[i+1]) {
		return segResult{}, fmt.Errorf("IV plan out of step with the encryptor (sample count changed?)")
	}
	rel := fmt.Sprintf("%s/%d.m4s", t.id, i+1)
	if err := writeFile(filepath.Join(dir, rel), data); err != nil {
		return segResult{}, err
	}
	span := t.segs[i]
	f := fileEntry(rel, KindMedia, data)
	f.Index, f.Period = i+1, p
	f.Start = float64(span.start) / float64(t.timescale)
	f.Duration = float64(span.end-span.start) / float64(t.timescale)
	return segResult{file: f, protected: protected}, nil
}

// cencStartIV returns the first 8-byte CTR IV of a track under one key. The
// first byte is the track's index, so two tracks sharing a key never share an
// IV; the rest is a random 55-bit start that EncryptFragment increments once
// per sample, so IVs under one key never repeat within a track either.
func cencStartIV(trackIndex int) []byte {
	iv := randBytes(8)
	iv[0] = byte(trackIndex)
	iv[1] &= 0x7f
	return iv
}

func protectInit(t *track, scheme Scheme, k Key, cbcsIV []byte) ([]byte, *mp4.InitProtectData, error) {
	init, err := t.newInit()
	if err != nil {
		return nil, nil, err
	}
	kidHex := hex.EncodeToString(k.kid[:])
	pssh, err := mp4.NewPsshBox(CommonSystemID, []string{kidHex}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("pssh: %w", err)
	}
	iv := cbcsIV
	if scheme == SchemeCENC {
		iv = make([]byte, 8) // sets the 8-byte per-sample IV size CMAF requires
	}
	ipd, err := mp4.InitProtect(init, k.key[:], iv, string(scheme), mp4.UUID(k.kid[:]), []*mp4.PsshBox{pssh})
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), ipd, nil
}
