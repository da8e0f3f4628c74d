package license

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/segment"
)

// DirCatalog is a ContentCatalog over the packaged folders that
// `sealmesh pack` writes: for each directory given, every
// <dir>/<folder>/sealmesh.json. It is what `sealmesh license serve
// --content-dir` uses, so that license requests by playback position work.
//
// Each manifest's signature is checked against the trusted manifest keys
// (normally the key store's "manifest" signing key) before anything in it is
// used: the period start times decide which keys a position gets, so an
// unsigned or tampered manifest could steer a request to other periods.
// Manifests that fail are logged and skipped. A lookup of a content the
// catalog does not know re-scans the directories (at most once per
// rescanInterval), so content packed while the server runs is found.
type DirCatalog struct {
	dirs    []string
	trusted segment.TrustedKeys
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	byID     map[string]*segment.Manifest
	lastScan time.Time
}

var _ ContentCatalog = (*DirCatalog)(nil)

const rescanInterval = 5 * time.Second

// NewDirCatalog scans dirs (each must be a readable directory) and returns
// the catalog. trusted must hold at least one key. logger nil means
// slog.Default().
func NewDirCatalog(dirs []string, trusted segment.TrustedKeys, logger *slog.Logger) (*DirCatalog, error) {
	if len(trusted) == 0 {
		return nil, errors.New("license: content catalog: no trusted manifest keys")
	}
	if logger == nil {
		logger = slog.Default()
	}
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("license: content directory: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("license: content directory %s is not a directory", d)
		}
	}
	c := &DirCatalog{dirs: append([]string(nil), dirs...), trusted: trusted, log: logger, now: time.Now}
	c.mu.Lock()
	c.scanLocked()
	c.mu.Unlock()
	return c, nil
}

// Contents returns the content IDs the catalog knows.
func (c *DirCatalog) Contents() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.byID))
	for id := range c.byID {
		out = append(out, id)
	}
	return out
}

// Periods implements ContentCatalog.
func (c *DirCatalog) Periods(_ context.Context, contentID string) ([]segment.Period, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.byID[contentID]
	if !ok && c.now().Sub(c.lastScan) >= rescanInterval {
		c.scanLocked()
		m, ok = c.byID[contentID]
	}
	if !ok {
		return nil, fmt.Errorf("catalog: content %q: %w", contentID, keys.ErrNotFound)
	}
	return m.Periods, nil
}

func (c *DirCatalog) scanLocked() {
	c.lastScan = c.now()
	byID := make(map[string]*segment.Manifest)
	where := make(map[string]string)
	for _, d := range c.dirs {
		paths, err := filepath.Glob(filepath.Join(d, "*", segment.ManifestFile))
		if err != nil {
			continue // only ErrBadPattern, and the pattern is ours
		}
		for _, p := range paths {
			m, err := readManifest(p, c.trusted)
			if err != nil {
				c.log.Warn("license: content catalog: skipping manifest", "path", p, "err", err)
				continue
			}
			if prev, dup := where[m.ContentID]; dup {
				c.log.Warn("license: content catalog: content packaged twice; keeping the first", "content", m.ContentID, "kept", prev, "skipped", p)
				continue
			}
			byID[m.ContentID], where[m.ContentID] = m, p
		}
	}
	c.byID = byID
}

func readManifest(path string, trusted segment.TrustedKeys) (*segment.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, segment.MaxManifestSize+1))
	if err != nil {
		return nil, err
	}
	return segment.ParseManifest(data, trusted)
}
