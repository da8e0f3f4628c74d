package keys

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
)

// Reader gives a long-running server read access to a key store without
// holding its lock: the KEK is unsealed once; the store file is re-read
// (taking bbolt's lock in read-only mode only for the duration of the read)
// when its size or mtime changed, checked at most every RefreshInterval and
// on every lookup miss; sealed records stay sealed in memory and a content
// key is unsealed only when asked for.
//
// A Reader is what sealmesh license serve uses, so that sealmesh pack can
// Open the same file and register new content while the server runs. A
// lookup that finds its key never touches the disk, except that at most once
// per refresh interval it starts a background check. A lookup that misses
// checks the file (one stat call) and, if it changed, waits for a re-read
// before answering. A re-read that fails (the file is locked by a writer for
// longer than the lock timeout, or it is damaged) leaves the last good
// snapshot in service.
//
// A Reader is safe for concurrent use. It never writes to the store.
type Reader struct {
	path        string
	master      tink.AEAD // kept to decrypt a keyset rotated by a writer; the passphrase is not kept
	kdfJSON     []byte    // the kdf record at NewReader; another one means the store was re-initialized
	lockTimeout time.Duration
	interval    time.Duration
	log         *slog.Logger
	now         func() time.Time
	epoch       time.Time

	snap      atomic.Pointer[snapshot]
	nextCheck atomic.Int64 // now().Sub(epoch) at which a lookup hit starts a background check
	closed    atomic.Bool

	mu       sync.Mutex // guards the fields below
	flight   *flight    // the refresh scheduled or running, if any
	lastRead time.Time  // when the last re-read attempt ended
	lastHeld time.Duration
	failFile os.FileInfo // the file state the last failed re-read saw, nil after a success
	failAt   time.Time
	failErr  error

	closing   chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewReader reads the key store at path and unseals its KEK with passphrase,
// or with the AEAD given with WithMasterAEAD, exactly as Open does, but
// holds the file's lock only while reading it. Options: WithMasterAEAD,
// WithLockTimeout (also bounds every later re-read), WithRefreshInterval,
// WithLogger and WithClock; the argon2id parameters come from the file.
//
// Errors are Open's: they wrap ErrNotInitialized, ErrWrongPassphrase,
// ErrCorrupt, or ErrLocked if a writer holds the file for longer than the
// lock timeout.
func NewReader(path string, passphrase []byte, opts ...Option) (*Reader, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	img, err := readImage(path, o.lockTimeout)
	if err != nil {
		return nil, err
	}
	// The slow argon2id derivation runs after the lock is released.
	master, err := masterAEAD(img.kdfJSON, passphrase, o)
	if err != nil {
		return nil, fmt.Errorf("keys: open %s: %w", path, err)
	}
	r := &Reader{
		path: path, master: master, kdfJSON: img.kdfJSON,
		lockTimeout: o.lockTimeout, interval: o.refreshInterval,
		log: o.logger, now: o.now, epoch: o.now(),
		lastRead: time.Now(), lastHeld: img.held,
		closing: make(chan struct{}),
	}
	s, err := r.build(img, nil)
	if err != nil {
		return nil, fmt.Errorf("keys: open %s: %w", path, err)
	}
	r.snap.Store(s)
	r.nextCheck.Store(int64(r.interval))
	return r, nil
}

// build completes img's snapshot with the KEK: prev's if the encrypted
// keyset is unchanged (so a KMS master key is not called on every re-read),
// else the keyset decrypted anew with the master AEAD (a writer ran
// RotateKEK). Errors wrap ErrWrongPassphrase or ErrCorrupt.
func (r *Reader) build(img *fileImage, prev *snapshot) (*snapshot, error) {
	if !bytes.Equal(img.kdfJSON, r.kdfJSON) {
		return nil, fmt.Errorf("%w: the store's master key record changed (was it re-initialized?); start a new Reader", ErrWrongPassphrase)
	}
	s := img.snap
	if prev != nil && bytes.Equal(prev.encKeyset, img.encKeyset) {
		s.kek = prev.kek
		return s, nil
	}
	_, kek, err := decryptKEK(img.encKeyset, r.master)
	if err != nil {
		return nil, err
	}
	s.kek = kek
	return s, nil
}

// Path returns the file the Reader reads.
func (r *Reader) Path() string { return r.path }

// ContentKeys returns all keys of contentID sorted by period, or an error
// wrapping ErrNotFound, as Store.ContentKeys. If the content is not in the
// current snapshot, the file is checked first; when that check fails the
// ErrNotFound error also wraps its error (often ErrLocked).
func (r *Reader) ContentKeys(ctx context.Context, contentID string) ([]ContentKey, error) {
	s, err := r.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: content keys: %w", err)
	}
	c := s.contents[contentID]
	if c == nil {
		if s, err = r.afterMiss(ctx); s != nil {
			c = s.contents[contentID]
		}
		if c == nil {
			return nil, missError("content keys", fmt.Sprintf("content %q", contentID), err)
		}
	}
	keys, err := c.unseal(s.kek)
	if err != nil {
		return nil, fmt.Errorf("keys: content keys: %w", err)
	}
	return keys, nil
}

