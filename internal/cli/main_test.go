package cli_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/cli"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"success", nil, 0, ""},
		{"help", fmt.Errorf("pack: %w", flag.ErrHelp), 0, ""},
		{"usage", cli.UsageError("no command given"), 2, "tool: no command given\n"},
		{"wrapped usage", fmt.Errorf("pack: %w", cli.UsageError("--out is required")), 2, "tool: pack: --out is required\n"},
		{"other", errors.Join(errors.New("first"), errors.New("second")), 1, "tool: first; second\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			require.Equal(t, tc.code, cli.ExitCode("tool", tc.err, &stderr))
			require.Equal(t, tc.out, stderr.String())
		})
	}
}
