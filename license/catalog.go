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
// Manifests that fail are logged and skipped.
//
// Licenses name the digest of the content's current manifest (L4: a player
// refuses any other, so an older signed manifest cannot be replayed to it),
// so the catalog must follow re-packs: a lookup re-scans the directories when
// the last scan is older than rescanInterval, re-reading only the manifests
// whose file changed (another inode, size or modification time: `pack
// --force` renames a new folder into place). Content packed while the server
// runs is found the same way. For rescanInterval after a re-pack, licenses
// may still name the replaced manifest, and players that already fetched the
// new one are refused until they retry.
type DirCatalog struct {
	dirs    []string
	trusted segment.TrustedKeys
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	byID     map[string]*segment.Manifest
	files    map[string]catalogFile // by manifest path
	lastScan time.Time
}

// catalogFile is a manifest file as last read, to skip unchanged ones.
type catalogFile struct {
	fi os.FileInfo
	m  *segment.Manifest
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

// manifest returns the content's current manifest, re-scanning first when
// the last scan is older than rescanInterval.
func (c *DirCatalog) manifest(contentID string) (*segment.Manifest, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now().Sub(c.lastScan) >= rescanInterval {
		c.scanLocked()
	}
	m, ok := c.byID[contentID]
	if !ok {
		return nil, fmt.Errorf("catalog: content %q: %w", contentID, keys.ErrNotFound)
	}
	return m, nil
}

// Periods implements ContentCatalog.
func (c *DirCatalog) Periods(_ context.Context, contentID string) ([]segment.Period, error) {
	m, err := c.manifest(contentID)
	if err != nil {
		return nil, err
	}
	return m.Periods, nil
}

// ManifestDigest implements ContentCatalog.
func (c *DirCatalog) ManifestDigest(_ context.Context, contentID string) (string, error) {
	m, err := c.manifest(contentID)
	if err != nil {
		return "", err
	}
	return m.Digest(), nil
}

func (c *DirCatalog) scanLocked() {
	c.lastScan = c.now()
	byID := make(map[string]*segment.Manifest)
	where := make(map[string]string)
	files := make(map[string]catalogFile)
	for _, d := range c.dirs {
		paths, err := filepath.Glob(filepath.Join(d, "*", segment.ManifestFile))
		if err != nil {
			continue // only ErrBadPattern, and the pattern is ours
		}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				continue // removed since the glob
			}
			m := c.files[p].m
			if prev := c.files[p].fi; prev == nil || !os.SameFile(prev, fi) || prev.Size() != fi.Size() || !prev.ModTime().Equal(fi.ModTime()) {
				if m, err = readManifest(p, c.trusted); err != nil {
					c.log.Warn("license: content catalog: skipping manifest", "path", p, "err", err)
					continue
				}
			}
			files[p] = catalogFile{fi: fi, m: m}
			// The same content in two folders: the newer manifest (by
			// sequence) is the current one; an equal one keeps the first.
			if prev, dup := where[m.ContentID]; dup {
				kept, skipped := prev, p
				if m.Sequence > byID[m.ContentID].Sequence {
					kept, skipped = p, prev
					byID[m.ContentID], where[m.ContentID] = m, p
				}
				c.log.Warn("license: content catalog: content packaged twice; keeping the newer manifest", "content", m.ContentID, "kept", kept, "skipped", skipped)
				continue
			}
			byID[m.ContentID], where[m.ContentID] = m, p
		}
	}
	c.byID, c.files = byID, files
}

// manifestDigest is the digest a license names: that of the content's
// current manifest in the catalog, or "" without a catalog or when the
// catalog does not know the content (a license then names none, and players
// rely on the manifest's sequence number alone against rollback). A catalog
// failure is logged, not fatal: the license is still correct without it.
func (s *Server) manifestDigest(ctx context.Context, content string) string {
	if s.deps.Catalog == nil {
		return ""
	}
	d, err := s.deps.Catalog.ManifestDigest(ctx, content)
	if err != nil && !errors.Is(err, keys.ErrNotFound) {
		s.cfg.Logger.Warn("license: content catalog: no manifest digest", "content", content, "err", err)
	}
	return d
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
