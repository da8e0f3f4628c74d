package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/sealmesh/sealmesh/segment"
)

// SegmentProtocol moves one file's ciphertext per stream.
const SegmentProtocol protocol.ID = "/sealmesh/segment/1.0.0"

// handleSegment is the SegmentProtocol handler.
func (h *Host) handleSegment(st network.Stream) {
	if err := h.serveSegment(st); err != nil {
		h.log.Debug("segment stream", "remote", st.Conn().RemotePeer().String(), "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (h *Host) serveSegment(st network.Stream) error {
	if err := st.Scope().SetService(serviceName); err != nil {
		return fmt.Errorf("attach to service: %w", err)
	}
	remote := st.Conn().RemotePeer()
	// Admission first, before a byte is read: a peer without a ticket gets
	// no request read, no buffer and no slot. (The resource manager wrapper
	// resets its segment streams already while this host evicts unadmitted
	// peers; this holds when it does not.) The content-specific check
	// follows in serve.
	if !h.admittedAnywhere(remote) || h.gater.refused(remote) {
		return respond(st, statusNotAdmitted)
	}
	// Then the caps, still before reading: a peer, or an account through
	// its many peer IDs, may have only so many requests in progress. One
	// more is told "busy" at once and the stream closed, never held open
	// waiting for its request, so stalled streams cannot pile up.
	release, ok := h.segmentSlots(remote)
	if !ok {
		return respond(st, statusBusy)
	}
	defer release()
	if err := st.Scope().ReserveMemory(maxRequestMsg, network.ReservationPriorityAlways); err != nil {
		return fmt.Errorf("reserve memory: %w", err)
	}
	defer st.Scope().ReleaseMemory(maxRequestMsg)
	// The request is under 1 KiB and an honest peer writes it at once with
	// the stream's opening: RequestTimeout is plenty. A stream that stays
	// silent is a strike against its peer (IdleStreamStrikes bans it).
	if err := st.SetDeadline(time.Now().Add(h.cfg.RequestTimeout)); err != nil {
		return err
	}
	content, path, urgent, err := readSegmentRequest(io.LimitReader(st, maxRequestMsg))
	if err != nil {
		if isTimeout(err) {
			h.requestTimeouts.Add(1)
			h.strike(remote, fmt.Sprintf("%d inbound streams without a request for %v", h.cfg.IdleStreamStrikes, h.cfg.RequestTimeout))
		}
		return err
	}
	s := h.swarm(content)
	if s == nil {
		return respond(st, statusBadRequest)
	}
	return s.serve(st, remote, path, urgent)
}

// segmentSlots takes one of remote's and one of its account's inbound
// segment slots (Limits.PeerSegmentStreams, AccountSegmentStreams).
func (h *Host) segmentSlots(remote peer.ID) (release func(), ok bool) {
	pk, ak := string(remote), h.budgetKey(remote)
	if !h.peerSegments.acquire(pk) {
		return nil, false
	}
	if !h.accountSegments.acquire(ak) {
		h.peerSegments.release(pk)
		return nil, false
	}
	return func() {
		h.accountSegments.release(ak)
		h.peerSegments.release(pk)
	}, true
}

// isTimeout reports whether err is a deadline expiring (yamux's and
// quic-go's errors are net.Errors with Timeout).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func respond(st network.Stream, status byte) error {
	hdr := encodeResponseHeader(status, 0)
	_, err := st.Write(hdr[:])
	return err
}

// serve answers one request from remote. Admission is checked first, with
// the injected clock, so an admission the janitor has not yet expired gets
// nothing either; no byte of a file goes to a peer without one.
func (s *Swarm) serve(st network.Stream, remote peer.ID, path string, urgent bool) error {
	if !s.admittedAt(remote, s.h.now()) || s.h.gater.refused(remote) {
		return respond(st, statusNotAdmitted)
	}
	f, ok := s.listed[path]
	if !ok {
		return respond(st, statusNotFound)
	}
	if s.upload.consumeOnly {
		return respond(st, statusBusy)
	}
	release, ok := s.upload.acquire(urgent)
	if !ok {
		return respond(st, statusBusy)
	}
	defer release()
	data, ok := s.store.Get(path)
	if !ok {
		return respond(st, statusNotFound)
	}
	// Serve only bytes the signed manifest vouches for: a requester bans a
	// peer that sends a bad file, so sending rotten bytes from a cache would
	// get us banned, and relaying a poisoned file would be worse.
	if !s.opts.TrustStore && !s.storeVerifies {
		if err := f.Check(data); err != nil {
			s.log.Error("held file fails the manifest; not serving it", "path", path, "err", err)
			return respond(st, statusNotFound)
		}
	}
	if err := st.SetDeadline(time.Now().Add(s.upload.deadline(s.h.cfg.StreamTimeout, f.Size))); err != nil {
		return err
	}
	hdr := encodeResponseHeader(statusOK, f.Size)
	if _, err := st.Write(hdr[:]); err != nil {
		return err
	}
	return s.upload.write(s.ctx, st, data, urgent, func(n int) { s.countUp(remote, n) })
}

func (s *Swarm) countUp(p peer.ID, n int) {
	if n <= 0 {
		return
	}
	s.bytesUp.Add(int64(n))
	s.mu.Lock()
	if sp := s.peers[p]; sp != nil {
		sp.bytesUp += int64(n)
	}
	s.mu.Unlock()
}

// Fetch asks peer p for path and returns its bytes once they match the
// manifest; they are then Put into the Store and announced. The caller owns
// the returned slice.
//
// It reads at most the manifest's size for path. A peer whose answer breaks
// the manifest or the protocol (wrong size, hash mismatch, extra bytes, a
// short file ended cleanly, an unknown status) is banned for the session
// (gater, disconnect, its other fetches cancelled) and the error wraps
// ErrPeerBanned and, for bad bytes, segment.ErrIntegrity. Other errors wrap
// ErrNotAdmitted, ErrBusy, ErrNotFound, ErrManifestMismatch,
// segment.ErrUnknownFile, or are transport failures (timeout, reset,
// disconnect, ctx): the peer is not blamed. A transfer that makes no
// progress for Config.IdleTimeout fails; ctx bounds the whole fetch.
func (s *Swarm) Fetch(ctx context.Context, p peer.ID, path string) ([]byte, error) {
	return s.fetchCounted(ctx, p, path, false, nil)
}

// FetchUrgent is Fetch for a file needed soon (sched calls it inside its
// urgent window): the request is flagged so that a loaded peer gives it an
// extra upload slot and most of its upload rate. Peers that predate the
// flag serve it as a normal request.
func (s *Swarm) FetchUrgent(ctx context.Context, p peer.ID, path string) ([]byte, error) {
	return s.fetchCounted(ctx, p, path, true, nil)
}

// FetchProgress is Fetch, or FetchUrgent when urgent, that adds to *got
// the bytes of the answer as they arrive (unverified until it returns), so
// that a scheduler can tell a transfer that is slow but moving from one
// that has stalled, and predict when it ends.
func (s *Swarm) FetchProgress(ctx context.Context, p peer.ID, path string, urgent bool, got *atomic.Int64) ([]byte, error) {
	return s.fetchCounted(ctx, p, path, urgent, got)
}

func (s *Swarm) fetchCounted(ctx context.Context, p peer.ID, path string, urgent bool, got *atomic.Int64) ([]byte, error) {
	data, reason, err := s.fetch(ctx, p, path, urgent, got)
	if err != nil {
		s.failed.Add(1)
		s.h.failedFetch(s.content, reason)
		return nil, fmt.Errorf("fetch %s from %s: %w", path, p.ShortString(), err)
	}
	return data, nil
}

func (s *Swarm) fetch(ctx context.Context, p peer.ID, path string, urgent bool, got *atomic.Int64) (_ []byte, reason string, _ error) {
	f, ok := s.listed[path]
	if !ok {
		return nil, "unknown_file", fmt.Errorf("%w: %q", segment.ErrUnknownFile, path)
	}
	if s.isClosed() {
		return nil, "closed", errSwarmClosed
	}
	if s.h.gater.isBanned(p) {
		return nil, "banned", ErrPeerBanned
	}
	s.mu.Lock()
	sp := s.peers[p]
	admitted := sp != nil && s.h.now().Before(sp.admittedUntil)
	mismatch := sp != nil && sp.mismatch
	s.mu.Unlock()
	// We fetch only from peers that proved an entitlement to this content:
	// bytes are verified anyway, but a request tells the peer what we watch.
	if !admitted {
		return nil, "not_admitted", fmt.Errorf("%w: it presented no valid ticket to us", ErrNotAdmitted)
	}
	if mismatch {
		return nil, "mismatch", ErrManifestMismatch
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.h.trackFetch(p, &cancel)()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	// The buffer is reserved against the host's memory budget before it is
	// allocated, sized by the manifest, never by the peer's header.
	if err := s.h.reserve(f.Size); err != nil {
		return nil, "resources", err
	}
	defer s.h.release(f.Size)

	start := time.Now()
	st, err := s.h.h.NewStream(network.WithNoDial(ctx, "fetch"), p, SegmentProtocol)
	if err != nil {
		return nil, "transport", err
	}
	resetOnCancel := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer resetOnCancel()
	data, err := s.request(st, f, urgent, got)
	if err != nil {
		_ = st.Reset()
		var v *violation
		if errors.As(err, &v) {
			s.h.Ban(p, v.Error())
			return nil, "banned", fmt.Errorf("%w: %w", ErrPeerBanned, err)
		}
		if s.h.gater.isBanned(p) {
			return nil, "banned", fmt.Errorf("%w: %w", ErrPeerBanned, err)
		}
		if ctx.Err() != nil && !errors.Is(err, ErrNotAdmitted) {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, reasonOf(err), err
	}
	_ = st.Close()
	elapsed := time.Since(start)

	if err := s.store.Put(path, data); err != nil {
		return nil, "store", fmt.Errorf("store: %w", err)
	}
	s.countDown(p, len(data), elapsed)
	s.Announce(path)
	return data, "", nil
}

// violation is a peer's breach of the manifest or the protocol: grounds for a ban.
type violation struct{ err error }

func (v *violation) Error() string { return v.err.Error() }
func (v *violation) Unwrap() error { return v.err }

func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrNotAdmitted):
		return "not_admitted"
	}
	return "transport"
}

