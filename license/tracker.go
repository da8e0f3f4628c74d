package license

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// The tracker: which entitled peers of a content are online, and where.
//
// It is soft state, in memory only: a restart empties it and peers fill it
// again at their next announce (they announce at least once per TicketTTL).
// Each content holds at most TrackerPeersPerContent entries; when full, the
// entry closest to expiry makes room.
//
// A ticket is not a credential for announcing on its own: an announce also
// carries a signature by the ticket's peer's libp2p key over the ticket, the
// addresses and a fresh time (proof.go). So only the peer itself can set its
// entry's addresses, and only the holders of a live ticket, proven theirs,
// get peer lists (issue 12 M3: a stranger that captured a seed's ticket read
// viewers' addresses and pointed new viewers at an address of its choice).
// An entry is keyed by the peer ID the proof is checked against, so no
// proof of one peer can overwrite another's entry, and a proof not later
// than the entry's last one is refused (a replayed announce).

type trackerEntry struct {
	peerID      string
	accountHash string
	addrs       []string
	group       string
	expiry      time.Time
	proofTime   time.Time
}

type tracker struct {
	max   int
	group func(netip.Addr) string

	mu       sync.Mutex
	contents map[string]map[string]*trackerEntry
}

func newTracker(max int, group func(netip.Addr) string) *tracker {
	return &tracker{max: max, group: group, contents: make(map[string]map[string]*trackerEntry)}
}

// errAnnounceReplayed refuses an announce whose proof is not later than
// the one that set the peer's entry.
func errAnnounceReplayed() error {
	return fail(http.StatusConflict, CodeProofReplayed, "this announce's time is not later than the peer's last one: sign a fresh announce")
}

// announce records e for content and returns up to want other live peers,
// those of e's network group first. skip filters out revoked peers.
func (t *tracker) announce(content string, e *trackerEntry, want int, now time.Time, skip func(*trackerEntry) bool) ([]TrackerPeer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.contents[content]
	if m == nil {
		m = make(map[string]*trackerEntry)
		t.contents[content] = m
	}
	if old, ok := m[e.peerID]; ok && old.expiry.After(now) && !e.proofTime.After(old.proofTime) {
		return nil, errAnnounceReplayed()
	} else if !ok && len(m) >= t.max {
		t.evictLocked(m, now)
	}
	m[e.peerID] = e

	near := make([]TrackerPeer, 0, want)
	var far []TrackerPeer
	// Go's map order is randomized, so peers beyond the nearest ones are a
	// different sample for each announcer, which spreads the load.
	for id, o := range m {
		if len(near) >= want {
			break
		}
		if id == e.peerID || !o.expiry.After(now) || len(o.addrs) == 0 || (skip != nil && skip(o)) {
			continue
		}
		p := TrackerPeer{PeerID: o.peerID, Addrs: append([]string(nil), o.addrs...)}
		if e.group != "" && o.group == e.group {
			near = append(near, p)
		} else if len(far) < want {
			far = append(far, p)
		}
	}
	out := append(near, far...)
	if len(out) > want {
		out = out[:want]
	}
	return out, nil
}

func (t *tracker) evictLocked(m map[string]*trackerEntry, now time.Time) {
	var victim string
	var earliest time.Time
	for id, o := range m {
		if !o.expiry.After(now) {
			delete(m, id)
			continue
		}
		if victim == "" || o.expiry.Before(earliest) {
			victim, earliest = id, o.expiry
		}
	}
	if len(m) >= t.max && victim != "" {
		delete(m, victim)
	}
}

// remove drops a peer from every content (revocation).
func (t *tracker) prune(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, m := range t.contents {
		for id, o := range m {
			if !o.expiry.After(now) {
				delete(m, id)
			}
		}
		if len(m) == 0 {
			delete(t.contents, c)
		}
	}
}

