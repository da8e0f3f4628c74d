package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TicketProtocol carries swarm tickets: one stream per presentation.
const TicketProtocol protocol.ID = "/sealmesh/ticket/1.0.0"

// TicketVerifier checks that ticket admits the authenticated peer remote to
// content and returns when the admission ends. cmd and player wire it to the
// license server's verifier; transport never sees keys.
//
// It must check the signature, that the ticket names remote and content,
// and that it is valid now; any error refuses admission (the error is
// logged, never sent to the peer). It must be safe for concurrent use.
type TicketVerifier interface {
	VerifyTicket(ticket []byte, remote peer.ID, content string) (expiry time.Time, err error)
}

// TicketSource yields this host's own ticket for content (renewed by the
// caller's implementation before expiry). The swarm asks again when 80% of
// the ticket's lifetime has passed and presents a new ticket to every
// connected peer when the bytes change. It must be safe for concurrent use.
type TicketSource interface {
	Ticket(ctx context.Context, content string) (ticket []byte, expiry time.Time, err error)
}

// handleTicket is the TicketProtocol handler.
func (h *Host) handleTicket(st network.Stream) {
	if err := h.serveTicket(st); err != nil {
		h.log.Debug("ticket stream", "remote", st.Conn().RemotePeer().String(), "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (h *Host) serveTicket(st network.Stream) error {
	if err := st.Scope().SetService(serviceName); err != nil {
		return fmt.Errorf("attach to service: %w", err)
	}
	if err := st.Scope().ReserveMemory(maxTicketMsg, network.ReservationPriorityAlways); err != nil {
		return fmt.Errorf("reserve memory: %w", err)
	}
	defer st.Scope().ReleaseMemory(maxTicketMsg)
	if err := st.SetDeadline(time.Now().Add(h.cfg.RequestTimeout)); err != nil {
		return err
	}
	content, ticket, err := readTicketMsg(io.LimitReader(st, maxTicketMsg))
	if err != nil {
		return err
	}
	// The remote peer ID comes from the secure channel (Noise or TLS 1.3
	// proved possession of its key); the ticket must name exactly that ID,
	// which is what makes a ticket copied off another peer worthless.
	remote := st.Conn().RemotePeer()
	s := h.swarm(content)
	if s == nil {
		_, err := st.Write([]byte{ticketUnknownContent})
		return err
	}
	expiry, err := s.opts.Verifier.VerifyTicket(ticket, remote, content)
	if err == nil && !h.now().Before(expiry) {
		err = fmt.Errorf("verifier returned an expiry in the past (%s)", expiry.Format(time.RFC3339))
	}
	if err != nil {
		if _, werr := st.Write([]byte{ticketRejected}); werr != nil {
			h.log.Debug("ticket reply", "err", werr)
		}
		h.rejected(remote, content, err)
		return nil
	}
	s.admit(remote, expiry)
	_, err = st.Write([]byte{ticketAdmitted})
	return err
}

// currentTicket returns our ticket, asking the source for a new one once 80%
// of the current one's lifetime has passed.
func (s *Swarm) currentTicket(ctx context.Context) (raw []byte, expiry time.Time, err error) {
	now := s.h.now()
	s.mu.Lock()
	t := s.ticket
	s.mu.Unlock()
	if t.raw != nil && now.Before(renewAt(t)) {
		return t.raw, t.expiry, nil
	}
	raw, expiry, err = s.opts.Tickets.Ticket(ctx, s.content)
	if err != nil {
		if t.raw != nil && now.Before(t.expiry) {
			s.log.Warn("ticket renewal failed; presenting the current one", "err", err)
			return t.raw, t.expiry, nil
		}
		return nil, time.Time{}, fmt.Errorf("get ticket: %w", err)
	}
	if len(raw) == 0 || len(raw) > maxTicketLen {
		return nil, time.Time{}, fmt.Errorf("get ticket: %d bytes, want 1..%d", len(raw), maxTicketLen)
	}
	s.mu.Lock()
	s.ticket = ownTicket{raw: bytes.Clone(raw), got: now, expiry: expiry}
	s.mu.Unlock()
	return raw, expiry, nil
}

func renewAt(t ownTicket) time.Time {
	return t.got.Add(t.expiry.Sub(t.got) * 8 / 10)
}

// renewLoop re-presents the ticket to every connected peer when the source
// hands out a new one. It polls every 500 ms (real time) and decides with
// the injected clock, so tests can move time without sleeping through it.
func (s *Swarm) renewLoop() {
	defer s.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		old := s.ticket
		s.mu.Unlock()
		if old.raw != nil && s.h.now().Before(renewAt(old)) {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.h.cfg.StreamTimeout)
		raw, _, err := s.currentTicket(ctx)
		cancel()
		if err != nil {
			s.log.Debug("ticket", "err", err)
			continue
		}
		if !bytes.Equal(raw, old.raw) {
			s.log.Debug("presenting renewed ticket")
			for _, p := range s.h.h.Network().Peers() {
				s.presentAsync(p)
			}
		}
	}
}

// presentAsync presents our ticket to p in the background.
func (s *Swarm) presentAsync(p peer.ID) {
	if p == s.h.ID() || s.h.gater.refused(p) {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if err := s.present(p); err != nil && s.ctx.Err() == nil {
			s.log.Debug("present ticket", "remote", p.String(), "err", err)
		}
	}()
}

var errTicketRefused = errors.New("peer refused our ticket")

func (s *Swarm) present(p peer.ID) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.h.cfg.StreamTimeout)
	defer cancel()
	raw, _, err := s.currentTicket(ctx)
	if err != nil {
		return err
	}
	msg, err := encodeTicketMsg(s.content, raw)
	if err != nil {
		return err
	}
	st, err := s.h.h.NewStream(network.WithNoDial(ctx, "present ticket"), p, TicketProtocol)
	if err != nil {
		return err
	}
	if err := s.exchangeTicket(st, msg); err != nil {
		_ = st.Reset()
		return err
	}
	_ = st.Close()
	return nil
}

func (s *Swarm) exchangeTicket(st network.Stream, msg []byte) error {
	if err := st.Scope().SetService(serviceName); err != nil {
		return err
	}
	if err := st.SetDeadline(time.Now().Add(s.h.cfg.StreamTimeout)); err != nil {
		return err
	}
	if _, err := st.Write(msg); err != nil {
		return err
	}
	// The request is written whole; if the peer answers and closes its
	// side first (QUIC's STOP_SENDING), CloseWrite fails harmlessly.
	_ = st.CloseWrite()
	var b [1]byte
	if _, err := io.ReadFull(st, b[:]); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	switch b[0] {
	case ticketAdmitted:
		s.peerAdmittedUs(st.Conn().RemotePeer())
		return nil
	case ticketUnknownContent:
		return nil // the peer is not in this swarm; nothing to do
	case ticketRejected:
		return errTicketRefused
	default:
		return malformed("ticket reply %d", b[0])
	}
}
