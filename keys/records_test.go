package keys_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/sealmesh/sealmesh/keys"
)

func TestPutContent(t *testing.T) {
	ctx := context.Background()
	s, _ := initStore(t)
	ks := newKeys(t, 3)
	require.NoError(t, s.PutContent(ctx, "movie", ks, false))

	err := s.PutContent(ctx, "movie", newKeys(t, 1), false)
	require.ErrorIs(t, err, keys.ErrExists)
	got, err := s.ContentKeys(ctx, "movie")
	require.NoError(t, err)
	requireSameKeys(t, ks, got)

	// A KID that belongs to another content is refused, whole transaction.
	clash := append(newKeys(t, 1), ks[1])
	clash[1], _ = keys.ContentKeyFromBytes(ks[1].KID(), 1, ks[1].InsecureRawKey())
	require.ErrorIs(t, s.PutContent(ctx, "other", clash, false), keys.ErrExists)
	_, err = s.ContentKeys(ctx, "other")
	require.ErrorIs(t, err, keys.ErrNotFound)

	// Replace drops the old keys and their KIDs.
	ks2 := newKeys(t, 2)
	require.NoError(t, s.PutContent(ctx, "movie", ks2, true))
	got, err = s.ContentKeys(ctx, "movie")
	require.NoError(t, err)
	requireSameKeys(t, ks2, got)
	_, _, err = s.ContentKey(ctx, ks[0].KID())
	require.ErrorIs(t, err, keys.ErrNotFound)

	// Replace may keep some of the same KIDs.
	ks3 := []keys.ContentKey{ks2[1], newKeys(t, 3)[2]}
	require.NoError(t, s.PutContent(ctx, "movie", ks3, true))
	id, k, err := s.ContentKey(ctx, ks2[1].KID())
	require.NoError(t, err)
	require.Equal(t, "movie", id)
	require.Equal(t, ks2[1].InsecureRawKey(), k.InsecureRawKey())

	// Replace also works for a content that does not exist yet.
	require.NoError(t, s.PutContent(ctx, "fresh", newKeys(t, 1), true))
}

func TestPutContentValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := initStore(t)
	ks := newKeys(t, 2)
	dupPeriod, err := keys.ContentKeyFromBytes(ks[1].KID(), 0, ks[1].InsecureRawKey())
	require.NoError(t, err)
	tests := []struct {
		name    string
		id      string
		keys    []keys.ContentKey
		wantErr string
	}{
		{name: "empty id", id: "", keys: ks, wantErr: "empty"},
		{name: "long id", id: string(bytes.Repeat([]byte("a"), 257)), keys: ks, wantErr: "at most 256"},
		{name: "control char", id: "a\nb", keys: ks, wantErr: "control"},
		{name: "bad utf8", id: "a\xffb", keys: ks, wantErr: "UTF-8"},
		{name: "no keys", id: "a", keys: nil, wantErr: "no keys"},
		{name: "zero key", id: "a", keys: []keys.ContentKey{{}}, wantErr: "zero KID"},
		{name: "duplicate period", id: "a", keys: []keys.ContentKey{ks[0], dupPeriod}, wantErr: "two keys for period 0"},
		{name: "duplicate kid", id: "a", keys: []keys.ContentKey{ks[1], ks[1]}, wantErr: "two keys for period 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorContains(t, s.PutContent(ctx, tt.id, tt.keys, false), tt.wantErr)
		})
	}
	list, err := s.ListContent(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestLookupListDelete(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	path := storePath(t)
	s, err := keys.Init(path, passphrase, fast, keys.WithClock(func() time.Time { return clock }))
	require.NoError(t, err)
	defer s.Close()

	a, b := newKeys(t, 3), newKeys(t, 1)
	// Given out of order: stored and returned by period.
	require.NoError(t, s.PutContent(ctx, "b-show", []keys.ContentKey{a[2], a[0], a[1]}, false))
	require.NoError(t, s.PutContent(ctx, "a-show", b, false))

	got, err := s.ContentKeys(ctx, "b-show")
	require.NoError(t, err)
	requireSameKeys(t, a, got)

	for _, tt := range []struct {
		kid  keys.KID
		id   string
		want keys.ContentKey
	}{{a[0].KID(), "b-show", a[0]}, {a[2].KID(), "b-show", a[2]}, {b[0].KID(), "a-show", b[0]}} {
		id, k, err := s.ContentKey(ctx, tt.kid)
		require.NoError(t, err)
		require.Equal(t, tt.id, id)
		requireSameKeys(t, []keys.ContentKey{tt.want}, []keys.ContentKey{k})
	}
	unknown, err := keys.NewKID()
	require.NoError(t, err)
	_, _, err = s.ContentKey(ctx, unknown)
	require.ErrorIs(t, err, keys.ErrNotFound)

	list, err := s.ListContent(ctx)
	require.NoError(t, err)
	require.Equal(t, []keys.ContentInfo{
		{ID: "a-show", KIDs: []keys.KID{b[0].KID()}, Created: clock},
		{ID: "b-show", KIDs: []keys.KID{a[0].KID(), a[1].KID(), a[2].KID()}, Created: clock},
	}, list)

	require.NoError(t, s.DeleteContent(ctx, "b-show"))
	require.ErrorIs(t, s.DeleteContent(ctx, "b-show"), keys.ErrNotFound)
	_, err = s.ContentKeys(ctx, "b-show")
	require.ErrorIs(t, err, keys.ErrNotFound)
	_, _, err = s.ContentKey(ctx, a[1].KID())
	require.ErrorIs(t, err, keys.ErrNotFound)
	// Its KIDs are free again.
	require.NoError(t, s.PutContent(ctx, "c-show", a, false))
}

func TestSigningKeys(t *testing.T) {
	ctx := context.Background()
	s, _ := initStore(t)

	// Concurrent first use agrees on one key.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			k, err := s.SigningKey(ctx, keys.SigningKeyManifest)
			require.NoError(t, err)
			ids[i] = k.ID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	lic, err := s.SigningKey(ctx, keys.SigningKeyLicense)
	require.NoError(t, err)
	require.NotEqual(t, ids[0], lic.ID())

	for _, bad := range []string{"", "Manifest", "a|b", "a b", string(bytes.Repeat([]byte("a"), 65))} {
		_, err := s.SigningKey(ctx, bad)
		require.Error(t, err, "name %q", bad)
	}
}

func TestRotateKEK(t *testing.T) {
	ctx := context.Background()
	s, _ := initStore(t)
	primary0, all0 := s.KEKKeyIDs()
	require.Equal(t, []uint32{primary0}, all0)

	old := newKeys(t, 2)
	require.NoError(t, s.PutContent(ctx, "old", old, false))
	sk, err := s.SigningKey(ctx, keys.SigningKeyManifest)
	require.NoError(t, err)

	require.NoError(t, s.RotateKEK(ctx))
	primary1, all1 := s.KEKKeyIDs()
	require.NotEqual(t, primary0, primary1)
	require.ElementsMatch(t, []uint32{primary0, primary1}, all1)

	fresh := newKeys(t, 1)
	require.NoError(t, s.PutContent(ctx, "new", fresh, false))

	s = reopen(t, s)
	primary, all := s.KEKKeyIDs()
	require.Equal(t, primary1, primary)
	require.ElementsMatch(t, all1, all)
	got, err := s.ContentKeys(ctx, "old")
	require.NoError(t, err)
	requireSameKeys(t, old, got)
	got, err = s.ContentKeys(ctx, "new")
	require.NoError(t, err)
	requireSameKeys(t, fresh, got)
	sk2, err := s.SigningKey(ctx, keys.SigningKeyManifest)
	require.NoError(t, err)
	require.Equal(t, sk.ID(), sk2.ID())

	// New seals use the new primary: Tink prefixes ciphertexts with
	// 0x01 || big-endian key ID; records are KID(16) || ciphertext.
	path := s.Path()
	require.NoError(t, s.Close())
	prefix := func(contentID string) []byte {
		var p []byte
		withRawBolt(t, path, func(tx *bolt.Tx) error {
			v := tx.Bucket([]byte("content")).Bucket([]byte(contentID)).Bucket([]byte("keys")).Get(make([]byte, 8))
			p = append([]byte(nil), v[16:21]...)
			return nil
		})
		return p
	}
	require.Equal(t, []byte{1, byte(primary0 >> 24), byte(primary0 >> 16), byte(primary0 >> 8), byte(primary0)}, prefix("old"))
	require.Equal(t, []byte{1, byte(primary1 >> 24), byte(primary1 >> 16), byte(primary1 >> 8), byte(primary1)}, prefix("new"))
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	s, _ := initStore(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ks := newKeys(t, 2)
			id := string(rune('a' + i))
			require.NoError(t, s.PutContent(ctx, id, ks, false))
			_, err := s.SigningKey(ctx, keys.SigningKeyLicense)
			require.NoError(t, err)
			if i%3 == 0 {
				require.NoError(t, s.RotateKEK(ctx))
			}
			got, err := s.ContentKeys(ctx, id)
			require.NoError(t, err)
			requireSameKeys(t, ks, got)
		})
	}
	wg.Wait()
	s = reopen(t, s)
	list, err := s.ListContent(ctx)
	require.NoError(t, err)
	require.Len(t, list, 8)
	for _, c := range list {
		_, err := s.ContentKeys(ctx, c.ID)
		require.NoError(t, err)
	}
	_, all := s.KEKKeyIDs()
	require.Len(t, all, 4)
}
