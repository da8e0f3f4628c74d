package license

import (
	"crypto/ed25519"
	"crypto/hpke"
	"testing"
	"time"

	"github.com/sealmesh/sealmesh/keys"
)

// UnwrapForTest is the client's unwrapping of a verified payload.
func UnwrapForTest(priv hpke.PrivateKey, p *LicensePayload) ([]keys.ContentKey, error) {
	return unwrapKeys(priv, p)
}

// CryptoCost measures the server-side crypto of one license alone (one
// HPKE context, two seals, one Ed25519 signature and the payload JSON) for
// suite, as a testing benchmark.
func CryptoCost(suite Suite) testing.BenchmarkResult {
	return testing.Benchmark(func(b *testing.B) { benchSeal(b, suite) })
}

// CryptoCostN runs the same work n times inline and returns the mean time
// per license: the load generator's crypto-only line, measured in its run.
func CryptoCostN(suite Suite, n int) (time.Duration, error) {
	seal, err := sealer(suite)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for range n {
		if err := seal(); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(n), nil
}

// sealer returns a function that seals and signs one license of two keys.
func sealer(suite Suite) (func() error, error) {
	signer := ed25519.NewKeyFromSeed(make([]byte, 32))
	kem, err := suite.kem()
	if err != nil {
		return nil, err
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, err
	}
	pub, err := kem.NewPublicKey(priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	var ks []keys.ContentKey
	for p := range 2 {
		k, err := keys.NewContentKey(p)
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	return func() error {
		p := &LicensePayload{LicenseID: randomID(), SessionID: randomID(), Content: "movie-1", Suite: suite}
		_, err := sealLicense(signer, "k", p, pub, ks)
		return err
	}, nil
}

func benchSeal(b *testing.B, suite Suite) {
	seal, err := sealer(suite)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := seal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLicense is the crypto of one license: one HPKE context with two
// seals, and an Ed25519 signature (and the payload JSON).
func BenchmarkLicense(b *testing.B) {
	b.Run("x25519", func(b *testing.B) { benchSeal(b, SuiteX25519) })
	b.Run("mlkem768x25519", func(b *testing.B) { benchSeal(b, SuiteMLKEM768X25519) })
}
