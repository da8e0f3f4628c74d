package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// HaveProtocol carries have-maps: one long-lived stream per admitted peer,
// content and direction, opened by the side whose files it announces.
const HaveProtocol protocol.ID = "/sealmesh/have/1.0.0"

// maxPendingHaves bounds the announcements queued for one slow peer; past
// it the queue is replaced by one whole-bitfield frame.
const maxPendingHaves = 4096

// haveSender feeds our have-map to one admitted peer.
type haveSender struct {
	s      *Swarm
	p      peer.ID
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	pending []int
	resync  bool
	wake    chan struct{}
}

func newHaveSender(s *Swarm, p peer.ID) *haveSender {
	ctx, cancel := context.WithCancel(s.ctx)
	return &haveSender{s: s, p: p, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
}

func (hs *haveSender) queue(i int) {
	hs.mu.Lock()
	if len(hs.pending) >= maxPendingHaves {
		hs.resync, hs.pending = true, nil
	} else if !hs.resync {
		hs.pending = append(hs.pending, i)
	}
	hs.mu.Unlock()
	select {
	case hs.wake <- struct{}{}:
	default:
	}
}

func (hs *haveSender) stop() { hs.cancel() }

// run keeps a have stream open to the peer while it stays admitted,
// reopening it (with a fresh hello) after a failure, with backoff.
func (hs *haveSender) run() {
	defer hs.s.wg.Done()
	// A peer resets every stream but the ticket exchange until it has
	// admitted us (inbound.go), so wait for its answer to our ticket.
	if !hs.s.waitAdmittedUs(hs.ctx, hs.p) {
		return
	}
	backoff := 250 * time.Millisecond
	for {
		err := hs.loop()
		if hs.ctx.Err() != nil {
			return
		}
		hs.s.log.Debug("have stream failed; retrying", "remote", hs.p.String(), "err", err, "in", backoff)
		select {
		case <-hs.ctx.Done():
			return
		case <-time.After(backoff):
		}
		if !hs.s.admittedAt(hs.p, hs.s.h.now()) || hs.s.h.h.Network().Connectedness(hs.p) != network.Connected {
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (hs *haveSender) loop() (err error) {
	s := hs.s
	st, err := s.h.h.NewStream(network.WithNoDial(hs.ctx, "have"), hs.p, HaveProtocol)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(hs.ctx, func() { _ = st.Reset() })
	defer stop()
	defer func() {
		if err != nil {
			_ = st.Reset()
		} else {
			_ = st.Close()
		}
	}()
	if err := st.Scope().SetService(serviceName); err != nil {
		return err
	}
	_ = st.CloseRead() // the receiver never writes
	hs.mu.Lock()
	hs.pending, hs.resync = nil, false // the hello carries everything
	hs.mu.Unlock()
	bits, nbits := hs.snapshot()
	msg, err := encodeHello(hello{content: s.content, digest: s.digest, nbits: nbits, bits: bits})
	if err != nil {
		return err
	}
	if err := hs.send(st, msg); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	var buf []byte
	for {
		select {
		case <-hs.ctx.Done():
			return nil
		case <-hs.wake:
		}
		hs.mu.Lock()
		pending, resync := hs.pending, hs.resync
		hs.pending, hs.resync = nil, false
		hs.mu.Unlock()
		buf = buf[:0]
		if resync {
			bits, nbits := hs.snapshot()
			buf = encodeBitfield(nbits, bits)
		} else {
			for _, i := range pending {
				f := encodeHave(i)
				buf = append(buf, f[:]...)
			}
		}
		if len(buf) == 0 {
			continue
		}
		if err := hs.send(st, buf); err != nil {
			return err
		}
	}
}

// snapshot returns our bitfield as announced: empty when consume-only.
func (hs *haveSender) snapshot() (Bitfield, int) {
	s := hs.s
	n := len(s.files)
	if s.opts.Upload.ConsumeOnly {
		return newBitfield(n), n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.have.Clone(), n
}

func (hs *haveSender) send(st network.Stream, b []byte) error {
	if err := st.SetWriteDeadline(time.Now().Add(hs.s.h.cfg.StreamTimeout)); err != nil {
		return err
	}
	_, err := st.Write(b)
	return err
}

// handleHave is the HaveProtocol handler: it receives one peer's have-map.
func (h *Host) handleHave(st network.Stream) {
	if err := h.serveHave(st); err != nil {
		h.log.Debug("have stream", "remote", st.Conn().RemotePeer().String(), "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (h *Host) serveHave(st network.Stream) error {
	if err := st.Scope().SetService(serviceName); err != nil {
		return fmt.Errorf("attach to service: %w", err)
	}
	if err := st.Scope().ReserveMemory(maxHaveMsg, network.ReservationPriorityAlways); err != nil {
		return fmt.Errorf("reserve memory: %w", err)
	}
	defer st.Scope().ReleaseMemory(maxHaveMsg)
	// The sender writes its hello as it opens the stream: like a segment
	// request, it gets RequestTimeout, and a stream left silent is a strike.
	if err := st.SetReadDeadline(time.Now().Add(h.cfg.RequestTimeout)); err != nil {
		return err
	}
	remote := st.Conn().RemotePeer()
	br := bufio.NewReaderSize(st, 4096)
	hl, err := readHello(br)
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			h.evict(remote, "malformed have message")
		}
		if isTimeout(err) {
			h.requestTimeouts.Add(1)
			h.strike(remote, fmt.Sprintf("%d inbound streams without a request for %v", h.cfg.IdleStreamStrikes, h.cfg.RequestTimeout))
		}
		return err
	}
	s := h.swarm(hl.content)
	if s == nil {
		return fmt.Errorf("have-map for content %q, which we have not joined", hl.content)
	}
	// The sender opens this stream once it has admitted us and we have
	// admitted it (we answered its ticket: see waitAdmittedUs), so this
	// wait is for a peer admitted for another content only.
	if !s.waitAdmitted(s.ctx, remote, h.cfg.RequestTimeout) {
		return fmt.Errorf("have-map from a peer not admitted: %w", ErrNotAdmitted)
	}
	if hl.digest != s.digest || hl.nbits != len(s.files) {
		// Another packaging of the content: not an offence, but its files
		// would fail our manifest, so we never ask it for any.
		s.setMismatch(remote)
		return nil
	}
	if !s.setInbound(remote, st, hl.bits) {
		return fmt.Errorf("peer dropped: %w", ErrNotAdmitted)
	}
	if err := st.SetReadDeadline(time.Time{}); err != nil { // long-lived: idle is normal
		return err
	}
	for {
		fr, err := readHaveFrame(br, hl.nbits)
		if err == io.EOF { //nolint:errorlint // a clean end between frames
			return nil
		}
		if err != nil {
			// Frames are bounded by their format (an index, or a
			// bitfield of exactly the manifest's size); anything else is
			// a peer not speaking the protocol, and it is dropped.
			if errors.Is(err, ErrMalformed) {
				h.evict(remote, "malformed have message")
			}
			return err
		}
		if !s.applyFrame(remote, st, fr) {
			return nil
		}
	}
}

func (s *Swarm) setMismatch(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp := s.peers[p]; sp != nil {
		sp.mismatch = true
		sp.have = nil
	}
	s.log.Info("peer has another manifest for the content; not fetching from it", "remote", p.String())
}

// setInbound installs st as p's have stream with initial bits, replacing an
// older stream. It reports false when p is no longer admitted.
func (s *Swarm) setInbound(p peer.ID, st network.Stream, bits Bitfield) bool {
	s.mu.Lock()
	sp := s.peers[p]
	if sp == nil || !s.h.now().Before(sp.admittedUntil) {
		s.mu.Unlock()
		return false
	}
	old := sp.in
	sp.in = st
	sp.mismatch = false
	prev := sp.have
	sp.have = bits
	added := s.newlySetLocked(prev, bits)
	hooks := s.onHave
	s.mu.Unlock()
	if old != nil && old != st {
		_ = old.Reset()
	}
	s.callHooks(hooks, p, added)
	return true
}

// applyFrame applies one frame from p's current have stream st. It reports
// false when st is no longer current.
func (s *Swarm) applyFrame(p peer.ID, st network.Stream, fr haveFrame) bool {
	s.mu.Lock()
	sp := s.peers[p]
	if sp == nil || sp.in != st {
		s.mu.Unlock()
		return false
	}
	var added []int
	switch fr.kind {
	case frameHave:
		if sp.have.set(fr.index) {
			added = []int{fr.index}
		}
	case frameBitfield:
		added = s.newlySetLocked(sp.have, fr.bits)
		sp.have = fr.bits
	}
	hooks := s.onHave
	s.mu.Unlock()
	s.callHooks(hooks, p, added)
	return true
}

func (s *Swarm) newlySetLocked(prev, next Bitfield) []int {
	if len(s.onHave) == 0 {
		return nil
	}
	var out []int
	for i := range s.files {
		if next.Has(i) && !prev.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

func (s *Swarm) callHooks(hooks []func(peer.ID, string), p peer.ID, added []int) {
	for _, i := range added {
		for _, f := range hooks {
			f(p, s.files[i].Path)
		}
	}
}

// admittedUsLocked returns the channel closed once p has answered our
// ticket with "admitted"; s.mu must be held.
func (s *Swarm) admittedUsLocked(p peer.ID) chan struct{} {
	sp := s.peerLocked(p)
	if sp.admittedUs == nil {
		sp.admittedUs = make(chan struct{})
	}
	return sp.admittedUs
}

// peerAdmittedUs records that p accepted our ticket for this content.
func (s *Swarm) peerAdmittedUs(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	ch := s.admittedUsLocked(p)
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// waitAdmittedUs waits until p has accepted our ticket, or ctx ends.
func (s *Swarm) waitAdmittedUs(ctx context.Context, p peer.ID) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	ch := s.admittedUsLocked(p)
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
