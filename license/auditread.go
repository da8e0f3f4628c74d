package license

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Reading the audit log and the revocation list from outside the server.
//
// A running server holds the state file's exclusive lock, so ReadAudit and
// ReadRevocations first try its admin endpoint (GET /admin/audit, GET
// /admin/revocations; see admin.go), and only when no server answers open
// the file themselves, read-only (bbolt's shared lock: they never write,
// never create the file, never prune). Either way they return "server" or
// "state file" to say which.

// ReadAudit calls fn for each audit entry whose time is at or after since
// (the zero time: every entry), oldest first, until fn returns an error,
// which ReadAudit then returns.
func ReadAudit(ctx context.Context, statePath string, since time.Time, fn func(AuditEntry) error) (string, error) {
	if info, ok := readAdminFile(statePath); ok {
		q := ""
		if !since.IsZero() {
			q = "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
		}
		err := adminGet(ctx, info, "/admin/audit"+q, func(body io.Reader) error {
			dec := json.NewDecoder(bufio.NewReader(body))
			for {
				var e AuditEntry
				if err := dec.Decode(&e); errors.Is(err, io.EOF) {
					return nil
				} else if err != nil {
					return fmt.Errorf("license: audit from the server: %w", err)
				}
				if err := fn(e); err != nil {
					return err
				}
			}
		})
		if !isUnreachable(err) {
			return "server", err
		}
	}
	err := viewStateFile(statePath, func(tx *bolt.Tx) error {
		return forEachAudit(tx, since, fn)
	})
	return "state file", err
}

// ReadRevocations returns the revocation list, sorted by kind and value.
func ReadRevocations(ctx context.Context, statePath string) ([]Revocation, string, error) {
	var out []Revocation
	if info, ok := readAdminFile(statePath); ok {
		err := adminGet(ctx, info, "/admin/revocations", func(body io.Reader) error {
			return json.NewDecoder(io.LimitReader(body, 64<<20)).Decode(&out)
		})
		if !isUnreachable(err) {
			return out, "server", err
		}
	}
	err := viewStateFile(statePath, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRevoked).ForEach(func(k, v []byte) error {
			var r Revocation
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: revocation %q: %w", ErrStateCorrupt, k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, "state file", err
}

// forEachAudit walks the audit bucket in order, skipping entries before since.
func forEachAudit(tx *bolt.Tx, since time.Time, fn func(AuditEntry) error) error {
	c := tx.Bucket(bucketAudit).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var e AuditEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("%w: audit entry: %w", ErrStateCorrupt, err)
		}
		if !since.IsZero() && e.Time.Before(since) {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// viewStateFile opens the state file read-only and runs fn in a read
// transaction. It fails with ErrStateLocked when a server holds the file
// (and its admin endpoint did not answer).
func viewStateFile(path string, fn func(*bolt.Tx) error) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("license: state %s: %w (is --state the server's state file?)", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("license: state %s is held by a running server whose admin endpoint (%s) did not answer: stop the server, or restart it with its admin endpoint on: %w",
			path, AdminFilePath(path), ErrStateLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("license: state %s: %w: %w", path, ErrStateCorrupt, err)
	case err != nil:
		return fmt.Errorf("license: open state %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || string(meta.Get(metaMagic)) != stateMagic {
			return fmt.Errorf("license: state %s: %w: not a sealmesh license state file", path, ErrStateCorrupt)
		}
		if v := string(meta.Get(metaVersion)); v != stateVersion {
			return fmt.Errorf("license: state %s: %w: unsupported state version %q", path, ErrStateCorrupt, v)
		}
		if tx.Bucket(bucketAudit) == nil || tx.Bucket(bucketRevoked) == nil {
			return fmt.Errorf("license: state %s: %w: buckets missing", path, ErrStateCorrupt)
		}
		return fn(tx)
	})
}

func readAdminFile(statePath string) (AdminInfo, bool) {
	b, err := os.ReadFile(AdminFilePath(statePath))
	if err != nil {
		return AdminInfo{}, false
	}
	var info AdminInfo
	if json.Unmarshal(b, &info) != nil || info.Addr == "" {
		return AdminInfo{}, false
	}
	return info, true
}

// isUnreachable reports whether err means that no server answered at the
// admin address (a stale admin file), as opposed to an answer.
func isUnreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return err != nil && (errors.As(err, &oe) || errors.As(err, &ne))
}

// adminGet GETs path from the admin endpoint and hands a 200 body to read.
func adminGet(ctx context.Context, info AdminInfo, path string, read func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+info.Addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+info.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readAPIError(resp)
	}
	return read(resp.Body)
}

// handleAdminAudit streams the audit log as JSON lines (application/x-ndjson),
// from ?since=<RFC 3339 time> on.
func (s *Server) handleAdminAudit(w http.ResponseWriter, r *http.Request, _ []byte) error {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return badRequest("since is not an RFC 3339 time")
		}
		since = t
	}
	if err := s.deps.State.usable(r.Context()); err != nil {
		return internal(err)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	started := false
	err := s.deps.State.db.View(func(tx *bolt.Tx) error {
		return forEachAudit(tx, since, func(e AuditEntry) error {
			started = true
			return enc.Encode(e)
		})
	})
	if err != nil && !started {
		return internal(err)
	}
	if err != nil {
		// Headers are gone: cut the stream so the reader sees a truncated body.
		s.cfg.Logger.Error("license: admin audit stream", "err", err)
		panic(http.ErrAbortHandler)
	}
	_ = bw.Flush() // a client gone away is not an error worth a log line
	return nil
}
