package player

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/sealmesh/sealmesh/segment"
)

// historyFile is the history's file in Config.CacheDir. The leading dot
// keeps it apart from the cache's folders, which are named by content IDs
// (and a content ID never starts with a dot).
const historyFile = ".manifest-history.json"

// maxHistoryFile bounds what is read back: one line per content.
const maxHistoryFile = 4 << 20

// ManifestHistory remembers, per content, the highest manifest sequence
// number a player accepted, so that an older manifest, validly signed but
// replaced since (other files, other keys), is refused when served again by
// an origin, a cache or a man in the middle (issue 12, L4). It is safe for
// concurrent use; several sessions may share one.
type ManifestHistory struct {
	mu   sync.Mutex
	path string // "" for memory only
	seen map[string]uint64
}

// NewManifestHistory returns a history held in memory.
func NewManifestHistory() *ManifestHistory {
	return &ManifestHistory{seen: map[string]uint64{}}
}

// OpenManifestHistory returns a history kept in the file at path, which is
// created when first written (atomically: a temporary file renamed into
// place). A missing file is an empty history; an unreadable one is an error
// (starting empty would forget what protects against rollback).
func OpenManifestHistory(path string) (*ManifestHistory, error) {
	h := &ManifestHistory{path: path, seen: map[string]uint64{}}
	seen, err := readHistory(path)
	if err != nil {
		return nil, err
	}
	h.seen = seen
	return h, nil
}

func readHistory(path string) (map[string]uint64, error) {
	seen := map[string]uint64{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return seen, nil
	}
	if err != nil {
		return nil, fmt.Errorf("player: manifest history: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHistoryFile+1))
	if err != nil {
		return nil, fmt.Errorf("player: manifest history: %w", err)
	}
	if len(data) > maxHistoryFile || json.Unmarshal(data, &seen) != nil {
		return nil, fmt.Errorf("player: manifest history %s is damaged: delete it to start afresh (older manifests are then accepted once more)", path)
	}
	return seen, nil
}

// Check returns an error wrapping segment.ErrRollback when m is older (by
// sequence) than a manifest already accepted for its content.
func (h *ManifestHistory) Check(m *segment.Manifest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if seen := h.seen[m.ContentID]; m.Sequence < seen {
		return fmt.Errorf("%w: content %q: sequence %d is lower than %d, accepted before", segment.ErrRollback, m.ContentID, m.Sequence, seen)
	}
	return nil
}

// Accept records m's sequence as seen (a lower one is kept if it is
// higher), writing the file first when the history has one.
func (h *ManifestHistory) Accept(m *segment.Manifest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.Sequence <= h.seen[m.ContentID] {
		return nil
	}
	if h.path == "" {
		h.seen[m.ContentID] = m.Sequence
		return nil
	}
	// Merge with the file: another process (a second peer on the same
	// cache folder) may have accepted newer manifests since.
	disk, err := readHistory(h.path)
	if err != nil {
		return err
	}
	next := make(map[string]uint64, len(h.seen)+1)
	for _, src := range []map[string]uint64{h.seen, disk} {
		for id, seq := range src {
			next[id] = max(next[id], seq)
		}
	}
	next[m.ContentID] = max(next[m.ContentID], m.Sequence)
	if err := writeHistory(h.path, next); err != nil {
		return err
	}
	h.seen = next
	return nil
}

func writeHistory(path string, seen map[string]uint64) error {
	data, err := json.MarshalIndent(seen, "", " ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("player: manifest history: %w", err)
	}
	tmp, err := os.CreateTemp(dir, historyFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("player: manifest history: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing to remove
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("player: manifest history: %w", err)
	}
	return nil
}
