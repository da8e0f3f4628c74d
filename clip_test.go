package sealmesh_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh"
)

// TestWriteClip: the embedded clip is the committed one, byte for byte,
// and writing it twice (a second demo in the same folder) replaces it.
func TestWriteClip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "clip")
	for range 2 {
		files, err := sealmesh.WriteClip(dir)
		require.NoError(t, err)
		require.Len(t, files, len(sealmesh.ClipFiles))
		for i, f := range files {
			require.Equal(t, filepath.Join(dir, sealmesh.ClipFiles[i]), f)
			got, err := os.ReadFile(f)
			require.NoError(t, err)
			want, err := os.ReadFile(filepath.Join("testdata", "clip", sealmesh.ClipFiles[i]))
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
		left, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, left, len(sealmesh.ClipFiles), "no temporary file left behind")
	}
}
