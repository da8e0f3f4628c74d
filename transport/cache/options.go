package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/sealmesh/sealmesh/segment"
)

// Default size caps, used when Options.MaxBytes is zero.
const (
	DefaultMaxBytes    int64 = 512 << 20 // Cache: on disk
	DefaultMemMaxBytes int64 = 64 << 20  // Mem: in RAM, sized for a set-top box's buffer
)

// Errors that Put wraps besides segment.ErrUnknownFile and segment.ErrIntegrity.
var (
	// ErrTooLarge: the file alone is bigger than the cache's MaxBytes, so
	// storing it would evict everything and still not fit.
	ErrTooLarge = errors.New("file is larger than the cache")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("cache closed")
)

// Options tunes a Cache or a Mem. The zero value is usable.
type Options struct {
	// MaxBytes caps the bytes of file contents held. Zero means
	// DefaultMaxBytes for a Cache and DefaultMemMaxBytes for a Mem;
	// negative is an error.
	MaxBytes int64
	// Logger receives one line per file dropped at Open or found corrupt
	// later, and a summary at Open. Nil discards.
	Logger *slog.Logger
	// Now stamps files' modification times, which order the LRU list when a
	// Cache is reopened. Nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults(defMax int64) (Options, error) {
	if o.MaxBytes < 0 {
		return o, fmt.Errorf("cache: MaxBytes %d is negative", o.MaxBytes)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = defMax
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// index maps every manifest path to its entry, once, so lookups are O(1)
// (Manifest.Lookup scans). It re-checks that each path is a local relative
// path even though Manifest.Validate already did: these strings become file
// names under the cache folder, and a manifest built in code need not have
// been validated.
func index(m *segment.Manifest) (map[string]segment.File, error) {
	if m == nil {
		return nil, errors.New("cache: nil manifest")
	}
	if err := segment.ValidContentID(m.ContentID); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	files := m.Files()
	out := make(map[string]segment.File, len(files))
	for _, f := range files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) || filepath.ToSlash(filepath.Clean(filepath.FromSlash(f.Path))) != f.Path {
			return nil, fmt.Errorf("cache: manifest path %q is not a clean local path", f.Path)
		}
		if hasHiddenPart(f.Path) {
			// Temp files start with "."; a listed path must never collide with one.
			return nil, fmt.Errorf("cache: manifest path %q has an element starting with '.'", f.Path)
		}
		out[f.Path] = f
	}
	return out, nil
}

func hasHiddenPart(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] == '.' && (i == 0 || p[i-1] == '/') {
			return true
		}
	}
	return false
}

// lookup finds path in files or says why not.
func lookup(files map[string]segment.File, path string) (segment.File, error) {
	f, ok := files[path]
	if !ok {
		return segment.File{}, fmt.Errorf("cache: %w: %q", segment.ErrUnknownFile, path)
	}
	return f, nil
}

// admit runs the checks every Put makes before touching storage.
func admit(files map[string]segment.File, max int64, path string, data []byte) (segment.File, error) {
	f, err := lookup(files, path)
	if err != nil {
		return f, err
	}
	// Verify before storing: the cache must never hold bytes the signed
	// manifest does not vouch for, since whatever it holds is relayed to
	// peers and handed to the decryptor.
	if err := f.Check(data); err != nil {
		return f, fmt.Errorf("cache: refuse %q: %w", path, err)
	}
	if f.Size > max {
		return f, fmt.Errorf("cache: %w: %q is %d bytes, the cap is %d", ErrTooLarge, path, f.Size, max)
	}
	return f, nil
}
