package segment

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Scheme is a Common Encryption protection scheme (ISO/IEC 23001-7).
type Scheme string

// Supported schemes.
const (
	// SchemeCBCS is AES-CBC with a 1:9 pattern for video and a constant IV per
	// key; the default, and what Apple and most current devices expect.
	SchemeCBCS Scheme = "cbcs"
	// SchemeCENC is AES-CTR with subsample encryption that keeps NAL headers clear.
	SchemeCENC Scheme = "cenc"
)

// CommonSystemID is the W3C Common PSSH system ID, used for Clear Key.
const CommonSystemID = "1077efecc0b24d02ace33c1e52e2fb4b"

// ErrOutputExists: the output folder exists and Force was not set.
var ErrOutputExists = errors.New("output already exists")

// Key is one content key and its KID as the packager needs them. It prints
// its KID only.
type Key struct {
	KID [16]byte
	Key []byte // 16 bytes
}

// String shows the KID only: key bytes never print.
func (k Key) String() string { return "Key{kid=" + hex.EncodeToString(k.KID[:]) + "}" }

// KeySource returns the key of crypto period p (0-based). Pack calls it once
// per period, in order.
type KeySource func(period int) (Key, error)

// Config says what to pack and how. The zero value of each optional field is
// documented next to it.
type Config struct {
	Inputs          []string      // progressive MP4 files or HLS (fMP4) playlists; required
	OutDir          string        // final output folder; required; built beside it and renamed in
	ContentID       string        // required; see ValidContentID
	Scheme          Scheme        // zero: SchemeCBCS
	SegmentDuration time.Duration // target; zero: 4s
	CryptoPeriod    time.Duration // zero: one key for the whole content
	Keys            KeySource     // required
	Signer          crypto.Signer // Ed25519; signs the manifest; required
	SigningKeyID    string
	LicenseURL      string // Clear Key license URL written into playlists; zero: DefaultLicenseURL
	ClearLead       int    // media segments per track left clear at the start; zero: none
	Force           bool   // replace an existing OutDir
	// Progress, if set, is called after each segment is written with the
	// number of segments done and the total.
	Progress func(done, total int)
	// BeforeCommit, if set, runs after every file is written and synced but
	// before the output is renamed into place; an error aborts the run and
	// removes the temporary output. The pack command registers the content
	// keys here, so keys exist only for output that was completed.
	BeforeCommit func(*Manifest) error
	Logger       *slog.Logger // zero: discard
	Workers      int          // tracks packed at once; zero: GOMAXPROCS
}

// DefaultLicenseURL is written into playlists when Config.LicenseURL is empty:
// a license server on this machine at its default address.
const DefaultLicenseURL = "http://127.0.0.1:8443/v1/clearkey"

// Result describes a finished packaging run.
type Result struct {
	Dir      string
	Manifest *Manifest
	Bytes    int64 // media bytes written (init + segments)
}

