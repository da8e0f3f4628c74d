package segment_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

func TestManifestVerifies(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 0)
	raw := p.read(t, segment.ManifestFile)
	m, err := segment.ParseManifest(raw, segment.TrustedKeys{p.keyID: p.pub})
	require.NoError(t, err)
	require.Equal(t, "clip", m.ContentID)
	require.Len(t, m.Renditions, 3)
	for _, f := range m.Files() {
		require.NoError(t, m.CheckFile(f.Path, p.read(t, f.Path)), f.Path)
	}
	// Every file in the folder (but the manifest itself) is listed.
	n := 0
	filepath.WalkDir(p.dir, func(path string, d os.DirEntry, err error) error {
		if !d.IsDir() && filepath.Base(path) != segment.ManifestFile {
			n++
		}
		return nil
	})
	require.Equal(t, n, len(m.Files()))
}

func TestManifestUntrustedKey(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 0)
	raw := p.read(t, segment.ManifestFile)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	_, err := segment.ParseManifest(raw, segment.TrustedKeys{p.keyID: other})
	require.ErrorIs(t, err, segment.ErrBadSignature)
	_, err = segment.ParseManifest(raw, segment.TrustedKeys{"someone-else": p.pub})
	require.ErrorIs(t, err, segment.ErrBadSignature)
}

// TestManifestAnyByteFlipDetected flips every byte of the signed manifest in
// turn: each change must fail parsing or verification.
func TestManifestAnyByteFlipDetected(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 0)
	raw := p.read(t, segment.ManifestFile)
	trusted := segment.TrustedKeys{p.keyID: p.pub}
	for i := range raw {
		mut := append([]byte(nil), raw...)
		mut[i] ^= 0x01
		_, err := segment.ParseManifest(mut, trusted)
		require.Error(t, err, "flipping byte %d (%q) went unnoticed", i, raw[i])
	}
}

// TestSegmentFlipAndSwapDetected flips a byte at several places of every
// file and swaps files pairwise: CheckFile must refuse each.
func TestSegmentFlipAndSwapDetected(t *testing.T) {
	p := packClip(t, segment.SchemeCENC, 0)
	files := p.m.Files()
	for _, f := range files {
		data := p.read(t, f.Path)
		for _, pos := range []int{0, len(data) / 3, len(data) / 2, len(data) - 1} {
			mut := append([]byte(nil), data...)
			mut[pos] ^= 0x80
			require.ErrorIs(t, p.m.CheckFile(f.Path, mut), segment.ErrIntegrity, "%s byte %d", f.Path, pos)
		}
		require.ErrorIs(t, p.m.CheckFile(f.Path, data[:len(data)-1]), segment.ErrIntegrity, "truncated %s", f.Path)
		require.ErrorIs(t, p.m.CheckFile(f.Path, append(data, 0)), segment.ErrIntegrity, "extended %s", f.Path)
	}
	for i := range files {
		for j := range files {
			if i != j && files[i].SHA256 != files[j].SHA256 { // identical playlists may share bytes
				require.ErrorIs(t, p.m.CheckFile(files[i].Path, p.read(t, files[j].Path)), segment.ErrIntegrity, "%s served as %s", files[j].Path, files[i].Path)
			}
		}
	}
	require.ErrorIs(t, p.m.CheckFile("video-640x360/99.m4s", nil), segment.ErrUnknownFile)
}

func TestManifestValidateRejects(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 0)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	cases := map[string]func(m *segment.Manifest){
		"parent path":    func(m *segment.Manifest) { m.Renditions[0].Files[1].Path = "../../etc/passwd" },
		"absolute path":  func(m *segment.Manifest) { m.Renditions[0].Files[1].Path = "/etc/passwd" },
		"hidden path":    func(m *segment.Manifest) { m.Renditions[0].Files[1].Path = "video/.x" },
		"duplicate path": func(m *segment.Manifest) { m.Renditions[0].Files[2].Path = m.Renditions[0].Files[1].Path },
		"bad hash":       func(m *segment.Manifest) { m.Renditions[0].Files[1].SHA256 = "zz" },
		"zero size":      func(m *segment.Manifest) { m.Renditions[0].Files[1].Size = 0 },
		"index gap":      func(m *segment.Manifest) { m.Renditions[0].Files[2].Index = 5 },
		"bad period":     func(m *segment.Manifest) { m.Renditions[0].Files[1].Period = 3 },
		"bad kid":        func(m *segment.Manifest) { m.Periods[0].KID = "xyz" },
		"bad version":    func(m *segment.Manifest) { m.Version = 2 },
		"bad content":    func(m *segment.Manifest) { m.ContentID = "a/b" },
		"no renditions":  func(m *segment.Manifest) { m.Renditions = nil },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			m := *p.m
			m.Renditions = append([]segment.Rendition(nil), p.m.Renditions...)
			m.Renditions[0].Files = append([]segment.File(nil), p.m.Renditions[0].Files...)
			m.Periods = append([]segment.Period(nil), p.m.Periods...)
			mod(&m)
			_, err := segment.SignManifest(&m, priv)
			require.ErrorIs(t, err, segment.ErrMalformedManifest)
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	seed, err := os.ReadFile(filepath.Join("testdata", "manifest-seed.json"))
	if err == nil {
		f.Add(seed)
	}
	m := &segment.Manifest{
		Version: 1, ContentID: "c", Scheme: segment.SchemeCBCS, SigningKeyID: "k", Sequence: 1_800_000_000_000,
		Periods: []segment.Period{{KID: "00112233445566778899aabbccddeeff"}},
		Renditions: []segment.Rendition{{ID: "audio", Type: "audio", Files: []segment.File{
			{Path: "audio/init.mp4", Kind: segment.KindInit, Size: 1, SHA256: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
		}}},
	}
	signed, err := segment.SignManifest(m, priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add([]byte(`{"manifest":{},"key_id":"k","signature":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := segment.ParseManifest(data, segment.TrustedKeys{"k": pub})
		if err != nil {
			return
		}
		// Whatever parses must be valid and its lookups must not panic.
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed manifest fails Validate: %v", err)
		}
		if len(m.Digest()) != 64 {
			t.Fatalf("parsed manifest has no digest: %q", m.Digest())
		}
		for _, f := range m.Files() {
			_ = m.CheckFile(f.Path, nil)
		}
	})
}

// FuzzDecryptor feeds arbitrary bytes as init and media segments: the
// decryptor must return errors, never panic.
func FuzzDecryptor(f *testing.F) {
	p := packClip(f, segment.SchemeCBCS, 0)
	r := p.m.Renditions[0]
	init, seg := p.read(f, r.Files[0].Path), p.read(f, r.Files[1].Path)
	f.Add(init, seg[:2000])
	f.Add(init[:200], []byte{0, 0, 0, 8, 'm', 'o', 'o', 'f'})
	var kid [16]byte
	f.Fuzz(func(t *testing.T, init, seg []byte) {
		d, err := segment.NewDecryptor(init)
		if err != nil {
			return
		}
		kid = d.KID()
		_, _ = d.Decrypt(seg, map[[16]byte][]byte{kid: make([]byte, 16)})
	})
}
