package player_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/player"
)

func TestRetryWait(t *testing.T) {
	fixed := func(f float64) func() float64 { return func() float64 { return f } }
	p := player.RetryPolicy{Min: time.Second, Max: 8 * time.Second}
	cases := []struct {
		name       string
		jitter     float64
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"first, no jitter", 0, 1, 0, 500 * time.Millisecond},
		{"first, full jitter", 0.999999, 1, 0, time.Second - time.Microsecond},
		{"doubles", 0, 3, 0, 2 * time.Second},
		{"capped at Max", 0.5, 10, 0, 6 * time.Second},
		{"huge attempt", 0, 1000, 0, 4 * time.Second},
		{"Retry-After wins when longer", 0, 1, 20 * time.Second, 20 * time.Second},
		{"backoff wins when longer", 0, 5, 2 * time.Second, 4 * time.Second},
		{"Retry-After capped", 0, 1, 24 * time.Hour, 5 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := p
			q.Jitter = fixed(c.jitter)
			got, err := player.RetryWait(q, c.attempt, c.retryAfter)
			require.NoError(t, err)
			require.InDelta(t, c.want, got, float64(time.Microsecond))
		})
	}
	_, err := player.RetryWait(player.RetryPolicy{Min: time.Second, Max: time.Millisecond}, 1, 0)
	require.ErrorIs(t, err, player.ErrConfig)
}

// TestLicenseErrorSorts: what is worth retrying (the path to the server,
// its faults, its "wait") against what is not (a refusal, an answer that
// does not verify), with the cause kept.
func TestLicenseErrorSorts(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"connection refused", fmt.Errorf("license: POST /v1/nonce: %w", refused), player.ErrLicenseUnavailable},
		{"timeout", context.DeadlineExceeded, player.ErrLicenseUnavailable},
		{"503", &license.APIError{Status: 503, Code: license.CodeUnavailable}, player.ErrLicenseUnavailable},
		{"500", &license.APIError{Status: 500, Code: license.CodeInternal}, player.ErrLicenseUnavailable},
		{"502 from a proxy", &license.APIError{Status: 502, Code: "http_502"}, player.ErrLicenseUnavailable},
		{"429", &license.APIError{Status: 429, Code: license.CodeRateLimited, RetryAfter: 3 * time.Second}, player.ErrLicenseUnavailable},
		{"stale nonce", &license.APIError{Status: 409, Code: license.CodeNonceReplayed}, player.ErrLicenseUnavailable},
		{"garbage instead of JSON", fmt.Errorf("%w: nonce response", license.ErrLicenseMalformed), player.ErrLicenseUnavailable},
		{"revoked", &license.APIError{Status: 403, Code: license.CodeAccountRevoked}, player.ErrNoLicense},
		{"token expired", &license.APIError{Status: 401, Code: license.CodeTokenExpired}, player.ErrNoLicense},
		{"not entitled", &license.APIError{Status: 403, Code: license.CodeNotEntitled}, player.ErrNoLicense},
		{"bad signature", license.ErrLicenseSignature, player.ErrNoLicense},
		{"replayed license", fmt.Errorf("%w: nonce not echoed", license.ErrLicenseMismatch), player.ErrNoLicense},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := player.LicenseError("renew", c.err)
			require.ErrorIs(t, got, c.want)
			other := player.ErrNoLicense
			if c.want == player.ErrNoLicense {
				other = player.ErrLicenseUnavailable
			}
			require.NotErrorIs(t, got, other)
			require.ErrorIs(t, got, c.err, "the cause is kept")
		})
	}
}
