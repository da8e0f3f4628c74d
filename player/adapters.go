package player

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/transport"
)

// The license server's tickets and tracker, as the transport wants them:
// transport never imports license (it must never see key material), so the
// player wires the two together here.

// ticketVerifier checks other peers' tickets with the license server's
// pinned public keys.
type ticketVerifier struct {
	v   *license.TicketVerifier
	now func() time.Time
}

func (tv ticketVerifier) VerifyTicket(ticket []byte, remote peer.ID, content string) (transport.Admission, error) {
	t, err := tv.v.Verify(ticket, remote.String(), content, tv.now())
	if err != nil {
		return transport.Admission{}, err
	}
	return transport.Admission{Expiry: t.Expiry, Budget: t.Budget}, nil
}

var _ transport.TicketVerifier = ticketVerifier{}

// ticketSource asks the license server for this host's ticket and reuses it
// until 80% of its life has passed (the swarm asks again then). It proves
// to the server that it holds the host's libp2p key by signing with key,
// which never leaves the process.
type ticketSource struct {
	client *license.Client
	key    license.PeerKey
	now    func() time.Time

	mu        sync.Mutex
	encoded   string
	got       time.Time
	expiry    time.Time
	discovery []byte // the content's DHT key, from the ticket response
}

// drop forgets the cached ticket, so the next call asks for a new one (the
// server no longer knows it, e.g. after a restart).
func (ts *ticketSource) drop(encoded string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.encoded == encoded {
		ts.encoded = ""
	}
}

// discoveryKey returns the content's DHT key from the last ticket response.
func (ts *ticketSource) discoveryKey() []byte {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.discovery
}

func (ts *ticketSource) Ticket(ctx context.Context, content string) ([]byte, time.Time, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := ts.now()
	if ts.encoded != "" && now.Before(ts.got.Add(ts.expiry.Sub(ts.got)*8/10)) {
		return []byte(ts.encoded), ts.expiry, nil
	}
	r, err := ts.client.Ticket(ctx, ts.key, content)
	if err != nil {
		return nil, time.Time{}, err
	}
	ts.encoded, ts.got, ts.expiry = r.Encoded, now, r.Expiry
	if k, err := base64.RawURLEncoding.DecodeString(r.DiscoveryKey); err == nil && len(k) > 0 {
		ts.discovery = k
	}
	return []byte(r.Encoded), r.Expiry, nil
}

var _ transport.TicketSource = (*ticketSource)(nil)

// tracker announces this host to the license server's tracker with its
// ticket and turns the answer into peers to dial.
type tracker struct {
	client  *license.Client
	tickets *ticketSource
	want    int

	once  sync.Once
	first chan int // the number of peers the first announce returned (-1: it failed)
}

func newTracker(c *license.Client, ts *ticketSource) *tracker {
	return &tracker{client: c, tickets: ts, want: 20, first: make(chan int, 1)}
}

func (tr *tracker) report(n int) { tr.once.Do(func() { tr.first <- n }) }

func (tr *tracker) Announce(ctx context.Context, content string, addrs []ma.Multiaddr) (transport.TrackerAnswer, error) {
	raw, _, err := tr.tickets.Ticket(ctx, content)
	if err != nil {
		tr.report(-1)
		return transport.TrackerAnswer{}, err
	}
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.String()
	}
	ans, err := tr.client.Announce(ctx, tr.tickets.key, string(raw), strs, tr.want)
	if err != nil {
		var ae *license.APIError
		if errors.As(err, &ae) && (ae.Code == license.CodeInvalidTicket || ae.Code == license.CodeTicketExpired) {
			tr.tickets.drop(string(raw))
		}
		tr.report(-1)
		return transport.TrackerAnswer{}, err
	}
	var out transport.TrackerAnswer
	for _, s := range ans.Revoked {
		if id, err := peer.Decode(s); err == nil {
			out.Revoked = append(out.Revoked, id)
		}
	}
	for _, p := range ans.Peers {
		id, err := peer.Decode(p.PeerID)
		if err != nil {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		for _, s := range p.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		if len(ai.Addrs) > 0 {
			out.Peers = append(out.Peers, ai)
		}
	}
	tr.report(len(out.Peers))
	return out, nil
}

var _ transport.Tracker = (*tracker)(nil)
