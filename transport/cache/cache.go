package cache

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sealmesh/sealmesh/segment"
)

// Cache is the on-disk ciphertext cache of one content: the files of its
// manifest, each stored at dir/<content-id>/<manifest path>. It is safe for
// concurrent use by any number of goroutines, but not by two processes at
// once (nothing locks the folder).
type Cache struct {
	root  string // dir/<content-id>
	files map[string]segment.File
	opts  Options
	log   *slog.Logger

	mu     sync.Mutex // guards idx and closed, and orders renames and removals under root
	idx    lru
	closed bool
}

var _ store = (*Cache)(nil)

// store is the shape transport.Store and sched.Store expect; this package may
// not import them, so it checks against its own copy.
type store interface {
	Get(path string) ([]byte, bool)
	Put(path string, data []byte) error
	Paths() []string
}

// Open opens (creating if needed) the cache of m's content under dir.
// Before returning it checks every file already there against m, size first
// and then SHA-256, and deletes files that fail, files m does not list,
// leftover temp files of interrupted writes and anything that is not a
// regular file, logging each. It then evicts least recently used files (by
// modification time) until the cache fits MaxBytes.
func Open(dir string, m *segment.Manifest, opts Options) (*Cache, error) {
	opts, err := opts.withDefaults(DefaultMaxBytes)
	if err != nil {
		return nil, err
	}
	files, err := index(m)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, m.ContentID)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("cache: create folder: %w", err)
	}
	c := &Cache{root: root, files: files, opts: opts, log: opts.Logger.With("content", m.ContentID)}
	c.idx.init()
	if err := c.scan(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.evictLocked()
	n, size := c.idx.len(), c.idx.size
	c.mu.Unlock()
	c.log.Info("cache opened", "dir", root, "files", n, "bytes", size, "max_bytes", opts.MaxBytes)
	return c, nil
}

type found struct {
	path  string
	size  int64
	mtime time.Time
}

// scan walks root, drops what must go and indexes the rest by mtime.
func (c *Cache) scan() error {
	var keep []found
	var dirs []string
	err := filepath.WalkDir(c.root, func(full string, d fs.DirEntry, err error) error {
		if err != nil {
			if full == c.root {
				return err
			}
			c.log.Warn("cache: cannot read, skipping", "path", full, "err", err)
			return nil
		}
		if full == c.root {
			return nil
		}
		rel, err := filepath.Rel(c.root, full)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			dirs = append(dirs, full)
			return nil
		}
		if reason := c.vet(rel, full, d, &keep); reason != "" {
			c.drop(rel, full, reason)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: scan %s: %w", c.root, err)
	}
	// Remove folders left empty, deepest first; non-empty ones stay (Remove fails).
	slices.Reverse(dirs)
	for _, d := range dirs {
		_ = os.Remove(d)
	}
	// Newest first, each appended as the oldest so far: the list ends up in
	// recency order.
	slices.SortStableFunc(keep, func(a, b found) int { return b.mtime.Compare(a.mtime) })
	for _, f := range keep {
		c.idx.addOldest(&entry{path: f.path, size: f.size})
	}
	return nil
}

// vet returns why the file at rel must be dropped, or "" after adding it to keep.
func (c *Cache) vet(rel, full string, d fs.DirEntry, keep *[]found) string {
	if !d.Type().IsRegular() {
		return "not a regular file"
	}
	if strings.HasPrefix(d.Name(), ".") {
		return "leftover temp file"
	}
	f, ok := c.files[rel]
	if !ok {
		return "not in the manifest"
	}
	info, err := d.Info()
	if err != nil {
		return "cannot stat: " + err.Error()
	}
	if info.Size() != f.Size {
		return fmt.Sprintf("size %d, manifest says %d", info.Size(), f.Size)
	}
	if err := hashFile(full, f); err != nil {
		return err.Error()
	}
	*keep = append(*keep, found{path: rel, size: f.Size, mtime: info.ModTime()})
	return ""
}

func (c *Cache) drop(rel, full, reason string) {
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("cache: cannot drop file", "path", rel, "reason", reason, "err", err)
		return
	}
	c.log.Warn("cache: dropped file", "path", rel, "reason", reason)
}