// PrefixGroup is the default network grouping of the tracker: the /24 of
// an IPv4 address, the /48 of an IPv6 address, "" for an invalid one.
func PrefixGroup(a netip.Addr) string {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	} else if !a.Is6() {
		return ""
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// PrefixTable returns a network grouping that maps an address to the name
// of the longest prefix of table containing it (an operator's ISP or
// region table), and to PrefixGroup for addresses in none.
func PrefixTable(table map[netip.Prefix]string) func(netip.Addr) string {
	t := make(map[netip.Prefix]string, len(table))
	for p, n := range table {
		t[p.Masked()] = n
	}
	return func(a netip.Addr) string {
		a = a.Unmap()
		best, name := -1, ""
		for p, n := range t {
			if p.Bits() > best && p.Contains(a) {
				best, name = p.Bits(), n
			}
		}
		if best < 0 {
			return PrefixGroup(a)
		}
		return name
	}
}

// multiaddrIP returns the IP of a "/ip4/..." or "/ip6/..." multiaddr.
func multiaddrIP(ma string) (netip.Addr, bool) {
	parts := strings.SplitN(ma, "/", 4)
	if len(parts) < 3 || (parts[1] != "ip4" && parts[1] != "ip6") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(parts[2])
	return a, err == nil
}

func publicLooking(a netip.Addr) bool {
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate()
}

// announcerGroup picks the address that places a peer: the remote address
// of its request when that is public, else its first public-looking listen
// address, else the remote address anyway (peers on one LAN or host).
func (s *Server) announcerGroup(remote netip.Addr, addrs []string) string {
	if publicLooking(remote) {
		return s.cfg.NetworkGroup(remote)
	}
	for _, ma := range addrs {
		if a, ok := multiaddrIP(ma); ok && publicLooking(a) {
			return s.cfg.NetworkGroup(a)
		}
	}
	if remote.IsValid() {
		return s.cfg.NetworkGroup(remote)
	}
	return ""
}

// handleAnnounce serves POST /v1/announce. The ticket must verify, be
// live and known to this server; the proof must be by the ticket's peer,
// over this ticket, these addresses and a fresh time. Only then is anything
// recorded or any peer listed.
func (s *Server) handleAnnounce(w http.ResponseWriter, r *http.Request, body []byte) error {
	ask, err := parseAnnounceRequest(body)
	if err != nil {
		return err
	}
	t, err := s.tickets.parse(ask.ticket)
	if err != nil {
		return fail(http.StatusUnauthorized, CodeInvalidTicket, "the ticket is malformed or not signed by this server")
	}
	now := s.cfg.Now()
	if ask.peerID != "" && ask.peerID != t.PeerID {
		return fail(http.StatusForbidden, CodeTicketPeerMismatch, "the ticket names another peer ID")
	}
	if !now.Before(t.Expiry) || now.Before(t.NotBefore) {
		return fail(http.StatusUnauthorized, CodeTicketExpired, "the ticket has expired: get a new one from /v1/ticket")
	}
	proofTime, err := ask.proof.verify(t.PeerID, announceProofMessage(string(ask.ticket), ask.proof.Time, ask.addrs), now)
	if err != nil {
		return err
	}
	account, content, ok := s.book.lookup(t.TicketID, now)
	if !ok {
		return fail(http.StatusUnauthorized, CodeInvalidTicket, "this server holds no record of the ticket (it may have restarted): get a new one from /v1/ticket")
	}
	st := s.deps.State
	if st.isRevoked(RevokePeer, t.PeerID) {
		return fail(http.StatusForbidden, CodePeerRevoked, "this peer ID is revoked")
	}
	if st.isRevoked(RevokeAccount, account) {
		return fail(http.StatusForbidden, CodeAccountRevoked, "this account is revoked")
	}
	exp := now.Add(s.cfg.TicketTTL)
	if t.Expiry.Before(exp) {
		exp = t.Expiry
	}
	e := &trackerEntry{peerID: t.PeerID, accountHash: account, addrs: append([]string(nil), ask.addrs...),
		group: s.announcerGroup(s.clientIP(r), ask.addrs), expiry: exp, proofTime: proofTime}
	peers, err := s.tracker.announce(content, e, ask.want, now, func(o *trackerEntry) bool {
		return st.isRevoked(RevokePeer, o.peerID) || st.isRevoked(RevokeAccount, o.accountHash)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, AnnounceResponse{Peers: peers, Revoked: s.book.revokedPeers(content, st, now)})
	return nil
}
