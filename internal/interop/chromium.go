package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PlayResult is what a player page reported (see [ShakaPlayerPage]).
type PlayResult struct {
	CurrentTime   float64  `json:"currentTime"`   // <video>.currentTime when the page finished
	DecodedFrames int      `json:"decodedFrames"` // getVideoPlaybackQuality().totalVideoFrames
	Error         string   `json:"error"`         // "" when playback reached the target
	ErrorCode     int      `json:"errorCode"`     // player error code; see ShakaPlayerPage
	Logs          []string `json:"logs"`          // console messages, page errors, failed and >=400 requests

	HarnessError string `json:"harnessError,omitempty"` // Chromium could not be driven at all
}

// PlayInChromium opens pageURL in headless Chromium through
// node scripts/node/play.mjs (playwright-core, the system Chromium, a fresh profile) and
// returns what the page put in window.__result. If the page sets nothing within timeout,
// the result has Error set (code -3) with the <video> state at that moment. A failure
// to run Chromium or node at all fails the test.
//
// The page should be served from 127.0.0.1 or localhost: EME needs a secure context,
// and loopback HTTP is one. timeout should exceed the pages' own 25 s limit; 40 s suits.
func PlayInChromium(t testing.TB, pageURL string, timeout time.Duration) PlayResult {
	t.Helper()
	nodeDir := NodeDir(t)
	chromium := Chromium(t)
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "node", EnvNodeDir, "node not on PATH")
	}

	// The script's own timeout covers navigation and waiting; this one covers a hung
	// browser launch or shutdown on top of it.
	ctx, cancel := context.WithTimeout(t.Context(), timeout+90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(nodeDir, "play.mjs"), pageURL, strconv.FormatInt(timeout.Milliseconds(), 10))
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), EnvChromium+"="+chromium)
	configureProcessGroup(cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()

	var res PlayResult
	line := lastLine(stdout.String())
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("interop: node play.mjs %s: %v (exit: %v)\nstdout:\n%s\nstderr:\n%s",
			pageURL, err, runErr, tail(stdout.String(), 20), tail(stderr.String(), 40))
	}
	if res.HarnessError != "" {
		t.Fatalf("interop: Chromium: %s\nstderr:\n%s", res.HarnessError, tail(stderr.String(), 40))
	}
	if runErr != nil {
		t.Fatalf("interop: node play.mjs %s: %v\nstderr:\n%s", pageURL, runErr, tail(stderr.String(), 40))
	}
	t.Logf("interop: %s played to %.2fs, %d frames, error %q (code %d) in %v",
		pageURL, res.CurrentTime, res.DecodedFrames, res.Error, res.ErrorCode, time.Since(start).Round(time.Millisecond))
	return res
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
