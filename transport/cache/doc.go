// Package cache keeps the ciphertext files of one content so that a peer can
// play them and relay them to other peers: on disk ([Cache]) or, for devices
// that must write nothing, in memory ([Mem]).
//
// Only ciphertext ever reaches a cache. Keys and plaintext stay in the
// player; this package imports none of sealmesh's key code.
//
// # Entry points
//
//   - [Open] opens the disk cache of a content under a folder, checking what
//     an earlier run left there.
//   - [NewMem] makes the in-memory variant.
//   - Both have Get, Put, Has, Paths, Size and Close; Get/Put/Paths is the
//     shape the transport layer's Store and the scheduler's Store expect.
//
// A typical peer:
//
//	c, err := cache.Open(stateDir+"/cache", manifest, cache.Options{MaxBytes: 1 << 30, Logger: log})
//	defer c.Close()
//	if err := c.Put("v1080/12.m4s", data); errors.Is(err, segment.ErrIntegrity) { ... ban the sender ... }
//	data, ok := c.Get("v1080/12.m4s")
//
// # Integrity
//
// The cache trusts nothing but the signed manifest it was opened with:
//
//   - Put refuses a path the manifest does not list (an error wrapping
//     [segment.ErrUnknownFile]) and bytes whose size or SHA-256 differ from
//     the manifest's (wrapping [segment.ErrIntegrity]). Callers that got the
//     bytes from a peer should ban it on ErrIntegrity.
//   - [Open] hashes every file found on disk and deletes the ones that fail,
//     the ones the manifest does not list, leftover temp files and anything
//     that is not a regular file, logging one line per file dropped.
//   - [Cache.Get] hashes the file again on every read and treats a mismatch
//     as a miss (and drops the file), so bytes damaged on disk after Open are
//     never relayed or decrypted; the caller refetches them.
//
// # Layout and crash safety
//
// A file listed at manifest path p is stored at dir/<content-id>/p (paths
// are checked with [filepath.IsLocal] even though the manifest's validation
// already guarantees clean relative paths). Put writes a temp file whose
// name starts with '.' in the same folder, fsyncs it and renames it into
// place, so a crash leaves whole files and stray temp files, never a torn
// file under a real name; Open removes the temp files. The folder's own
// entry is not fsynced after the rename: after a power cut a file may be
// missing, which is only a miss.
//
// # Size and eviction
//
// Options.MaxBytes caps the bytes held (512 MiB on disk, 64 MiB in memory
// by default). After each Put the least recently used files are evicted
// until the cache fits; Get and Put mark a file used, Has and Paths do not.
// A file bigger than the whole cap is refused with [ErrTooLarge]. The disk
// cache stamps each file's modification time when it is written or read,
// and Open rebuilds the LRU order from those times.
//
// # Concurrency
//
// Both types are safe for concurrent use. Two processes must not open the
// same folder at once: nothing locks it.
//
// # Compatibility
//
// The on-disk layout is the manifest's own file tree and may be read by
// other tools; the Go API may still change before sealmesh 1.0.
package cache
