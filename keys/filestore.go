package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// File layout (one bbolt file, version 1). Part of the compatibility promise:
// later versions read version 1 files.
//
//	meta/                      clear metadata
//	  magic    = "sealmesh-keystore"
//	  version  = "1"
//	  kdf      = JSON kdfParams (argon2id salt and cost, or "external")
//	  keyset   = Tink binary EncryptedKeyset: the KEK under the master AEAD
//	content/<contentID>/       one nested bucket per content
//	  created  = RFC 3339 time, UTC
//	  keys/<period: 8-byte big-endian> = KID(16) || KEK-sealed key (AD contentKeyAD)
//	kids/<KID(16)>            = period(8) || contentID   (index for ContentKey)
//	signing/<name>            = KEK-sealed Ed25519 seed (AD signingKeyAD)
var (
	bucketMeta    = []byte("meta")
	bucketContent = []byte("content")
	bucketKIDs    = []byte("kids")
	bucketSigning = []byte("signing")
	bucketKeys    = []byte("keys")

	metaMagic   = []byte("magic")
	metaVersion = []byte("version")
	metaKDF     = []byte("kdf")
	metaKeyset  = []byte("keyset")
	keyCreated  = []byte("created")
)

const (
	fileMagic   = "sealmesh-keystore"
	fileVersion = "1"
	fileMode    = 0o600 // the file holds only sealed keys, but its metadata is nobody else's business
)

// FileStore is the embedded Store: one bbolt file, locked by one process at a
// time. Create it with Init, open it with Open, and Close it when done.
type FileStore struct {
	path   string
	db     *bolt.DB
	master tink.AEAD
	now    func() time.Time

	rotMu  sync.Mutex   // serializes RotateKEK
	mu     sync.RWMutex // guards handle and kek (swapped by RotateKEK)
	handle *keyset.Handle
	kek    tink.AEAD

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*FileStore)(nil)

// Init creates a new key store at path and returns it open.
//
// It generates a KEK (a Tink AES256-GCM AEAD keyset) and stores it encrypted
// under a master key derived from passphrase with argon2id (random salt; the
// salt and cost are stored in the file), or under the AEAD given with
// WithMasterAEAD. The passphrase must be at least 8 bytes. The file is built
// at a temporary path in the same directory, synced and then linked into
// place, so a crash never leaves a half-written store at path.
//
// Init fails with an error wrapping ErrAlreadyInitialized if path exists.
func Init(path string, passphrase []byte, opts ...Option) (*FileStore, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("keys: init %s: %w (open it, or remove it to start over)", path, ErrAlreadyInitialized)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keys: init %s: %w", path, err)
	}

	master, kdf := o.master, kdfParams{Kind: kdfExternal}
	if master == nil {
		if len(passphrase) < minPassphraseLen {
			return nil, fmt.Errorf("keys: init %s: passphrase is %d bytes, need at least %d", path, len(passphrase), minPassphraseLen)
		}
		kdf = kdfParams{Kind: kdfArgon2id, Salt: make([]byte, saltSize), Time: o.time, MemoryKiB: o.memoryKiB, Threads: o.threads}
		if _, err := rand.Read(kdf.Salt); err != nil {
			return nil, fmt.Errorf("keys: init %s: salt: %w", path, err)
		}
		if master, err = passphraseAEAD(passphrase, kdf); err != nil {
			return nil, fmt.Errorf("keys: init %s: %w", path, err)
		}
	}
	handle, kek, err := newKEK()
	if err != nil {
		return nil, err
	}
	encKeyset, err := encryptKEK(handle, master)
	if err != nil {
		return nil, err
	}
	kdfJSON, err := json.Marshal(kdf)
	if err != nil {
		return nil, err
	}

	if err := writeNewFile(path, o.lockTimeout, func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bucketContent, bucketKIDs, bucketSigning} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for k, v := range map[string][]byte{
			string(metaMagic): []byte(fileMagic), string(metaVersion): []byte(fileVersion),
			string(metaKDF): kdfJSON, string(metaKeyset): encKeyset,
		} {
			if err := meta.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}

	db, err := openBolt(path, o.lockTimeout)
	if err != nil {
		return nil, err
	}
	return &FileStore{path: path, db: db, master: master, now: o.now, handle: handle, kek: kek}, nil
}

