package player_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/player"
	"github.com/sealmesh/sealmesh/segment"
)

// syncBuffer is a log sink the session's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type answer struct {
	code       int
	retryAfter string
	errCode    string
}

func fetch(t *testing.T, url string) answer {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error struct{ Code string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &eb), "error body is not JSON: %s", body)
		a.errCode = eb.Error.Code
	}
	return a
}

// TestLicenseServerOutage: the license server's listener is closed while a
// viewer plays (a crash or a network cut, as players see it). The session
// must say so (Stats, log), the gateway must answer a retryable 503 with
// Retry-After (not the 403 of a refusal), the stall must be counted, and
// playback must resume once the server is back on the same address.
func TestLicenseServerOutage(t *testing.T) {
	// One segment per crypto period: a license carries two periods, so the
	// third segment needs a renewal, which the outage makes fail.
	st := startStack(t, stack.Options{LicenseTTL: 3 * time.Second, RenewAfter: time.Second,
		SegmentDuration: 2 * time.Second, CryptoPeriod: 2 * time.Second})
	var logs syncBuffer
	cfg := config(st, "viewer")
	cfg.P2P.Disable = true
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	// Fast retries, so the test does not wait out a 30 s backoff.
	cfg.LicenseRetry = player.RetryPolicy{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	s, err := player.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer s.Close()
	base := strings.TrimSuffix(s.URL(), "master.m3u8")
	seg := func(i int) string { return base + "video/" + strconv.Itoa(i) + ".m4s" }
	require.Equal(t, http.StatusOK, fetch(t, base+"video/init-0.mp4").code)
	require.Equal(t, http.StatusOK, fetch(t, seg(1)).code)

	st.StopLicense()
	// Play on until a segment needs a key the license does not carry.
	next, last := 2, 0
	for _, f := range s.Manifest().Renditions[0].Files {
		if f.Kind == segment.KindMedia {
			last++
		}
	}
	var a answer
	for ; next <= last; next++ {
		if a = fetch(t, seg(next)); a.code != http.StatusOK {
			break
		}
	}
	require.LessOrEqual(t, next, last, "every segment was served with the license server down")
	require.Equal(t, http.StatusServiceUnavailable, a.code, "keys only temporarily unavailable: want a retryable 503")
	require.Equal(t, "license_unavailable", a.errCode)
	ra, err := strconv.Atoi(a.retryAfter)
	require.NoError(t, err, "503 without a Retry-After")
	require.Positive(t, ra)

	stats := s.Stats()
	require.ErrorIs(t, stats.LicenseErr, player.ErrLicenseUnavailable)
	var ue *url.Error // refused, or cut by the shutdown if a renewal was in flight
	require.ErrorAs(t, stats.LicenseErr, &ue, "the cause is kept in the chain")
	require.NotErrorIs(t, stats.LicenseErr, player.ErrNoLicense)
	require.Positive(t, stats.RenewFailures)
	require.Positive(t, stats.Unavailable)
	require.Zero(t, stats.Refused, "an outage is not a refusal")
	require.Contains(t, logs.String(), "license renewal failed")

	// The playhead reaches the end of what was served: a stall, reported
	// while it lasts. (The modelled clock is the wall clock: this waits
	// for at most the served content's length.)
	require.Eventually(t, func() bool { return s.Stats().Stalled }, 20*time.Second, 20*time.Millisecond)
	require.Positive(t, s.Stats().Stalls)
	require.Equal(t, http.StatusServiceUnavailable, fetch(t, seg(next)).code, "still down: still 503")

	require.NoError(t, st.StartLicense())
	require.Eventually(t, func() bool { return fetch(t, seg(next)).code == http.StatusOK }, 20*time.Second, 20*time.Millisecond,
		"playback did not resume once the license server was back")
	for i := next + 1; i <= last; i++ {
		require.Equal(t, http.StatusOK, fetch(t, seg(i)).code, "segment %d after the outage", i)
	}
	stats = s.Stats()
	require.NoError(t, stats.LicenseErr)
	require.False(t, stats.Stalled)
	require.GreaterOrEqual(t, stats.Stalls, 1, "the outage's stall is counted")
	require.Positive(t, stats.StallTime)
	require.Positive(t, stats.Renewals)
	require.Contains(t, logs.String(), "license renewed again")
}

// TestOpenNamesTheCause: Open tells an unreachable license server
// (ErrLicenseUnavailable) from a refusal (ErrNoLicense), and keeps the
// cause for errors.Is / errors.As.
func TestOpenNamesTheCause(t *testing.T) {
	st := startStack(t, stack.Options{})
	require.NoError(t, st.Revoke("revoked"))

	cfg := config(st, "revoked")
	cfg.P2P.Disable = true
	_, err := player.Open(context.Background(), cfg)
	require.ErrorIs(t, err, player.ErrNoLicense)
	require.NotErrorIs(t, err, player.ErrLicenseUnavailable)
	var ae *license.APIError
	require.True(t, errors.As(err, &ae), "the server's answer is kept: %v", err)
	require.Equal(t, license.CodeAccountRevoked, ae.Code)

	st.StopLicense()
	cfg = config(st, "viewer")
	cfg.P2P.Disable = true
	_, err = player.Open(context.Background(), cfg)
	require.ErrorIs(t, err, player.ErrLicenseUnavailable)
	require.NotErrorIs(t, err, player.ErrNoLicense)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)

	// Back on the same address: Open succeeds again.
	require.NoError(t, st.StartLicense())
	cfg = config(st, "viewer")
	cfg.P2P.Disable = true
	s, err := player.Open(context.Background(), cfg)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}
