package segment_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

// repoRoot is the module root, found from this file's location.
func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Dir(filepath.Dir(file))
}

func clipPaths(t testing.TB) []string {
	c := filepath.Join(repoRoot(t), "testdata", "clip")
	return []string{filepath.Join(c, "360p.mp4"), filepath.Join(c, "180p.mp4")}
}

// packed is one packaging run's output and everything needed to check it.
type packed struct {
	dir     string
	m       *segment.Manifest
	pub     ed25519.PublicKey
	keyID   string
	keys    map[[16]byte][]byte
	periods [][]byte // key per period
}

type packOpt func(*segment.Config)

func packClip(t testing.TB, scheme segment.Scheme, period time.Duration, opts ...packOpt) *packed {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := &packed{dir: filepath.Join(t.TempDir(), "out"), pub: pub, keyID: "test-key", keys: map[[16]byte][]byte{}}
	cfg := segment.Config{
		Inputs: clipPaths(t), OutDir: p.dir, ContentID: "clip", Scheme: scheme, CryptoPeriod: period,
		Signer: priv, SigningKeyID: p.keyID,
		Keys: func(n int) (segment.Key, error) {
			k := randomKey(t)
			p.keys[k.KID()] = k.InsecureRawKey()
			p.periods = append(p.periods, k.InsecureRawKey())
			return k, nil
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	res, err := segment.Pack(context.Background(), cfg)
	require.NoError(t, err)
	p.m = res.Manifest
	return p
}

// randomKey returns a fresh random content key with a random KID.
func randomKey(t testing.TB) segment.Key {
	t.Helper()
	var kid [16]byte
	raw := make([]byte, segment.KeySize)
	rand.Read(kid[:])
	rand.Read(raw)
	k, err := segment.NewKey(kid, raw)
	require.NoError(t, err)
	return k
}

func (p *packed) read(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, filepath.FromSlash(rel)))
	require.NoError(t, err)
	return b
}

func (p *packed) rendition(t testing.TB, id string) segment.Rendition {
	for _, r := range p.m.Renditions {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no rendition %q", id)
	return segment.Rendition{}
}

// initFor returns the init file that applies to media file f.
func initFor(r segment.Rendition, f segment.File) segment.File {
	for _, g := range r.Files {
		if g.Kind == segment.KindInit && g.Period == f.Period {
			return g
		}
	}
	panic("no init for period")
}

// sourceSamples returns the sample payloads of the first track of kind
// ("vide" or "soun") in a progressive MP4 file.
func sourceSamples(t testing.TB, path, handler string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	require.NoError(t, err)
	for _, trak := range f.Moov.Traks {
		if trak.Mdia.Hdlr.HandlerType != handler {
			continue
		}
		stbl := trak.Mdia.Minf.Stbl
		n := stbl.Stsz.GetNrSamples()
		var buf bytes.Buffer
		require.NoError(t, f.CopySampleData(&buf, bytes.NewReader(data), trak, 1, n, nil))
		out := make([][]byte, 0, n)
		all := buf.Bytes()
		for i := uint32(1); i <= n; i++ {
			sz := stbl.Stsz.GetSampleSize(int(i))
			out = append(out, all[:sz])
			all = all[sz:]
		}
		return out
	}
	t.Fatalf("no %s track in %s", handler, path)
	return nil
}

// segmentSamples parses a (clear or encrypted) media segment and returns its
// sample payloads.
func segmentSamples(t testing.TB, init, seg []byte) [][]byte {
	t.Helper()
	fi, err := mp4.DecodeFile(bytes.NewReader(init))
	require.NoError(t, err)
	fs, err := mp4.DecodeFile(bytes.NewReader(seg))
	require.NoError(t, err)
	var out [][]byte
	for _, s := range fs.Segments {
		for _, frag := range s.Fragments {
			samples, err := frag.GetFullSamples(fi.Init.Moov.Mvex.Trex)
			require.NoError(t, err)
			for _, smp := range samples {
				out = append(out, smp.Data)
			}
		}
	}
	return out
}
