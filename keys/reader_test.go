package keys_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/sealmesh/sealmesh/keys"
)

// storeWith initializes a store holding content "movie-1" (three periods)
// and the license signing key, closes it and returns its path and contents.
func storeWith(t *testing.T, opts ...keys.Option) (string, []keys.ContentKey, *keys.SigningKey) {
	t.Helper()
	path := storePath(t)
	s, err := keys.Init(path, passphrase, append([]keys.Option{fast}, opts...)...)
	require.NoError(t, err)
	ks := newKeys(t, 3)
	require.NoError(t, s.PutContent(context.Background(), "movie-1", ks, false))
	sk, err := s.SigningKey(context.Background(), keys.SigningKeyLicense)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return path, ks, sk
}

func newReader(t *testing.T, path string, opts ...keys.Option) *keys.Reader {
	t.Helper()
	r, err := keys.NewReader(path, passphrase, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// write opens path as a writer (as sealmesh pack does), runs fn and closes it.
func write(t *testing.T, path string, fn func(*keys.FileStore)) {
	t.Helper()
	w, err := keys.Open(path, passphrase, keys.WithLockTimeout(10*time.Second))
	require.NoError(t, err)
	fn(w)
	require.NoError(t, w.Close())
}

func TestReaderLookups(t *testing.T) {
	ctx := context.Background()
	path, ks, sk := storeWith(t)
	r := newReader(t, path)

	got, err := r.ContentKeys(ctx, "movie-1")
	require.NoError(t, err)
	requireSameKeys(t, ks, got)
	require.True(t, r.HasContent(ctx, "movie-1"))

	id, k, err := r.ContentKey(ctx, ks[2].KID())
	require.NoError(t, err)
	require.Equal(t, "movie-1", id)
	requireSameKeys(t, ks[2:], []keys.ContentKey{k})

	rsk, err := r.SigningKey(ctx, keys.SigningKeyLicense)
	require.NoError(t, err)
	require.Equal(t, sk.Public(), rsk.Public())
	require.Equal(t, sk.ID(), rsk.ID())

	_, err = r.ContentKeys(ctx, "nope")
	require.ErrorIs(t, err, keys.ErrNotFound)
	require.False(t, r.HasContent(ctx, "nope"))
	_, _, err = r.ContentKey(ctx, keys.KID{1})
	require.ErrorIs(t, err, keys.ErrNotFound)
	// The Reader never creates a signing key, unlike FileStore.SigningKey.
	_, err = r.SigningKey(ctx, keys.SigningKeyManifest)
	require.ErrorIs(t, err, keys.ErrNotFound)
	_, err = r.SigningKey(ctx, "Bad Name")
	require.Error(t, err)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = r.ContentKeys(canceled, "movie-1")
	require.ErrorIs(t, err, context.Canceled)

	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	_, err = r.ContentKeys(ctx, "movie-1")
	require.ErrorIs(t, err, keys.ErrClosed)
	_, _, err = r.ContentKey(ctx, ks[0].KID())
	require.ErrorIs(t, err, keys.ErrClosed)
	_, err = r.SigningKey(ctx, keys.SigningKeyLicense)
	require.ErrorIs(t, err, keys.ErrClosed)
	require.ErrorIs(t, r.Refresh(ctx), keys.ErrClosed)
	require.False(t, r.HasContent(ctx, "movie-1"))
}

func TestNewReaderErrors(t *testing.T) {
	path, _, _ := storeWith(t)
	kmsPath := storePath(t)
	s, err := keys.Init(kmsPath, nil, keys.WithMasterAEAD(fakeKMS(t)))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	empty := filepath.Join(t.TempDir(), "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))

	tests := []struct {
		name  string
		path  string
		pass  []byte
		opts  []keys.Option
		hold  bool // a writer holds the file open
		want  error
		anyOK bool // only check that it fails
	}{
		{name: "missing file", path: filepath.Join(t.TempDir(), "none.db"), pass: passphrase, want: keys.ErrNotInitialized},
		{name: "empty file", path: empty, pass: passphrase, want: keys.ErrCorrupt},
		{name: "wrong passphrase", path: path, pass: []byte("not the passphrase"), want: keys.ErrWrongPassphrase},
		{name: "empty passphrase", path: path, want: keys.ErrWrongPassphrase},
		{name: "passphrase store, KMS key", path: path, opts: []keys.Option{keys.WithMasterAEAD(fakeKMS(t))}, want: keys.ErrWrongPassphrase},
		{name: "KMS store, passphrase", path: kmsPath, pass: passphrase, want: keys.ErrWrongPassphrase},
		{name: "KMS store, other KMS key", path: kmsPath, opts: []keys.Option{keys.WithMasterAEAD(fakeKMS(t))}, want: keys.ErrWrongPassphrase},
		{name: "locked by a writer", path: path, pass: passphrase, hold: true, opts: []keys.Option{keys.WithLockTimeout(100 * time.Millisecond)}, want: keys.ErrLocked},
		{name: "negative refresh interval", path: path, pass: passphrase, opts: []keys.Option{keys.WithRefreshInterval(-time.Second)}, anyOK: true},
		{name: "nil logger", path: path, pass: passphrase, opts: []keys.Option{keys.WithLogger(nil)}, anyOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.hold {
				w, err := keys.Open(tt.path, passphrase)
				require.NoError(t, err)
				defer w.Close()
			}
			r, err := keys.NewReader(tt.path, tt.pass, tt.opts...)
			require.Nil(t, r)
			if tt.anyOK {
				require.Error(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
		})
	}
}

// TestReaderSeesWriter is the license server / packager split: the Reader
// holds no lock, so a writer can Open the store, and the Reader picks the new
// content up on its first miss.
func TestReaderSeesWriter(t *testing.T) {
	ctx := context.Background()
	path, ks, _ := storeWith(t)
	r := newReader(t, path)
	require.True(t, r.HasContent(ctx, "movie-1"))

	ks2 := newKeys(t, 2)
	write(t, path, func(w *keys.FileStore) {
		require.NoError(t, w.PutContent(ctx, "movie-2", ks2, false))
		require.NoError(t, w.DeleteContent(ctx, "movie-1"))
	})

	got, err := r.ContentKeys(ctx, "movie-2") // a miss: re-reads the file
	require.NoError(t, err)
	requireSameKeys(t, ks2, got)
	id, _, err := r.ContentKey(ctx, ks2[1].KID())
	require.NoError(t, err)
	require.Equal(t, "movie-2", id)
	// The re-read also dropped the deleted content.
	require.False(t, r.HasContent(ctx, "movie-1"))
	_, _, err = r.ContentKey(ctx, ks[0].KID())
	require.ErrorIs(t, err, keys.ErrNotFound)
}

// TestReaderWhileWriterHoldsLock: a re-read that cannot get the lock gives
// up after the lock timeout and the Reader keeps serving what it had.
func TestReaderWhileWriterHoldsLock(t *testing.T) {
	ctx := context.Background()
	path, ks, _ := storeWith(t)
	const timeout = 200 * time.Millisecond
	r := newReader(t, path, keys.WithLockTimeout(timeout))

	w, err := keys.Open(path, passphrase)
	require.NoError(t, err)
	ks2 := newKeys(t, 1)
	require.NoError(t, w.PutContent(ctx, "movie-2", ks2, false))

	start := time.Now()
	err = r.Refresh(ctx)
	require.ErrorIs(t, err, keys.ErrLocked)
	require.Less(t, time.Since(start), timeout+time.Second)

	got, err := r.ContentKeys(ctx, "movie-1") // the old snapshot still serves
	require.NoError(t, err)
	requireSameKeys(t, ks, got)

	// A miss reports the failed re-read too, and does not wait out the lock
	// timeout again while the file is unchanged.
	start = time.Now()
	_, err = r.ContentKeys(ctx, "movie-2")
	require.ErrorIs(t, err, keys.ErrNotFound)
	require.ErrorIs(t, err, keys.ErrLocked)
	require.Less(t, time.Since(start), timeout)

	require.NoError(t, w.Close())
	require.NoError(t, r.Refresh(ctx))
	got, err = r.ContentKeys(ctx, "movie-2")
	require.NoError(t, err)
	requireSameKeys(t, ks2, got)
}

// countingAEAD counts master-key decryptions, as a KMS bill would.
type countingAEAD struct {
	tink.AEAD
	decrypts atomic.Int32
}

func (c *countingAEAD) Decrypt(ct, ad []byte) ([]byte, error) {
	c.decrypts.Add(1)
	return c.AEAD.Decrypt(ct, ad)
}

// TestReaderSeesRotateKEK: records sealed under a KEK key added by a
// writer's RotateKEK open in the Reader, which decrypts the new keyset with
// the master AEAD it kept, and calls the master key only when the keyset
// changed.
func TestReaderSeesRotateKEK(t *testing.T) {
	ctx := context.Background()
	kms := &countingAEAD{AEAD: fakeKMS(t)}
	path := storePath(t)
	s, err := keys.Init(path, nil, keys.WithMasterAEAD(kms))
	require.NoError(t, err)
	ks := newKeys(t, 2)
	require.NoError(t, s.PutContent(ctx, "before", ks, false))
	require.NoError(t, s.Close())

	kms.decrypts.Store(0)
	r, err := keys.NewReader(path, nil, keys.WithMasterAEAD(kms))
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, int32(1), kms.decrypts.Load())
	require.NoError(t, r.Refresh(ctx))
	require.Equal(t, int32(1), kms.decrypts.Load(), "an unchanged keyset is not decrypted again")

	ks2 := newKeys(t, 2)
	w, err := keys.Open(path, nil, keys.WithMasterAEAD(kms))
	require.NoError(t, err)
	require.NoError(t, w.RotateKEK(ctx))
	require.NoError(t, w.PutContent(ctx, "after", ks2, false))
	require.NoError(t, w.Close())

	kms.decrypts.Store(0)
	got, err := r.ContentKeys(ctx, "after")
	require.NoError(t, err)
	requireSameKeys(t, ks2, got)
	require.Equal(t, int32(1), kms.decrypts.Load())
	got, err = r.ContentKeys(ctx, "before")
	require.NoError(t, err)
	requireSameKeys(t, ks, got)
}

// fakeClock is a settable, race-safe clock for WithClock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestReaderRefreshInterval: a lookup that hits never looks at the file
// until the refresh interval has passed; then one starts a background check.
func TestReaderRefreshInterval(t *testing.T) {
	ctx := context.Background()
	path, _, _ := storeWith(t)
	clock := &fakeClock{}
	clock.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	r := newReader(t, path, keys.WithClock(clock.now), keys.WithRefreshInterval(time.Minute))

	write(t, path, func(w *keys.FileStore) { require.NoError(t, w.DeleteContent(ctx, "movie-1")) })
	for range 100 {
		_, err := r.ContentKeys(ctx, "movie-1")
		require.NoError(t, err, "a hit before the interval must not re-read")
	}
	clock.advance(time.Minute)
	require.Eventually(t, func() bool {
		_, err := r.ContentKeys(ctx, "movie-1")
		return errors.Is(err, keys.ErrNotFound)
	}, 10*time.Second, 10*time.Millisecond)
}

// TestReaderConcurrent runs lookups, forced refreshes and a writer that
// keeps registering content, all at once (meant for -race).
func TestReaderConcurrent(t *testing.T) {
	ctx := context.Background()
	path, ks, sk := storeWith(t)
	r := newReader(t, path, keys.WithRefreshInterval(time.Millisecond), keys.WithLockTimeout(10*time.Second))

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := r.ContentKeys(ctx, "movie-1")
				if err != nil {
					t.Error(err)
					return
				}
				if got[1].KID() != ks[1].KID() {
					t.Error("wrong key")
				}
				if _, _, err := r.ContentKey(ctx, ks[0].KID()); err != nil {
					t.Error(err)
				}
				if k, err := r.SigningKey(ctx, keys.SigningKeyLicense); err != nil || k.ID() != sk.ID() {
					t.Error("signing key", err)
				}
				r.HasContent(ctx, "not-there")
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.Refresh(ctx); err != nil {
				t.Error(err)
			}
		}
	})

	const n = 5
	for i := range n {
		write(t, path, func(w *keys.FileStore) {
			require.NoError(t, w.PutContent(ctx, fmt.Sprint("new-", i), newKeys(t, 1), false))
			if i == 2 {
				require.NoError(t, w.RotateKEK(ctx))
			}
		})
		require.True(t, r.HasContent(ctx, fmt.Sprint("new-", i)))
	}
	close(stop)
	wg.Wait()
	for i := range n {
		_, err := r.ContentKeys(ctx, fmt.Sprint("new-", i))
		require.NoError(t, err)
	}
}

