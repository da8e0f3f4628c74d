// Command gen writes the signed-manifest fixture the web package's unit
// tests verify with WebCrypto: web/testdata/manifest/{sealmesh.json,
// key.json, v/...}. It signs with segment.SignManifest, so the fixture is
// exactly what Go packagers write. Regenerate with
//
//	go run ./web/testdata/gen
//
// The key is derived from a fixed seed: it signs nothing but this fixture.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/sealmesh/sealmesh/segment"
)

func main() {
	dir := filepath.Join("web", "testdata", "manifest")
	seed := sha256.Sum256([]byte("sealmesh web test fixture key"))
	sk := ed25519.NewKeyFromSeed(seed[:])
	files := map[string][]byte{}
	entry := func(p string, kind segment.FileKind, index int, data []byte) segment.File {
		files[p] = data
		sum := sha256.Sum256(data)
		f := segment.File{Path: p, Kind: kind, Index: index, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
		if kind == segment.KindMedia {
			f.Start, f.Duration = float64(index-1)*2, 2
		}
		return f
	}
	fill := func(n int, b byte) []byte {
		out := make([]byte, n)
		for i := range out {
			out[i] = b ^ byte(i*7)
		}
		return out
	}
	m := &segment.Manifest{
		Version: segment.ManifestVersion, ContentID: "web-fixture", Sequence: 1700000000000,
		Scheme: segment.SchemeCBCS, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		SegmentDuration: 2, Duration: 4, SigningKeyID: "fixture-1",
		Periods: []segment.Period{{Index: 0, KID: "00112233445566778899aabbccddeeff"}},
		Renditions: []segment.Rendition{{
			// Characters Go's encoder escapes (<, >, &) and non-ASCII text:
			// the page must verify the raw bytes, not a re-encoding.
			ID: "v0", Type: "video", Codec: "avc1.64001f", Bandwidth: 800000, Width: 640, Height: 360,
			Timescale: 90000, Language: "fr-<é&>",
			Files: []segment.File{
				entry("v0/init.mp4", segment.KindInit, 0, fill(700, 1)),
				entry("v0/seg-1.m4s", segment.KindMedia, 1, fill(70000, 2)),
				entry("v0/seg-2.m4s", segment.KindMedia, 2, fill(65536, 3)),
			},
		}},
	}
	out, err := segment.SignManifest(m, sk)
	if err != nil {
		log.Fatal(err)
	}
	write := func(p string, b []byte) {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	write(segment.ManifestFile, out)
	for p, b := range files {
		write(p, b)
	}
	key, _ := json.MarshalIndent(map[string]string{
		"key_id": m.SigningKeyID, "public_hex": hex.EncodeToString(sk.Public().(ed25519.PublicKey)),
		"digest": m.Digest(), "have_digest": haveDigest(m),
	}, "", "  ")
	write("key.json", append(key, '\n'))
	fmt.Println("wrote", dir)
}

// haveDigest is transport's manifest digest for have-protocol hellos
// (transport/swarm.go, unexported there): kept in step by the web tests,
// which compare it with their own.
func haveDigest(m *segment.Manifest) string {
	d := sha256.New()
	_, _ = io.WriteString(d, "sealmesh manifest digest v1\x00")
	for _, r := range m.Renditions {
		for _, f := range r.Files {
			fmt.Fprintf(d, "%s\x00%d\x00%s\n", f.Path, f.Size, f.SHA256)
		}
	}
	return hex.EncodeToString(d.Sum(nil))
}
