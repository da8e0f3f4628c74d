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
// Version 2 names the swarm by a tag rather than by its content ID.
const TicketProtocol protocol.ID = "/sealmesh/ticket/2.0.0"

// TicketVerifier checks that ticket admits the authenticated peer remote to
// content and returns the admission. cmd and player wire it to the license
// server's verifier; transport never sees keys.
//
// It must check the signature, that the ticket names remote and content,
// and that it is valid now; any error refuses admission (the error is
// logged, never sent to the peer). It must be safe for concurrent use.
type TicketVerifier interface {
	VerifyTicket(ticket []byte, remote peer.ID, content string) (Admission, error)
}

// Admission is what a verified ticket grants.
type Admission struct {
	// Expiry ends the admission unless a renewed ticket extends it.
	Expiry time.Time
	// Budget is the ticket's opaque per-account value: the same for every
	// peer ID of one subscription (for one content), so per-account limits
	// hold however many identities an account mints. Empty: the peer ID
	// stands for its own account.
	Budget string
}

// budgetKey returns the key p's inbound budget is counted under: the Budget
// of its admission (in the first swarm, by content ID, that admits it now),
// or its peer ID when it has none. It takes h.mu and each Swarm.mu in turn:
// call it with neither held.
func (h *Host) budgetKey(p peer.ID) string {
	now := h.now()
	best, key := "", ""
	for _, s := range h.swarmsSnapshot() {
		s.mu.Lock()
		sp := s.peers[p]
		if sp != nil && now.Before(sp.admittedUntil) && sp.budget != "" && (key == "" || s.content < best) {
			best, key = s.content, sp.budget
		}
		s.mu.Unlock()
	}
	if key == "" {
		return p.String()
	}
	return key
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
	if err := st.SetDeadline(time.Now().Add(h.cfg.StreamTimeout)); err != nil {
		return err
	}
	tag, ticket, err := readTicketMsg(io.LimitReader(st, maxTicketMsg))
	if err != nil {
		return err
	}
	// The remote peer ID comes from the secure channel (Noise or TLS 1.3
	// proved possession of its key); the ticket must name exactly that ID,
	// which is what makes a ticket copied off another peer worthless.
	remote := st.Conn().RemotePeer()
	s := h.swarmByTag(tag)
	if s == nil {
		_, err := st.Write([]byte{ticketUnknownContent})
		return err
	}
	content := s.content
	adm, err := s.opts.Verifier.VerifyTicket(ticket, remote, content)
	if err == nil && !h.now().Before(adm.Expiry) {
		err = fmt.Errorf("verifier returned an expiry in the past (%s)", adm.Expiry.Format(time.RFC3339))
	}
	if err == nil && s.isRevoked(remote, h.now()) {
		err = errRevoked
	}
	if err != nil {
		if _, werr := st.Write([]byte{ticketRejected}); werr != nil {
			h.log.Debug("ticket reply", "err", werr)
		}
		h.rejected(remote, content, err)
		return nil
	}
	first := s.admit(remote, adm)
	_, err = st.Write([]byte{ticketAdmitted})
	// M3: a listener shows its own ticket only now that the dialer has
	// shown a valid one, never to a connection that has shown nothing. A
	// host that dialed remote presented when it connected, so it need not
	// answer again.
	if first && !h.dialed(remote) {
		s.presentAsync(remote)
	}
	return err
}

// swarmByTag returns the joined swarm whose tag is tag, or nil.
func (h *Host) swarmByTag(tag [swarmTagLen]byte) *Swarm {
	for _, s := range h.swarmsSnapshot() {
		if swarmTag(s.content) == tag {
			return s
		}
	}
	return nil
}

// errRevoked refuses a ticket of a peer the license server said was revoked.
var errRevoked = errors.New("the license server revoked this peer's entitlement")

// dialed reports whether this host holds a connection to p that it opened.
func (h *Host) dialed(p peer.ID) bool {
	for _, c := range h.h.Network().ConnsToPeer(p) {
		if c.Stat().Direction == network.DirOutbound {
			return true
		}
	}
	return false
}

// mayPresent reports whether this host may show its tickets to p: only
// when it dialed p (the dialer shows its ticket first) or when p holds an
// admission here (it showed a valid ticket of its own). A listener never
// shows a ticket, which names its peer ID and is valid for minutes, to a
// connection that has proven nothing (issue 12 M3: a stranger dialing a
// seed kept the seed's ticket).
func (h *Host) mayPresent(p peer.ID) bool {
	if h.dialed(p) {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.admittedAnywhereLocked(p)
}

// revokedMemory is how long a swarm refuses a peer the license server said
// was revoked: longer than the tickets a server issues by default, and
// refreshed by every announce answer that still lists it.
const revokedMemory = 10 * time.Minute

// maxRevokedPeers bounds a swarm's memory of revoked peers.
const maxRevokedPeers = 4096

func (s *Swarm) isRevoked(p peer.ID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.revoked[p]
	return ok && now.Before(until)
}

// revokePeers acts on a tracker answer's revocations (L5): the peers lose
// their admission at once and are disconnected (unless admitted to another
// content), and a ticket they present again is refused for revokedMemory,
// although it verifies, because it was issued before the revocation.
func (s *Swarm) revokePeers(ps []peer.ID) {
	if len(ps) == 0 {
		return
	}
	now := s.h.now()
	s.mu.Lock()
	for p, until := range s.revoked {
		if !now.Before(until) {
			delete(s.revoked, p)
		}
	}
	var cut []peer.ID
	for _, p := range ps {
		if p == s.h.ID() || (len(s.revoked) >= maxRevokedPeers && s.revoked[p].IsZero()) {
			continue
		}
		s.revoked[p] = now.Add(revokedMemory)
		if _, ok := s.peers[p]; ok {
			cut = append(cut, p)
		}
	}
	s.mu.Unlock()
	for _, p := range cut {
		s.dropPeer(p)
		s.h.rejected(p, s.content, errRevoked)
	}
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

// presentAsync presents our ticket to p in the background, if we may
// (mayPresent).
func (s *Swarm) presentAsync(p peer.ID) {
	if p == s.h.ID() || s.h.gater.refused(p) || !s.h.mayPresent(p) {
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
		// Each side presents once per connection (the listener once per
		// admission), so a presentation lost to a transient stream error
		// would cost the admission: retry a few times while still connected.
		backoff := 100 * time.Millisecond
		for try := 1; ; try++ {
			err := s.present(p)
			if err == nil || s.ctx.Err() != nil {
				return
			}
			s.log.Debug("present ticket", "remote", p.String(), "try", try, "err", err)
			if errors.Is(err, errTicketRefused) || try == presentTries || s.h.h.Network().Connectedness(p) != network.Connected {
				return
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff *= 2
		}
	}()
}

// presentTries bounds the attempts of one presentation.
const presentTries = 3

var errTicketRefused = errors.New("peer refused our ticket")

func (s *Swarm) present(p peer.ID) error {
	if !s.h.mayPresent(p) {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.h.cfg.StreamTimeout)
	defer cancel()
	raw, _, err := s.currentTicket(ctx)
	if err != nil {
		return err
	}
	msg, err := encodeTicketMsg(swarmTag(s.content), raw)
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
		return nil
	case ticketUnknownContent:
		return nil // the peer is not in this swarm; nothing to do
	case ticketRejected:
		return errTicketRefused
	default:
		return malformed("ticket reply %d", b[0])
	}
}
