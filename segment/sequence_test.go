package segment_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

func TestNextSequence(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	cases := []struct {
		name string
		prev uint64
		want uint64
	}{
		{"first pack: the clock", 0, 1_800_000_000_000},
		{"older previous: the clock", 1_700_000_000_000, 1_800_000_000_000},
		{"clock behind the previous: previous+1", 1_900_000_000_000, 1_900_000_000_001},
		{"equal: previous+1", 1_800_000_000_000, 1_800_000_000_001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, segment.NextSequence(c.prev, now))
		})
	}
	require.Equal(t, uint64(1), segment.NextSequence(0, time.Unix(-5, 0)), "a clock before 1970 still gives a positive sequence")
}

// TestRepackRaisesSequence re-packs a content in place (--force) with the
// same key: the new manifest's sequence is above the old one's even with
// the clock set back, and its digest is the SHA-256 of the exact signed
// bytes.
func TestRepackRaisesSequence(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "out")
	pack := func() *segment.Manifest {
		res, err := segment.Pack(context.Background(), segment.Config{
			Inputs: clipPaths(t)[:1], OutDir: out, ContentID: "clip", Scheme: segment.SchemeCBCS,
			Signer: priv, SigningKeyID: "k", Force: true,
			Keys: func(int) (segment.Key, error) { return randomKey(t), nil },
		})
		require.NoError(t, err)
		return res.Manifest
	}
	first := pack()
	require.NotZero(t, first.Sequence)
	// Pretend the first pack ran with a clock far ahead: re-sign it with a
	// sequence in the future. The re-pack must still go above it.
	ahead := *first
	ahead.Sequence = uint64(time.Now().Add(24 * time.Hour).UnixMilli())
	signed, err := segment.SignManifest(&ahead, priv)
	require.NoError(t, err)
	writeFileT(t, filepath.Join(out, segment.ManifestFile), signed)
	require.Equal(t, ahead.Sequence, segment.PreviousSequence(filepath.Join(out, segment.ManifestFile), pub))
	second := pack()
	require.Equal(t, ahead.Sequence+1, second.Sequence)

	raw := readFileT(t, filepath.Join(out, segment.ManifestFile))
	m, err := segment.ParseManifest(raw, segment.TrustedKeys{"k": pub})
	require.NoError(t, err)
	require.Equal(t, second.Sequence, m.Sequence)
	var env struct {
		Manifest json.RawMessage `json:"manifest"`
	}
	require.NoError(t, json.Unmarshal(raw, &env))
	sum := sha256.Sum256(env.Manifest)
	require.Equal(t, hex.EncodeToString(sum[:]), m.Digest(), "Digest is the SHA-256 of the signed bytes")
	require.Equal(t, m.Digest(), second.Digest(), "SignManifest and ParseManifest agree on the digest")
	require.NotEqual(t, first.Digest(), second.Digest())

	// A manifest signed by another key (a rotated one) does not count.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	require.Zero(t, segment.PreviousSequence(filepath.Join(out, segment.ManifestFile), other))
	require.Zero(t, segment.PreviousSequence(filepath.Join(out, "missing.json"), pub))
}

// TestManifestWithoutSequenceParses: manifests packed before the sequence
// field existed have no "sequence" member and read as sequence 0.
func TestManifestWithoutSequenceParses(t *testing.T) {
	p := packClip(t, segment.SchemeCBCS, 0)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	old := *p.m
	old.Sequence = 0
	signed, err := segment.SignManifest(&old, priv)
	require.NoError(t, err)
	require.False(t, strings.Contains(string(signed), `"sequence"`), "sequence 0 is left out, as before the field existed")
	m, err := segment.ParseManifest(signed, segment.TrustedKeys{p.keyID: priv.Public().(ed25519.PublicKey)})
	require.NoError(t, err)
	require.Zero(t, m.Sequence)
	require.NotEmpty(t, m.Digest())

	// The largest sequence round-trips; PreviousSequence refuses to continue it.
	old.Sequence = math.MaxUint64
	signed, err = segment.SignManifest(&old, priv)
	require.NoError(t, err)
	m, err = segment.ParseManifest(signed, segment.TrustedKeys{p.keyID: priv.Public().(ed25519.PublicKey)})
	require.NoError(t, err)
	require.Equal(t, uint64(math.MaxUint64), m.Sequence)
	require.Empty(t, (&segment.Manifest{}).Digest(), "a manifest neither parsed nor signed has no digest")
}

func writeFileT(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

func readFileT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
