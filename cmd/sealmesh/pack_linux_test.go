package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPackMountPoint: --out naming a mount point (an empty tmpfs, mounted
// in a private mount namespace) is filled in place, since a mount point
// cannot be renamed over; a second run with --force replaces the first in
// place; no temporary folder is left inside and nothing lands on the
// filesystem underneath.
func TestPackMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs in a private mount namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1) to make a private mount namespace")
	}
	dir := t.TempDir()
	ks := initStore(t, dir)
	mnt := filepath.Join(dir, "mnt")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	const script = `set -e
mount -t tmpfs -o size=64m sealmesh-test "$MNT"
"$BIN" pack --no-license-url --keystore "$KS" --in "$IN" --out "$MNT" --content film --quiet
echo stray > "$MNT/stray.txt"
"$BIN" pack --no-license-url --keystore "$KS" --in "$IN" --out "$MNT" --content film2 --force --quiet
echo "--- listing"
ls -A "$MNT"
echo "--- manifest"
cat "$MNT/sealmesh.json"
`
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "MNT="+mnt, "BIN="+binary, "KS="+ks, "IN="+clip(t, "180p.mp4"), "SEALMESH_KEYSTORE_PASSPHRASE="+testPass)
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil && strings.Contains(out, "unshare failed") || strings.Contains(out, "mount: ") && strings.Contains(out, "permission denied") {
		t.Skipf("this machine does not allow a private mount namespace: %s", out)
	}
	require.NoError(t, err, out)
	listing, manifest, ok := strings.Cut(out[strings.Index(out, "--- listing\n")+len("--- listing\n"):], "--- manifest\n")
	require.True(t, ok, out)
	names := strings.Fields(listing)
	sort.Strings(names)
	require.Equal(t, []string{"audio", "manifest.mpd", "master.m3u8", "sealmesh.json", "video-320x180"}, names,
		"the new output only: no stray file of the old one, no temporary folder")
	require.Contains(t, manifest, "film2")
	entries, err := os.ReadDir(mnt)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing was written underneath the mount")
}
