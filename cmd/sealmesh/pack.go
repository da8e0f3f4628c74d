package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/segment"
)

const packSynopsis = `Usage: sealmesh pack --in FILE [--in FILE ...] --out DIR --content ID [flags]

Encrypts clear video with Common Encryption and writes, under DIR:
  master.m3u8      HLS multivariant playlist (fMP4, SAMPLE-AES, Clear Key)
  manifest.mpd     DASH manifest (mp4protection + Clear Key with dashif:Laurl)
  sealmesh.json    the segment manifest: every file's size and SHA-256, signed
  <track>/         one folder per track: init.mp4 and 1.m4s, 2.m4s, ...
                   (init-N.mp4 opens crypto period N when keys rotate)

Inputs are progressive MP4 files, one per rendition (H.264 avc1 or HEVC
video, AAC audio; every rendition keyframe-aligned), or the HLS playlist or
static DASH MPD of an existing clear fMP4 ladder (its video cuts are kept,
audio is re-cut to match). Content keys are generated, sealed in the key
store and registered only once the whole output is written; the output is
built beside DIR and renamed into place, so an interrupted run leaves nothing.

With --import, --in is the HLS playlist of content already encrypted by
another packager (fMP4 with EXT-X-MAP, one folder per track): only the
signed manifest is written beside it and the keys given with --key or
--keys-file are registered.

Examples:
  sealmesh keys init --keystore ks.db
  SEALMESH_KEYSTORE_PASSPHRASE=... sealmesh pack --keystore ks.db \
      --in 720p.mp4 --in 360p.mp4 --out out/film --content film \
      --license-url https://license.example.com/v1/clearkey

--license-url (or --no-license-url) is required: the URL is written into
every HLS and DASH playlist, and players such as Shaka prefer it to their
own configuration, so no default is guessed.

--out may be missing or an empty folder (a mount point). An existing folder
is replaced only with --force and only when it holds sealmesh output whose
sealmesh.json is signed by this key store: a mistyped --out is never deleted.
Folders are created 0755 and files 0644 (less the umask), so a web server
running as another user can read them.`

