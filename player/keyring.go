package player

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sealmesh/sealmesh/license"
)

// keyring holds the current license's content keys, in memory only, and
// renews the license before it lapses. A key is handed out only while the
// license that carried it is valid: once it expires without renewal, no
// newly requested segment is decrypted.
type keyring struct {
	client  *license.Client
	content string
	now     func() time.Time

	mu      sync.Mutex
	lic     *license.License
	keys    map[[16]byte][]byte
	expiry  time.Time
	lastPos float64 // position of the last license granted (0 for the first)
	renewed int
	fails   int
	lastErr error
}

func newKeyring(ctx context.Context, c *license.Client, content string, now func() time.Time) (*keyring, error) {
	k := &keyring{client: c, content: content, now: now}
	zero := 0.0
	lic, err := c.License(ctx, license.KeyRequest{Content: content, Position: &zero})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoLicense, err)
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

// key returns the key for kid if a valid license carries it.
func (k *keyring) key(kid [16]byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.now().Before(k.expiry) {
		return nil, fmt.Errorf("%w: the license expired at %s and was not renewed", ErrNoLicense, k.expiry.Format(time.RFC3339))
	}
	b, ok := k.keys[kid]
	if !ok {
		return nil, fmt.Errorf("%w: the license carries no key for KID %x", ErrNoLicense, kid)
	}
	return b, nil
}

func (k *keyring) has(kid [16]byte) bool {
	_, err := k.key(kid)
	return err == nil
}

// seekDistance is how far (in content seconds) a renewal's position must be
// from the last one the server granted to count as a seek: only then does
// the keyring start a new session there when the server's key window
// refuses it. A new session takes a stream slot of the account until it
// lapses, so buffering ahead must never cause one.
const seekDistance = 60.0

// renew asks for a license covering position (content seconds).
func (k *keyring) renew(ctx context.Context, position float64) error {
	k.mu.Lock()
	prev, last := k.lic, k.lastPos
	k.mu.Unlock()
	lic, err := k.client.Renew(ctx, prev, license.KeyRequest{Content: k.content, Position: &position})
	var ae *license.APIError
	if errors.As(err, &ae) && ae.Code == license.CodeKeyWindowAhead {
		// The server paces keys by playback (its key window). A seek needs
		// a new session that starts there; a period a little ahead (the
		// platform player buffering) comes after Retry-After, if the
		// caller's deadline allows the wait, and is refused otherwise so
		// that the caller asks again later.
		switch dl, ok := ctx.Deadline(); {
		case math.Abs(position-last) > seekDistance:
			lic, err = k.client.License(ctx, license.KeyRequest{Content: k.content, Position: &position})
		case ae.RetryAfter > 0 && (!ok || time.Until(dl) > ae.RetryAfter):
			t := time.NewTimer(ae.RetryAfter)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			lic, err = k.client.Renew(ctx, prev, license.KeyRequest{Content: k.content, Position: &position})
		}
	}
	if err != nil {
		k.mu.Lock()
		k.fails++
		k.lastErr = err
		k.mu.Unlock()
		return err
	}
	k.install(lic)
	k.mu.Lock()
	k.lastPos = position
	k.renewed++
	k.lastErr = nil
	k.mu.Unlock()
	return nil
}

// loop renews at each license's renew-after time, retrying with backoff
// until it succeeds or the license lapses (it keeps trying after that, so a
// revoked account that is reinstated resumes).
func (k *keyring) loop(ctx context.Context, position func() float64, wake <-chan struct{}) {
	backoff := time.Second
	for {
		k.mu.Lock()
		at := k.lic.RenewAfter
		failing := k.lastErr != nil
		k.mu.Unlock()
		wait := at.Sub(k.now())
		if failing {
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
			t.Stop()
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := k.renew(rctx, position()); err == nil {
			backoff = time.Second
		} else if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			cancel()
			return
		}
		cancel()
	}
}

func (k *keyring) status() (expiry time.Time, renewed, fails int, lastErr error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.expiry, k.renewed, k.fails, k.lastErr
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
