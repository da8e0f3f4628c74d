package segment_test

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

// processUmask reads this process's umask without changing it (umask(2)
// can only be read by setting it, which races with parallel tests).
func processUmask(t *testing.T) fs.FileMode {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			require.NoError(t, err)
			return fs.FileMode(m)
		}
	}
	t.Skip("no Umask line in /proc/self/status (Linux before 4.7)")
	return 0
}

// nobody is the conventional unprivileged user and group ID.
const nobody = 65534

// TestPackReadableByOtherUser: an unprivileged user (as a web server or CDN
// pull agent runs) reads every file of a packed folder. It runs cat as
// nobody, so it needs root to switch user.
func TestPackReadableByOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a reader as another user (nobody)")
	}
	if processUmask(t)&0o005 != 0 {
		t.Skip("the umask hides files from other users; the test needs one that does not (e.g. 022)")
	}
	p := packClip(t, segment.SchemeCBCS, 0)
	// The test's own temporary folders are 0700: open the way down to the
	// output, as an operator's origin root would be.
	for d := filepath.Dir(p.dir); d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		require.NoError(t, err)
		if st.Mode().Perm()&0o001 == 0 {
			require.NoError(t, os.Chmod(d, st.Mode().Perm()|0o055))
		}
	}
	var files []string
	require.NoError(t, filepath.WalkDir(p.dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, path)
		}
		return err
	}))
	require.Greater(t, len(files), 10)
	for _, args := range [][]string{append([]string{"cat"}, files...), {"ls", "-R", p.dir}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s as nobody: %v: %s", args[0], err, lastBytes(out, 500))
		}
	}
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
