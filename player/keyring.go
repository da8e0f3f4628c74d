package player

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/segment"
)

// keyring holds the current license's content keys, in memory only, and
// renews the license before it lapses. A key is handed out only while the
// license that carried it is valid: once it expires without renewal, no
// newly requested segment is decrypted.
//
// Renewal failures are retried with jittered exponential backoff (never
// sooner than the server's Retry-After) by the renewal loop; the gateway
// asks too when a segment needs a key the license lacks, but not while a
// backoff runs, so a player hammering the gateway during an outage does not
// hammer the license server. The last failure is kept: it says whether keys
// are only temporarily unavailable (ErrLicenseUnavailable: the gateway
// answers 503) or were refused (ErrNoLicense: 403).
type keyring struct {
	client  *license.Client
	content string
	now     func() time.Time
	retry   RetryPolicy
	log     *slog.Logger
	periods []segment.Period // the manifest's crypto periods, by start

	// sem admits one renewal at a time (the loop's or the gateway's); a
	// channel so that a waiting gateway request can give up with its ctx.
	sem chan struct{}

	mu      sync.Mutex
	lic     *license.License
	keys    map[[16]byte][]byte
	expiry  time.Time
	renewed int
	fails   int
	attempt int       // consecutive failures
	lastErr error     // the last failure while it lasts; nil after a success
	next    time.Time // after a failure: no attempt before this
	since   time.Time // when the current run of failures began
	byKIDs  bool      // the server renews by KIDs only (no period catalog)
	lastPos float64   // position of the last license granted (0 for the first)
}

func newKeyring(ctx context.Context, c *license.Client, m *segment.Manifest, now func() time.Time, retry RetryPolicy, log *slog.Logger) (*keyring, error) {
	k := &keyring{client: c, content: m.ContentID, now: now, retry: retry, log: log, periods: m.Periods, sem: make(chan struct{}, 1)}
	content := m.ContentID
	zero := 0.0
	lic, err := c.License(ctx, license.KeyRequest{Content: content, Position: &zero})
	if err != nil {
		return nil, licenseError("license", err)
	}
	k.install(lic)
	return k, nil
}

func (k *keyring) install(lic *license.License) {
	keys := make(map[[16]byte][]byte)
	for _, ck := range lic.Keys() {
		keys[[16]byte(ck.KID())] = ck.InsecureRawKey()
	}
	k.mu.Lock()
	// Overwrite the old keys' bytes: a lapsed license's keys should not
	// linger in memory longer than needed.
	for _, b := range k.keys {
		clear(b)
	}
	k.lic, k.keys, k.expiry = lic, keys, lic.Expiry
	k.mu.Unlock()
}

// key returns the key for kid if a valid license carries it. Its error
// wraps the last renewal failure if there is one (ErrLicenseUnavailable or
// ErrNoLicense), else ErrNoLicense.
func (k *keyring) key(kid [16]byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cause := k.lastErr
	if cause == nil {
		cause = ErrNoLicense
	}
	if !k.now().Before(k.expiry) {
		return nil, fmt.Errorf("the license expired at %s and was not renewed: %w", k.expiry.Format(time.RFC3339), cause)
	}
	b, ok := k.keys[kid]
	if !ok {
		return nil, fmt.Errorf("the license carries no key for KID %x: %w", kid, cause)
	}
	return b, nil
}

// ensure returns kid's key, renewing the license for position first if it
// lacks it, unless a backoff after a failure is running: then the error
// wraps that failure, and retryIn says when the next attempt is due.
func (k *keyring) ensure(ctx context.Context, kid [16]byte, position float64) (key []byte, retryIn time.Duration, err error) {
	if b, err := k.key(kid); err == nil {
		return b, 0, nil
	}
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		// A renewal in progress took longer than this request may wait:
		// the server is slow, not refusing.
		return nil, time.Second, fmt.Errorf("%w: waiting for a license renewal in progress: %w", ErrLicenseUnavailable, ctx.Err())
	}
	defer func() { <-k.sem }()
	if b, err := k.key(kid); err == nil { // renewed while we waited
		return b, 0, nil
	}
	k.mu.Lock()
	wait := k.next.Sub(k.now())
	backoff := k.lastErr != nil && wait > 0
	k.mu.Unlock()
	if !backoff {
		_ = k.renewLocked(ctx, position)
	}
	if b, err := k.key(kid); err == nil {
		return b, 0, nil
	}
	k.mu.Lock()
	wait = max(k.next.Sub(k.now()), 0)
	k.mu.Unlock()
	_, err = k.key(kid)
	return nil, wait, err
}

