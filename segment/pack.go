package segment

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
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

// ErrOutputExists: the output folder holds sealmesh output and Force was
// not set (or it is a file, or it changed while packing).
var ErrOutputExists = errors.New("output already exists")

// ErrForeignOutput: the output folder is not empty and holds no sealmesh
// output signed by the run's signing key, so it is never replaced, even with
// Force.
var ErrForeignOutput = errors.New("output folder holds other files")

// KeySource returns the key of crypto period p (0-based). Pack calls it once
// per period, in order.
type KeySource func(period int) (Key, error)

// Config says what to pack and how. The zero value of each optional field is
// documented next to it.
type Config struct {
	Inputs []string // progressive MP4 files or HLS (fMP4) playlists; required
	// OutDir is the final output folder; required. It may be missing or an
	// empty folder; with Force it may also hold sealmesh output whose
	// sealmesh.json verifies under Signer, and nothing else. The output is
	// built beside it and renamed in (inside it, for a mount point).
	OutDir          string
	ContentID       string        // required; see ValidContentID
	Scheme          Scheme        // zero: SchemeCBCS
	SegmentDuration time.Duration // target; zero: 4s
	CryptoPeriod    time.Duration // zero: one key for the whole content
	Keys            KeySource     // required
	Signer          crypto.Signer // Ed25519; signs the manifest; required
	SigningKeyID    string
	// LicenseURL is the Clear Key license URL written into the HLS and DASH
	// playlists. Zero: none is written, and players must be configured with
	// the license server's URL (no default is guessed: a wrong URL in an MPD
	// overrides a player's own configuration in Shaka).
	LicenseURL string
	ClearLead  int  // media segments per track left clear at the start; zero: none
	Force      bool // replace an OutDir holding sealmesh output signed by Signer
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

// Result describes a finished packaging run.
type Result struct {
	Dir      string
	Manifest *Manifest
	Bytes    int64 // media bytes written (init + segments)
	// Warnings are one-sentence notes on output that works but is not what
	// was asked for (segments much longer than SegmentDuration). Each is also
	// logged at Warn level.
	Warnings []string
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
// folder. Folders are made 0755 and files 0644, less the umask.
//
// An existing OutDir is replaced only if it is empty, or if Force is set and
// it holds sealmesh output whose sealmesh.json verifies under Signer; any
// other folder is left untouched and the error wraps ErrForeignOutput (or
// ErrOutputExists without Force). Error messages name OutDir, never the
// temporary folder.
func Pack(ctx context.Context, cfg Config) (res *Result, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	out := filepath.Clean(cfg.OutDir)
	trusted := signerKeys(&cfg)
	kind, err := checkOutput(out, cfg.Force, trusted)
	if err != nil {
		return nil, err
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
	var warnings []string
	if w := spacingWarning(tracks[0], cfg.SegmentDuration); w != "" {
		cfg.Logger.Warn(w)
		warnings = append(warnings, w)
	}
	plan := planPeriods(tracks[0], cfg.CryptoPeriod)
	keys := make([]Key, len(plan.starts))
	cbcsIVs := make([][]byte, len(plan.starts))
	for p := range keys {
		k, err := cfg.Keys(p)
		if err != nil {
			return nil, fmt.Errorf("key for period %d: %w", p, err)
		}
		if !k.valid() || k.kid == ([16]byte{}) {
			return nil, fmt.Errorf("key for period %d: no key or the zero KID (build keys with NewKey)", p)
		}
		keys[p] = k
		// cbcs uses one constant IV per key, as the scheme defines; a fresh
		// random one per period means no key/IV pair repeats across periods.
		cbcsIVs[p] = randBytes(16)
	}
	// Build beside the output, so one rename publishes it; inside it when it
	// is a mount point, which cannot be renamed over.
	parent, base := filepath.Dir(out), filepath.Base(out)
	if kind == outMount {
		parent, base = out, inPlaceBase
	}
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return nil, fmt.Errorf("create the output's parent folder: %w", err)
	}
	removeStalePartials(parent, base)
	tmp, err := mkdirPartial(parent, base)
	if err != nil {
		return nil, fmt.Errorf("create a folder beside %s: %w", out, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
		// The temporary folder is gone when the message is read: say
		// OutDir instead (errors.Is still sees the cause).
		err = hideTemp(err, tmp, out)
	}()
	if err := writeFile(filepath.Join(tmp, partialOwner), []byte(strconv.Itoa(os.Getpid()))); err != nil {
		return nil, err
	}

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
		m.Periods = append(m.Periods, Period{Index: p, KID: hex.EncodeToString(k.kid[:]), Start: plan.startSec[p]})
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
	if err := publish(tmp, out, kind, cfg.Force, trusted); err != nil {
		return nil, err
	}
	done = true
	return &Result{Dir: out, Manifest: m, Bytes: written, Warnings: warnings}, nil
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

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // rand.Read never fails on supported platforms
	}
	return b
}
