package license

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Writes to the state file go through one committer goroutine. It takes the
// first queued write, then every other write already waiting (up to
// maxCommitBatch), and commits them in one bbolt transaction: one fsync for
// many requests. Unlike bolt's DB.Batch it never waits for more writers to
// arrive, so a lone request pays one fsync and no delay, while 64 concurrent
// ones share a commit. Each caller waits for its write to be durable before
// answering, so an acknowledged nonce is used forever and an acknowledged
// session survives a crash.
const maxCommitBatch = 512

type commitOp struct {
	fn   func(*bolt.Tx) error
	done chan error
}

func (s *State) commit(ctx context.Context, fn func(*bolt.Tx) error) error {
	return s.commitAsync(ctx, fn)()
}

// commitAsync queues fn for the committer and returns a function that waits
// until it is durable (or failed). The caller may work in between — the
// license handlers seal and sign the license while the fsync runs — but
// must not answer before the wait returns nil.
func (s *State) commitAsync(ctx context.Context, fn func(*bolt.Tx) error) (wait func() error) {
	op := &commitOp{fn: fn, done: make(chan error, 1)}
	s.closedMu.RLock()
	if s.closed {
		s.closedMu.RUnlock()
		return func() error { return ErrStateClosed }
	}
	if err := ctx.Err(); err != nil {
		s.closedMu.RUnlock()
		return func() error { return err }
	}
	// The committer drains the queue even while Close waits for closedMu,
	// so this send cannot block forever.
	s.commits <- op
	s.closedMu.RUnlock()
	return func() error { return <-op.done }
}

func (s *State) committer() {
	defer s.wg.Done()
	for {
		select {
		case op := <-s.commits:
			s.runBatch(op)
		case <-s.done:
			for {
				select {
				case op := <-s.commits:
					s.runBatch(op)
				default:
					return
				}
			}
		}
	}
}

