package swarmbench

import (
	"os"
	"syscall"
)

// peakRSSKiB is the kernel's peak resident set of an exited process, in KiB
// (Linux reports ru_maxrss in KiB).
func peakRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}
