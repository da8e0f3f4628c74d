package license

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The swarm half of the Client: tickets and announces, each proving
// possession of the peer's libp2p key (proof.go), with the proof clock
// kept in step with the server's.

// dateSample is the server's Date header and our clock when it came.
type dateSample struct{ server, local time.Time }

// Ticket gets a swarm ticket for the peer whose libp2p identity key is
// key, and content. It proves possession of key to the server by signing the
// peer ID, the content, the hash of the token it sends and the time; key
// never leaves the process. A server that already holds
// MaxTicketsPerAccount live tickets of the account for content answers 429
// too_many_tickets (*APIError).
func (c *Client) Ticket(ctx context.Context, key PeerKey, content string) (*TicketResponse, error) {
	tok, err := c.cfg.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("license: token: %w", err)
	}
	var body []byte
	for try := 0; ; try++ {
		req, err := NewTicketRequest(key, content, tok, c.proofNow())
		if err != nil {
			return nil, err
		}
		body, err = c.postToken(ctx, "/v1/ticket", req, tok)
		if err == nil {
			break
		}
		if try > 0 || !c.learnClock(err) {
			return nil, err
		}
	}
	var t TicketResponse
	if err := json.Unmarshal(body, &t); err != nil || t.Encoded == "" {
		return nil, fmt.Errorf("%w: ticket response", ErrLicenseMalformed)
	}
	return &t, nil
}

// Announce tells the tracker where the ticket's peer listens, proving with
// key (the ticket's peer's libp2p identity key) that the announce is the
// peer's own, and returns up to want peers of the same content, nearest
// first, and the peers whose entitlement was revoked.
func (c *Client) Announce(ctx context.Context, key PeerKey, encodedTicket string, addrs []string, want int) (*AnnounceResponse, error) {
	var body []byte
	for try := 0; ; try++ {
		req, err := NewAnnounceRequest(key, encodedTicket, addrs, want, c.proofNow())
		if err != nil {
			return nil, err
		}
		body, err = c.post(ctx, "/v1/announce", req, false)
		if err == nil {
			break
		}
		if try > 0 || !c.learnClock(err) {
			return nil, err
		}
	}
	var a AnnounceResponse
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("%w: announce response", ErrLicenseMalformed)
	}
	return &a, nil
}

// proofNow is the time proofs of possession carry: the corrected clock, in
// milliseconds, and always later than the last one this client used, since
// the server refuses a proof not later than the peer's last (a clock that
// steps back, or two requests in one millisecond).
func (c *Client) proofNow() time.Time {
	now := c.cfg.Now().Add(time.Duration(c.clockOffset.Load())).UnixMilli()
	for {
		last := c.lastProof.Load()
		ms := max(now, last+1)
		if c.lastProof.CompareAndSwap(last, ms) {
			return time.UnixMilli(ms)
		}
	}
}

// learnClock reports whether err is a proof_time refusal after which the
// clock offset was corrected from the server's Date header, so that a retry
// may succeed. Only a refusal moves the offset: a correction can make the
// next proof earlier than the last accepted one, which a replay check would
// refuse.
func (c *Client) learnClock(err error) bool {
	var ae *APIError
	d := c.lastDate.Load()
	if !errors.As(err, &ae) || ae.Code != CodeProofTime || d == nil {
		return false
	}
	off := d.server.Sub(d.local)
	if off > -ProofSkew/2 && off < ProofSkew/2 {
		return false
	}
	c.clockOffset.Store(int64(off))
	c.lastProof.Store(0) // the refused proofs were never accepted
	return true
}