func (c *Config) validate() error {
	if len(c.Inputs) == 0 {
		return errors.New("no input: give at least one --in file")
	}
	if c.OutDir == "" {
		return errors.New("no output folder: give --out DIR")
	}
	if err := ValidContentID(c.ContentID); err != nil {
		return err
	}
	switch c.Scheme {
	case "":
		c.Scheme = SchemeCBCS
	case SchemeCBCS, SchemeCENC:
	default:
		return fmt.Errorf("scheme %q: use cbcs or cenc", c.Scheme)
	}
	if c.SegmentDuration == 0 {
		c.SegmentDuration = 4 * time.Second
	}
	if c.SegmentDuration < 500*time.Millisecond || c.SegmentDuration > 60*time.Second {
		return fmt.Errorf("segment duration %v: use 0.5s to 60s", c.SegmentDuration)
	}
	if c.CryptoPeriod != 0 && c.CryptoPeriod < c.SegmentDuration {
		return fmt.Errorf("crypto period %v is shorter than a segment (%v): use at least the segment duration", c.CryptoPeriod, c.SegmentDuration)
	}
	if c.Keys == nil {
		return errors.New("no key source")
	}
	if c.Signer == nil || c.SigningKeyID == "" {
		return errors.New("no manifest signing key")
	}
	if c.ClearLead < 0 {
		return fmt.Errorf("clear lead %d: must be 0 or more", c.ClearLead)
	}
	if c.LicenseURL == "" {
		c.LicenseURL = DefaultLicenseURL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return nil
}

// Pack encrypts the inputs into CMAF tracks with HLS and DASH playlists and a
// signed segment manifest. The output is built in a temporary folder beside
// OutDir and renamed into place only when complete, so a crash leaves either
// the old output or the new, never a mix; a failed run removes its temporary
// folder.
func Pack(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	out := filepath.Clean(cfg.OutDir)
	if _, err := os.Stat(out); err == nil && !cfg.Force {
		return nil, fmt.Errorf("%w: %s (pass --force to replace it)", ErrOutputExists, out)
	}
	tracks, sources, err := openInputs(cfg.Inputs)
	defer func() {
		for _, s := range sources {
			s.close()
		}
	}()
	if err != nil {
		return nil, err
	}
	if err := planSegments(tracks, cfg.SegmentDuration); err != nil {
		return nil, err
	}
	plan := planPeriods(tracks[0], cfg.CryptoPeriod)
	keys := make([]Key, len(plan.starts))
	cbcsIVs := make([][]byte, len(plan.starts))
	for p := range keys {
		k, err := cfg.Keys(p)
		if err != nil {
			return nil, fmt.Errorf("key for period %d: %w", p, err)
		}
		if len(k.Key) != 16 {
			return nil, fmt.Errorf("key for period %d: %d bytes, want 16", p, len(k.Key))
		}
		keys[p] = k
		// cbcs uses one constant IV per key, as the scheme defines; a fresh
		// random one per period means no key/IV pair repeats across periods.
		cbcsIVs[p] = randBytes(16)
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create output parent: %w", err)
	}
	removeStalePartials(parent, filepath.Base(out))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("create temporary output: %w", err)
	}
	if err := writeFile(filepath.Join(tmp, partialOwner), []byte(strconv.Itoa(os.Getpid()))); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()

	results, err := packAll(ctx, &cfg, tmp, tracks, plan, keys, cbcsIVs)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Version: ManifestVersion, ContentID: cfg.ContentID, Scheme: cfg.Scheme,
		Created: time.Now().UTC().Truncate(time.Second), SegmentDuration: cfg.SegmentDuration.Seconds(),
		CryptoPeriod: cfg.CryptoPeriod.Seconds(), ClearLead: cfg.ClearLead, SigningKeyID: cfg.SigningKeyID,
	}
	ref := tracks[0]
	m.Duration = float64(ref.segs[len(ref.segs)-1].end) / float64(ref.timescale)
	for p, k := range keys {
		m.Periods = append(m.Periods, Period{Index: p, KID: hex.EncodeToString(k.KID[:]), Start: plan.startSec[p]})
	}
	var written int64
	for i, r := range results {
		// Refuse to sign clear media: CENC has no integrity of its own and a
		// clear segment would hand the swarm plaintext. Only an explicit clear
		// lead may leave the first segments clear.
		for _, f := range r.files {
			if f.Kind == KindMedia && r.clear[f.Index] && f.Index > cfg.ClearLead {
				return nil, fmt.Errorf("refusing to sign: %s has no encrypted bytes (use --clear-lead to allow leading clear segments)", f.Path)
			}
			written += f.Size
		}
		t := tracks[i]
		m.Renditions = append(m.Renditions, Rendition{
			ID: t.id, Type: t.kind, Codec: t.codec, Bandwidth: r.peakBW, Width: t.width, Height: t.height,
			Timescale: t.timescale, Language: t.lang, Files: r.files,
		})
	}
	pls, err := writePlaylists(tmp, &cfg, m, results)
	if err != nil {
		return nil, err
	}
	m.Playlists = pls
	m.Sequence = NextSequence(PreviousSequence(filepath.Join(out, ManifestFile), cfg.Signer.Public()), time.Now())
	signed, err := SignManifest(m, cfg.Signer)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(tmp, partialOwner)); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(tmp, ManifestFile), signed); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	if cfg.BeforeCommit != nil {
		if err := cfg.BeforeCommit(m); err != nil {
			return nil, err
		}
	}
	if err := replaceDir(tmp, out, cfg.Force); err != nil {
		return nil, err
	}
	done = true
	return &Result{Dir: out, Manifest: m, Bytes: written}, nil
}

type periodPlan struct {
	ofSeg    []int     // period of each segment (by index)
	starts   []int     // first segment index of each period
	startSec []float64 // start time of each period
}

