package segment_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

// EnvBenchClip names a long progressive MP4 (video+audio) for BenchmarkPackLong,
// e.g. one made by testdata/make-long-clip.sh; scripts/bench-pack sets it.
const EnvBenchClip = "SEALMESH_BENCH_CLIP"

const rawAESBufSize = 1 << 20 // 1 MiB, a large video sample's order of magnitude

// BenchmarkRawAESCBC is the ceiling for cbcs: plain AES-128-CBC over 1 MiB
// with the standard library (AES-NI where available).
func BenchmarkRawAESCBC(b *testing.B) {
	block, buf, iv := rawAESSetup(b)
	b.SetBytes(rawAESBufSize)
	for b.Loop() {
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	}
}

// BenchmarkRawAESCTR is the ceiling for cenc: plain AES-128-CTR over 1 MiB.
func BenchmarkRawAESCTR(b *testing.B) {
	block, buf, iv := rawAESSetup(b)
	b.SetBytes(rawAESBufSize)
	for b.Loop() {
		cipher.NewCTR(block, iv).XORKeyStream(buf, buf)
	}
}

func rawAESSetup(b *testing.B) (cipher.Block, []byte, []byte) {
	key := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	buf := make([]byte, rawAESBufSize)
	rand.Read(key)
	rand.Read(iv)
	rand.Read(buf)
	block, err := aes.NewCipher(key)
	require.NoError(b, err)
	return block, buf, iv
}

// BenchmarkPack packs the committed 12 s two-rendition clip; MB/s is input
// media bytes (both files) per second.
func BenchmarkPack(b *testing.B) {
	benchPackSchemes(b, clipPaths(b))
}

// BenchmarkPackLong packs the clip named by SEALMESH_BENCH_CLIP (a single
// 60 s 720p H.264+AAC file in scripts/bench-pack), and skips without it.
func BenchmarkPackLong(b *testing.B) {
	clip := os.Getenv(EnvBenchClip)
	if clip == "" {
		b.Skipf("%s not set; make a clip with testdata/make-long-clip.sh or run ./scripts/bench-pack", EnvBenchClip)
	}
	benchPackSchemes(b, []string{clip})
}

func benchPackSchemes(b *testing.B, inputs []string) {
	var size int64
	for _, in := range inputs {
		fi, err := os.Stat(in)
		require.NoError(b, err)
		size += fi.Size()
	}
	for _, scheme := range []segment.Scheme{segment.SchemeCBCS, segment.SchemeCENC} {
		b.Run(string(scheme), func(b *testing.B) {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			require.NoError(b, err)
			key := randomKey(b)
			cfg := segment.Config{
				Inputs: inputs, ContentID: "bench", Scheme: scheme,
				Signer: priv, SigningKeyID: "bench-key",
				Keys: func(int) (segment.Key, error) { return key, nil },
			}
			root := b.TempDir()
			b.SetBytes(size)
			n := 0
			for b.Loop() {
				n++
				cfg.OutDir = filepath.Join(root, fmt.Sprintf("out-%d", n))
				if _, err := segment.Pack(context.Background(), cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
