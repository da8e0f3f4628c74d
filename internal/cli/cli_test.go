package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReorder(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("origin", "", "")
	fs.Bool("no-p2p", false, "")
	fs.Int("n", 0, "")
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"positional first", "film --origin u --no-p2p", "--origin u --no-p2p -- film"},
		{"positional last", "--origin u film", "--origin u -- film"},
		{"positional between", "--origin u film -n 3", "--origin u -n 3 -- film"},
		{"value looks positional", "--origin film", "--origin film"},
		{"equals form", "--origin=u film", "--origin=u -- film"},
		{"bool takes no value", "--no-p2p film", "--no-p2p -- film"},
		{"double dash keeps the rest", "--origin u -- -n film", "--origin u -- -n film"},
		{"unknown flag left for Parse", "--bogus film", "--bogus -- film"},
		{"no positional", "--origin u -n 2", "--origin u -n 2"},
		{"lone dash is positional", "- --origin u", "--origin u -- -"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, strings.Fields(tc.want), Reorder(fs, strings.Fields(tc.in)))
		})
	}
}

func TestLogFlags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		debug  bool // a debug line appears
		warn   bool // a warn line appears
		asJSON bool
		err    string
	}{
		{"default", nil, false, true, false, ""},
		{"debug", []string{"--log-level", "debug"}, true, true, false, ""},
		{"verbose is debug", []string{"--verbose"}, true, true, false, ""},
		{"error hides warn", []string{"--log-level", "error"}, false, false, false, ""},
		{"off", []string{"--log-level", "off"}, false, false, false, ""},
		{"json", []string{"--log-format", "json"}, false, true, true, ""},
		{"bad level", []string{"--log-level", "loud"}, false, false, false, "--log-level"},
		{"bad format", []string{"--log-format", "xml"}, false, false, false, "--log-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			lf := AddLogFlags(fs, "warn")
			require.NoError(t, fs.Parse(tc.args))
			var buf bytes.Buffer
			l, err := lf.Logger(&buf)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			l.Debug("d-line")
			l.Warn("w-line", "k", 1)
			require.Equal(t, tc.debug, strings.Contains(buf.String(), "d-line"), buf.String())
			require.Equal(t, tc.warn, strings.Contains(buf.String(), "w-line"), buf.String())
			if tc.asJSON {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &m))
				require.Equal(t, "WARN", m["level"])
			}
		})
	}
}

func TestBuildInfoString(t *testing.T) {
	b := BuildInfo{Module: "github.com/sealmesh/sealmesh", Version: "v1.2.3", Revision: "abc", Modified: true, Time: "2026-12-06T00:00:00Z", Go: "go1.26.8", Platform: "linux/amd64"}
	require.Equal(t, "github.com/sealmesh/sealmesh v1.2.3 (revision abc, modified, 2026-12-06T00:00:00Z), go1.26.8 linux/amd64", b.String())
	b.Revision = ""
	require.Equal(t, "github.com/sealmesh/sealmesh v1.2.3, go1.26.8 linux/amd64", b.String())
	require.NotEmpty(t, Build().Go)
}
