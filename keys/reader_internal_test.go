package keys

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSnapshotTypesHoldNoKeys checks the promise on snapshot by its types:
// nothing reachable from a snapshot can hold a ContentKey, a SigningKey or an
// Ed25519 private key. (The KEK, a tink.AEAD interface, is the one secret a
// snapshot holds, by design; interfaces are not followed.)
func TestSnapshotTypesHoldNoKeys(t *testing.T) {
	forbidden := map[reflect.Type]bool{
		reflect.TypeFor[ContentKey]():         true,
		reflect.TypeFor[SigningKey]():         true,
		reflect.TypeFor[ed25519.PrivateKey](): true,
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, at string) {
		if seen[ty] {
			return
		}
		seen[ty] = true
		require.False(t, forbidden[ty], "%s has type %v", at, ty)
		switch ty.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(ty.Elem(), at+"[]")
		case reflect.Map:
			walk(ty.Key(), at+".key")
			walk(ty.Elem(), at+".value")
		case reflect.Struct:
			for i := range ty.NumField() {
				f := ty.Field(i)
				walk(f.Type, at+"."+f.Name)
			}
		}
	}
	walk(reflect.TypeFor[snapshot](), "snapshot")
}

// TestSnapshotStaysSealed unseals every key through the Reader and then
// checks that no byte slice in the snapshot contains a clear key: lookups
// must not cache what they unseal.
func TestSnapshotStaysSealed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	pass := []byte("correct horse battery staple")
	s, err := Init(path, pass, WithArgon2Params(1, 64, 1))
	require.NoError(t, err)
	k0, err := NewContentKey(0)
	require.NoError(t, err)
	k1, err := NewContentKey(1)
	require.NoError(t, err)
	require.NoError(t, s.PutContent(ctx, "movie", []ContentKey{k0, k1}, false))
	sk, err := s.SigningKey(ctx, SigningKeyLicense)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	r, err := NewReader(path, pass)
	require.NoError(t, err)
	defer r.Close()
	_, err = r.ContentKeys(ctx, "movie")
	require.NoError(t, err)
	_, _, err = r.ContentKey(ctx, k1.KID())
	require.NoError(t, err)
	_, err = r.SigningKey(ctx, SigningKeyLicense)
	require.NoError(t, err)

	secrets := [][]byte{k0.key[:], k1.key[:], sk.priv.Seed()}
	snap := r.snap.Load()
	var blobs [][]byte
	blobs = append(blobs, snap.encKeyset)
	for _, c := range snap.contents {
		for _, k := range c.keys {
			blobs = append(blobs, k.ad, k.sealed)
		}
	}
	for _, v := range snap.signing {
		blobs = append(blobs, v.ad, v.sealed)
	}
	require.Len(t, blobs, 1+2*2+2)
	for _, b := range blobs {
		for _, sec := range secrets {
			require.False(t, bytes.Contains(b, sec), "clear key bytes in the snapshot")
		}
	}
}
