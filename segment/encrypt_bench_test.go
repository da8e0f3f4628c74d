package segment

import (
	"crypto/aes"
	"crypto/cipher"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// BenchmarkSampleEncryption measures the CENC sample encryption alone (the
// calls Pack makes per sample, with the subsample patterns of a real H.264
// segment), against plain AES over the same number of protected bytes in
// one call. MB/s counts protected bytes, so the two are comparable: the gap
// is the cost of striping (cbcs 1:9) and of one cipher per sample.
func BenchmarkSampleEncryption(b *testing.B) {
	_, file, _, _ := runtime.Caller(0)
	clip := filepath.Join(filepath.Dir(file), "..", "testdata", "clip", "360p.mp4")
	src, tracks, err := openProgressive(clip)
	if err != nil {
		b.Fatal(err)
	}
	defer src.close()
	video := tracks[0]
	if err := planSegments([]*track{video}, 4*time.Second); err != nil {
		b.Fatal(err)
	}
	samples, _, err := src.samples(video, 0)
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 16)
	k, err := NewKey([16]byte{1}, key)
	if err != nil {
		b.Fatal(err)
	}
	for _, scheme := range []Scheme{SchemeCBCS, SchemeCENC} {
		iv := make([]byte, 16)
		_, ipd, err := protectInit(video, scheme, k, iv)
		if err != nil {
			b.Fatal(err)
		}
		patterns := make([][]mp4.SubSamplePattern, len(samples))
		var protected int64
		for i, s := range samples {
			patterns[i], err = ipd.ProtFunc(s.Data, string(scheme))
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range patterns[i] {
				protected += int64(p.BytesOfProtectedData)
			}
		}
		b.Run(string(scheme)+"/samples", func(b *testing.B) {
			b.SetBytes(protected)
			for b.Loop() {
				for i, s := range samples {
					if scheme == SchemeCBCS {
						err = mp4.EncryptSampleCbcs(s.Data, key, iv, patterns[i], ipd.Tenc)
					} else {
						err = mp4.CryptSampleCenc(s.Data, key, iv, patterns[i])
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(string(scheme)+"/raw-aes-same-bytes", func(b *testing.B) {
			block, _ := aes.NewCipher(key)
			buf := make([]byte, protected&^15)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if scheme == SchemeCBCS {
					cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
				} else {
					cipher.NewCTR(block, iv).XORKeyStream(buf, buf)
				}
			}
		})
	}
}
