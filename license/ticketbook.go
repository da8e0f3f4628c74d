package license

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The ticket book: which peers hold live tickets, per account and content.
//
// It enforces Config.MaxTicketsPerAccount: an account holds at most that
// many peer IDs with a live ticket per content. A renewal for a peer that
// already holds a slot reuses it, so a player renewing every minute never
// counts twice; the slot frees when the peer's last ticket expires. Without
// the cap one subscription could mint any number of ticketed identities
// (issue 12 M1: 20 identities from one account starved a seed).
//
// It also maps ticket IDs back to their account and content, which tickets
// no longer carry (L3), for /v1/announce and for the revocations announce
// answers list; and it remembers the time of each peer's last accepted
// ticket proof, so a recorded ticket request cannot be replayed.
//
// Like the tracker it is soft state, in memory: a restart forgets it, so
// announces with tickets issued before the restart are refused with
// invalid_ticket (peers then get a new ticket), and each account may mint
// MaxTicketsPerAccount new slots once more. Replicas need it in the same
// shared engine as the tracker.

type bookKey struct{ account, content string }

type ticketSlot struct {
	peerID, account, content string
	expiry                   time.Time // of the peer's latest ticket
	lastProof                time.Time // the time of the latest accepted proof
}

// keep is how long the slot must be remembered: while a ticket is live, and
// while its last proof could still be replayed.
func (s *ticketSlot) keep() time.Time {
	if p := s.lastProof.Add(ProofSkew); p.After(s.expiry) {
		return p
	}
	return s.expiry
}

type ticketRef struct {
	slot   *ticketSlot
	expiry time.Time
}

type ticketBook struct {
	mu        sync.Mutex
	slots     map[bookKey]map[string]*ticketSlot // (account, content) -> peer ID -> slot
	byContent map[string]map[*ticketSlot]struct{}
	tickets   map[string]ticketRef // ticket ID -> its slot, while the ticket is live
	// revokedCache holds, per content, the peers listed as revoked in
	// announce answers, computed for one version of the revocation list.
	revokedCache map[string]revokedList
}

type revokedList struct {
	version *map[string]Revocation
	at      time.Time
	peers   []string
}

func newTicketBook() *ticketBook {
	return &ticketBook{
		slots:        make(map[bookKey]map[string]*ticketSlot),
		byContent:    make(map[string]map[*ticketSlot]struct{}),
		tickets:      make(map[string]ticketRef),
		revokedCache: make(map[string]revokedList),
	}
}

// issue records a ticket for peerID, or refuses it: 409 proof_replayed if
// the proof is not later than the last one accepted for that peer, 429
// too_many_tickets if the account already holds limit other live slots for
// the content (limit < 0: no limit).
func (b *ticketBook) issue(account, content, peerID, ticketID string, proofTime, expiry, now time.Time, limit int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := bookKey{account, content}
	m := b.slots[k]
	if m == nil {
		m = make(map[string]*ticketSlot)
		b.slots[k] = m
	}
	live := 0
	var soonest time.Time
	for id, s := range m {
		if !s.keep().After(now) {
			b.dropLocked(k, id, s)
			continue
		}
		if s.expiry.After(now) && id != peerID {
			live++
			if soonest.IsZero() || s.expiry.Before(soonest) {
				soonest = s.expiry
			}
		}
	}
	s := m[peerID]
	if s != nil && !proofTime.After(s.lastProof) {
		return fail(http.StatusConflict, CodeProofReplayed, "this proof's time is not later than the last one this server accepted for the peer: sign a fresh request")
	}
	if limit >= 0 && live >= limit && (s == nil || !s.expiry.After(now)) {
		e := fail(http.StatusTooManyRequests, CodeTooManyTickets,
			fmt.Sprintf("this account already holds %d live swarm tickets for this content (one per peer ID; the limit is %d): stop another player, or retry when one expires", live, limit))
		e.retryAfter = max1s(soonest.Sub(now))
		return e
	}
	if s == nil {
		s = &ticketSlot{peerID: peerID, account: account, content: content}
		m[peerID] = s
		c := b.byContent[content]
		if c == nil {
			c = make(map[*ticketSlot]struct{})
			b.byContent[content] = c
		}
		c[s] = struct{}{}
	}
	s.lastProof = proofTime
	if expiry.After(s.expiry) {
		s.expiry = expiry
	}
	b.tickets[ticketID] = ticketRef{slot: s, expiry: expiry}
	return nil
}

