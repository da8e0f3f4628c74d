package keys

import "errors"

// Errors callers branch on with [errors.Is]. Every error returned by this
// package that has one of these meanings wraps the matching sentinel, with
// context (file path, content ID, KID) added in front.
var (
	// ErrNotFound: the content ID, KID or record asked for is not in the store.
	ErrNotFound = errors.New("keys: not found")

	// ErrExists: PutContent was asked to register a content ID that already
	// has keys (and replace was false), or a KID already used by another content.
	ErrExists = errors.New("keys: already exists")

	// ErrWrongPassphrase: the passphrase (or the master AEAD given with
	// WithMasterAEAD) does not decrypt the store's keyset. The store is not
	// damaged; try again with the right secret.
	ErrWrongPassphrase = errors.New("keys: wrong passphrase or master key")

	// ErrLocked: another process (or another FileStore in this process) holds
	// the store file open. Only one writer may open a store at a time.
	ErrLocked = errors.New("keys: key store is locked by another process")

	// ErrNotInitialized: there is no store at the path; create one with Init.
	ErrNotInitialized = errors.New("keys: key store not initialized")

	// ErrAlreadyInitialized: Init refuses to overwrite an existing file.
	ErrAlreadyInitialized = errors.New("keys: key store already initialized")

	// ErrCorrupt: the file is not a sealmesh key store, or a record in it
	// fails to authenticate (damaged, truncated, or swapped with another record).
	ErrCorrupt = errors.New("keys: key store corrupt")

	// ErrClosed: the store was used after Close.
	ErrClosed = errors.New("keys: key store closed")
)