// ContentKey looks a key up by KID and returns it with its content ID, or an
// error wrapping ErrNotFound, as Store.ContentKey; misses are handled as in
// ContentKeys.
func (r *Reader) ContentKey(ctx context.Context, kid KID) (string, ContentKey, error) {
	s, err := r.current(ctx)
	if err != nil {
		return "", ContentKey{}, fmt.Errorf("keys: content key: %w", err)
	}
	ref, ok := s.kids[kid]
	if !ok {
		if s, err = r.afterMiss(ctx); s != nil {
			ref, ok = s.kids[kid]
		}
		if !ok {
			return "", ContentKey{}, missError("content key", "KID "+kid.String(), err)
		}
	}
	if ref.key == nil {
		return "", ContentKey{}, fmt.Errorf("keys: content key: %w: KID %s is claimed by more than one record", ErrCorrupt, kid)
	}
	k, err := ref.key.unseal(s.kek, ref.content.id)
	if err != nil {
		return "", ContentKey{}, fmt.Errorf("keys: content key: %w", err)
	}
	return ref.content.id, k, nil
}

// HasContent reports whether contentID has keys in the store, checking the
// file as ContentKeys does if it is not in the current snapshot. It decrypts
// nothing. Errors (a canceled ctx, a closed Reader) count as false.
func (r *Reader) HasContent(ctx context.Context, contentID string) bool {
	s, err := r.current(ctx)
	if err != nil {
		return false
	}
	if s.contents[contentID] != nil {
		return true
	}
	s, _ = r.afterMiss(ctx)
	return s != nil && s.contents[contentID] != nil
}

// SigningKey returns the named signing key (SigningKeyLicense, ...). Unlike
// Store.SigningKey it never creates one: it returns an error wrapping
// ErrNotFound if the store has no key of that name, after checking the file.
func (r *Reader) SigningKey(ctx context.Context, name string) (*SigningKey, error) {
	if err := validateSigningKeyName(name); err != nil {
		return nil, err
	}
	s, err := r.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %q: %w", name, err)
	}
	v, ok := s.signing[name]
	if !ok {
		if s, err = r.afterMiss(ctx); s != nil {
			v, ok = s.signing[name]
		}
		if !ok {
			err = missError("signing key", fmt.Sprintf("%q", name), err)
			return nil, fmt.Errorf("%w (a Reader never creates keys; Open the store with a writer, e.g. sealmesh pack, to create it)", err)
		}
	}
	seed, err := s.kek.Decrypt(v.sealed, v.ad)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %q: %w: does not authenticate: %w", name, ErrCorrupt, err)
	}
	defer clear(seed)
	k, err := signingKeyFromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %q: %w: %w", name, ErrCorrupt, err)
	}
	return k, nil
}

// Refresh re-reads the file now, even if it looks unchanged, and returns
// the re-read's error: it wraps ErrLocked if a writer held the file for
// longer than the lock timeout, ErrCorrupt if the file is damaged, or
// ErrWrongPassphrase if the store was re-initialized. On error the previous
// snapshot stays in service. If ctx ends first, Refresh returns ctx.Err()
// and the re-read finishes in the background.
func (r *Reader) Refresh(ctx context.Context) error {
	if err := r.sync(ctx, true); err != nil {
		return fmt.Errorf("keys: refresh %s: %w", r.path, err)
	}
	return nil
}

// Close stops the Reader and drops its snapshot. It waits for a re-read in
// progress (at most the lock timeout), is idempotent, and every later call
// fails with ErrClosed.
func (r *Reader) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed.Store(true)
		close(r.closing)
		r.mu.Unlock()
		r.wg.Wait()
		r.snap.Store(nil)
	})
	return nil
}