// kidsAt is the request for the period at position and the next, by KID.
func (k *keyring) kidsAt(position float64) (license.KeyRequest, error) {
	if len(k.periods) == 0 {
		return license.KeyRequest{}, fmt.Errorf("%w: no crypto periods", ErrManifest)
	}
	p := 0
	for i, per := range k.periods {
		if per.Start <= position {
			p = i
		}
	}
	hex := []string{k.periods[p].KID}
	if p+1 < len(k.periods) {
		hex = append(hex, k.periods[p+1].KID)
	}
	kids, err := license.ParseKIDs(hex...)
	if err != nil {
		return license.KeyRequest{}, fmt.Errorf("%w: manifest KIDs: %w", ErrManifest, err)
	}
	return license.KeyRequest{Content: k.content, KIDs: kids}, nil
}

func (k *keyring) renewByKIDs(ctx context.Context, prev *license.License, position float64) (*license.License, error) {
	q, err := k.kidsAt(position)
	if err != nil {
		return nil, err
	}
	lic, err := k.client.Renew(ctx, prev, q)
	if err != nil && sessionLapsed(err) {
		lic, err = k.client.License(ctx, q)
	}
	return lic, err
}

// seekDistance is how far (in content seconds) a renewal's position must be
// from the last one the server granted to count as a seek: only then does
// the keyring start a new session there when the server's key window
// refuses it. A new session takes a stream slot of the account until it
// lapses, so buffering ahead must never cause one.
const seekDistance = 60.0

// followWindow handles the server's key window (429 key_window_ahead, see
// license/window.go) for a renewal that got err: a seek gets a new session
// that starts at position (fresh); a period a little ahead (the platform
// player buffering) is asked for again after Retry-After when the caller's
// deadline allows the wait (again). Otherwise err stands, and the renewal
// backoff, which honours Retry-After, takes over.
func (k *keyring) followWindow(ctx context.Context, lic *license.License, err error, position float64, again, fresh func() (*license.License, error)) (*license.License, error) {
	var ae *license.APIError
	if !errors.As(err, &ae) || ae.Code != license.CodeKeyWindowAhead {
		return lic, err
	}
	k.mu.Lock()
	last := k.lastPos
	k.mu.Unlock()
	if math.Abs(position-last) > seekDistance {
		k.log.Info("seek beyond the license's key window; starting a new session", "content", k.content, "position", position)
		return fresh()
	}
	if dl, ok := ctx.Deadline(); ae.RetryAfter <= 0 || (ok && time.Until(dl) <= ae.RetryAfter) {
		return lic, err
	}
	t := time.NewTimer(ae.RetryAfter)
	select {
	case <-ctx.Done():
		t.Stop()
		return lic, err
	case <-t.C:
	}
	return again()
}

// renewLocked renews (the caller holds sem) and records the outcome.
func (k *keyring) renewLocked(ctx context.Context, position float64) error {
	err := k.renewWindowed(ctx, position)
	if err == nil {
		k.mu.Lock()
		k.lastPos = position
		k.mu.Unlock()
	}
	return err
}

