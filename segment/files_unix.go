//go:build unix

package segment

import (
	"errors"
	"os"
	"syscall"
)

// processGone reports whether no process has the given PID. Signal 0 checks
// existence without delivering anything; EPERM means it exists under another
// user, so only ESRCH counts as gone.
func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// otherDevice reports whether a and b live on different filesystems (a
// folder on another device than its parent is a mount point).
func otherDevice(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev != sb.Dev
}
