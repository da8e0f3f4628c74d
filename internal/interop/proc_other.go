//go:build !unix

package interop

import (
	"os/exec"
	"time"
)

func configureProcessGroup(cmd *exec.Cmd) { cmd.WaitDelay = 10 * time.Second }
