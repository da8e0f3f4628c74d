package keys_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/sealmesh/sealmesh/keys"
)

// withRawBolt opens a closed store's file with bbolt directly, as an
// attacker with write access to the file would.
func withRawBolt(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(fn))
	require.NoError(t, db.Close())
}

func swap(b1 *bolt.Bucket, k1 []byte, b2 *bolt.Bucket, k2 []byte) error {
	v1 := append([]byte(nil), b1.Get(k1)...)
	v2 := append([]byte(nil), b2.Get(k2)...)
	if err := b1.Put(k1, v2); err != nil {
		return err
	}
	return b2.Put(k2, v1)
}

func period(p uint64) []byte { return []byte{0, 0, 0, 0, 0, 0, 0, byte(p)} }

func TestSwappedRecordsFail(t *testing.T) {
	ctx := context.Background()
	keysOf := func(tx *bolt.Tx, id string) *bolt.Bucket {
		return tx.Bucket([]byte("content")).Bucket([]byte(id)).Bucket([]byte("keys"))
	}
	tests := []struct {
		name   string
		tamper func(tx *bolt.Tx) error
		check  func(t *testing.T, s *keys.FileStore, a, b []keys.ContentKey)
	}{
		{
			name: "periods within one content",
			tamper: func(tx *bolt.Tx) error {
				kb := keysOf(tx, "a")
				return swap(kb, period(0), kb, period(1))
			},
			check: func(t *testing.T, s *keys.FileStore, a, _ []keys.ContentKey) {
				_, err := s.ContentKeys(ctx, "a")
				require.ErrorIs(t, err, keys.ErrCorrupt)
				_, _, err = s.ContentKey(ctx, a[0].KID())
				require.ErrorIs(t, err, keys.ErrCorrupt)
			},
		},
		{
			name: "records across contents",
			tamper: func(tx *bolt.Tx) error {
				return swap(keysOf(tx, "a"), period(0), keysOf(tx, "b"), period(0))
			},
			check: func(t *testing.T, s *keys.FileStore, a, b []keys.ContentKey) {
				_, err := s.ContentKeys(ctx, "a")
				require.ErrorIs(t, err, keys.ErrCorrupt)
				_, err = s.ContentKeys(ctx, "b")
				require.ErrorIs(t, err, keys.ErrCorrupt)
			},
		},
		{
			name: "ciphertext only, KIDs left in place",
			tamper: func(tx *bolt.Tx) error {
				ka, kb := keysOf(tx, "a"), keysOf(tx, "b")
				va := append([]byte(nil), ka.Get(period(0))...)
				vb := append([]byte(nil), kb.Get(period(0))...)
				if err := ka.Put(period(0), append(va[:16:16], vb[16:]...)); err != nil {
					return err
				}
				return kb.Put(period(0), append(vb[:16:16], va[16:]...))
			},
			check: func(t *testing.T, s *keys.FileStore, a, b []keys.ContentKey) {
				_, _, err := s.ContentKey(ctx, a[0].KID())
				require.ErrorIs(t, err, keys.ErrCorrupt)
				_, _, err = s.ContentKey(ctx, b[0].KID())
				require.ErrorIs(t, err, keys.ErrCorrupt)
			},
		},
		{
			name: "content copied under another ID",
			tamper: func(tx *bolt.Tx) error {
				c, err := tx.Bucket([]byte("content")).CreateBucket([]byte("c"))
				if err != nil {
					return err
				}
				kc, err := c.CreateBucket([]byte("keys"))
				if err != nil {
					return err
				}
				return keysOf(tx, "a").ForEach(func(k, v []byte) error { return kc.Put(k, v) })
			},
			check: func(t *testing.T, s *keys.FileStore, _, _ []keys.ContentKey) {
				_, err := s.ContentKeys(ctx, "c")
				require.ErrorIs(t, err, keys.ErrCorrupt)
				_, err = s.ContentKeys(ctx, "a")
				require.NoError(t, err, "the original still opens")
			},
		},
		{
			name: "signing keys",
			tamper: func(tx *bolt.Tx) error {
				sb := tx.Bucket([]byte("signing"))
				return swap(sb, []byte(keys.SigningKeyManifest), sb, []byte(keys.SigningKeyLicense))
			},
			check: func(t *testing.T, s *keys.FileStore, _, _ []keys.ContentKey) {
				_, err := s.SigningKey(ctx, keys.SigningKeyManifest)
				require.ErrorIs(t, err, keys.ErrCorrupt)
				_, err = s.SigningKey(ctx, keys.SigningKeyLicense)
				require.ErrorIs(t, err, keys.ErrCorrupt)
			},
		},
		{
			name: "flipped bit",
			tamper: func(tx *bolt.Tx) error {
				kb := keysOf(tx, "a")
				v := append([]byte(nil), kb.Get(period(1))...)
				v[len(v)-1] ^= 1
				return kb.Put(period(1), v)
			},
			check: func(t *testing.T, s *keys.FileStore, a, _ []keys.ContentKey) {
				_, _, err := s.ContentKey(ctx, a[1].KID())
				require.ErrorIs(t, err, keys.ErrCorrupt)
				_, _, err = s.ContentKey(ctx, a[0].KID())
				require.NoError(t, err, "other records still open")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := initStore(t)
			a, b := newKeys(t, 2), newKeys(t, 2)
			require.NoError(t, s.PutContent(ctx, "a", a, false))
			require.NoError(t, s.PutContent(ctx, "b", b, false))
			for _, n := range []string{keys.SigningKeyManifest, keys.SigningKeyLicense} {
				_, err := s.SigningKey(ctx, n)
				require.NoError(t, err)
			}
			require.NoError(t, s.Close())
			withRawBolt(t, path, tt.tamper)
			s2, err := keys.Open(path, passphrase)
			require.NoError(t, err)
			defer s2.Close()
			tt.check(t, s2, a, b)
		})
	}
}

