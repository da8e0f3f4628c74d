package swarmbench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// LeechResult is what a peer without a valid ticket got out of the swarm.
type LeechResult struct {
	// Kind: "no-ticket" presents nothing; "stolen-ticket" presents a
	// genuine ticket that names another peer (one copied off a viewer).
	Kind string `json:"kind"`
	// Bytes is every byte of segment data it received, verified or not
	// (response headers aside); the goal is zero.
	Bytes int64 `json:"bytes"`
	// Requests is how many segment requests it sent on a stream; Refused
	// were answered "not admitted", NoAnswer saw the stream reset or the
	// connection close before any answer, Other got another status.
	// Unreachable attempts could not open a stream at all: the viewer
	// refused the connection (evicted after a rejected ticket or after the
	// admission grace, see transport.Config.AdmissionGrace).
	Requests    int `json:"requests"`
	Refused     int `json:"refused"`
	NoAnswer    int `json:"no_answer"`
	Other       int `json:"other_status"`
	Unreachable int `json:"unreachable"`
	// PeersTried is how many distinct viewers it reached for.
	PeersTried int `json:"peers_tried"`
}

// acceptAll admits any peer to the leech's own swarm: the leech wants to
// ask everyone, and transport fetches only from peers it has admitted.
type acceptAll struct{}

func (acceptAll) VerifyTicket([]byte, peer.ID, string) (transport.Admission, error) {
	return transport.Admission{Expiry: time.Now().Add(time.Hour)}, nil
}

// Leech is a host outside the entitlement that tries to fetch every file
// from every viewer it is told of.
type Leech struct {
	host   *transport.Host
	swarm  *transport.Swarm
	files  []string
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	res   LeechResult
	tried map[peer.ID]bool
}

// StartLeech starts a leech of the given kind; ticket is the stolen ticket
// ("" for no ticket). targets is polled for viewers' addresses (a pirate
// would learn them from the DHT or a packet capture); the leech runs until
// ctx ends or Stop.
func StartLeech(ctx context.Context, kind, ticket string, m *segment.Manifest, targets func() []peer.AddrInfo, logger *slog.Logger) (*Leech, error) {
	h, err := transport.NewHost(ctx, transport.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("leech host: %w", err)
	}
	sw, err := h.Join(ctx, m.ContentID, m, transport.SwarmOptions{Verifier: acceptAll{}, Tickets: fixedTicket{ticket}, Logger: logger})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("leech join: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Leech{host: h, swarm: sw, cancel: cancel, done: make(chan struct{}), tried: map[peer.ID]bool{}}
	l.res.Kind = kind
	for _, r := range m.Renditions {
		for _, f := range r.Files {
			l.files = append(l.files, f.Path)
		}
	}
	go l.run(ctx, targets)
	return l, nil
}

func (l *Leech) run(ctx context.Context, targets func() []peer.AddrInfo) {
	defer close(l.done)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	next := 0 // the file asked for next, round robin
	for {
		for _, ai := range targets() {
			if ctx.Err() != nil {
				return
			}
			if ai.ID == l.host.ID() {
				continue
			}
			l.mu.Lock()
			l.tried[ai.ID] = true
			l.res.PeersTried = len(l.tried)
			l.mu.Unlock()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := l.host.Connect(cctx, ai); err != nil {
				l.count(0, statusUnreachable)
			} else {
				// Give the viewer a moment to present its ticket, as it
				// would to any peer, before asking.
				time.Sleep(100 * time.Millisecond)
				path := l.files[next%len(l.files)]
				next++
				n, status := l.rawRequest(cctx, ai.ID, path)
				l.count(n, status)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Outcomes of a raw request besides the wire statuses.
const (
	statusUnreachable = -1 // no connection or no stream
	statusNoAnswer    = -2 // the stream died before a status came
)

// rawRequest sends a segment request the way the wire format (transport's
// doc.go) describes it, without transport's own rule that requests go only
// to peers that have shown us a ticket: a pirate's client would not keep
// that rule. It returns every byte that came after the response header,
// verified or not, and the status byte.
func (l *Leech) rawRequest(ctx context.Context, p peer.ID, path string) (int, int) {
	st, err := l.host.LibP2P().NewStream(ctx, p, transport.SegmentProtocol)
	if err != nil {
		return 0, statusUnreachable
	}
	defer st.Reset()
	_ = st.SetDeadline(time.Now().Add(2 * time.Second))
	content := l.swarm.Content()
	req := []byte{1, byte(len(content))} // version 1, content length
	req = append(req, content...)
	req = binary.BigEndian.AppendUint16(req, uint16(len(path)))
	req = append(req, path...)
	if _, err := st.Write(req); err != nil {
		return 0, statusNoAnswer
	}
	_ = st.CloseWrite()
	var hdr [9]byte // status u8 | size u64
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		return 0, statusNoAnswer
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(st, 64<<20))
	return int(n), int(hdr[0])
}

func (l *Leech) count(n, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.Bytes += int64(n)
	switch status {
	case statusUnreachable:
		l.res.Unreachable++
		return
	case statusNoAnswer:
		l.res.NoAnswer++
	case 1: // not admitted
		l.res.Refused++
	default:
		l.res.Other++
	}
	l.res.Requests++
}

// Result stops the leech and reports; the byte count includes anything the
// host's counters saw, in case a fetch raced the stop.
func (l *Leech) Result() LeechResult {
	l.mu.Lock()
	r := l.res
	l.mu.Unlock()
	if down := l.host.Stats().BytesDown; down > r.Bytes {
		r.Bytes = down
	}
	return r
}

// Close stops the leech.
func (l *Leech) Close() {
	l.cancel()
	<-l.done
	l.swarm.Close()
	l.host.Close()
}
