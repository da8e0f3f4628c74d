package keys

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	bolt "go.etcd.io/bbolt"
)

// snapshot is one immutable copy of a store file, as a Reader serves it.
//
// It holds no key in clear, by construction: its only key-bearing fields are
// KEK ciphertexts (sealedKey.sealed, sealedSeed.sealed), and the types below
// have no field that could hold a ContentKey, a SigningKey or raw key bytes.
// A lookup unseals into the value it returns and keeps nothing. The one
// secret a snapshot holds is kek, the unsealed KEK itself, exactly as an open
// FileStore does. Snapshots are never modified after they are published, so
// lookups read them without locks.
type snapshot struct {
	kek       tink.AEAD
	encKeyset []byte // the keyset as stored (encrypted), to notice a RotateKEK
	contents  map[string]*sealedContent
	kids      map[KID]kidRef
	signing   map[string]sealedSeed
	file      os.FileInfo // the file as read, stat'ed under the lock
	racy      bool        // file's mtime was too recent to trust an unchanged stat
}

// sealedContent is one content's records, ordered by period.
type sealedContent struct {
	id   string
	keys []sealedKey
	err  error // a malformed record; ContentKeys of this content fails with it (wraps ErrCorrupt)
}

// sealedKey is one content key as stored: ciphertext under the KEK.
type sealedKey struct {
	kid    KID
	period int
	ad     []byte // contentKeyAD(content ID, kid, period), computed once: it is not secret
	sealed []byte
}

// sealedSeed is one signing key as stored: its Ed25519 seed under the KEK.
type sealedSeed struct {
	ad     []byte // signingKeyAD(name)
	sealed []byte
}

// kidRef locates a KID's record. key is nil if two records claim the KID,
// which only a damaged or tampered file does.
type kidRef struct {
	content *sealedContent
	key     *sealedKey
}

// racyWindow: a file whose mtime is this close to the moment it was read may
// be written again within the same mtime tick (coarse on some file systems,
// 1-2 s on FAT and HFS+) without its size or mtime changing. Such a snapshot
// is re-read at the next check even if the stat looks unchanged (the "racy
// git" problem and its fix).
const racyWindow = 2 * time.Second

// fileImage is what one read of the store file copies out of bbolt, before
// the KEK is known.
type fileImage struct {
	kdfJSON, encKeyset []byte
	snap               *snapshot // everything but kek
	held               time.Duration
}

// readImage opens path read-only, which takes bbolt's shared lock (waiting
// at most lockTimeout for a writer to let go), copies every sealed record out
// and closes the file at once, releasing the lock. Nothing is decrypted.
// Errors wrap ErrNotInitialized, ErrLocked or ErrCorrupt like Open's.
func readImage(path string, lockTimeout time.Duration) (*fileImage, error) {
	if _, err := statStoreFile(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, fileMode, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		return nil, boltOpenError(path, lockTimeout, err)
	}
	locked := time.Now()
	img := &fileImage{snap: &snapshot{
		contents: map[string]*sealedContent{},
		kids:     map[KID]kidRef{},
		signing:  map[string]sealedSeed{},
	}}
	// Stat under the shared lock: no writer can change the file until Close,
	// so this is exactly the state read below.
	fi, err := os.Stat(path)
	if err == nil {
		img.snap.file = fi
		img.snap.racy = locked.Sub(fi.ModTime()) < racyWindow
		err = db.View(img.copyFrom)
	}
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	img.held = time.Since(locked)
	if err != nil {
		return nil, fmt.Errorf("keys: read %s: %w", path, err)
	}
	return img, nil
}

// copyFrom copies the meta records and all sealed records out of tx; bolt
// values are only valid inside the transaction. A malformed content record
// does not fail the read: like FileStore, the Reader reports it (ErrCorrupt)
// when that content is looked up, and keeps serving the rest.
func (img *fileImage) copyFrom(tx *bolt.Tx) (err error) {
	if img.kdfJSON, img.encKeyset, err = readMeta(tx); err != nil {
		return err
	}
	s := img.snap
	s.encKeyset = img.encKeyset
	content := tx.Bucket(bucketContent)
	err = content.ForEachBucket(func(idb []byte) error {
		c := &sealedContent{id: string(idb)}
		s.contents[c.id] = c
		kb := content.Bucket(idb).Bucket(bucketKeys)
		if kb == nil {
			c.err = fmt.Errorf("%w: content %q has no keys bucket", ErrCorrupt, c.id)
			return nil
		}
		// Big-endian period keys iterate in period order.
		return kb.ForEach(func(pk, v []byte) error {
			kid, period, sealed, err := parseRecord(c.id, pk, v)
			if err != nil {
				if c.err == nil {
					c.err = err
				}
				return nil
			}
			c.keys = append(c.keys, sealedKey{
				kid: kid, period: period,
				ad:     contentKeyAD(c.id, kid, period),
				sealed: bytes.Clone(sealed),
			})
			return nil
		})
	})
	if err != nil {
		return err
	}
	// The KID index is built from the records themselves: the KID in a
	// record is bound into its associated data, so a lookup can only ever
	// unseal the key that really carries that KID in that content.
	for _, c := range s.contents {
		for i := range c.keys {
			k := &c.keys[i]
			if _, dup := s.kids[k.kid]; dup {
				s.kids[k.kid] = kidRef{content: c}
				continue
			}
			s.kids[k.kid] = kidRef{content: c, key: k}
		}
	}
	return tx.Bucket(bucketSigning).ForEach(func(name, v []byte) error {
		s.signing[string(name)] = sealedSeed{ad: signingKeyAD(string(name)), sealed: bytes.Clone(v)}
		return nil
	})
}

// sameFile reports whether a and b describe the same, unchanged file.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// unseal returns all keys of c, ordered by period. Errors wrap ErrCorrupt.
func (c *sealedContent) unseal(kek tink.AEAD) ([]ContentKey, error) {
	if c.err != nil {
		return nil, c.err
	}
	out := make([]ContentKey, len(c.keys))
	for i := range c.keys {
		var err error
		if out[i], err = c.keys[i].unseal(kek, c.id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// unseal decrypts k. The associated data names its slot, so a record moved
// from another content, period or KID does not authenticate. The clear bytes
// live only in the returned ContentKey. Errors wrap ErrCorrupt.
func (k *sealedKey) unseal(kek tink.AEAD, contentID string) (ContentKey, error) {
	raw, err := kek.Decrypt(k.sealed, k.ad)
	if err != nil {
		return ContentKey{}, fmt.Errorf("%w: content %q: key %s period %d does not authenticate: %w", ErrCorrupt, contentID, k.kid, k.period, err)
	}
	defer clear(raw)
	ck, err := ContentKeyFromBytes(k.kid, k.period, raw)
	if err != nil {
		return ContentKey{}, fmt.Errorf("%w: content %q: %w", ErrCorrupt, contentID, err)
	}
	return ck, nil
}