// hashFile streams the file through SHA-256 rather than reading it whole,
// so Open's memory stays flat however big the cache is.
func hashFile(full string, f segment.File) error {
	want, err := hex.DecodeString(f.SHA256)
	if err != nil {
		return fmt.Errorf("bad hash in the manifest")
	}
	fh, err := os.Open(full)
	if err != nil {
		return fmt.Errorf("cannot open: %v", err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(fh, f.Size+1))
	if err != nil {
		return fmt.Errorf("cannot read: %v", err)
	}
	if n != f.Size || subtle.ConstantTimeCompare(h.Sum(nil), want) != 1 {
		return fmt.Errorf("SHA-256 differs from the manifest")
	}
	return nil
}

func (c *Cache) full(path string) string { return filepath.Join(c.root, filepath.FromSlash(path)) }

// Get returns the cached bytes of path and marks it recently used. The bytes
// are hashed against the manifest on every read, so a file damaged on disk
// after Open is dropped and reported as a miss instead of being handed to a
// peer or the decryptor. The caller owns the returned slice.
func (c *Cache) Get(path string) ([]byte, bool) {
	c.mu.Lock()
	e, ok := c.idx.get(path)
	if c.closed || !ok {
		c.mu.Unlock()
		return nil, false
	}
	gen := e.gen
	c.idx.touch(path)
	c.mu.Unlock()

	full := c.full(path)
	data, err := os.ReadFile(full)
	if err == nil {
		err = c.files[path].Check(data)
	}
	if err != nil {
		c.mu.Lock()
		// Only forget the entry we read: a concurrent Put may have replaced it.
		if e, ok := c.idx.get(path); ok && e.gen == gen {
			c.idx.remove(path)
			if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("cache: cannot remove unreadable file", "path", path, "err", err)
			}
			c.log.Warn("cache: dropped file on read", "path", path, "err", err)
		}
		c.mu.Unlock()
		return nil, false
	}
	// Persist recency for the next Open; failure only costs LRU accuracy.
	now := c.opts.Now()
	_ = os.Chtimes(full, now, now)
	return data, true
}

// Put verifies data against the manifest entry for path and stores it. It
// returns an error wrapping segment.ErrUnknownFile for a path the manifest
// does not list, segment.ErrIntegrity for bytes that do not match it,
// ErrTooLarge for a file bigger than MaxBytes, and ErrClosed after Close.
// The write is atomic: a temp file in the target's folder is written,
// fsynced and renamed over the target, so a crash leaves either the old
// state or the whole file, plus at worst a temp file that Open deletes.
// Putting a path already cached only marks it used. Least recently used
// files are then evicted until the cache fits MaxBytes.
func (c *Cache) Put(path string, data []byte) error {
	f, err := admit(c.files, c.opts.MaxBytes, path, data)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if _, ok := c.idx.get(path); ok {
		c.idx.touch(path)
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()

	full := c.full(path)
	tmp, err := writeTemp(full, data)
	if err != nil {
		return fmt.Errorf("cache: write %q: %w", path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.idx.m[path] != nil {
		_ = os.Remove(tmp)
		if c.closed {
			return ErrClosed
		}
		c.idx.touch(path) // a concurrent Put of the same bytes won
		return nil
	}
	// Rename under the lock, so eviction (also under it) never races a
	// rename of the same path and the index always matches the folder.
	if err := os.Rename(tmp, full); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("cache: store %q: %w", path, err)
	}
	now := c.opts.Now()
	_ = os.Chtimes(full, now, now)
	c.idx.add(&entry{path: path, size: f.Size})
	c.evictLocked()
	return nil
}

// writeTemp writes data to a new temp file beside full and fsyncs it. The
// name starts with '.', which no manifest path element may, so a temp file
// can never be mistaken for a cached one.
func writeTemp(full string, data []byte) (string, error) {
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	fh, err := os.CreateTemp(dir, "."+filepath.Base(full)+".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = fh.Write(data)
	if err == nil {
		// The data must be on disk before the rename is: otherwise a crash
		// could leave the final name pointing at a short or empty file.
		// (Open would catch that too, by hash.)
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(fh.Name())
		return "", err
	}
	return fh.Name(), nil
}

// evictLocked removes least recently used files until the cache fits.
func (c *Cache) evictLocked() {
	for c.idx.size > c.opts.MaxBytes {
		e, ok := c.idx.oldest()
		if !ok {
			return
		}
		c.idx.remove(e.path)
		if err := os.Remove(c.full(e.path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cache: cannot evict file", "path", e.path, "err", err)
		}
		c.log.Debug("cache: evicted", "path", e.path, "bytes", e.size)
	}
}

// Has reports whether path is cached, without reading it or touching its recency.
// GetVerified reports that Get returns verified bytes only: it re-hashes
// every file it reads back from disk (transport.VerifyingStore).
func (c *Cache) GetVerified() bool { return true }

func (c *Cache) Has(path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.idx.get(path)
	return ok && !c.closed
}

// Paths lists the cached paths, least recently used first.
func (c *Cache) Paths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return c.idx.paths()
}

// Size returns the bytes cached.
func (c *Cache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idx.size
}

// Dir returns the folder holding this content's files (dir/<content-id>).
func (c *Cache) Dir() string { return c.root }

// Close makes every later call miss or fail with ErrClosed; files stay on
// disk for the next Open. It waits for no one: a Put already past its
// checks finishes or removes its temp file. Close is idempotent.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}
