package keys_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
)

func TestSigningKey(t *testing.T) {
	sk, err := keys.NewSigningKey()
	require.NoError(t, err)
	pub := sk.Public()
	sum := sha256.Sum256(pub)
	require.Equal(t, hex.EncodeToString(sum[:8]), sk.ID())
	require.Len(t, sk.ID(), 16)
	require.Equal(t, sk.ID(), keys.SigningKeyID(pub))

	msg := []byte("segment manifest")
	signer := sk.Signer()
	require.Equal(t, pub, signer.Public())
	sig, err := signer.Sign(rand.Reader, msg, crypto.Hash(0))
	require.NoError(t, err)
	require.True(t, ed25519.Verify(pub, msg, sig))
	require.Equal(t, ed25519.Sign(sk.InsecureRawPrivateKey(), msg), sig)

	// Public and InsecureRawPrivateKey return copies.
	pub[0] ^= 0xff
	require.NotEqual(t, pub, sk.Public())
	priv := sk.InsecureRawPrivateKey()
	priv[0] ^= 0xff
	require.NotEqual(t, priv, sk.InsecureRawPrivateKey())
}

func TestSigningKeyNeverPrints(t *testing.T) {
	sk, err := keys.NewSigningKey()
	require.NoError(t, err)
	priv := sk.InsecureRawPrivateKey()
	seedHex := hex.EncodeToString(priv.Seed())
	want := "SigningKey{id=" + sk.ID() + "}"

	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("k", "key", sk, "signer", sk.Signer())

	for name, out := range map[string]string{
		"String":     sk.String(),
		"%v":         fmt.Sprintf("%v", sk),
		"%+v":        fmt.Sprintf("%+v", sk),
		"%#v":        fmt.Sprintf("%#v", sk),
		"%x":         fmt.Sprintf("%x", sk),
		"deref %+v":  fmt.Sprintf("%+v", *sk),
		"signer %v":  fmt.Sprintf("%v", sk.Signer()),
		"signer %+v": fmt.Sprintf("%+v", sk.Signer()),
		"signer %#v": fmt.Sprintf("%#v", sk.Signer()),
		"signer %x":  fmt.Sprintf("%x", sk.Signer()),
		"slog":       logBuf.String(),
		"struct %+v": fmt.Sprintf("%+v", struct{ S crypto.Signer }{sk.Signer()}),
	} {
		t.Run(name, func(t *testing.T) {
			require.NotContains(t, strings.ToLower(out), seedHex)
			require.NotContains(t, out, fmt.Sprint([]byte(priv.Seed())))
			require.Contains(t, out, sk.ID())
		})
	}
	require.Equal(t, want, fmt.Sprintf("%v", sk))
}
