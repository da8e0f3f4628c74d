package transport_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// transport must never see key material: it imports neither keys nor
// license, directly or through anything else (DESIGN.md, import rules).
func TestImportGraph(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/sealmesh/sealmesh/transport").CombinedOutput()
	require.NoError(t, err, string(out))
	for _, dep := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(dep, "github.com/sealmesh/sealmesh/"); ok {
			require.Contains(t, []string{"segment", "transport"}, rest, "transport imports %s", dep)
		}
	}
}