func (s *State) runBatch(first *commitOp) {
	ops := []*commitOp{first}
collect:
	for len(ops) < maxCommitBatch {
		select {
		case op := <-s.commits:
			ops = append(ops, op)
		default:
			break collect
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, op := range ops {
			if err := op.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(ops) > 1 {
		// One bad write must not fail the others: redo them one by one.
		for _, op := range ops {
			op.done <- s.db.Update(op.fn)
		}
		return
	}
	for _, op := range ops {
		op.done <- err
	}
}

// startParams describes a session start: a native license (with a nonce)
// or a Clear Key response (without; reuse set).
type startParams struct {
	sess       session
	nonce      *[nonceSize]byte
	nonceExp   time.Time
	maxStreams int // < 0: no limit
	audit      AuditEntry
	// reuse: if a live session with sess.ID exists for the same account,
	// extend it instead of counting a new stream.
	reuse bool
	// window, if set, is checked and applied to the session's key window
	// under the lock, with the stream limit (see window.go).
	window *windowCheck
	// during, if set, runs while the write is being made durable (the
	// license's crypto); its error is returned once the write is durable.
	during func() error
}

// startSession atomically checks the nonce and the account's stream limit,
// records both in memory, and makes them durable, running p.during
// meanwhile. It returns only once the write is durable (or failed and was
// undone in memory). A client error comes back as an *apiError. An error
// of p.during leaves the session recorded: it is a server fault, and the
// session lapses at its expiry.
func (s *State) startSession(ctx context.Context, now time.Time, p startParams) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	if p.nonce != nil {
		if _, used := s.nonces[*p.nonce]; used {
			s.mu.Unlock()
			return fail(http.StatusConflict, CodeNonceReplayed, "this nonce was already used: get a fresh one from /v1/nonce")
		}
	}
	var extended *session
	var oldExpiry time.Time
	var oldWindow *keyWindow
	if ex := s.sessions[p.sess.ID]; ex != nil && p.reuse && ex.AccountHash == p.sess.AccountHash && ex.Expiry.After(now) {
		oldWindow = ex.Window
		if err := p.window.apply(ex, now); err != nil {
			s.mu.Unlock()
			return err
		}
		extended, oldExpiry = ex, ex.Expiry
		if p.sess.Expiry.After(ex.Expiry) {
			ex.Expiry = p.sess.Expiry
		}
	} else {
		if p.maxStreams >= 0 {
			live, earliest := 0, time.Time{}
			for _, se := range s.byAccount[p.sess.AccountHash] {
				if se.Expiry.After(now) {
					live++
					if earliest.IsZero() || se.Expiry.Before(earliest) {
						earliest = se.Expiry
					}
				}
			}
			if live >= p.maxStreams {
				s.mu.Unlock()
				e := fail(http.StatusTooManyRequests, CodeTooManyStreams, "this account already has its maximum number of concurrent streams: stop one, or wait for one to expire")
				e.retryAfter = max(1, int(earliest.Sub(now).Seconds()+0.999))
				return e
			}
		}
		se := p.sess
		// A new session's window starts at the lowest period asked for.
		se.Window = nil
		if err := p.window.apply(&se, now); err != nil {
			s.mu.Unlock()
			return err
		}
		s.addSessionLocked(&se)
		extended = nil
	}
	if p.nonce != nil {
		s.nonces[*p.nonce] = p.nonceExp
	}
	cur := *s.sessions[p.sess.ID]
	s.mu.Unlock()
	if w := p.window; w != nil && w.some {
		// The audit log lists the keys given, not the keys asked for.
		p.audit.KIDs = w.grantedKIDs(p.audit.KIDs)
	}

	wait := s.commitAsync(ctx, func(tx *bolt.Tx) error { return putStart(tx, &cur, p.nonce, p.nonceExp, &p.audit) })
	var duringErr error
	if p.during != nil {
		duringErr = p.during()
	}
	if err := wait(); err != nil {
		s.mu.Lock()
		if p.nonce != nil {
			delete(s.nonces, *p.nonce)
		}
		if extended != nil {
			extended.Expiry, extended.Window = oldExpiry, oldWindow
		} else if se := s.sessions[p.sess.ID]; se != nil {
			s.removeSessionLocked(se)
		}
		s.mu.Unlock()
		return err
	}
	return duringErr
}

// renewSession extends a live session of the same account and content,
// using up a fresh nonce, and returns a copy of it. during runs while the
// write is made durable, as in startSession.
func (s *State) renewSession(ctx context.Context, now time.Time, id, accountHash, content string, nonce [nonceSize]byte, nonceExp, expiry time.Time, win *windowCheck, audit AuditEntry, during func() error) (session, error) {
	if err := s.usable(ctx); err != nil {
		return session{}, err
	}
	s.mu.Lock()
	if _, used := s.nonces[nonce]; used {
		s.mu.Unlock()
		return session{}, fail(http.StatusConflict, CodeNonceReplayed, "this nonce was already used: get a fresh one from /v1/nonce")
	}
	se := s.sessions[id]
	// A session of another account or content is reported as unknown, so
	// session IDs cannot be probed with someone else's token.
	if se == nil || se.AccountHash != accountHash || se.Content != content {
		s.mu.Unlock()
		return session{}, fail(http.StatusNotFound, CodeUnknownSession, "no such session for this account and content: start a new one with /v1/license")
	}
	if !se.Expiry.After(now) {
		s.mu.Unlock()
		return session{}, fail(http.StatusGone, CodeSessionExpired, "the session lapsed because it was not renewed before its expiry: start a new one with /v1/license")
	}
	// The key window is the server's decision, taken here atomically with
	// the session's other state so that concurrent renewals of one session
	// cannot each widen it from the same starting point.
	oldWindow := se.Window
	if err := win.apply(se, now); err != nil {
		s.mu.Unlock()
		return session{}, err
	}
	old := se.Expiry
	se.Expiry = expiry
	s.nonces[nonce] = nonceExp
	cur := *se
	s.mu.Unlock()
	audit.SessionID = id
	wait := s.commitAsync(ctx, func(tx *bolt.Tx) error { return putStart(tx, &cur, &nonce, nonceExp, &audit) })
	var duringErr error
	if during != nil {
		duringErr = during()
	}
	if err := wait(); err != nil {
		s.mu.Lock()
		delete(s.nonces, nonce)
		if se.Expiry.Equal(expiry) {
			se.Expiry, se.Window = old, oldWindow
		}
		s.mu.Unlock()
		return session{}, err
	}
	return cur, duringErr
}

// logAudit appends an audit entry (tickets), durably.
func (s *State) logAudit(ctx context.Context, e AuditEntry) error {
	return s.commit(ctx, func(tx *bolt.Tx) error { return putAudit(tx, &e) })
}

func putStart(tx *bolt.Tx, se *session, nonce *[nonceSize]byte, nonceExp time.Time, audit *AuditEntry) error {
	b, err := json.Marshal(se)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketSessions).Put([]byte(se.ID), b); err != nil {
		return err
	}
	if nonce != nil {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(nonceExp.Unix()))
		if err := tx.Bucket(bucketNonces).Put(nonce[:], v[:]); err != nil {
			return err
		}
	}
	return putAudit(tx, audit)
}

func putAudit(tx *bolt.Tx, e *AuditEntry) error {
	b := tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return b.Put(k[:], v)
}

// sessionInfo returns the content and device of a session of the given
// account (expired or not).
func (s *State) sessionInfo(id, accountHash string) (content, device string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.sessions[id]
	if se == nil || se.AccountHash != accountHash {
		return "", "", false
	}
	return se.Content, se.Device, true
}
