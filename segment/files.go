package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// partialOwner names the file inside a temporary output folder that holds
// the packing process's PID, so a later run can tell an abandoned folder
// (its process was killed) from one still being written.
const partialOwner = ".owner-pid"

// removeStalePartials deletes temporary output folders for base left behind
// by a packer that died (kill -9, power loss) before it could clean up.
func removeStalePartials(parent, base string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	prefix := "." + base + ".partial-"
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, partialOwner))
		if err != nil {
			continue // no owner file: not ours to judge, or being renamed
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processGone(pid) {
			os.RemoveAll(dir)
		}
	}
}

func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// writeFile writes data to a new file. Files are written inside the
// temporary output folder, which is synced once (syncDir) and renamed into
// place as a whole, so a single file needs neither a rename nor a sync of its
// own.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// replaceDir moves the finished folder tmp to out. With force an existing out
// is first moved aside and removed only after the new folder is in place.
func replaceDir(tmp, out string, force bool) error {
	var old string
	if _, err := os.Stat(out); err == nil {
		if !force {
			return fmt.Errorf("%w: %s", ErrOutputExists, out)
		}
		old = tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("move old output aside: %w", err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		return fmt.Errorf("move output into place: %w", err)
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// syncEach fsyncs every file and folder under dir.
func syncEach(dir string) error {
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
