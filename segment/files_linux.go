//go:build linux

package segment

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncDir makes everything written under dir durable before the rename that
// publishes it: one syncfs(2) for the whole filesystem instead of an fsync
// per file, with a per-file fallback where syncfs is unavailable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = unix.Syncfs(int(d.Fd()))
	d.Close()
	if err == nil {
		return nil
	}
	return syncEach(dir)
}
