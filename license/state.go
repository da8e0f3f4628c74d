package license

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// State file layout (one bbolt file, version 1):
//
//	meta/      magic = "sealmesh-license-state", version = "1",
//	           secret = 32 random bytes (keys the account hash and the nonce MAC)
//	sessions/  <session ID> = JSON session
//	nonces/    <32-byte nonce> = expiry (8-byte big-endian Unix seconds); used nonces only
//	revoked/   "account:<account hash>" | "device:<ID>" | "peer:<peer ID>" = JSON Revocation
//	audit/     <8-byte big-endian sequence> = JSON AuditEntry
//
// Everything is also held in memory (sessions and nonces only while they are
// live), so the request path reads no disk; writes go through one committer
// goroutine that coalesces concurrent requests into one fsynced transaction.
var (
	bucketMeta     = []byte("meta")
	bucketSessions = []byte("sessions")
	bucketNonces   = []byte("nonces")
	bucketRevoked  = []byte("revoked")
	bucketAudit    = []byte("audit")
	metaMagic      = []byte("magic")
	metaVersion    = []byte("version")
	metaSecret     = []byte("secret")
)

const (
	stateMagic   = "sealmesh-license-state"
	stateVersion = "1"
)

// Errors of OpenState and the State methods; branch with errors.Is.
var (
	// ErrStateLocked: another process (normally a running license server)
	// holds the state file.
	ErrStateLocked = errors.New("license: state file is locked by another process")
	// ErrStateCorrupt: the file is not a sealmesh license state file.
	ErrStateCorrupt = errors.New("license: state file corrupt")
	// ErrStateClosed: the State was used after Close.
	ErrStateClosed = errors.New("license: state closed")
)

// RevocationKind names what a revocation applies to.
type RevocationKind string

// Kinds of revocation.
const (
	RevokeAccount RevocationKind = "account" // an account (stored as its account hash)
	RevokeDevice  RevocationKind = "device"  // a device ID
	RevokePeer    RevocationKind = "peer"    // a libp2p peer ID
)

// Revocation is one entry of the revocation list.
type Revocation struct {
	Kind RevocationKind `json:"kind"`
	// Value is the account hash (never the raw account), device ID or peer ID.
	Value string    `json:"value"`
	Time  time.Time `json:"time"`
}

// AuditEntry is one line of the audit log: an issued license, renewal,
// Clear Key response or ticket. It never holds key material or tokens.
type AuditEntry struct {
	Time        time.Time `json:"time"`
	Event       string    `json:"event"` // "license", "renew", "clearkey", "ticket"
	LicenseID   string    `json:"license_id,omitempty"`
	SessionID   string    `json:"session_id,omitempty"`
	TicketID    string    `json:"ticket_id,omitempty"`
	AccountHash string    `json:"account_hash"`
	Content     string    `json:"content,omitempty"`
	KIDs        []string  `json:"kids,omitempty"`
	Device      string    `json:"device,omitempty"`
	PeerID      string    `json:"peer_id,omitempty"`
	TokenID     string    `json:"token_id,omitempty"` // the token's jti: an ID, not the token
}

// session is one playback session: it counts against its account's stream
// limit until Expiry, and each renewal moves Expiry forward.
type session struct {
	ID          string    `json:"id"`
	AccountHash string    `json:"account_hash"`
	Content     string    `json:"content"`
	Device      string    `json:"device,omitempty"`
	Created     time.Time `json:"created"`
	Expiry      time.Time `json:"expiry"`
	// Window is the range of crypto periods the session was given keys for
	// (see window.go); nil for sessions without a window (Clear Key for
	// content whose policy does not ask for one, or from an older state
	// file: such a session's window starts at its next renewal).
	Window *keyWindow `json:"window,omitempty"`
}

// State is the license server's durable state: sessions, used nonces,
// revocations and the audit log, in one bbolt file that one process at a
// time holds open. Its methods are safe for concurrent use.
type State struct {
	path       string
	db         *bolt.DB
	accountKey []byte
	nonceKey   []byte
	nonceMACs  sync.Pool // of hash.Hash: HMAC-SHA256 under nonceKey

	mu        sync.Mutex
	sessions  map[string]*session
	byAccount map[string]map[string]*session
	nonces    map[[nonceSize]byte]time.Time
	// revoked is replaced, never modified, under mu: every request reads
	// it, without a lock, while revocations are rare.
	revoked atomic.Pointer[map[string]Revocation]

	commits   chan *commitOp
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	closedMu  sync.RWMutex
	closed    bool
}

