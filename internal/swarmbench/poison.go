package swarmbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// The license server's tickets and tracker wired to transport, as the player
// does it (its adapters are unexported): the adversaries below need them
// without a player.Session.

type ticketVerifier struct{ v *license.TicketVerifier }

func (tv ticketVerifier) VerifyTicket(ticket []byte, remote peer.ID, content string) (transport.Admission, error) {
	t, err := tv.v.Verify(ticket, remote.String(), content, time.Now())
	if err != nil {
		return transport.Admission{}, err
	}
	return transport.Admission{Expiry: t.Expiry, Budget: t.Budget}, nil
}

// fixedTicket presents the same bytes whatever happens (the stolen-ticket
// leech); empty: no ticket at all.
type fixedTicket struct{ raw string }

func (f fixedTicket) Ticket(context.Context, string) ([]byte, time.Time, error) {
	if f.raw == "" {
		return nil, time.Time{}, errors.New("no ticket: this host is not entitled")
	}
	return []byte(f.raw), time.Now().Add(time.Hour), nil
}

// ticketSource asks the license server for a ticket naming the peer of
// key (proving possession with it) and reuses it for 80% of its life.
type ticketSource struct {
	c   *license.Client
	key license.PeerKey

	mu       sync.Mutex
	raw      string
	got, exp time.Time
}

func (ts *ticketSource) Ticket(ctx context.Context, content string) ([]byte, time.Time, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := time.Now()
	if ts.raw != "" && now.Before(ts.got.Add(ts.exp.Sub(ts.got)*8/10)) {
		return []byte(ts.raw), ts.exp, nil
	}
	r, err := ts.c.Ticket(ctx, ts.key, content)
	if err != nil {
		return nil, time.Time{}, err
	}
	ts.raw, ts.got, ts.exp = r.Encoded, now, r.Expiry
	return []byte(r.Encoded), r.Expiry, nil
}

func newTicketSource(t Target, account string, h *transport.Host) (*ticketSource, error) {
	lc, err := license.NewClient(license.ClientConfig{BaseURL: t.LicenseURL, ServerKeys: t.LicenseKeys, Token: t.Token(account)})
	if err != nil {
		return nil, err
	}
	key := h.LibP2P().Peerstore().PrivKey(h.ID())
	if key == nil {
		return nil, errors.New("host has no private key")
	}
	return &ticketSource{c: lc, key: key}, nil
}

type tracker struct {
	c  *license.Client
	ts *ticketSource
}

func (t tracker) Announce(ctx context.Context, content string, addrs []ma.Multiaddr) (transport.TrackerAnswer, error) {
	raw, _, err := t.ts.Ticket(ctx, content)
	if err != nil {
		return transport.TrackerAnswer{}, err
	}
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.String()
	}
	ans, err := t.c.Announce(ctx, t.ts.key, string(raw), strs, 50)
	if err != nil {
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
		out.Peers = append(out.Peers, ai)
	}
	return out, nil
}

// poisonStore claims every file of the content and serves it with one bit
// flipped in the middle: the right size, so only the hash check catches it.
type poisonStore struct {
	dir   string // the packaged folder
	paths []string
	mu    sync.Mutex
	bad   map[string][]byte
}

func (p *poisonStore) Get(path string) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.bad[path]; ok {
		return b, true
	}
	// path comes from the manifest (the serving side only asks for listed
	// files), so joining it under the packaged folder stays inside it.
	b, err := os.ReadFile(filepath.Join(p.dir, filepath.FromSlash(path)))
	if err != nil || len(b) == 0 {
		return nil, false
	}
	b[len(b)/2] ^= 0x01
	p.bad[path] = b
	return b, true
}

func (p *poisonStore) Put(string, []byte) error { return nil }
func (p *poisonStore) Paths() []string          { return slices.Clone(p.paths) }

// Poisoner is an entitled peer (a genuine ticket from the license server)
// that serves corrupted ciphertext.
type Poisoner struct {
	host  *transport.Host
	swarm *transport.Swarm
}

// StartPoisoner joins t's swarm as account "poisoner" and offers every file
// of m, read from contentDir (the origin's packaged folder) with one bit
// flipped. It sets SwarmOptions.TrustStore, so the serving side does not
// re-hash what it sends: that check is what keeps an honest peer from
// relaying rot, and the poisoner is not honest.
func StartPoisoner(ctx context.Context, t Target, m *segment.Manifest, contentDir string, up transport.UploadPolicy, logger *slog.Logger) (*Poisoner, error) {
	h, err := transport.NewHost(ctx, transport.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("poisoner host: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			h.Close()
		}
	}()
	ts, err := newTicketSource(t, "poisoner", h)
	if err != nil {
		return nil, err
	}
	if _, _, err := ts.Ticket(ctx, t.Content); err != nil {
		return nil, fmt.Errorf("poisoner ticket: %w", err)
	}
	tv, err := license.NewTicketVerifier(t.LicenseKeys)
	if err != nil {
		return nil, err
	}
	st := &poisonStore{dir: contentDir, bad: map[string][]byte{}}
	for _, r := range m.Renditions {
		for _, f := range r.Files {
			st.paths = append(st.paths, f.Path)
		}
	}
	sw, err := h.Join(ctx, t.Content, m, transport.SwarmOptions{
		Verifier: ticketVerifier{tv}, Tickets: ts, Store: st, TrustStore: true,
		Upload: up, Tracker: tracker{ts.c, ts}, TrackerInterval: 500 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("poisoner join: %w", err)
	}
	ok = true
	return &Poisoner{host: h, swarm: sw}, nil
}

// ID is the poisoner's peer ID.
func (p *Poisoner) ID() peer.ID { return p.host.ID() }

// BytesServed is how many corrupted bytes left the poisoner.
func (p *Poisoner) BytesServed() int64 { return p.swarm.Stats().BytesUp }

// Close leaves the swarm and stops the host.
func (p *Poisoner) Close() {
	p.swarm.Close()
	p.host.Close()
}