// writeNewFile builds a bbolt file at a temporary path next to path, fills
// it with fill, syncs it and links it into place without overwriting.
func writeNewFile(path string, lockTimeout time.Duration, fill func(*bolt.Tx) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".init-*")
	if err != nil {
		return fmt.Errorf("keys: init %s: %w", path, err)
	}
	tmpPath := tmp.Name()
	defer os.Remove(tmpPath) // after the link, this only removes the temporary name
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys: init %s: %w", path, err)
	}
	db, err := bolt.Open(tmpPath, fileMode, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("keys: init %s: %w", path, err)
	}
	// bbolt fsyncs the file on commit (NoSync is false).
	if err := db.Update(fill); err != nil {
		_ = db.Close()
		return fmt.Errorf("keys: init %s: %w", path, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("keys: init %s: %w", path, err)
	}
	// os.Link, unlike os.Rename, fails if path appeared in the meantime, so a
	// racing Init can never replace a store (and its keys) with a new one.
	if err := os.Link(tmpPath, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keys: init %s: %w", path, ErrAlreadyInitialized)
		}
		// File systems without hard links: fall back to a checked rename.
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("keys: init %s: %w", path, ErrAlreadyInitialized)
		}
		if err := os.Rename(tmpPath, path); err != nil {
			return fmt.Errorf("keys: init %s: %w", path, err)
		}
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes the new directory entry durable. Best effort: some platforms
// cannot fsync a directory, and the file itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Open opens the key store at path and decrypts its KEK.
//
// Errors wrap ErrNotInitialized if there is no file at path, ErrLocked if
// another process holds it open (after waiting WithLockTimeout), ErrCorrupt if
// the file is not a sealmesh key store, and ErrWrongPassphrase if the
// passphrase (or the WithMasterAEAD AEAD) does not decrypt the KEK.
func Open(path string, passphrase []byte, opts ...Option) (*FileStore, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if _, err := statStoreFile(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, o.lockTimeout)
	if err != nil {
		return nil, err
	}
	s, err := loadStore(db, path, passphrase, o)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func openBolt(path string, timeout time.Duration) (*bolt.DB, error) {
	db, err := bolt.Open(path, fileMode, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, boltOpenError(path, timeout, err)
	}
	return db, nil
}

// boltOpenError maps a bolt.Open error to the package's sentinels.
func boltOpenError(path string, timeout time.Duration, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("keys: open %s: %w (waited %v; is another sealmesh process using it?)", path, ErrLocked, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("keys: open %s: %w: %w", path, ErrCorrupt, err)
	default:
		return fmt.Errorf("keys: open %s: %w", path, err)
	}
}

// statStoreFile checks that path holds something that can be a key store,
// without opening it. Errors wrap ErrNotInitialized or ErrCorrupt.
func statStoreFile(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("keys: open %s: %w (create it with Init / sealmesh keys init)", path, ErrNotInitialized)
	case err != nil:
		return nil, fmt.Errorf("keys: open %s: %w", path, err)
	case !fi.Mode().IsRegular() || fi.Size() == 0:
		// bbolt would happily format an empty file; refuse instead.
		return nil, fmt.Errorf("keys: open %s: %w: not a key store file", path, ErrCorrupt)
	}
	return fi, nil
}

