package transport

import (
	"bytes"
	"sort"
	"sync"
)

// Store holds a content's ciphertext files by manifest path. transport/cache
// implements it on disk; MemStore keeps files in memory.
//
// Contract: Put is only called with bytes the caller has verified against the
// manifest, and Get returns bytes that were verified (a Store that reads them
// back from disk should re-check or say so, see SwarmOptions.TrustStore).
// Implementations must be safe for concurrent use. Put must copy data if it
// keeps it in memory (Fetch hands the same slice to its caller, which may
// decrypt it in place). A slice returned by Get must not be modified by
// anyone: the segment protocol writes it to the network without copying.
type Store interface {
	Get(path string) ([]byte, bool)
	Put(path string, data []byte) error
	Paths() []string
}

// VerifyingStore is a Store whose Get only ever returns bytes that match
// the manifest: one that re-hashes what it reads back from disk, or one that
// keeps verified copies in memory where nothing can rot them. The segment
// protocol then sends Get's bytes without hashing them again.
type VerifyingStore interface {
	Store
	// GetVerified reports whether Get's bytes are guaranteed verified.
	GetVerified() bool
}

// GetVerified: a MemStore holds copies of verified bytes only.
func (m *MemStore) GetVerified() bool { return true }

// MemStore is an in-memory Store, for tests and seed nodes that hold a whole
// content in RAM. The zero value is ready to use.
type MemStore struct {
	mu    sync.RWMutex
	files map[string][]byte
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

// Get returns the bytes held for path.
func (m *MemStore) Get(path string) ([]byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b, ok := m.files[path]
	return b, ok
}

// Put stores a copy of data under path.
func (m *MemStore) Put(path string, data []byte) error {
	c := bytes.Clone(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = make(map[string][]byte)
	}
	m.files[path] = c
	return nil
}

// Paths returns the held paths, sorted.
func (m *MemStore) Paths() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.files))
	for p := range m.files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