// planPeriods assigns segments to crypto periods by the reference track's
// times: a segment starting at or after the next multiple of cp opens a new
// period. All tracks share the reference's cuts, so one plan serves them all.
func planPeriods(ref *track, cp time.Duration) periodPlan {
	var pp periodPlan
	cur := -1
	bucket := int64(-1)
	for i, s := range ref.segs {
		sec := float64(s.start) / float64(ref.timescale)
		b := int64(0)
		if cp > 0 {
			b = int64((sec + 1e-6) / cp.Seconds())
		}
		if b != bucket {
			bucket = b
			cur++
			pp.starts = append(pp.starts, i)
			pp.startSec = append(pp.startSec, sec)
		}
		pp.ofSeg = append(pp.ofSeg, cur)
	}
	return pp
}

func openInputs(paths []string) ([]*track, []sampleSource, error) {
	var video, audio []*track
	var sources []sampleSource
	for _, p := range paths {
		var (
			src    sampleSource
			tracks []*track
			err    error
		)
		switch strings.ToLower(filepath.Ext(p)) {
		case ".m3u8":
			src, tracks, err = openHLSLadder(p)
		case ".mpd":
			src, tracks, err = openDASHLadder(p)
		default:
			src, tracks, err = openProgressive(p)
		}
		if err != nil {
			return nil, sources, err
		}
		sources = append(sources, src)
		for _, t := range tracks {
			if t.kind == "video" {
				video = append(video, t)
			} else {
				audio = append(audio, t)
			}
		}
	}
	// One audio track per language: renditions of a ladder usually repeat the
	// same audio, and players want it once.
	seenLang := map[string]bool{}
	var keepAudio []*track
	for _, a := range audio {
		if !seenLang[a.lang] {
			seenLang[a.lang] = true
			keepAudio = append(keepAudio, a)
		}
	}
	// Highest resolution first: it is the reference for cuts and periods.
	sort.SliceStable(video, func(i, j int) bool { return video[i].width*video[i].height > video[j].width*video[j].height })
	all := append(video, keepAudio...)
	ids := map[string]int{}
	for _, t := range all {
		ids[t.id]++
		if n := ids[t.id]; n > 1 {
			t.id = fmt.Sprintf("%s-%d", t.id, n)
		}
	}
	return all, sources, nil
}

// planSegments cuts every track at the same instants. The reference (first)
// track is cut where an input ladder cut it, or else at its sync samples
// nearest each multiple of target; every other track is cut at the sample
// nearest those times, and video must have a keyframe there.
func planSegments(tracks []*track, target time.Duration) error {
	rebase(tracks)
	ref := tracks[0]
	cuts := ref.ladderCuts
	if cuts == nil {
		syncs, end := ref.idx.syncTimes()
		step := uint64(target.Seconds() * float64(ref.timescale))
		cuts = []uint64{0}
		next := step
		for _, s := range syncs {
			if s == 0 || s+step/8 < next {
				continue
			}
			if end-s < step/4 { // do not leave a sliver of a last segment
				break
			}
			cuts = append(cuts, s)
			for next <= s+step/8 {
				next += step
			}
		}
	}
	for _, t := range tracks {
		tc := make([]uint64, len(cuts))
		for i, c := range cuts {
			tc[i] = uint64((float64(c)/float64(ref.timescale))*float64(t.timescale) + 0.5)
		}
		if err := cutTrack(t, tc); err != nil {
			return err
		}
	}
	return nil
}

// rebase moves a timeline that does not start at zero (a ladder cut from a
// live stream) to zero, by the same number of seconds on every track so that
// audio and video stay in sync.
func rebase(tracks []*track) {
	base := math.Inf(1)
	for _, t := range tracks {
		base = math.Min(base, float64(t.idx.dts[0])/float64(t.timescale))
	}
	if base <= 0 {
		return
	}
	for _, t := range tracks {
		b := uint64(base * float64(t.timescale))
		t.base = b
		for i := range t.idx.dts {
			t.idx.dts[i] -= b
		}
		for i := range t.ladderCuts {
			t.ladderCuts[i] -= min(b, t.ladderCuts[i])
		}
	}
}

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
	data, next, protected, err := encryptSegment(uint32(i+1), samples, payload, keys[p].Key, tp.ivs[i], tp.ipds[p], i < cfg.ClearLead)
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
	kidHex := hex.EncodeToString(k.KID[:])
	pssh, err := mp4.NewPsshBox(CommonSystemID, []string{kidHex}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("pssh: %w", err)
	}
	iv := cbcsIV
	if scheme == SchemeCENC {
		iv = make([]byte, 8) // sets the 8-byte per-sample IV size CMAF requires
	}
	ipd, err := mp4.InitProtect(init, k.Key, iv, string(scheme), mp4.UUID(k.KID[:]), []*mp4.PsshBox{pssh})
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), ipd, nil
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // rand.Read never fails on supported platforms
	}
	return b
}
