//go:build !linux

package segment

import (
	"os"
	"path/filepath"
)

// syncDir makes everything written under dir durable before the rename that
// publishes it: an fsync per file and folder (no syncfs(2) here).
func syncDir(dir string) error {
	return filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
