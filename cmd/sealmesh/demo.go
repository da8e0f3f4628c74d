package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/segment"
)

const demoSynopsis = `Usage: sealmesh demo [flags]

Packs the bundled test clip (testdata/clip) into a temporary folder with a
throw-away key store, verifies the signed manifest, checks every file against
it and decrypts one segment per track in memory, then prints what was made.
Nothing is left behind unless --keep is given.`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoSynopsis, stderr)
	var ins multiFlag
	fs.Var(&ins, "in", "input `file` instead of the bundled clip (repeatable)")
	scheme := fs.String("scheme", "cbcs", "CENC `scheme`: cbcs or cenc")
	period := fs.Duration("crypto-period", 8*time.Second, "key rotation `period`")
	keep := fs.Bool("keep", false, "keep the packaged folder and print its path")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(ins) == 0 {
		clip, err := findClip()
		if err != nil {
			return err
		}
		ins = clip
	}
	dir, err := os.MkdirTemp("", "sealmesh-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	pass := make([]byte, 24)
	rand.Read(pass)
	ks, err := keys.Init(filepath.Join(dir, "demo.keystore"), []byte(hex.EncodeToString(pass)), keys.WithArgon2Params(1, 8*1024, 1))
	if err != nil {
		return fmt.Errorf("demo key store: %w", err)
	}
	defer ks.Close()
	sk, err := ks.SigningKey(ctx, "manifest")
	if err != nil {
		return err
	}
	var cks []keys.ContentKey
	out := filepath.Join(dir, "content")
	start := time.Now()
	_, err = segment.Pack(ctx, segment.Config{
		Inputs: ins, OutDir: out, ContentID: "demo", Scheme: segment.Scheme(*scheme), CryptoPeriod: *period,
		Signer: sk.Signer(), SigningKeyID: sk.ID(),
		Keys: func(p int) (segment.Key, error) {
			ck, err := keys.NewContentKey(p)
			cks = append(cks, ck)
			return segment.Key{KID: ck.KID(), Key: ck.InsecureRawKey()}, err
		},
		BeforeCommit: func(*segment.Manifest) error { return ks.PutContent(ctx, "demo", cks, false) },
	})
	if err != nil {
		return packError(err)
	}
	took := time.Since(start)
	// Verify as a peer would: signature first, then every file's bytes.
	raw, err := os.ReadFile(filepath.Join(out, segment.ManifestFile))
	if err != nil {
		return err
	}
	m, err := segment.ParseManifest(raw, segment.TrustedKeys{sk.ID(): sk.Public()})
	if err != nil {
		return fmt.Errorf("verify manifest: %w", err)
	}
	for _, f := range m.Files() {
		data, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.Path)))
		if err != nil {
			return err
		}
		if err := f.Check(data); err != nil {
			return err
		}
	}
	keyByKID := map[[16]byte][]byte{}
	for _, ck := range cks {
		keyByKID[ck.KID()] = ck.InsecureRawKey()
	}
	fmt.Fprintf(stdout, "sealmesh demo: packed %s (%.1fs, %s, %d crypto periods) in %v\n\n", filepath.Base(ins[0]), m.Duration, m.Scheme, len(m.Periods), took.Round(time.Millisecond))
	fmt.Fprintf(stdout, "%-16s %-12s %9s %6s %s\n", "TRACK", "CODEC", "KBIT/S", "FILES", "DECRYPTED SEGMENT 1")
	for _, r := range m.Renditions {
		initData, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(r.Files[0].Path)))
		segData, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(r.Files[1].Path)))
		status := "ok"
		d, err := segment.NewDecryptor(initData)
		if err == nil {
			var clear []byte
			clear, err = d.Decrypt(segData, keyByKID)
			status = fmt.Sprintf("ok (%d bytes clear)", len(clear))
		}
		if err != nil {
			status = "FAILED: " + err.Error()
		}
		fmt.Fprintf(stdout, "%-16s %-12s %9d %6d %s\n", r.ID, r.Codec, r.Bandwidth/1000, len(r.Files), status)
	}
	fmt.Fprintf(stdout, "\nmanifest signed by %s; %d files verified against it\n", m.SigningKeyID, len(m.Files()))
	for _, p := range m.Periods {
		fmt.Fprintf(stdout, "period %d from %5.1fs  KID %s\n", p.Index, p.Start, p.KID)
	}
	if *keep {
		fmt.Fprintf(stdout, "\noutput kept in %s (HLS %s, DASH %s)\n", out, segment.HLSMaster, segment.DASHManifest)
	}
	fmt.Fprintln(stdout, "\nThe license server, origin and swarm parts of the demo arrive with the next issues.")
	return nil
}

// findClip locates testdata/clip from the working folder or any parent, so
// 'go run ./cmd/sealmesh demo' works from anywhere inside the repository.
func findClip() ([]string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		c := filepath.Join(dir, "testdata", "clip")
		a, b := filepath.Join(c, "360p.mp4"), filepath.Join(c, "180p.mp4")
		if _, err := os.Stat(a); err == nil {
			if _, err := os.Stat(b); err == nil {
				return []string{a, b}, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("bundled clip testdata/clip not found: run from the sealmesh repository or pass --in FILE.mp4")
		}
		dir = parent
	}
}