func runPack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pack", packSynopsis, stderr)
	var ins, keyArgs multiFlag
	fs.Var(&ins, "in", "input `file`: progressive MP4 (repeat per rendition), or a clear fMP4 ladder's .m3u8 or .mpd")
	out := fs.String("out", "", "output `folder`: missing, empty, or (with --force) earlier sealmesh output of this key store")
	content := fs.String("content", "", "content `ID`: letters, digits, '.', '_', '-'")
	scheme := fs.String("scheme", "cbcs", "CENC `scheme`: cbcs (AES-CBC 1:9 pattern) or cenc (AES-CTR)")
	segDur := fs.Duration("segment-duration", 4*time.Second, "target segment `duration`; cuts land on keyframes")
	period := fs.Duration("crypto-period", 0, "key rotation `period`: each period gets its own key and KID (0: one key)")
	ksPath := fs.String("keystore", "", "key store `path` (default $SEALMESH_KEYSTORE or "+DefaultKeystore+")")
	passFile := fs.String("passphrase-file", "", "read the key store passphrase from `file` instead of $"+keys.PassphraseEnv)
	licenseURL := fs.String("license-url", "", "Clear Key license `URL` written into the playlists (the license server's /v1/clearkey); required unless --no-license-url")
	noLicenseURL := fs.Bool("no-license-url", false, "write no license URL into the playlists: players are configured with it instead")
	clearLead := fs.Int("clear-lead", 0, "leave the first `N` segments of each track unencrypted (off by default)")
	force := fs.Bool("force", false, "replace an output folder holding sealmesh output signed by this key store, and the content's registered keys")
	imp := fs.Bool("import", false, "sign and register content already encrypted by another packager (see above)")
	fs.Var(&keyArgs, "key", "with --import: `KID:KEY` in hex, one per crypto period, in order (repeatable)")
	keysFile := fs.String("keys-file", "", "with --import: JSON `file` [{\"kid\":..,\"key\":..,\"period\":N}] as 'keys export' prints")
	quiet := fs.Bool("quiet", false, "no progress: neither the bar on a terminal nor the line every 10 s elsewhere")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *imp {
		if len(ins) != 1 || *out != "" {
			return usageErr("--import takes one --in: the encrypted content's HLS playlist (its folder gets sealmesh.json); no --out")
		}
		return runImport(ctx, ins[0], *content, *ksPath, *passFile, keyArgs, *keysFile, *force, stdout)
	}
	if len(ins) == 0 {
		return usageErr("no input: give --in FILE (one per rendition); see 'sealmesh pack --help'")
	}
	if *out == "" || *content == "" {
		return usageErr("--out and --content are required; see 'sealmesh pack --help'")
	}
	if err := segment.ValidContentID(*content); err != nil {
		return usageErr("%v", err)
	}
	if err := checkLicenseURL(*licenseURL, *noLicenseURL); err != nil {
		return err
	}
	if len(keyArgs) > 0 || *keysFile != "" {
		return usageErr("--key and --keys-file go with --import; pack generates its own keys")
	}
	for _, in := range ins {
		if _, err := os.Stat(in); err != nil {
			return usageErr("input %s: %v", in, errors.Unwrap(err))
		}
	}
	ks, err := openKeystore(keystorePath(*ksPath), *passFile)
	if err != nil {
		return err
	}
	defer ks.Close()
	if _, err := ks.ContentKeys(ctx, *content); err == nil && !*force {
		return fmt.Errorf("content %q already has keys in the key store: choose another --content or pass --force to replace them", *content)
	}
	signer, err := ks.SigningKey(ctx, "manifest")
	if err != nil {
		return fmt.Errorf("manifest signing key: %w", err)
	}
	var contentKeys []keys.ContentKey
	bar := newProgress(stderr, *quiet)
	start := time.Now()
	res, err := segment.Pack(ctx, segment.Config{
		Inputs: ins, OutDir: *out, ContentID: *content, Scheme: segment.Scheme(*scheme),
		SegmentDuration: *segDur, CryptoPeriod: *period, LicenseURL: *licenseURL, ClearLead: *clearLead,
		Force: *force, Signer: signer.Signer(), SigningKeyID: signer.ID(),
		Keys: func(p int) (segment.Key, error) {
			ck, err := keys.NewContentKey(p)
			if err != nil {
				return segment.Key{}, err
			}
			contentKeys = append(contentKeys, ck)
			return segment.NewKey(ck.KID(), ck.InsecureRawKey())
		},
		BeforeCommit: func(*segment.Manifest) error {
			if err := ks.PutContent(ctx, *content, contentKeys, *force); err != nil {
				return fmt.Errorf("register keys: %w", err)
			}
			return nil
		},
		Progress: bar.update,
	})
	bar.done()
	if err != nil {
		return packError(err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	m := res.Manifest
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "packed %q (%s, %.1fs, %d crypto period(s)) into %s in %v (%.1f MB/s)\n",
		m.ContentID, m.Scheme, m.Duration, len(m.Periods), res.Dir, elapsed.Round(time.Millisecond),
		float64(res.Bytes)/1e6/elapsed.Seconds())
	for _, r := range m.Renditions {
		fmt.Fprintf(stdout, "  %-16s %-12s %6d kbit/s  %d files\n", r.ID, r.Codec, r.Bandwidth/1000, len(r.Files))
	}
	fmt.Fprintf(stdout, "  HLS %s/%s  DASH %s/%s  manifest %s/%s (key %s)\n",
		res.Dir, segment.HLSMaster, res.Dir, segment.DASHManifest, res.Dir, segment.ManifestFile, m.SigningKeyID)
	if *noLicenseURL {
		fmt.Fprintln(stdout, noLicenseURLNote)
	}
	return nil
}

