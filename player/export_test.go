package player

import "time"

// RetryWait exposes RetryPolicy's backoff to the _test package.
func RetryWait(p RetryPolicy, attempt int, retryAfter time.Duration) (time.Duration, error) {
	if err := p.setDefaults(); err != nil {
		return 0, err
	}
	return p.wait(attempt, retryAfter), nil
}

// LicenseError exposes the sorting of license client failures.
var LicenseError = licenseError
