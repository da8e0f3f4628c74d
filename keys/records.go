package keys

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// maxContentIDLen bounds content IDs: they are bolt keys, parts of associated
// data and log fields, and nothing legitimate needs more.
const maxContentIDLen = 256

func validateContentID(id string) error {
	if id == "" {
		return errors.New("keys: content ID is empty")
	}
	if len(id) > maxContentIDLen {
		return fmt.Errorf("keys: content ID is %d bytes, at most %d allowed", len(id), maxContentIDLen)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("keys: content ID %q is not valid UTF-8", id)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("keys: content ID %q contains a control character", id)
		}
	}
	return nil
}

// validateSigningKeyName allows 1..64 of [a-z0-9._-]: names appear in file
// records and associated data, and are chosen by code, not users.
func validateSigningKeyName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("keys: signing key name %q must be 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("keys: signing key name %q: only a-z, 0-9, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

func periodKey(period int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(period)) }

// PutContent implements Store.
func (s *FileStore) PutContent(ctx context.Context, contentID string, keys []ContentKey, replace bool) error {
	if err := validateContentID(contentID); err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("keys: put content %q: no keys", contentID)
	}
	periods, kids := map[int]bool{}, map[KID]bool{}
	for _, k := range keys {
		switch {
		case k.kid.IsZero():
			return fmt.Errorf("keys: put content %q: key for period %d has the zero KID (use NewContentKey or ContentKeyFromBytes)", contentID, k.period)
		case k.period < 0:
			return fmt.Errorf("keys: put content %q: %v has a negative period", contentID, k)
		case periods[k.period]:
			return fmt.Errorf("keys: put content %q: two keys for period %d", contentID, k.period)
		case kids[k.kid]:
			return fmt.Errorf("keys: put content %q: KID %s used twice", contentID, k.kid)
		}
		periods[k.period], kids[k.kid] = true, true
	}

	// Seal before the write transaction: it is CPU work that needs no lock.
	kek := s.currentKEK()
	records := make([][]byte, len(keys))
	for i, k := range keys {
		sealed, err := kek.Encrypt(k.key[:], contentKeyAD(contentID, k.kid, k.period))
		if err != nil {
			return fmt.Errorf("keys: put content %q: seal %v: %w", contentID, k, err)
		}
		records[i] = append(append([]byte(nil), k.kid[:]...), sealed...)
	}
	created := []byte(s.now().UTC().Format(time.RFC3339Nano))

	err := s.update(ctx, func(tx *bolt.Tx) error {
		content, index := tx.Bucket(bucketContent), tx.Bucket(bucketKIDs)
		if old := content.Bucket([]byte(contentID)); old != nil {
			if !replace {
				return fmt.Errorf("%w: content %q already has keys (replace them explicitly)", ErrExists, contentID)
			}
			if err := deleteContentTx(content, index, contentID); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if owner := index.Get(k.kid[:]); owner != nil {
				return fmt.Errorf("%w: KID %s already belongs to content %q", ErrExists, k.kid, owner[8:])
			}
		}
		b, err := content.CreateBucket([]byte(contentID))
		if err != nil {
			return err
		}
		if err := b.Put(keyCreated, created); err != nil {
			return err
		}
		kb, err := b.CreateBucket(bucketKeys)
		if err != nil {
			return err
		}
		for i, k := range keys {
			if err := kb.Put(periodKey(k.period), records[i]); err != nil {
				return err
			}
			if err := index.Put(k.kid[:], append(periodKey(k.period), contentID...)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("keys: put content %q: %w", contentID, err)
	}
	return nil
}

func deleteContentTx(content, index *bolt.Bucket, contentID string) error {
	b := content.Bucket([]byte(contentID))
	if b == nil {
		return fmt.Errorf("%w: content %q", ErrNotFound, contentID)
	}
	if kb := b.Bucket(bucketKeys); kb != nil {
		err := kb.ForEach(func(_, v []byte) error {
			if len(v) < len(KID{}) {
				return nil // damaged record; its index entry, if any, dangles harmlessly
			}
			return index.Delete(v[:len(KID{})])
		})
		if err != nil {
			return err
		}
	}
	return content.DeleteBucket([]byte(contentID))
}

// parseRecord splits one content/<id>/keys record (period key pk, value
// KID || sealed key) without decrypting it. sealed aliases v. Errors wrap
// ErrCorrupt.
func parseRecord(contentID string, pk, v []byte) (kid KID, period int, sealed []byte, err error) {
	if len(pk) != 8 || len(v) < len(KID{}) {
		return KID{}, 0, nil, fmt.Errorf("%w: content %q: malformed key record", ErrCorrupt, contentID)
	}
	p := binary.BigEndian.Uint64(pk)
	if p > uint64(^uint(0)>>1) {
		return KID{}, 0, nil, fmt.Errorf("%w: content %q: period out of range", ErrCorrupt, contentID)
	}
	copy(kid[:], v)
	return kid, int(p), v[len(kid):], nil
}

// unsealRecord decrypts one content/<id>/keys record and checks it against
// its slot. Errors wrap ErrCorrupt.
func unsealRecord(s *FileStore, contentID string, pk, v []byte) (ContentKey, error) {
	kid, period, sealed, err := parseRecord(contentID, pk, v)
	if err != nil {
		return ContentKey{}, err
	}
	// The associated data names this slot: a record moved here from another
	// content, period or KID does not authenticate.
	raw, err := s.currentKEK().Decrypt(sealed, contentKeyAD(contentID, kid, period))
	if err != nil {
		return ContentKey{}, fmt.Errorf("%w: content %q: key %s period %d does not authenticate: %w", ErrCorrupt, contentID, kid, period, err)
	}
	defer clear(raw)
	k, err := ContentKeyFromBytes(kid, period, raw)
	if err != nil {
		return ContentKey{}, fmt.Errorf("%w: content %q: %w", ErrCorrupt, contentID, err)
	}
	return k, nil
}

// ContentKeys implements Store.
func (s *FileStore) ContentKeys(ctx context.Context, contentID string) ([]ContentKey, error) {
	var out []ContentKey
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketContent).Bucket([]byte(contentID))
		if b == nil {
			return fmt.Errorf("%w: content %q", ErrNotFound, contentID)
		}
		kb := b.Bucket(bucketKeys)
		if kb == nil {
			return fmt.Errorf("%w: content %q has no keys bucket", ErrCorrupt, contentID)
		}
		// Big-endian period keys iterate in period order.
		return kb.ForEach(func(pk, v []byte) error {
			k, err := unsealRecord(s, contentID, pk, v)
			if err != nil {
				return err
			}
			out = append(out, k)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("keys: content keys: %w", err)
	}
	return out, nil
}

// ContentKey implements Store.
func (s *FileStore) ContentKey(ctx context.Context, kid KID) (string, ContentKey, error) {
	var contentID string
	var key ContentKey
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ref := tx.Bucket(bucketKIDs).Get(kid[:])
		if ref == nil {
			return fmt.Errorf("%w: KID %s", ErrNotFound, kid)
		}
		if len(ref) <= 8 {
			return fmt.Errorf("%w: KID %s: malformed index entry", ErrCorrupt, kid)
		}
		contentID = string(ref[8:])
		b := tx.Bucket(bucketContent).Bucket(ref[8:])
		var kb *bolt.Bucket
		if b != nil {
			kb = b.Bucket(bucketKeys)
		}
		var v []byte
		if kb != nil {
			v = kb.Get(ref[:8])
		}
		if v == nil || !bytes.Equal(v[:min(len(v), len(kid))], kid[:]) {
			return fmt.Errorf("%w: KID %s: index points at a missing or different record", ErrCorrupt, kid)
		}
		var err error
		key, err = unsealRecord(s, contentID, ref[:8], v)
		return err
	})
	if err != nil {
		return "", ContentKey{}, fmt.Errorf("keys: content key: %w", err)
	}
	return contentID, key, nil
}