// BenchmarkContentKeys compares the Reader's lookup with FileStore's, which
// runs a bolt read transaction per call.
func BenchmarkContentKeys(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "keys.db")
	s, err := keys.Init(path, passphrase, fast)
	require.NoError(b, err)
	var ks []keys.ContentKey
	for i := range 4 {
		k, err := keys.NewContentKey(i)
		require.NoError(b, err)
		ks = append(ks, k)
	}
	require.NoError(b, s.PutContent(ctx, "movie-1", ks, false))

	b.Run("FileStore", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.ContentKeys(ctx, "movie-1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	require.NoError(b, s.Close())
	r, err := keys.NewReader(path, passphrase)
	require.NoError(b, err)
	defer r.Close()
	b.Run("Reader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.ContentKeys(ctx, "movie-1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Reader/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.ContentKeys(ctx, "movie-1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func ExampleNewReader() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sealmesh-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keys.db")
	pass := []byte("correct horse battery staple")

	// The license server reads the store without locking it...
	st, err := keys.Init(path, pass, keys.WithArgon2Params(1, 64, 1))
	if err != nil {
		panic(err)
	}
	if err := st.Close(); err != nil {
		panic(err)
	}
	r, err := keys.NewReader(path, pass)
	if err != nil {
		panic(err)
	}
	defer r.Close()

	// ...so the packager can open it and register content meanwhile.
	st, err = keys.Open(path, pass)
	if err != nil {
		panic(err)
	}
	k0, err := keys.NewContentKey(0)
	if err != nil {
		panic(err)
	}
	if err := st.PutContent(ctx, "movie-42", []keys.ContentKey{k0}, false); err != nil {
		panic(err)
	}
	if err := st.Close(); err != nil {
		panic(err)
	}

	// The first lookup of the new content re-reads the file.
	got, err := r.ContentKeys(ctx, "movie-42")
	if err != nil {
		panic(err)
	}
	fmt.Println(len(got), got[0].KID() == k0.KID())
	// Output: 1 true
}
