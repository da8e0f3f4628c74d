//go:build windows

package segment

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// stillActive is the exit code GetExitCodeProcess reports for a process that
// has not exited (STILL_ACTIVE).
const stillActive = 259

// processGone reports whether no running process has the given PID. Only a
// definite answer counts as gone (no such process, or one that has exited):
// access denied means it exists, and its partial folder is left alone.
func processGone(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return errors.Is(err, windows.ERROR_INVALID_PARAMETER)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return false
	}
	return code != stillActive
}

// otherDevice: mount points as Unix has them do not apply; an empty output
// folder is replaced by rename, or filled in place where that fails.
func otherDevice(a, b os.FileInfo) bool { return false }