func max1s(d time.Duration) int { return max(1, int(d.Seconds()+0.999)) }

func (b *ticketBook) dropLocked(k bookKey, peerID string, s *ticketSlot) {
	delete(b.slots[k], peerID)
	if len(b.slots[k]) == 0 {
		delete(b.slots, k)
	}
	if c := b.byContent[s.content]; c != nil {
		delete(c, s)
		if len(c) == 0 {
			delete(b.byContent, s.content)
		}
	}
}

// lookup returns the account and content of a live ticket.
func (b *ticketBook) lookup(ticketID string, now time.Time) (account, content string, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.tickets[ticketID]
	if !ok || !r.expiry.After(now) {
		return "", "", false
	}
	return r.slot.account, r.slot.content, true
}

// maxRevokedListed bounds the revoked peers one announce answer lists.
const maxRevokedListed = 256

// revokedPeers returns the peers of content that hold a live ticket and
// whose account or peer ID is revoked: announce answers list them so that
// seeds drop them at once rather than when their ticket runs out (L5). The
// list is computed once per version of the revocation list (and again
// every ProofSkew, as tickets expire), not per announce.
func (b *ticketBook) revokedPeers(content string, st *State, now time.Time) []string {
	version := st.revoked.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.revokedCache[content]; ok && c.version == version && now.Sub(c.at) < ProofSkew {
		return c.peers
	}
	var out []string
	for s := range b.byContent[content] {
		if s.expiry.After(now) && (st.isRevoked(RevokeAccount, s.account) || st.isRevoked(RevokePeer, s.peerID)) {
			out = append(out, s.peerID)
		}
	}
	slices.Sort(out)
	if len(out) > maxRevokedListed {
		out = out[:maxRevokedListed]
	}
	b.revokedCache[content] = revokedList{version: version, at: now, peers: out}
	return out
}

// prune forgets slots and tickets that are over.
func (b *ticketBook) prune(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, r := range b.tickets {
		if !r.expiry.After(now) {
			delete(b.tickets, id)
		}
	}
	for k, m := range b.slots {
		for id, s := range m {
			if !s.keep().After(now) {
				b.dropLocked(k, id, s)
			}
		}
	}
	for c := range b.revokedCache {
		if _, ok := b.byContent[c]; !ok {
			delete(b.revokedCache, c)
		}
	}
}

// Opaque ticket values (L3). A ticket is shown to the peers a host connects
// to, so it names neither the content nor a stable account pseudonym:
//
//   - content_tag = SHA-256("sealmesh ticket content v1\x00" || ticket_id || 0x00 || content):
//     a seed, which knows its content, checks it; a stranger learns nothing
//     from it but whether a content ID it guesses is the one (content IDs
//     that are hard to guess close even that).
//   - budget = HMAC-SHA256(ticket key, "budget\x00" || account hash || 0x00 || content)[:16]:
//     the same for every ticket of an account for one content, so a seed can
//     cap the streams of one subscription however many peer IDs it has, and
//     unlinkable across contents and to the account hash.
//
// The ticket key is derived from the state file's secret, so every replica
// sharing the state computes the same values, and nobody without it can.

func contentTag(ticketID, content string) string {
	h := sha256.New()
	h.Write([]byte("sealmesh ticket content v1\x00"))
	h.Write([]byte(ticketID))
	h.Write([]byte{0})
	h.Write([]byte(content))
	return b64.EncodeToString(h.Sum(nil))
}

func (st *State) ticketMAC(label string, parts ...string) []byte {
	m := hmac.New(sha256.New, deriveKey(st.accountKey, "sealmesh ticket key v1"))
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func (st *State) ticketBudget(accountHash, content string) string {
	return b64.EncodeToString(st.ticketMAC("budget", accountHash, content)[:16])
}

// DiscoveryKey is the per-content secret that keys a content's DHT
// provider records (see transport.SwarmOptions.DiscoveryKey). The ticket
// response carries it, the ticket never does: only peers the server gave a
// ticket for the content learn it, so a stranger cannot compute where a
// title's holders are listed. It changes only with the state file's secret.
func (st *State) discoveryKey(content string) string {
	return b64.EncodeToString(st.ticketMAC("dht", content))
}