// OpenState opens (creating it if absent) the state file at path. It fails
// with an error wrapping ErrStateLocked if another process holds the file
// for longer than lockTimeout (0 means one second), and ErrStateCorrupt if
// the file is not a state file. now is used to drop expired sessions and
// nonces while loading (nil means time.Now).
func OpenState(path string, lockTimeout time.Duration, now func() time.Time) (*State, error) {
	if lockTimeout <= 0 {
		lockTimeout = time.Second
	}
	if now == nil {
		now = time.Now
	}
	// The freelist is not written on each commit (bbolt rebuilds it by a
	// scan when the file is opened): with a state file of many pages, writing
	// it was a large part of every group commit. Durability of the data is
	// unchanged: each commit is still fsynced before it is acknowledged.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("license: open state %s: %w", path, ErrStateLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("license: open state %s: %w: %w", path, ErrStateCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("license: open state %s: %w", path, err)
	}
	s := &State{
		path: path, db: db,
		sessions:  make(map[string]*session),
		byAccount: make(map[string]map[string]*session),
		nonces:    make(map[[nonceSize]byte]time.Time),
		commits:   make(chan *commitOp, 1024),
		done:      make(chan struct{}),
	}
	if err := s.load(now()); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("license: open state %s: %w", path, err)
	}
	s.wg.Add(1)
	go s.committer()
	return s, nil
}

func (s *State) load(now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketSessions) != nil {
				return fmt.Errorf("%w: sessions without meta", ErrStateCorrupt)
			}
			secret := make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return err
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			for k, v := range map[string][]byte{string(metaMagic): []byte(stateMagic), string(metaVersion): []byte(stateVersion), string(metaSecret): secret} {
				if err := meta.Put([]byte(k), v); err != nil {
					return err
				}
			}
		}
		if string(meta.Get(metaMagic)) != stateMagic {
			return fmt.Errorf("%w: not a sealmesh license state file", ErrStateCorrupt)
		}
		if v := string(meta.Get(metaVersion)); v != stateVersion {
			return fmt.Errorf("%w: unsupported state version %q (this build reads %q)", ErrStateCorrupt, v, stateVersion)
		}
		secret := meta.Get(metaSecret)
		if len(secret) != 32 {
			return fmt.Errorf("%w: bad secret", ErrStateCorrupt)
		}
		s.accountKey = deriveKey(secret, "sealmesh account hash v1")
		s.nonceKey = deriveKey(secret, "sealmesh nonce v1")
		for _, name := range [][]byte{bucketSessions, bucketNonces, bucketRevoked, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		// Expired entries are dropped here as well as by Prune.
		sb := tx.Bucket(bucketSessions)
		var stale [][]byte
		if err := sb.ForEach(func(k, v []byte) error {
			var se session
			if err := json.Unmarshal(v, &se); err != nil {
				return fmt.Errorf("%w: session %q: %w", ErrStateCorrupt, k, err)
			}
			if !se.Expiry.After(now) {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			s.addSessionLocked(&se)
			return nil
		}); err != nil {
			return err
		}
		for _, k := range stale {
			if err := sb.Delete(k); err != nil {
				return err
			}
		}
		stale = stale[:0]
		nb := tx.Bucket(bucketNonces)
		if err := nb.ForEach(func(k, v []byte) error {
			if len(k) != nonceSize || len(v) != 8 {
				return fmt.Errorf("%w: nonce record", ErrStateCorrupt)
			}
			exp := time.Unix(int64(binary.BigEndian.Uint64(v)), 0)
			if !exp.After(now) {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			s.nonces[[nonceSize]byte(k)] = exp
			return nil
		}); err != nil {
			return err
		}
		for _, k := range stale {
			if err := nb.Delete(k); err != nil {
				return err
			}
		}
		revoked := make(map[string]Revocation)
		defer s.revoked.Store(&revoked)
		return tx.Bucket(bucketRevoked).ForEach(func(k, v []byte) error {
			var r Revocation
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: revocation %q: %w", ErrStateCorrupt, k, err)
			}
			revoked[string(k)] = r
			return nil
		})
	})
}

func deriveKey(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Path returns the state file's path.
func (s *State) Path() string { return s.path }

// AccountHash returns the pseudonymous ID of an account that licenses,
// tickets, logs and the audit log carry instead of the account itself: hex
// HMAC-SHA256 under a secret kept in the state file. Without the state file
// it cannot be reversed, even by trying likely account names.
func (s *State) AccountHash(account string) string {
	m := hmac.New(sha256.New, s.accountKey)
	m.Write([]byte(account))
	return hex.EncodeToString(m.Sum(nil))
}

func revocationKey(kind RevocationKind, value string) string { return string(kind) + ":" + value }

// normalizeRevocation checks kind and turns an account into its hash.
func (s *State) normalizeRevocation(kind RevocationKind, value string) (string, error) {
	if value == "" || len(value) > maxIDLen {
		return "", fmt.Errorf("license: revoke: %s value must be 1 to %d bytes", kind, maxIDLen)
	}
	switch kind {
	case RevokeAccount:
		return s.AccountHash(value), nil
	case RevokeDevice, RevokePeer:
		return value, nil
	}
	return "", fmt.Errorf("license: revoke: unknown kind %q (account, device or peer)", kind)
}

// Revoke adds an account, device or peer ID to the revocation list (the raw
// account is given; its hash is stored). It takes effect at the next
// license, renewal, Clear Key request, ticket or announce that names it.
// Revoking twice is not an error.
func (s *State) Revoke(ctx context.Context, kind RevocationKind, value string, now time.Time) error {
	v, err := s.normalizeRevocation(kind, value)
	if err != nil {
		return err
	}
	r := Revocation{Kind: kind, Value: v, Time: now.UTC()}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	key := revocationKey(kind, v)
	if err := s.commit(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketRevoked).Put([]byte(key), b) }); err != nil {
		return fmt.Errorf("license: revoke %s: %w", kind, err)
	}
	s.mu.Lock()
	s.setRevokedLocked(key, &r)
	s.mu.Unlock()
	return nil
}