// request runs one exchange on st and returns bytes matching f, counting
// the body's bytes into got (if not nil) as they arrive.
func (s *Swarm) request(st network.Stream, f segment.File, urgent bool, got *atomic.Int64) ([]byte, error) {
	if err := st.Scope().SetService(serviceName); err != nil {
		return nil, err
	}
	if err := st.SetDeadline(time.Now().Add(s.h.cfg.StreamTimeout)); err != nil {
		return nil, err
	}
	req, err := encodeSegmentRequest(s.content, f.Path, urgent)
	if err != nil {
		return nil, err
	}
	if _, err := st.Write(req); err != nil {
		return nil, err
	}
	// The request is written whole; if the peer answers and closes its
	// side first (QUIC's STOP_SENDING), CloseWrite fails harmlessly.
	_ = st.CloseWrite()
	// The answer must start, and then keep moving, within the idle
	// timeout: a stalled or vanished peer is given up on fast.
	idle := s.h.cfg.IdleTimeout
	armed := time.Now()
	if err := st.SetReadDeadline(armed.Add(idle)); err != nil {
		return nil, err
	}
	status, size, err := readResponseHeader(st)
	if errors.Is(err, ErrMalformed) {
		return nil, &violation{err}
	}
	if err != nil {
		return nil, err
	}
	switch status {
	case statusOK:
	case statusNotAdmitted:
		return nil, fmt.Errorf("%w: the peer has not admitted us", ErrNotAdmitted)
	case statusBusy:
		return nil, ErrBusy
	default: // statusNotFound, statusBadRequest
		return nil, ErrNotFound
	}
	// The size in the header must be the manifest's: a peer announcing
	// anything else is sending another file (swapped, truncated, padded).
	if size != f.Size {
		return nil, &violation{fmt.Errorf("%w: %q announced as %d bytes, manifest says %d", segment.ErrIntegrity, f.Path, size, f.Size)}
	}
	buf := make([]byte, f.Size)
	off, eof := 0, false
	for off < len(buf) {
		n, err := st.Read(buf[off:])
		off += n
		if n > 0 && got != nil {
			got.Add(int64(n))
		}
		if n > 0 {
			// Re-arm the idle deadline on progress, at most four times per
			// timeout: a deadline per read would cost a timer reset each.
			if now := time.Now(); now.Sub(armed) > idle/4 {
				armed = now
				if err := st.SetReadDeadline(now.Add(idle)); err != nil {
					return nil, err
				}
			}
		}
		if err == io.EOF { //nolint:errorlint // identity on purpose, see below
			if off == len(buf) {
				eof = true
				break
			}
			// A clean end of stream (the peer's FIN) before size bytes
			// is a truncated file. A reset or a dropped connection is
			// not provably the peer's doing and surfaces as another
			// error: yamux wraps io.EOF from a dead TCP connection in
			// ErrStreamReset, which must not match here, hence == and
			// not errors.Is.
			return nil, &violation{fmt.Errorf("%w: %q ended after %d of %d bytes", segment.ErrIntegrity, f.Path, off, f.Size)}
		}
		if err != nil {
			return nil, err
		}
	}
	// After size bytes the peer closes: one more byte means an oversized
	// answer. (A reset here is fine if the bytes verify.)
	if !eof {
		var extra [1]byte
		if n, _ := st.Read(extra[:]); n > 0 {
			return nil, &violation{fmt.Errorf("%w: %q has bytes past the manifest's %d", segment.ErrIntegrity, f.Path, f.Size)}
		}
	}
	if err := f.Check(buf); err != nil {
		return nil, &violation{err}
	}
	return buf, nil
}

// countDown records n verified bytes from p, fetched in elapsed.
func (s *Swarm) countDown(p peer.ID, n int, elapsed time.Duration) {
	s.bytesDown.Add(int64(n))
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.peers[p]
	if sp == nil {
		return
	}
	sp.bytesDown += int64(n)
	if elapsed <= 0 {
		elapsed = time.Microsecond
	}
	r := float64(n) / elapsed.Seconds()
	if sp.ewma == 0 {
		sp.ewma = r
	} else {
		sp.ewma = 0.3*r + 0.7*sp.ewma
	}
}

// reserve takes n bytes of the host's memory budget for a fetch buffer.
func (h *Host) reserve(n int64) error {
	return h.h.Network().ResourceManager().ViewService(serviceName, func(sc network.ServiceScope) error {
		if err := sc.ReserveMemory(int(n), network.ReservationPriorityHigh); err != nil {
			return fmt.Errorf("reserve %d bytes for the fetch: %w", n, err)
		}
		return nil
	})
}

func (h *Host) release(n int64) {
	_ = h.h.Network().ResourceManager().ViewService(serviceName, func(sc network.ServiceScope) error {
		sc.ReleaseMemory(int(n))
		return nil
	})
}
