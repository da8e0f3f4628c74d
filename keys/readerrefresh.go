package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// How a Reader keeps its snapshot fresh. Lookups call current (the hot path:
// atomics only) and, on a miss, afterMiss; both funnel into flights, of which
// at most one runs at a time, so a burst of misses costs one stat and at most
// one re-read.

// flight is one refresh. Lookups that miss before it starts looking at the
// file join it; those that miss later wait for the next one, so a miss is
// always answered from a look taken after it.
type flight struct {
	done    chan struct{}
	force   bool  // guarded by Reader.mu until started
	started bool  // guarded by Reader.mu
	err     error // set before done is closed
}

// minRereadGap spaces re-reads. A writer's Open polls for the exclusive lock
// every 50 ms (bbolt) until its lock timeout; if readers held the shared lock
// back to back, a writer could time out. Re-reads start at least this long,
// and at least 4 times the previous re-read's lock hold, after the previous
// one ended, so readers hold the lock at most about a fifth of the time.
const minRereadGap = 50 * time.Millisecond

// current returns the snapshot to answer from and, when the refresh
// interval has passed, starts a background check. It is the hot path: two
// atomic loads and a clock read, no lock, no allocation, no disk.
func (r *Reader) current(ctx context.Context) (*snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := r.snap.Load()
	if r.closed.Load() || s == nil {
		return nil, ErrClosed
	}
	now, due := int64(r.now().Sub(r.epoch)), r.nextCheck.Load()
	if now >= due && r.nextCheck.CompareAndSwap(due, now+int64(r.interval)) {
		r.mu.Lock()
		if r.flight == nil && !r.closed.Load() {
			r.launchLocked(false)
		}
		r.mu.Unlock()
	}
	return s, nil
}

// afterMiss waits for a check of the file that started after the miss and
// returns the snapshot then in service, with the check's error.
func (r *Reader) afterMiss(ctx context.Context) (*snapshot, error) {
	err := r.sync(ctx, false)
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return r.snap.Load(), err
}

// missError builds the error for a lookup that found nothing. A lookup that
// could not wait for the file check reports why (canceled, closed) instead;
// one whose check failed says ErrNotFound and wraps the failure too.
func missError(op, what string, checkErr error) error {
	switch {
	case checkErr == nil:
		return fmt.Errorf("keys: %s: %w: %s", op, ErrNotFound, what)
	case errors.Is(checkErr, ErrClosed), errors.Is(checkErr, context.Canceled), errors.Is(checkErr, context.DeadlineExceeded):
		return fmt.Errorf("keys: %s: %w", op, checkErr)
	default:
		return fmt.Errorf("keys: %s: %w: %s (the key store could not be re-read: %w)", op, ErrNotFound, what, checkErr)
	}
}

// sync waits for a refresh that looks at the file after sync was called.
func (r *Reader) sync(ctx context.Context, force bool) error {
	for attempt := 0; ; attempt++ {
		r.mu.Lock()
		if r.closed.Load() {
			r.mu.Unlock()
			return ErrClosed
		}
		f := r.flight
		late := f != nil && f.started
		switch {
		case f == nil:
			f = r.launchLocked(force)
		case !late:
			f.force = f.force || force
		}
		r.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		// A late flight may have looked before our miss; wait for a fresh
		// one. Bounded, so a miss cannot chase flights forever.
		if !late || attempt == 2 {
			return f.err
		}
	}
}

// launchLocked starts a refresh goroutine. r.mu must be held and r open.
func (r *Reader) launchLocked(force bool) *flight {
	f := &flight{done: make(chan struct{}), force: force}
	r.flight = f
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := r.refresh(f)
		r.mu.Lock()
		r.flight = nil
		r.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

// refresh checks the file and re-reads it if it changed (or if f.force).
func (r *Reader) refresh(f *flight) error {
	r.mu.Lock()
	wait := time.Until(r.lastRead.Add(max(minRereadGap, 4*r.lastHeld)))
	r.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.closing:
			return ErrClosed
		}
	}
	r.mu.Lock()
	f.started = true
	force := f.force
	failFile, failAt, failErr := r.failFile, r.failAt, r.failErr
	r.mu.Unlock()

	prev := r.snap.Load()
	fi, statErr := os.Stat(r.path)
	if !force && statErr == nil {
		if sameFile(fi, prev.file) && !prev.racy {
			return nil
		}
		// After a failed re-read (typically: a writer holds the lock), do not
		// wait out the lock timeout again for every miss; retry once the file
		// changes again or the refresh interval has passed.
		if sameFile(fi, failFile) && r.now().Sub(failAt) < r.interval {
			return failErr
		}
	}

	img, err := readImage(r.path, r.lockTimeout)
	var s *snapshot
	if err == nil {
		if s, err = r.build(img, prev); err != nil {
			err = fmt.Errorf("keys: read %s: %w", r.path, err)
		}
	}
	r.mu.Lock()
	r.lastRead, r.lastHeld = time.Now(), 0
	if img != nil {
		r.lastHeld = img.held
	}
	if err != nil {
		r.failFile, r.failAt, r.failErr = fi, r.now(), err
	} else {
		r.failFile, r.failErr = nil, nil
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("keys: key store re-read failed; serving the last good snapshot", "path", r.path, "err", err)
		return err
	}
	r.snap.Store(s)
	r.log.Debug("keys: key store re-read", "path", r.path, "contents", len(s.contents), "kek_rotated", !bytes.Equal(s.encKeyset, prev.encKeyset))
	return nil
}