// Unrevoke removes an entry from the revocation list. Removing an absent
// entry is not an error.
func (s *State) Unrevoke(ctx context.Context, kind RevocationKind, value string) error {
	v, err := s.normalizeRevocation(kind, value)
	if err != nil {
		return err
	}
	key := revocationKey(kind, v)
	if err := s.commit(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketRevoked).Delete([]byte(key)) }); err != nil {
		return fmt.Errorf("license: unrevoke %s: %w", kind, err)
	}
	s.mu.Lock()
	s.setRevokedLocked(key, nil)
	s.mu.Unlock()
	return nil
}

// setRevokedLocked replaces the revocation map with a copy that has key
// set to r (or removed, for nil).
func (s *State) setRevokedLocked(key string, r *Revocation) {
	old := *s.revoked.Load()
	m := make(map[string]Revocation, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if r != nil {
		m[key] = *r
	} else {
		delete(m, key)
	}
	s.revoked.Store(&m)
}

// Revocations returns the revocation list, sorted by kind and value.
func (s *State) Revocations() []Revocation {
	m := *s.revoked.Load()
	out := make([]Revocation, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Revocation) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Value, b.Value))
	})
	return out
}

// isRevoked reports whether the (already hashed, for accounts) value is revoked.
func (s *State) isRevoked(kind RevocationKind, value string) bool {
	if value == "" {
		return false
	}
	_, ok := (*s.revoked.Load())[revocationKey(kind, value)]
	return ok
}

// Audit calls fn for each audit entry in the order written, until fn
// returns false.
func (s *State) Audit(ctx context.Context, fn func(AuditEntry) bool) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: audit entry: %w", ErrStateCorrupt, err)
			}
			if !fn(e) {
				return nil
			}
		}
		return nil
	})
}

// ActiveSessions returns how many sessions have not expired at now.
func (s *State) ActiveSessions(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, se := range s.sessions {
		if se.Expiry.After(now) {
			n++
		}
	}
	return n
}

// Prune forgets sessions and used nonces that expired before now, in memory
// and on disk. A nonce is kept until its own expiry, after which the MAC
// check refuses it anyway, so pruning never re-opens a replay.
func (s *State) Prune(ctx context.Context, now time.Time) error {
	var sessIDs []string
	var nonces [][nonceSize]byte
	s.mu.Lock()
	for id, se := range s.sessions {
		if !se.Expiry.After(now) {
			sessIDs = append(sessIDs, id)
			s.removeSessionLocked(se)
		}
	}
	for n, exp := range s.nonces {
		if !exp.After(now) {
			nonces = append(nonces, n)
			delete(s.nonces, n)
		}
	}
	s.mu.Unlock()
	if len(sessIDs) == 0 && len(nonces) == 0 {
		return nil
	}
	return s.commit(ctx, func(tx *bolt.Tx) error {
		sb, nb := tx.Bucket(bucketSessions), tx.Bucket(bucketNonces)
		for _, id := range sessIDs {
			// A session renewed since is back in memory; keep its record.
			if err := sb.Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, n := range nonces {
			if err := nb.Delete(n[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close stops the committer (after the writes already queued) and releases
// the file. It is idempotent.
func (s *State) Close() error {
	s.closeOnce.Do(func() {
		s.closedMu.Lock()
		s.closed = true
		close(s.done)
		s.closedMu.Unlock()
		s.wg.Wait()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

func (s *State) usable(ctx context.Context) error {
	s.closedMu.RLock()
	defer s.closedMu.RUnlock()
	if s.closed {
		return ErrStateClosed
	}
	return ctx.Err()
}

func (s *State) addSessionLocked(se *session) {
	s.sessions[se.ID] = se
	m := s.byAccount[se.AccountHash]
	if m == nil {
		m = make(map[string]*session)
		s.byAccount[se.AccountHash] = m
	}
	m[se.ID] = se
}

func (s *State) removeSessionLocked(se *session) {
	delete(s.sessions, se.ID)
	if m := s.byAccount[se.AccountHash]; m != nil {
		delete(m, se.ID)
		if len(m) == 0 {
			delete(s.byAccount, se.AccountHash)
		}
	}
}
