package license

import (
	"crypto/ed25519"
	"testing"

	"github.com/sealmesh/sealmesh/keys"
)

// CryptoCost measures the server-side crypto of one license alone (two HPKE
// seals and one Ed25519 signature) for suite, for the load generator's
// report.
func CryptoCost(suite Suite) testing.BenchmarkResult {
	return testing.Benchmark(func(b *testing.B) { benchSeal(b, suite) })
}

func benchSeal(b *testing.B, suite Suite) {
	signer := ed25519.NewKeyFromSeed(make([]byte, 32))
	kem, err := suite.kem()
	if err != nil {
		b.Fatal(err)
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	pub, err := kem.NewPublicKey(priv.PublicKey().Bytes())
	if err != nil {
		b.Fatal(err)
	}
	var ks []keys.ContentKey
	for p := range 2 {
		k, err := keys.NewContentKey(p)
		if err != nil {
			b.Fatal(err)
		}
		ks = append(ks, k)
	}
	b.ReportAllocs()
	for b.Loop() {
		p := &LicensePayload{LicenseID: randomID(), SessionID: randomID(), Content: "movie-1", Suite: suite}
		if _, err := sealLicense(signer, "k", p, pub, ks); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLicense is the crypto of one license: 2× HPKE seal + Ed25519 sign
// (and the payload JSON).
func BenchmarkLicense(b *testing.B) {
	b.Run("x25519", func(b *testing.B) { benchSeal(b, SuiteX25519) })
	b.Run("mlkem768x25519", func(b *testing.B) { benchSeal(b, SuiteMLKEM768X25519) })
}
