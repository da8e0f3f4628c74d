//go:build !unix && !windows

package segment

import "os"

// processGone cannot tell on this platform, so an abandoned partial folder is
// never judged stale: leaving it is safe, deleting a live run's is not.
func processGone(int) bool { return false }

// otherDevice cannot tell on this platform.
func otherDevice(a, b os.FileInfo) bool { return false }
