package segment

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Output modes. Folders are created 0755 and files 0644, both filtered by the
// process umask: an origin or CDN pull agent running as another user must be
// able to read what pack publishes (os.MkdirTemp would make the folder 0700).
const (
	dirMode  = 0o755
	fileMode = 0o644
)

// partialOwner names the file inside a temporary output folder that holds
// the packing process's PID, so a later run can tell an abandoned folder
// (its process was killed) from one still being written.
const partialOwner = ".owner-pid"

// inPlaceBase names the temporary folders made inside an output folder that
// is a mount point (see publishInPlace).
const inPlaceBase = "sealmesh"

// outputKind is what sits at the output path before a run.
type outputKind int

const (
	outNone     outputKind = iota // nothing: build beside, rename into place
	outEmpty                      // an empty folder: the same (rename replaces an empty folder)
	outMount                      // an empty folder on another filesystem than its parent: build inside it
	outSealmesh                   // sealmesh output signed by a trusted key: replaced only with Force
)

// checkOutput decides what may happen to out. It never changes anything
// except removing abandoned partial folders of an earlier run inside out.
//
// An existing folder is replaced only if it is empty or if its sealmesh.json
// verifies under trusted and force is set: a mistyped --out (an origin's
// root, a home folder) must never be deleted, so "holds a manifest we signed"
// is the proof that the folder is ours to replace.
func checkOutput(out string, force bool, trusted TrustedKeys) (outputKind, error) {
	st, err := os.Stat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return outNone, nil
	}
	if err != nil {
		return 0, fmt.Errorf("output %s: %w", out, err)
	}
	if !st.IsDir() {
		return 0, fmt.Errorf("%w: %s is a file, not a folder: choose another --out", ErrOutputExists, out)
	}
	removeStalePartials(out, inPlaceBase)
	all, err := os.ReadDir(out)
	if err != nil {
		return 0, fmt.Errorf("output %s: %w", out, err)
	}
	var entries []os.DirEntry
	for _, e := range all {
		// A run building inside this folder (a mount point) keeps its work
		// in hidden partial folders; they are not content.
		if !strings.HasPrefix(e.Name(), "."+inPlaceBase+".partial-") && !strings.HasPrefix(e.Name(), "."+inPlaceBase+"-old.partial-") {
			entries = append(entries, e)
		}
	}
	mount := false
	if pst, err := os.Stat(filepath.Dir(out)); err == nil {
		mount = otherDevice(st, pst)
	}
	if len(entries) == 0 {
		if mount {
			return outMount, nil
		}
		return outEmpty, nil
	}
	if err := ownOutput(out, trusted); err != nil {
		return 0, fmt.Errorf("%w: %s is not empty and %v; --force replaces only sealmesh output signed by this key store: choose another --out, or empty the folder yourself",
			ErrForeignOutput, out, err)
	}
	if !force {
		return 0, fmt.Errorf("%w: %s (pass --force to replace it)", ErrOutputExists, out)
	}
	if mount {
		return outMount, nil
	}
	return outSealmesh, nil
}

// ownOutput checks that dir holds a sealmesh.json signed by a trusted key.
func ownOutput(dir string, trusted TrustedKeys) error {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return fmt.Errorf("has no %s", ManifestFile)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return fmt.Errorf("its %s cannot be read", ManifestFile)
	}
	if _, err := ParseManifest(data, trusted); err != nil {
		return fmt.Errorf("its %s is not signed by this key store", ManifestFile)
	}
	return nil
}

// signerKeys trusts the packaging run's own signing key for --force: output
// this key store signed may be replaced by it.
func signerKeys(cfg *Config) TrustedKeys {
	pub, ok := cfg.Signer.Public().(ed25519.PublicKey)
	if !ok {
		return nil
	}
	return TrustedKeys{cfg.SigningKeyID: pub}
}

// mkdirPartial creates a fresh temporary folder named "."+base+".partial-…"
// in parent, with dirMode (os.MkdirTemp would make it 0700, and the rename
// that publishes it keeps the mode).
func mkdirPartial(parent, base string) (string, error) {
	for range 100 {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		dir := filepath.Join(parent, "."+base+".partial-"+hex.EncodeToString(b))
		err := os.Mkdir(dir, dirMode)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", errors.New("no free temporary folder name")
}

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

// writeFile writes data to a new file. Files are written inside the
// temporary output folder, which is synced once (syncDir) and renamed into
// place as a whole, so a single file needs neither a rename nor a sync of its
// own.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, bareErr(err))
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, bareErr(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, bareErr(err))
	}
	return nil
}