// ListContent implements Store.
func (s *FileStore) ListContent(ctx context.Context) ([]ContentInfo, error) {
	var out []ContentInfo
	err := s.view(ctx, func(tx *bolt.Tx) error {
		content := tx.Bucket(bucketContent)
		return content.ForEachBucket(func(id []byte) error {
			b := content.Bucket(id)
			info := ContentInfo{ID: string(id)}
			if t, err := time.Parse(time.RFC3339Nano, string(b.Get(keyCreated))); err == nil {
				info.Created = t
			}
			if kb := b.Bucket(bucketKeys); kb != nil {
				_ = kb.ForEach(func(_, v []byte) error {
					if len(v) >= len(KID{}) {
						info.KIDs = append(info.KIDs, KID(v[:len(KID{})]))
					}
					return nil
				})
			}
			out = append(out, info)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("keys: list content: %w", err)
	}
	return out, nil
}

// DeleteContent implements Store.
func (s *FileStore) DeleteContent(ctx context.Context, contentID string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return deleteContentTx(tx.Bucket(bucketContent), tx.Bucket(bucketKIDs), contentID)
	})
	if err != nil {
		return fmt.Errorf("keys: delete content: %w", err)
	}
	return nil
}

// SigningKey implements Store. The key is stored as its 32-byte Ed25519 seed,
// sealed under the KEK with associated data naming it.
func (s *FileStore) SigningKey(ctx context.Context, name string) (*SigningKey, error) {
	if err := validateSigningKeyName(name); err != nil {
		return nil, err
	}
	var key *SigningKey
	load := func(tx *bolt.Tx) (bool, error) {
		v := tx.Bucket(bucketSigning).Get([]byte(name))
		if v == nil {
			return false, nil
		}
		seed, err := s.currentKEK().Decrypt(v, signingKeyAD(name))
		if err != nil {
			return false, fmt.Errorf("%w: signing key %q does not authenticate: %w", ErrCorrupt, name, err)
		}
		defer clear(seed)
		if key, err = signingKeyFromSeed(seed); err != nil {
			return false, fmt.Errorf("%w: signing key %q: %w", ErrCorrupt, name, err)
		}
		return true, nil
	}
	var found bool
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		found, err = load(tx)
		return err
	})
	if err == nil && !found {
		// Create on first use. Re-check inside the write transaction: another
		// goroutine may have created it since the read.
		err = s.update(ctx, func(tx *bolt.Tx) error {
			if found, err := load(tx); err != nil || found {
				return err
			}
			k, err := NewSigningKey()
			if err != nil {
				return err
			}
			sealed, err := s.currentKEK().Encrypt(k.priv.Seed(), signingKeyAD(name))
			if err != nil {
				return err
			}
			key = k
			return tx.Bucket(bucketSigning).Put([]byte(name), sealed)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %q: %w", name, err)
	}
	return key, nil
}
