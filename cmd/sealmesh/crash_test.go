package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/keys"
)

// TestPackKill9 kills pack with SIGKILL while it writes segments: no output
// folder and no keys may remain, and the next run cleans up the abandoned
// temporary folder and succeeds.
func TestPackKill9(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	dir := t.TempDir()
	long := filepath.Join(dir, "long.mp4")
	gen := exec.Command(filepath.Join(repoRoot(t), "testdata", "make-long-clip.sh"), long, "20", "1280x720")
	gen.Env = append(os.Environ(), "FFMPEG="+ffmpeg)
	out, err := gen.CombinedOutput()
	require.NoError(t, err, "%s", out)
	ks := initStore(t, dir)
	parent := filepath.Join(dir, "packaged")
	require.NoError(t, os.Mkdir(parent, 0o755))
	target := filepath.Join(parent, "film")

	killed := false
	for attempt := 0; attempt < 5 && !killed; attempt++ {
		cmd := exec.Command(binary, "pack", "--no-license-url", "--keystore", ks, "--in", long, "--out", target, "--content", "film", "--quiet")
		cmd.Env = append(os.Environ(), keys.PassphraseEnv+"="+testPass)
		require.NoError(t, cmd.Start())
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if segmentsWritten(parent) > 0 {
				killed = cmd.Process.Signal(syscall.SIGKILL) == nil
				break
			}
			time.Sleep(500 * time.Microsecond)
		}
		state, _ := cmd.Process.Wait()
		if state != nil && state.Success() {
			// Finished before the kill landed: start over on a clean slate.
			killed = false
			require.NoError(t, os.RemoveAll(target))
			ks = initStoreAt(t, dir, "ks-"+string(rune('a'+attempt))+".db")
			continue
		}
		if state != nil {
			ws, _ := state.Sys().(syscall.WaitStatus)
			killed = killed && ws.Signaled()
		}
	}
	require.True(t, killed, "pack always finished before it could be killed")
	require.NoDirExists(t, target, "a killed pack left an output folder")
	r := sealmesh(t, dir, nil, "keys", "list", "--keystore", ks, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"content": null`, "a killed pack left keys registered")

	r = sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", long, "--out", target, "--content", "film", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the abandoned temporary folder was not cleaned up: %v", entries)
	require.Equal(t, "film", entries[0].Name())
}

func initStoreAt(t *testing.T, dir, name string) string {
	ks := filepath.Join(dir, name)
	r := sealmesh(t, dir, nil, "keys", "init", "--keystore", ks)
	require.Equal(t, 0, r.code, r.stderr)
	return ks
}

// segmentsWritten counts .m4s files in pack's temporary folders under parent.
func segmentsWritten(parent string) int {
	n := 0
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if !strings.Contains(e.Name(), ".partial-") {
			continue
		}
		filepath.WalkDir(filepath.Join(parent, e.Name()), func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".m4s") {
				n++
			}
			return nil
		})
	}
	return n
}