func (k *keyring) renewWindowed(ctx context.Context, position float64) error {
	k.mu.Lock()
	prev, byKIDs := k.lic, k.byKIDs
	k.mu.Unlock()
	if byKIDs {
		lic, err := k.renewByKIDs(ctx, prev, position)
		lic, err = k.followWindow(ctx, lic, err, position,
			func() (*license.License, error) { return k.renewByKIDs(ctx, prev, position) },
			func() (*license.License, error) {
				q, err := k.kidsAt(position)
				if err != nil {
					return nil, err
				}
				return k.client.License(ctx, q)
			})
		return k.record(ctx, lic, err)
	}
	q := license.KeyRequest{Content: k.content, Position: &position}
	lic, err := k.client.Renew(ctx, prev, q)
	lic, err = k.followWindow(ctx, lic, err, position,
		func() (*license.License, error) { return k.client.Renew(ctx, prev, q) },
		func() (*license.License, error) { return k.client.License(ctx, q) })
	if err != nil && sessionLapsed(err) {
		// The session lapsed (typically: the server was unreachable past
		// the license's expiry). A new session is what Open would get; the
		// server decides again whether this viewer is entitled.
		k.log.Info("license session lapsed; starting a new one", "content", k.content)
		lic, err = k.client.License(ctx, q)
	}
	if err != nil && positionUnsupported(err) {
		// A server without the content's period start times renews by
		// KIDs only: name the period at position and the next, from the
		// verified manifest. The server still decides whether to grant them.
		k.mu.Lock()
		k.byKIDs = true // it will not grow a catalog while we play
		k.mu.Unlock()
		lic, err = k.renewByKIDs(ctx, prev, position)
	}
	return k.record(ctx, lic, err)
}

// record installs a renewed license, or counts the failure and plans the
// next attempt.
func (k *keyring) record(ctx context.Context, lic *license.License, err error) error {
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			// The session or the request went away: no verdict on the
			// server. (A per-attempt timeout is one: the server hung.)
			return ctx.Err()
		}
		err = licenseError("renew license", err)
		k.mu.Lock()
		now := k.now()
		k.fails++
		k.attempt++
		if k.since.IsZero() {
			k.since = now
		}
		wait := k.retry.wait(k.attempt, retryAfter(err))
		k.lastErr, k.next = err, now.Add(wait)
		attempt, expiresIn := k.attempt, k.expiry.Sub(now)
		k.mu.Unlock()
		k.log.Warn("license renewal failed; retrying", "content", k.content, "err", err,
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond), "license_expires_in", expiresIn.Round(time.Second))
		return err
	}
	k.install(lic)
	k.mu.Lock()
	k.renewed++
	failed, outage := k.attempt, k.now().Sub(k.since)
	k.attempt, k.lastErr, k.next, k.since = 0, nil, time.Time{}, time.Time{}
	k.mu.Unlock()
	if failed > 0 {
		k.log.Info("license renewed again", "content", k.content, "failed_attempts", failed, "outage", outage.Round(time.Millisecond))
	}
	return nil
}

// loop renews at each license's renew-after time and, after a failure, at
// the backoff's time, until ctx ends. It keeps trying after the license
// lapses (so a reinstated account, or a license server back from an outage,
// resumes playback), at the backoff's slowest pace.
func (k *keyring) loop(ctx context.Context, position func() float64, wake <-chan struct{}) {
	var last time.Time // the loop's last attempt
	for {
		// Never twice within RetryPolicy.Min, whatever the license's
		// renew-after time says (a server with a skewed clock).
		t := time.NewTimer(max(k.due(), time.Until(last.Add(k.retry.Min)), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
			t.Stop()
		case <-t.C:
		}
		select {
		case k.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		// The gateway may have renewed (or failed) meanwhile: only try if
		// an attempt is still due.
		if k.due() <= 0 {
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			// Before playback starts the modelled playhead sits before 0;
			// the server takes positions from 0.
			_ = k.renewLocked(rctx, max(position(), 0))
			cancel()
			last = time.Now()
		}
		<-k.sem
	}
}

// due is how long until the next renewal attempt.
func (k *keyring) due() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lastErr != nil {
		return k.next.Sub(k.now())
	}
	return k.lic.RenewAfter.Sub(k.now())
}

// renewalStatus is the keyring's part of Stats.
type renewalStatus struct {
	expiry, next   time.Time
	renewed, fails int
	lastErr        error
}

func (k *keyring) status() renewalStatus {
	k.mu.Lock()
	defer k.mu.Unlock()
	next := k.next
	if k.lastErr == nil && k.lic != nil {
		next = k.lic.RenewAfter
	}
	return renewalStatus{expiry: k.expiry, next: next, renewed: k.renewed, fails: k.fails, lastErr: k.lastErr}
}

// wipe clears every key; the session is closing.
func (k *keyring) wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, b := range k.keys {
		clear(b)
	}
	k.keys = nil
	k.expiry = time.Time{}
}
