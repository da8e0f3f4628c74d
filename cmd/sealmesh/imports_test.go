package main_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// plottingModules are the benchmark's plotting stack: gonum/plot and the
// fonts, LaTeX, PDF and SVG back-ends it brings (about 4 MB). They belong
// in cmd/sealmesh-bench only. (gonum.org/v1/gonum/mathext is not among
// them: go-libp2p-kad-dht needs it.)
var plottingModules = []string{"gonum.org/v1/plot", "codeberg.org/go-fonts/", "codeberg.org/go-latex/", "codeberg.org/go-pdf/", "git.sr.ht/~sbinet/gg", "github.com/ajstarks/svgo"}

// TestNoPlottingInMainBinary: the binary that plays and seeds (on a set-top
// box) links no plotting code, neither by its import graph nor in the
// binary that was built (go version -m lists its modules).
func TestNoPlottingInMainBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go tool must be on PATH")
	out, err := exec.Command(goBin, "list", "-deps", "github.com/sealmesh/sealmesh/cmd/sealmesh").CombinedOutput()
	require.NoError(t, err, string(out))
	mods, err := exec.Command(goBin, "version", "-m", binary).CombinedOutput()
	require.NoError(t, err, string(mods))
	require.Contains(t, string(mods), "github.com/libp2p/go-libp2p", "go version -m lists the binary's modules")
	for _, m := range plottingModules {
		require.NotContains(t, string(out), m, "cmd/sealmesh imports %s (plotting belongs in cmd/sealmesh-bench)", m)
		require.NotContains(t, string(mods), m, "the sealmesh binary links %s", m)
	}
	// The benchmark command does link it: the check above looks at the right names.
	out, err = exec.Command(goBin, "list", "-deps", "github.com/sealmesh/sealmesh/cmd/sealmesh-bench").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "gonum.org/v1/plot")
	// Nothing imports cmd/ (DESIGN's import rules).
	for _, dep := range strings.Fields(string(out)) {
		require.False(t, strings.HasPrefix(dep, "github.com/sealmesh/sealmesh/cmd/") && dep != "github.com/sealmesh/sealmesh/cmd/sealmesh-bench", "imports %s", dep)
	}
}
