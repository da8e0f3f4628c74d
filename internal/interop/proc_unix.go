//go:build unix

package interop

import (
	"os/exec"
	"syscall"
	"time"
)

// configureProcessGroup runs cmd in its own process group and, when its context ends,
// kills the whole group, so a timed-out node never leaves Chromium behind.
func configureProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 10 * time.Second
}
