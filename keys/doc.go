// Package keys holds sealmesh's key material: the content keys that CENC
// encrypts segments with, the Ed25519 keys that sign segment manifests and
// licenses, and the key store that keeps them encrypted at rest.
//
// The packager (sealmesh pack) creates content keys and writes them to the
// store; the license server (sealmesh license serve) reads them back to wrap
// them for players. Nothing in the peer-to-peer layer ever imports this package.
//
// # Entry points
//
//   - [NewContentKey] makes a random AES-128 content key with a random UUIDv4
//     [KID] for one crypto period; [ContentKeyFromBytes] imports an existing one.
//   - [NewSigningKey] makes an Ed25519 key; [Store.SigningKey] returns the
//     store's named keys ([SigningKeyManifest], [SigningKeyLicense]),
//     creating them on first use. [SigningKey.Signer] gives a [crypto.Signer]
//     to code that must sign without importing this package.
//   - [Init] creates a store file and [Open] opens it, both returning a
//     [*FileStore], the embedded implementation of [Store]. A store is one
//     bbolt file that one process at a time may hold open.
//   - [NewReader] opens a store read-only for a long-running server, without
//     holding its lock (see "Serving keys while packaging" below).
//   - [ParseKID], [KID.String] and [KID.UUID] convert KIDs to and from the hex
//     and UUID forms that manifests and license requests use.
//
// A typical packager run:
//
//	pass, err := keys.PassphraseFromEnv() // SEALMESH_KEYSTORE_PASSPHRASE
//	st, err := keys.Open("keys.db", pass)
//	defer st.Close()
//	k0, err := keys.NewContentKey(0)
//	err = st.PutContent(ctx, "movie-42", []keys.ContentKey{k0}, false)
//	sk, err := st.SigningKey(ctx, keys.SigningKeyManifest)
//
// # Serving keys while packaging
//
// A [FileStore] holds bbolt's exclusive file lock until Close, so while the
// license server kept the store open, sealmesh pack would fail with
// [ErrLocked]; reopening per request is no answer either, since Open runs
// argon2id (about a quarter of a second). The license server therefore uses a
// [Reader]:
//
//	r, err := keys.NewReader("keys.db", pass) // argon2id runs once, here
//	defer r.Close()
//	ks, err := r.ContentKeys(ctx, "movie-42")  // in each license request
//	lk, err := r.SigningKey(ctx, keys.SigningKeyLicense)
//
// The Reader unseals the KEK once and keeps the master AEAD (never the
// passphrase), so it can decrypt a keyset that a writer's RotateKEK replaced.
// It reads the file by opening it in bbolt's read-only mode, which takes the
// shared lock only while it copies the sealed records out (milliseconds), so
// a writer's Open, which waits up to [WithLockTimeout] for the lock, gets in.
// It re-reads the file when its size or mtime changed, looking at most every
// [WithRefreshInterval] (2 s by default) while lookups hit, and on every
// lookup miss, so content that pack has just registered is found on its first
// request. A re-read that cannot get the lock within the lock timeout (a
// writer holds the store) or finds the file damaged leaves the last good
// snapshot in service; [Reader.Refresh] returns that error, misses wrap it
// beside [ErrNotFound], and [WithLogger] reports it. After such a failure
// the Reader retries when the file changes again or after the refresh
// interval, so content registered by a writer that is still running shows up
// at most one refresh interval after the writer closes the store.
//
// In memory, the Reader's snapshot holds records exactly as they are on disk,
// sealed under the KEK; a lookup unseals into the value it returns and caches
// nothing, so clear content keys exist only in the hands of the caller. The
// Reader never writes: [Reader.SigningKey] returns [ErrNotFound] for a key
// that no writer has created yet.
//
// # Secrets never print
//
// [ContentKey] and [SigningKey] print as their KID or key ID under every fmt
// verb, through GoString and through [log/slog] (LogValue), so a key cannot
// leak into a log line or an error by accident. The raw bytes are reachable
// only through [ContentKey.InsecureRawKey] and [SigningKey.InsecureRawPrivateKey],
// whose names say what they are; the crypto.Signer from [SigningKey.Signer]
// signs but prints only the key ID. KIDs are public and random, never derived
// from the key they name.
//
// # How keys are protected at rest
//
// The store file contains no key in clear. The hierarchy is:
//
//	passphrase --argon2id--> master key            (never stored; or a cloud KMS key)
//	master AEAD  --encrypts--> KEK                  (a Tink AEAD keyset of AES256-GCM keys)
//	KEK          --seals-->    content keys, signing keys
//
// The argon2id salt and cost are stored in the file; the defaults
// ([DefaultArgon2Time], [DefaultArgon2MemoryKiB], [DefaultArgon2Threads]) make
// each passphrase guess cost 64 MiB of memory. The KEK keyset is written with
// Tink's keyset.Handle.WriteWithAssociatedData, so it is only ever on disk
// encrypted. Every sealed record carries associated data naming its place
// (content ID, KID and period for a content key; name for a signing key), so
// a record copied or swapped into another slot fails to decrypt with
// [ErrCorrupt] instead of handing out the wrong key.
//
// Init writes the new file at a temporary path, syncs it and links it into
// place, so a crash never leaves a half-initialized store, and never
// overwrites an existing one ([ErrAlreadyInitialized]).
//
// # Using a cloud KMS instead of a passphrase
//
// Any [github.com/tink-crypto/tink-go/v2/tink.AEAD] can be the master key.
// With a Tink KMS extension (GCP, AWS, HashiCorp Vault, ...):
//
//	client, err := gcpkms.NewClientWithOptions(ctx, "gcp-kms://")     // a registry.KMSClient
//	master, err := client.GetAEAD("gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k")
//	st, err := keys.Init("keys.db", nil, keys.WithMasterAEAD(master))
//
// and later keys.Open("keys.db", nil, keys.WithMasterAEAD(master)). The
// passphrase is then ignored. The KMS sees only the small KEK keyset, once per
// Init, Open and RotateKEK (and per NewReader and each rotation a Reader
// picks up), never content keys.
//
// # Rotation
//
// [FileStore.RotateKEK] rotates the KEK the Tink way, add then promote: it
// adds a fresh AES256-GCM key to the keyset, makes it primary and stores the
// re-encrypted keyset. Old keys stay in the keyset so every record sealed
// before still opens; everything sealed afterwards uses the new key. Content
// keys themselves are rotated by crypto period: each period has its own key
// and KID.
//
// # Errors
//
// Errors wrap the sentinels [ErrNotFound], [ErrExists], [ErrWrongPassphrase],
// [ErrLocked], [ErrNotInitialized], [ErrAlreadyInitialized], [ErrCorrupt] and
// [ErrClosed], with context in front; branch with [errors.Is], never on text.
//
// # Compatibility
//
// The exported API follows semantic versioning with the sealmesh module. The
// store file format is versioned (version 1 today, written in the file):
// later releases keep reading version 1 files, and a release that cannot read
// a file says so with [ErrCorrupt] rather than guessing. The KID forms, the
// signing key ID (first 8 bytes of SHA-256 of the public key, in hex) and the
// associated data formats are part of that promise, since other systems store
// and compare them.
package keys
