package keys_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/sealmesh/sealmesh/keys"
)

var passphrase = []byte("correct horse battery staple")

// fast keeps argon2id cheap in tests; production uses the defaults.
var fast = keys.WithArgon2Params(1, 64, 1)

func storePath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "keys.db")
}

func initStore(t *testing.T) (*keys.FileStore, string) {
	t.Helper()
	path := storePath(t)
	s, err := keys.Init(path, passphrase, fast)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func reopen(t *testing.T, s *keys.FileStore) *keys.FileStore {
	t.Helper()
	require.NoError(t, s.Close())
	s2, err := keys.Open(s.Path(), passphrase)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

func newKeys(t *testing.T, n int) []keys.ContentKey {
	t.Helper()
	out := make([]keys.ContentKey, n)
	for i := range out {
		k, err := keys.NewContentKey(i)
		require.NoError(t, err)
		out[i] = k
	}
	return out
}

func requireSameKeys(t *testing.T, want, got []keys.ContentKey) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].KID(), got[i].KID())
		require.Equal(t, want[i].Period(), got[i].Period())
		require.Equal(t, want[i].InsecureRawKey(), got[i].InsecureRawKey())
	}
}

// fakeKMS stands in for a registry.KMSClient's GetAEAD(uri): any tink.AEAD.
func fakeKMS(t *testing.T) tink.AEAD {
	t.Helper()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(t, err)
	a, err := aead.New(h)
	require.NoError(t, err)
	return a
}

func TestInitOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, path := initStore(t)
	require.Equal(t, path, s.Path())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	ks := newKeys(t, 3)
	require.NoError(t, s.PutContent(ctx, "movie-1", ks, false))
	sk, err := s.SigningKey(ctx, keys.SigningKeyManifest)
	require.NoError(t, err)

	s2 := reopen(t, s)
	got, err := s2.ContentKeys(ctx, "movie-1")
	require.NoError(t, err)
	requireSameKeys(t, ks, got)
	sk2, err := s2.SigningKey(ctx, keys.SigningKeyManifest)
	require.NoError(t, err)
	require.Equal(t, sk.ID(), sk2.ID())
	require.Equal(t, sk.Public(), sk2.Public())
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s, err := keys.Init(good, passphrase, fast)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	kms := fakeKMS(t)
	kmsPath := filepath.Join(dir, "kms.db")
	s, err = keys.Init(kmsPath, nil, keys.WithMasterAEAD(kms))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	garbage := filepath.Join(dir, "garbage.db")
	require.NoError(t, os.WriteFile(garbage, make([]byte, 8192), 0o600))
	short := filepath.Join(dir, "short.db")
	require.NoError(t, os.WriteFile(short, []byte("not a key store"), 0o600))
	empty := filepath.Join(dir, "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	otherBolt := filepath.Join(dir, "other.db")
	db, err := bolt.Open(otherBolt, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err }))
	require.NoError(t, db.Close())

	tests := []struct {
		name string
		path string
		pass []byte
		opts []keys.Option
		want error
	}{
		{name: "missing file", path: filepath.Join(dir, "nope.db"), pass: passphrase, want: keys.ErrNotInitialized},
		{name: "wrong passphrase", path: good, pass: []byte("wrong passphrase"), want: keys.ErrWrongPassphrase},
		{name: "empty passphrase", path: good, pass: nil, want: keys.ErrWrongPassphrase},
		{name: "garbage file", path: garbage, pass: passphrase, want: keys.ErrCorrupt},
		{name: "short file", path: short, pass: passphrase, want: keys.ErrCorrupt},
		{name: "empty file", path: empty, pass: passphrase, want: keys.ErrCorrupt},
		{name: "other bolt file", path: otherBolt, pass: passphrase, want: keys.ErrCorrupt},
		{name: "directory", path: dir, pass: passphrase, want: keys.ErrCorrupt},
		{name: "kms store without master", path: kmsPath, pass: passphrase, want: keys.ErrWrongPassphrase},
		{name: "kms store wrong master", path: kmsPath, opts: []keys.Option{keys.WithMasterAEAD(fakeKMS(t))}, want: keys.ErrWrongPassphrase},
		{name: "passphrase store with master", path: good, opts: []keys.Option{keys.WithMasterAEAD(kms)}, want: keys.ErrWrongPassphrase},
		{name: "ok", path: good, pass: passphrase},
		{name: "ok kms", path: kmsPath, opts: []keys.Option{keys.WithMasterAEAD(kms)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := keys.Open(tt.path, tt.pass, tt.opts...)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				require.Nil(t, s)
				return
			}
			require.NoError(t, err)
			require.NoError(t, s.Close())
		})
	}
	// Files Open refused are left untouched (bbolt must not format them).
	b, err := os.ReadFile(empty)
	require.NoError(t, err)
	require.Empty(t, b)
}

func TestInitErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.db")
	require.NoError(t, os.WriteFile(existing, []byte("precious"), 0o600))

	tests := []struct {
		name    string
		path    string
		pass    []byte
		opts    []keys.Option
		want    error
		wantErr string
	}{
		{name: "existing file", path: existing, pass: passphrase, want: keys.ErrAlreadyInitialized},
		{name: "short passphrase", path: filepath.Join(dir, "a.db"), pass: []byte("1234567"), wantErr: "at least 8"},
		{name: "no directory", path: filepath.Join(dir, "no", "such", "dir.db"), pass: passphrase, wantErr: "no such file"},
		{name: "bad argon2", path: filepath.Join(dir, "b.db"), pass: passphrase, opts: []keys.Option{keys.WithArgon2Params(0, 64, 1)}, wantErr: "time 0"},
		{name: "bad lock timeout", path: filepath.Join(dir, "c.db"), pass: passphrase, opts: []keys.Option{keys.WithLockTimeout(0)}, wantErr: "not positive"},
		{name: "nil master", path: filepath.Join(dir, "d.db"), opts: []keys.Option{keys.WithMasterAEAD(nil)}, wantErr: "nil AEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := keys.Init(tt.path, tt.pass, append([]keys.Option{fast}, tt.opts...)...)
			require.Error(t, err)
			require.Nil(t, s)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			}
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
			}
		})
	}
	b, err := os.ReadFile(existing)
	require.NoError(t, err)
	require.Equal(t, "precious", string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "failed Inits leave nothing behind")
}

func TestInitTwice(t *testing.T) {
	s, path := initStore(t)
	_, err := keys.Init(path, passphrase, fast)
	require.ErrorIs(t, err, keys.ErrAlreadyInitialized)
	require.NoError(t, s.Close())
	_, err = keys.Init(path, passphrase, fast)
	require.ErrorIs(t, err, keys.ErrAlreadyInitialized)
}

func TestOpenLocked(t *testing.T) {
	s, path := initStore(t)
	start := time.Now()
	_, err := keys.Open(path, passphrase, keys.WithLockTimeout(50*time.Millisecond))
	require.ErrorIs(t, err, keys.ErrLocked)
	require.Less(t, time.Since(start), 5*time.Second)

	// A raw bbolt open contends for the same flock.
	_, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 50 * time.Millisecond})
	require.ErrorIs(t, err, bolterrors.ErrTimeout)

	require.NoError(t, s.Close())
	s2, err := keys.Open(path, passphrase, keys.WithLockTimeout(50*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, s2.Close())
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	s, _ := initStore(t)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err := s.ContentKeys(ctx, "x")
	require.ErrorIs(t, err, keys.ErrClosed)
	require.ErrorIs(t, s.PutContent(ctx, "x", newKeys(t, 1), false), keys.ErrClosed)
	_, err = s.SigningKey(ctx, keys.SigningKeyLicense)
	require.ErrorIs(t, err, keys.ErrClosed)
	require.ErrorIs(t, s.RotateKEK(ctx), keys.ErrClosed)
}

func TestCanceledContext(t *testing.T) {
	s, _ := initStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, s.PutContent(ctx, "x", newKeys(t, 1), false), context.Canceled)
	_, err := s.ListContent(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestKMSMasterAEAD(t *testing.T) {
	ctx := context.Background()
	kms := fakeKMS(t)
	path := storePath(t)
	s, err := keys.Init(path, nil, keys.WithMasterAEAD(kms))
	require.NoError(t, err)
	ks := newKeys(t, 2)
	require.NoError(t, s.PutContent(ctx, "live", ks, false))
	require.NoError(t, s.RotateKEK(ctx))
	require.NoError(t, s.Close())

	s, err = keys.Open(path, nil, keys.WithMasterAEAD(kms))
	require.NoError(t, err)
	defer s.Close()
	got, err := s.ContentKeys(ctx, "live")
	require.NoError(t, err)
	requireSameKeys(t, ks, got)
}

func TestPassphraseFromEnv(t *testing.T) {
	t.Setenv(keys.PassphraseEnv, "")
	_, err := keys.PassphraseFromEnv()
	require.ErrorContains(t, err, keys.PassphraseEnv)
	t.Setenv(keys.PassphraseEnv, "hunter2hunter2")
	p, err := keys.PassphraseFromEnv()
	require.NoError(t, err)
	require.Equal(t, []byte("hunter2hunter2"), p)
}

func TestMasterKeyAEAD(t *testing.T) {
	_, err := keys.MasterKeyAEAD(make([]byte, 16))
	require.Error(t, err)
	key := make([]byte, keys.MasterKeySize)
	key[0] = 7
	a, err := keys.MasterKeyAEAD(key)
	require.NoError(t, err)
	path := storePath(t)
	s, err := keys.Init(path, nil, keys.WithMasterAEAD(a))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	other, err := keys.MasterKeyAEAD(make([]byte, keys.MasterKeySize))
	require.NoError(t, err)
	_, err = keys.Open(path, nil, keys.WithMasterAEAD(other))
	require.ErrorIs(t, err, keys.ErrWrongPassphrase)
	s, err = keys.Open(path, nil, keys.WithMasterAEAD(a))
	require.NoError(t, err)
	require.NoError(t, s.Close())
}