// bareErr drops an *fs.PathError's operation and path, which the caller's
// message already names ("write X: write X: file too large").
func bareErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// publish moves the finished folder tmp to out, as decided by checkOutput,
// which it first runs again: the folder may have changed while packing.
func publish(tmp, out string, kind outputKind, force bool, trusted TrustedKeys) error {
	now, err := checkOutput(out, force, trusted)
	if err != nil {
		return err
	}
	if (now == outMount) != (kind == outMount) {
		return fmt.Errorf("%w: %s changed while packing: run again", ErrOutputExists, out)
	}
	if kind == outMount {
		return publishInPlace(tmp, out)
	}
	return replaceDir(tmp, out)
}

// replaceDir moves the finished folder tmp to out. An existing out is first
// moved aside and removed only after the new folder is in place, so at every
// instant out is either the old output or the new one.
func replaceDir(tmp, out string) error {
	var old string
	if _, err := os.Lstat(out); err == nil {
		old = tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("move the old output aside: %w", err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		return fmt.Errorf("move the output into place: %w", err)
	}
	syncParent(out)
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// publishInPlace fills out, a folder that cannot be replaced by rename (a
// mount point), from tmp, a finished folder on the same filesystem. The old
// entries (an earlier sealmesh output, verified by checkOutput) leave first,
// signed manifest first, and the new arrive with the signed manifest last:
// the folder holds a verifiable sealmesh.json only while its files are
// complete. It is not one atomic step; the gap lasts as long as a few
// renames.
func publishInPlace(tmp, out string) error {
	old, err := mkdirPartial(out, inPlaceBase+"-old")
	if err != nil {
		return fmt.Errorf("prepare the output: %w", err)
	}
	if err := moveEntries(out, old, ManifestFile, true, tmp, old); err != nil {
		moveEntries(old, out, ManifestFile, false)
		os.Remove(old)
		return fmt.Errorf("move the old output aside: %w", err)
	}
	if err := moveEntries(tmp, out, ManifestFile, false, partialOwner); err != nil {
		moveEntries(out, tmp, ManifestFile, true, tmp, old)
		moveEntries(old, out, ManifestFile, false)
		os.Remove(old)
		return fmt.Errorf("move the output into place: %w", err)
	}
	if d, err := os.Open(out); err == nil {
		d.Sync()
		d.Close()
	}
	os.RemoveAll(tmp)
	return os.RemoveAll(old)
}

// moveEntries renames every entry of from into to, except the paths in skip
// (full paths). The entry named key moves first when keyFirst is set and
// last otherwise.
func moveEntries(from, to, key string, keyFirst bool, skip ...string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	var names []string
	hasKey := false
	for _, e := range entries {
		p := filepath.Join(from, e.Name())
		switch {
		case e.Name() == key:
			hasKey = true
		case !contains(skip, p) && !contains(skip, e.Name()):
			names = append(names, e.Name())
		}
	}
	if hasKey && keyFirst {
		names = append([]string{key}, names...)
	} else if hasKey {
		names = append(names, key)
	}
	for _, n := range names {
		if err := os.Rename(filepath.Join(from, n), filepath.Join(to, n)); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// syncParent makes a rename in out's parent folder durable (best effort:
// some platforms cannot sync a folder).
func syncParent(out string) {
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
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

// tidyError is an error whose message was rewritten for the operator while
// errors.Is and errors.As still reach the original.
type tidyError struct {
	msg string
	err error
}

func (e *tidyError) Error() string { return e.msg }
func (e *tidyError) Unwrap() error { return e.err }

// hideTemp replaces the temporary folder's path in err's message by the
// output path the operator gave: the temporary folder no longer exists when
// the message is read, and its random name only confuses.
func hideTemp(err error, tmp, out string) error {
	if err == nil || !strings.Contains(err.Error(), tmp) {
		return err
	}
	return &tidyError{msg: strings.ReplaceAll(err.Error(), tmp, out), err: err}
}
