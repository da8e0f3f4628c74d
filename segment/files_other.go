//go:build !linux

package segment

// syncDir makes everything written under dir durable before the rename that
// publishes it: an fsync per file and folder (no syncfs(2) here).
func syncDir(dir string) error {
	return syncEach(dir)
}
