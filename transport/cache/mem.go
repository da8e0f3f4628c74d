package cache

import (
	"sync"

	"github.com/sealmesh/sealmesh/segment"
)

// Mem is the in-memory variant of Cache for devices that must write nothing
// to disk (consume-only players): the same API, the same verification on Put
// and the same LRU eviction, with nothing persisted. It is safe for
// concurrent use.
type Mem struct {
	files map[string]segment.File
	max   int64

	mu     sync.Mutex
	idx    lru
	closed bool
}

var _ store = (*Mem)(nil)

// NewMem returns an empty in-memory cache for m's files. Options.MaxBytes
// defaults to DefaultMemMaxBytes; Logger and Now are unused.
func NewMem(m *segment.Manifest, opts Options) (*Mem, error) {
	opts, err := opts.withDefaults(DefaultMemMaxBytes)
	if err != nil {
		return nil, err
	}
	files, err := index(m)
	if err != nil {
		return nil, err
	}
	c := &Mem{files: files, max: opts.MaxBytes}
	c.idx.init()
	return c, nil
}

// Get returns a copy of path's bytes and marks it recently used. It copies
// so that a caller decrypting in place can never turn cached ciphertext,
// which is relayed to peers, into plaintext.
func (c *Mem) Get(path string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.idx.get(path)
	if !ok || c.closed {
		return nil, false
	}
	c.idx.touch(path)
	return append([]byte(nil), e.data...), true
}

// GetVerified reports that Get returns verified bytes only: Mem keeps
// copies of verified bytes in memory (transport.VerifyingStore).
func (c *Mem) GetVerified() bool { return true }

// Put verifies and stores a copy of data, with the same errors as Cache.Put.
func (c *Mem) Put(path string, data []byte) error {
	f, err := admit(c.files, c.max, path, data)
	if err != nil {
		return err
	}
	cp := append([]byte(nil), data...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if _, ok := c.idx.get(path); ok {
		c.idx.touch(path)
		return nil
	}
	c.idx.add(&entry{path: path, size: f.Size, data: cp})
	for c.idx.size > c.max {
		e, _ := c.idx.oldest()
		c.idx.remove(e.path)
	}
	return nil
}

// Has reports whether path is held, without touching its recency.
func (c *Mem) Has(path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.idx.get(path)
	return ok && !c.closed
}

// Paths lists the held paths, least recently used first.
func (c *Mem) Paths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return c.idx.paths()
}

// Size returns the bytes held.
func (c *Mem) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idx.size
}

// Close drops everything held; later calls miss or fail with ErrClosed. It is idempotent.
func (c *Mem) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.idx = lru{}
	c.idx.init()
	return nil
}