func loadStore(db *bolt.DB, path string, passphrase []byte, o *options) (*FileStore, error) {
	var kdfJSON, encKeyset []byte
	err := db.View(func(tx *bolt.Tx) (err error) {
		kdfJSON, encKeyset, err = readMeta(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: open %s: %w", path, err)
	}
	master, err := masterAEAD(kdfJSON, passphrase, o)
	if err != nil {
		return nil, fmt.Errorf("keys: open %s: %w", path, err)
	}
	handle, kek, err := decryptKEK(encKeyset, master)
	if err != nil {
		return nil, fmt.Errorf("keys: open %s: %w", path, err)
	}
	return &FileStore{path: path, db: db, master: master, now: o.now, handle: handle, kek: kek}, nil
}

// readMeta checks that tx is a version 1 key store and returns copies of its
// kdf record and encrypted keyset. Errors wrap ErrCorrupt.
func readMeta(tx *bolt.Tx) (kdfJSON, encKeyset []byte, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil || string(meta.Get(metaMagic)) != fileMagic {
		return nil, nil, fmt.Errorf("%w: not a sealmesh key store", ErrCorrupt)
	}
	if v := string(meta.Get(metaVersion)); v != fileVersion {
		return nil, nil, fmt.Errorf("%w: unsupported key store version %q (this build reads %q)", ErrCorrupt, v, fileVersion)
	}
	for _, b := range [][]byte{bucketContent, bucketKIDs, bucketSigning} {
		if tx.Bucket(b) == nil {
			return nil, nil, fmt.Errorf("%w: missing bucket %q", ErrCorrupt, b)
		}
	}
	// Values are only valid inside the transaction: copy them out.
	return bytes.Clone(meta.Get(metaKDF)), bytes.Clone(meta.Get(metaKeyset)), nil
}

// masterAEAD returns the master AEAD for a store with the given kdf record:
// the WithMasterAEAD AEAD, or the key derived from passphrase with argon2id
// (the slow step). Errors wrap ErrWrongPassphrase or ErrCorrupt.
func masterAEAD(kdfJSON, passphrase []byte, o *options) (tink.AEAD, error) {
	var kdf kdfParams
	if err := json.Unmarshal(kdfJSON, &kdf); err != nil {
		return nil, fmt.Errorf("%w: kdf record: %w", ErrCorrupt, err)
	}
	master := o.master
	switch {
	case kdf.Kind == kdfExternal && master == nil:
		return nil, fmt.Errorf("%w: the store is sealed by an external master key (KMS); open it with WithMasterAEAD", ErrWrongPassphrase)
	case kdf.Kind == kdfArgon2id && master != nil:
		return nil, fmt.Errorf("%w: the store is sealed by a passphrase, not by the WithMasterAEAD key", ErrWrongPassphrase)
	case kdf.Kind == kdfArgon2id:
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("%w: empty passphrase (set %s)", ErrWrongPassphrase, PassphraseEnv)
		}
		var err error
		if master, err = passphraseAEAD(passphrase, kdf); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	case kdf.Kind != kdfExternal:
		return nil, fmt.Errorf("%w: unknown kdf %q", ErrCorrupt, kdf.Kind)
	}
	return master, nil
}

// Path returns the file the store was opened from.
func (s *FileStore) Path() string { return s.path }

// Close releases the file lock. It waits for running transactions, is
// idempotent, and every later call on s fails with ErrClosed.
func (s *FileStore) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// RotateKEK adds a new AES256-GCM key to the KEK keyset, promotes it to
// primary and stores the keyset, re-encrypted under the master AEAD. Keys
// sealed before keep decrypting under their old KEK key; everything sealed
// afterwards uses the new one. The in-memory KEK changes only once the new
// keyset is committed, so a failed rotation leaves the store as it was.
func (s *FileStore) RotateKEK(ctx context.Context) error {
	// rotMu serializes rotations so none is lost. s.mu is not held across the
	// bolt transaction: SigningKey takes s.mu inside one, and holding both in
	// opposite orders would deadlock.
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	s.mu.RLock()
	h := s.handle
	s.mu.RUnlock()
	nh, kek, err := rotateKEK(h)
	if err != nil {
		return err
	}
	enc, err := encryptKEK(nh, s.master)
	if err != nil {
		return err
	}
	if err := s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaKeyset, enc)
	}); err != nil {
		return fmt.Errorf("keys: rotate KEK: %w", err)
	}
	s.mu.Lock()
	s.handle, s.kek = nh, kek
	s.mu.Unlock()
	return nil
}

// KEKKeyIDs returns the Tink key IDs of the KEK keyset: the primary (used for
// new seals) and all keys (usable for unsealing). They are not secret.
func (s *FileStore) KEKKeyIDs() (primary uint32, all []uint32) {
	s.mu.RLock()
	info := s.handle.KeysetInfo()
	s.mu.RUnlock()
	for _, k := range info.GetKeyInfo() {
		all = append(all, k.GetKeyId())
	}
	return info.GetPrimaryKeyId(), all
}

func (s *FileStore) currentKEK() tink.AEAD {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.kek
}

func (s *FileStore) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *FileStore) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return s.db.Update(fn)
}

func (s *FileStore) usable(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}
