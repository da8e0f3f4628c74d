package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBenchSwarmScenarios runs every scenario briefly (3 viewers, the
// bundled clip at 8x) and checks the report's shape; timings are not
// asserted, a loaded CI machine would make them flaky. The leech must get
// zero bytes: that one is a security property, not a timing. It runs in an
// empty working folder: no file of the repository is needed.
func TestBenchSwarmScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a swarm per scenario")
	}
	t.Chdir(t.TempDir())
	cache := t.TempDir()
	for _, sc := range []string{"vod", "live", "churn", "poison", "leech"} {
		t.Run(sc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dir := t.TempDir()
			csvPath := filepath.Join(dir, "out.csv")
			var stdout, stderr bytes.Buffer
			err := run(ctx, []string{"swarm", "--peers", "3", "--speed", "8", "--content", "12", "--cache", cache,
				"--scenario", sc, "--json", "--csv", csvPath, "--plots", filepath.Join(dir, "plots")}, &stdout, &stderr)
			require.NoError(t, err, "stderr: %s", stderr.String())

			var r map[string]any
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &r), "one JSON object: %s", stdout.String())
			// The demo's keys, then the benchmark's own.
			for _, k := range []string{"peers", "offload", "stalls", "stall_ms", "startup_p50_ms", "startup_p95_ms",
				"bytes_from_peers", "bytes_from_origin", "origin_egress_bytes", "bytes_uploaded", "content_seconds", "wall_seconds",
				"scenario", "mode", "join", "offload_ceiling", "viewers", "origin_egress", "rendition_switches"} {
				require.Contains(t, r, k)
			}
			require.Equal(t, sc, r["scenario"])
			require.EqualValues(t, 3, r["peers"])
			require.InDelta(t, 2.0/3, r["offload_ceiling"], 1e-9)
			viewers := r["viewers"].([]any)
			require.Len(t, viewers, 3)
			for _, v := range viewers {
				v := v.(map[string]any)
				require.Empty(t, v["error"])
				require.EqualValues(t, 0, v["rendition_switches"])
			}
			require.Greater(t, r["bytes_from_origin"].(float64)+r["bytes_from_peers"].(float64), 0.0)
			require.NotEmpty(t, r["origin_egress"])

			switch sc {
			case "churn":
				c := r["churn"].(map[string]any)
				require.EqualValues(t, 1, c["left"], "every third viewer leaves")
			case "poison":
				p := r["poison"].(map[string]any)
				require.NotEmpty(t, p["peer_id"])
			case "leech":
				ls := r["leech"].([]any)
				require.Len(t, ls, 2)
				for _, l := range ls {
					l := l.(map[string]any)
					require.EqualValues(t, 0, l["bytes"], "leech %v got bytes", l["kind"])
					require.Greater(t, l["requests"].(float64)+l["unreachable"].(float64), 0.0, "leech %v never tried", l["kind"])
				}
			}

			b, err := os.ReadFile(csvPath)
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			require.Len(t, lines, 4, "a header and one row per viewer")
			require.True(t, strings.HasPrefix(lines[0], "scenario,mode,peers,viewer,"))
			for _, f := range []string{"offload-vs-n.png", "startup-cdf.png", "origin-egress.png"} {
				st, err := os.Stat(filepath.Join(dir, "plots", f))
				require.NoError(t, err)
				require.Greater(t, st.Size(), int64(1000))
			}
		})
	}
}

func TestBenchSwarmUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no benchmark", nil},
		{"unknown benchmark", []string{"disk"}},
		{"bad scenario", []string{"swarm", "--scenario", "flood"}},
		{"bad peers", []string{"swarm", "--peers", "0"}},
		{"bad mode", []string{"swarm", "--mode", "threads"}},
		{"bad join", []string{"swarm", "--join", "burst"}},
		{"missing input", []string{"swarm", "--in", "nope.mp4"}},
		{"bad log level", []string{"swarm", "--log-level", "loud"}},
		{"stray argument", []string{"swarm", "extra"}},
		{"old spelling, bad peers", []string{"bench", "swarm", "--peers", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errb)
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, 2, ee.Code)
		})
	}
}

// TestBenchHelp: the manual goes to stdout and names only flags the
// command has (issue 13: it used to suggest --in, which did not exist).
func TestBenchHelp(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"swarm", "--help"}, &out, &errb)
	require.ErrorIs(t, err, flag.ErrHelp)
	require.Empty(t, errb.String())
	help := out.String()
	require.Contains(t, help, "Usage: sealmesh-bench swarm")
	for _, m := range regexp.MustCompile(`(?m)(?:^|\s)--([a-z][a-z0-9-]+)`).FindAllStringSubmatch(benchSynopsis, -1) {
		require.Regexp(t, `(?m)^  -`+m[1]+`( |$)`, help, "the manual mentions --%s, which swarm does not have", m[1])
	}
}
