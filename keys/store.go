package keys

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Store is the key store the packager writes and the license server reads.
//
// Implementations are safe for concurrent use. Every method checks ctx before
// starting work. Errors wrap the package's sentinel errors as documented on
// each method; a record that fails to authenticate yields ErrCorrupt, and any
// call after Close yields ErrClosed.
type Store interface {
	// PutContent registers all keys of one content in a single transaction:
	// either all keys are stored or none. keys must be non-empty, with
	// distinct periods and distinct non-zero KIDs. It returns an error
	// wrapping ErrExists if contentID already has keys and replace is false,
	// or if one of the KIDs belongs to another content. With replace, the old
	// keys of contentID are removed in the same transaction.
	PutContent(ctx context.Context, contentID string, keys []ContentKey, replace bool) error

	// ContentKeys returns all keys of contentID sorted by period, or an error
	// wrapping ErrNotFound.
	ContentKeys(ctx context.Context, contentID string) ([]ContentKey, error)

	// ContentKey looks a key up by KID and returns it with the content ID it
	// belongs to, or an error wrapping ErrNotFound.
	ContentKey(ctx context.Context, kid KID) (contentID string, key ContentKey, err error)

	// ListContent returns every content in the store, sorted by ID. It does
	// not decrypt anything.
	ListContent(ctx context.Context) ([]ContentInfo, error)

	// DeleteContent removes contentID and all its keys, or returns an error
	// wrapping ErrNotFound.
	DeleteContent(ctx context.Context, contentID string) error

	// SigningKey returns the named signing key (SigningKeyManifest,
	// SigningKeyLicense, ...), creating and storing it on first use inside a
	// transaction, so concurrent first calls all get the same key.
	SigningKey(ctx context.Context, name string) (*SigningKey, error)

	// Close releases the store. It is idempotent.
	Close() error
}

// ContentInfo describes one content in the store, without key material.
type ContentInfo struct {
	ID      string
	KIDs    []KID // ordered by period
	Created time.Time
}

// PassphraseEnv is the environment variable PassphraseFromEnv reads.
const PassphraseEnv = "SEALMESH_KEYSTORE_PASSPHRASE"

// PassphraseFromEnv returns the key store passphrase from the
// SEALMESH_KEYSTORE_PASSPHRASE environment variable, or an error naming the
// variable if it is unset or empty. Reading the passphrase from the
// environment (rather than a flag) keeps it out of ps output and shell history.
func PassphraseFromEnv() ([]byte, error) {
	v := os.Getenv(PassphraseEnv)
	if v == "" {
		return nil, fmt.Errorf("keys: %s is not set: export the key store passphrase (at least %d bytes) in %s", PassphraseEnv, minPassphraseLen, PassphraseEnv)
	}
	return []byte(v), nil
}