// noLicenseURLNote tells an operator who packed without a license URL how
// players get keys.
const noLicenseURLNote = `  no license URL in the playlists (--no-license-url): configure each player with the license server's Clear Key URL, https://<license server>/v1/clearkey
    Shaka Player: drm.servers['org.w3.clearkey']; hls.js: drmSystems['org.w3.clearkey'].licenseUrl; dash.js: protData['org.w3.clearkey'].serverURL
    sealmesh peer play and the player SDK need nothing: they take keys from --license`

// checkLicenseURL makes the operator choose where players get keys: a URL
// written into every playlist, or none (--no-license-url). There is no
// default: a guessed URL (a license server on loopback) would ship in every
// playlist, and Shaka lets an MPD's dashif:Laurl override the app's own
// Clear Key server.
func checkLicenseURL(raw string, none bool) error {
	switch {
	case raw != "" && none:
		return usageErr("--license-url and --no-license-url exclude each other: give one")
	case none:
		return nil
	case raw == "":
		return usageErr("no --license-url: pass the Clear Key URL players should use (the license server's /v1/clearkey, e.g. --license-url https://license.example.com/v1/clearkey), or --no-license-url to write none and configure players yourself")
	}
	u, err := url.Parse(raw)
	absolute := err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
	relative := err == nil && u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/")
	if !absolute && !relative || strings.ContainsAny(raw, " \t\n\"<>") {
		return usageErr("--license-url %q: want an http(s) URL such as https://license.example.com/v1/clearkey (or a path such as /v1/clearkey on the origin's host)", raw)
	}
	return nil
}

// packError turns package errors into one line that says what to do.
func packError(err error) error {
	switch {
	case errors.Is(err, segment.ErrOutputExists), errors.Is(err, segment.ErrForeignOutput):
		return fmt.Errorf("%v", err)
	case errors.Is(err, segment.ErrUnsupportedInput), errors.Is(err, segment.ErrNoSyncSamples), errors.Is(err, segment.ErrMismatchedRenditions):
		return fmt.Errorf("%v (nothing was written)", err)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted: nothing was written and no keys were registered")
	}
	return fmt.Errorf("pack failed, nothing was written: %w", err)
}

// exportedKey is one line of 'sealmesh keys export' and of --keys-file.
type exportedKey struct {
	KID    string `json:"kid"`
	Key    string `json:"key"`
	Period int    `json:"period"`
}

func parseImportKeys(args []string, file string) ([]keys.ContentKey, error) {
	var list []exportedKey
	for i, a := range args {
		kid, key, ok := strings.Cut(a, ":")
		if !ok {
			return nil, usageErr("--key %q: want KID:KEY in hex", a)
		}
		list = append(list, exportedKey{KID: kid, Key: key, Period: i})
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageErr("--keys-file: %v", err)
		}
		var fromFile []exportedKey
		if err := json.Unmarshal(b, &fromFile); err != nil {
			return nil, usageErr("--keys-file %s: want a JSON list of {\"kid\",\"key\",\"period\"}: %v", file, err)
		}
		list = append(list, fromFile...)
	}
	if len(list) == 0 {
		return nil, usageErr("--import needs the content keys: --key KID:KEY or --keys-file FILE")
	}
	var out []keys.ContentKey
	for _, e := range list {
		kid, err := keys.ParseKID(e.KID)
		if err != nil {
			return nil, usageErr("key %q: %v", e.KID, err)
		}
		raw, err := hex.DecodeString(e.Key)
		if err != nil || len(raw) != 16 {
			return nil, usageErr("key for KID %s: want 32 hex characters", e.KID)
		}
		ck, err := keys.ContentKeyFromBytes(kid, e.Period, raw)
		if err != nil {
			return nil, usageErr("key for KID %s: %v", e.KID, err)
		}
		out = append(out, ck)
	}
	return out, nil
}