// TestNoSecretsInFile scans the raw store file for every secret it holds.
func TestNoSecretsInFile(t *testing.T) {
	ctx := context.Background()
	s, path := initStore(t)
	var secrets [][]byte
	for i, id := range []string{"one", "two", "three"} {
		ks := newKeys(t, 4)
		require.NoError(t, s.PutContent(ctx, id, ks, false))
		for _, k := range ks {
			secrets = append(secrets, k.InsecureRawKey())
		}
		if i == 1 {
			require.NoError(t, s.RotateKEK(ctx))
		}
	}
	for _, n := range []string{keys.SigningKeyManifest, keys.SigningKeyLicense} {
		sk, err := s.SigningKey(ctx, n)
		require.NoError(t, err)
		priv := sk.InsecureRawPrivateKey()
		secrets = append(secrets, priv, priv.Seed())
	}
	// Replaced and deleted keys must not linger in clear in free pages either.
	gone := newKeys(t, 2)
	require.NoError(t, s.PutContent(ctx, "gone", gone, false))
	require.NoError(t, s.DeleteContent(ctx, "gone"))
	for _, k := range gone {
		secrets = append(secrets, k.InsecureRawKey())
	}
	require.NoError(t, s.Close())

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(raw), 4096)
	for i, secret := range secrets {
		require.False(t, bytes.Contains(raw, secret), "secret %d found in clear in the store file", i)
	}
	// Sanity check of the scan itself: a public KID, stored in clear, is found.
	list := mustList(t, path)
	kid := list[0].KIDs[0]
	require.True(t, bytes.Contains(raw, kid[:]))
}

func mustList(t *testing.T, path string) []keys.ContentInfo {
	t.Helper()
	s, err := keys.Open(path, passphrase)
	require.NoError(t, err)
	defer s.Close()
	list, err := s.ListContent(context.Background())
	require.NoError(t, err)
	require.NotEmpty(t, list)
	return list
}
