package player

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/sealmesh/sealmesh/license"
)

// RetryPolicy paces license renewals after a failure: exponential backoff
// with jitter, never sooner than the server's Retry-After. Its zero value
// is the default documented on each field.
type RetryPolicy struct {
	// Min is the wait after the first failure. Zero: 1 s.
	Min time.Duration
	// Max caps the backoff. Zero: 30 s.
	Max time.Duration
	// MaxRetryAfter caps how long a server's Retry-After is honoured, so that
	// a broken or hostile proxy cannot park renewals for hours. Zero: 5 min.
	MaxRetryAfter time.Duration
	// Jitter returns a number in [0, 1). Zero: math/rand/v2's Float64.
	Jitter func() float64
}

func (p *RetryPolicy) setDefaults() error {
	if p.Min == 0 {
		p.Min = time.Second
	}
	if p.Max == 0 {
		p.Max = 30 * time.Second
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = 5 * time.Minute
	}
	if p.Jitter == nil {
		p.Jitter = rand.Float64
	}
	if p.Min < 0 || p.Max < p.Min || p.MaxRetryAfter < 0 {
		return fmt.Errorf("%w: LicenseRetry: want 0 <= Min <= Max and MaxRetryAfter >= 0", ErrConfig)
	}
	return nil
}

// wait is the pause before retry number attempt (1 after the first
// failure). "Equal jitter": half the exponential step is fixed, half random,
// so that many players cut off by the same outage do not return to the
// license server in one burst, yet none retries much sooner than planned.
func (p RetryPolicy) wait(attempt int, retryAfter time.Duration) time.Duration {
	step := p.Max
	if attempt < 32 {
		if s := p.Min << (attempt - 1); s > 0 && s < p.Max {
			step = s
		}
	}
	d := step/2 + time.Duration(p.Jitter()*float64(step/2))
	return max(d, min(retryAfter, p.MaxRetryAfter))
}

// licenseError sorts a license client failure into ErrLicenseUnavailable
// (worth retrying: the server could not be reached, timed out, failed or
// asked us to wait) and ErrNoLicense (it refused, or its answer did not
// verify), keeping err in the chain for errors.Is and errors.As.
func licenseError(what string, err error) error {
	if temporary(err) {
		return fmt.Errorf("%w: %s: %w", ErrLicenseUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrNoLicense, what, err)
}

func temporary(err error) bool {
	var ae *license.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status >= 500, ae.Status == http.StatusTooManyRequests, ae.Status == http.StatusRequestTimeout:
			return true
		case ae.Code == license.CodeInvalidNonce, ae.Code == license.CodeNonceExpired, ae.Code == license.CodeNonceReplayed:
			// Our nonce went stale (a server restarted with new nonce
			// keys, or a slow round trip): the next try gets a fresh one.
			return true
		}
		return false // a refusal: the token, the account, the content
	}
	for _, e := range []error{license.ErrLicenseSignature, license.ErrLicenseMismatch, license.ErrLicenseExpired} {
		if errors.Is(err, e) {
			// A signed answer that does not fit: retrying will not fix a
			// wrong pinned key, a replay or a skewed clock.
			return false
		}
	}
	// Everything else is the path to the server: refused or reset
	// connections, DNS, timeouts, a proxy's garbage instead of JSON.
	return true
}

// retryAfter is the server's Retry-After carried by err, zero if none.
func retryAfter(err error) time.Duration {
	var ae *license.APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// sessionLapsed: the server no longer knows the session (it expired during
// an outage, or the server's state was reset), so a new one is needed.
func sessionLapsed(err error) bool {
	var ae *license.APIError
	return errors.As(err, &ae) && (ae.Code == license.CodeSessionExpired || ae.Code == license.CodeUnknownSession)
}

// positionUnsupported: the server has no period start times for the
// content, so it takes KIDs, not a position.
func positionUnsupported(err error) bool {
	var ae *license.APIError
	return errors.As(err, &ae) && ae.Code == license.CodePositionUnsupport
}
