package transport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

// One test per inbound defence of issue 12 (M1, M2), each with real hosts
// on loopback and the defence's knob set so that the case is decided by it
// alone; TestTicketedStreamFlood and TestStrangerFlood run the attacks
// as a whole, in separate processes.

// limitedSeed starts a seed with the content, TCP only, per-source budgets
// applied to loopback, and mods.
func limitedSeed(n *testNet, mods ...func(*transport.Config)) (*transport.Host, *transport.Swarm) {
	seed := n.host(append([]func(*transport.Config){func(c *transport.Config) {
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
		c.Limits.LimitLoopback = true
	}}, mods...)...)
	return seed, n.join(seed, n.fx.full())
}

// rawSocket opens a TCP connection to h from src that never says a word.
func rawSocket(t *testing.T, h *transport.Host, src string) net.Conn {
	t.Helper()
	a := h.Addrs()[0]
	ip, err := a.ValueForProtocol(ma.P_IP4)
	require.NoError(t, err)
	port, err := a.ValueForProtocol(ma.P_TCP)
	require.NoError(t, err)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", net.JoinHostPort(ip, port))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedBySeed reports whether the seed ended c within wait: a read ending
// in EOF or a reset, rather than in our deadline.
func closedBySeed(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// A TCP connection that never starts its handshake is closed after
// Config.HandshakeTimeout (here 200 ms), not go-libp2p's 15 s.
func TestHandshakeDeadline(t *testing.T) {
	n := newNet(t)
	seed, _ := limitedSeed(n, func(c *transport.Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	c := rawSocket(t, seed, "127.0.1.1")
	require.True(t, closedBySeed(c, 10*time.Second), "a silent socket outlived the 200 ms handshake deadline by 10 s")
	// An honest peer still connects.
	honest := n.host(func(c *transport.Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"} })
	connect(t, honest, seed)
}

// Unfinished handshakes are budgeted per source (4) and per /24 (8): the
// next silent socket from the same source, or from the same subnet once
// it is full, is closed at once while the others are held; another
// subnet is not affected.
func TestHandshakeBudgetPerSource(t *testing.T) {
	n := newNet(t)
	seed, _ := limitedSeed(n, func(c *transport.Config) { c.HandshakeTimeout = time.Minute })
	var held []net.Conn
	for range transport.DefaultHandshakesPerIP {
		held = append(held, rawSocket(t, seed, "127.0.1.1"))
	}
	require.True(t, closedBySeed(rawSocket(t, seed, "127.0.1.1"), 5*time.Second), "a 5th handshake from one address was not refused")
	for range transport.DefaultHandshakesPerSubnet - transport.DefaultHandshakesPerIP {
		held = append(held, rawSocket(t, seed, "127.0.1.2"))
	}
	require.True(t, closedBySeed(rawSocket(t, seed, "127.0.1.3"), 5*time.Second), "a 9th handshake from one /24 was not refused")
	for i, c := range held {
		require.False(t, closedBySeed(c, 200*time.Millisecond), "socket %d within budget was closed", i)
	}
	require.Equal(t, int64(2), seed.Stats().RefusedHandshakes)
	honest := n.host(func(c *transport.Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"} })
	connect(t, honest, seed)
}

// A peer without an admission may open the ticket stream only: a segment
// stream is reset before any handler answers (not even "not admitted").
// Once it has shown a valid ticket, the same request is served.
func TestUnadmittedOnlyTicketStream(t *testing.T) {
	n := newNet(t)
	seed, sSeed := limitedSeed(n, func(c *transport.Config) { c.AdmissionGrace = time.Minute })
	stranger := n.host(func(c *transport.Config) {
		c.ListenAddrs = []string{"/ip4/127.0.2.1/tcp/0"}
		c.AdmissionGrace = -1
	})
	connect(t, stranger, seed)
	status, _ := rawRequest(t, stranger, seed, n.fx.paths[1])
	require.Equal(t, -1, status, "a segment stream of an unadmitted peer got an answer")
	require.Positive(t, seed.Stats().RefusedStreams)

	ticket := n.auth.issue(stranger.ID(), content, n.clock.Now().Add(10*time.Minute))
	presentTicket(context.Background(), stranger, seed.ID(), ticket)
	admitted(t, sSeed, stranger.ID())
	status, got := rawRequest(t, stranger, seed, n.fx.paths[1])
	require.Equal(t, 0, status)
	require.Equal(t, n.fx.size(n.fx.paths[1]), got)
}

// Connections of peers without an admission are budgeted per source (4):
// the 5th identity without a ticket from one address is refused after its
// handshake. Admitted peers from that address are not counted, and
// another subnet is not affected.
func TestUnadmittedConnBudget(t *testing.T) {
	n := newNet(t)
	seed, _ := limitedSeed(n, func(c *transport.Config) { c.AdmissionGrace = time.Minute })
	from := func(ip string, ticket bool) *transport.Host {
		h := n.host(func(c *transport.Config) {
			c.ListenAddrs = []string{"/ip4/" + ip + "/tcp/0"}
			c.AdmissionGrace = -1
		})
		if ticket {
			s := n.join(h, nil)
			connect(t, h, seed)
			hasCandidate(t, s, n.fx.paths[1], seed.ID())
			return h
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = h.Connect(ctx, seed.AddrInfo())
		cancel()
		return h
	}
	for range transport.DefaultUnadmittedPerIP {
		from("127.0.2.1", true) // admitted, so not counted
	}
	var strangers []*transport.Host
	for range transport.DefaultUnadmittedPerIP + 1 {
		strangers = append(strangers, from("127.0.2.1", false))
	}
	require.Eventually(t, func() bool { return seed.Stats().RefusedUnadmitted == 1 }, 10*time.Second, 20*time.Millisecond,
		"stats %+v", seed.Stats())
	require.Eventually(t, func() bool {
		k := 0
		for _, h := range strangers {
			if connected(seed, h) {
				k++
			}
		}
		return k == transport.DefaultUnadmittedPerIP
	}, 10*time.Second, 20*time.Millisecond)
	from("127.0.0.1", true)
}

// halfRequest opens a segment stream from a to b and writes half a
// request.
func halfRequest(t *testing.T, a, b *transport.Host) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := a.LibP2P().NewStream(ctx, b.ID(), transport.SegmentProtocol)
	require.NoError(t, err)
	_, err = st.Write([]byte{1, byte(len(content)), content[0]})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Reset() })
	return st
}

// answer reads the first byte the seed sends on st within wait: the
// status, or -1 for a reset or close, or -2 if nothing came (held open).
func answer(st network.Stream, wait time.Duration) int {
	_ = st.SetReadDeadline(time.Now().Add(wait))
	var b [1]byte
	_, err := io.ReadFull(st, b[:])
	switch {
	case err == nil:
		return int(b[0])
	case errors.Is(err, os.ErrDeadlineExceeded):
		return -2
	}
	return -1
}

const statusBusy = 3 // wire.go

// Inbound segment streams are capped per peer and per account, before the
// request is read: the stream over the cap is answered "busy" at once,
// while the ones within it wait for their request.
func TestSegmentStreamCaps(t *testing.T) {
	n := newNet(t)
	seed := n.host(func(c *transport.Config) {
		c.RequestTimeout = time.Minute
		c.Limits.PeerSegmentStreams = 3
		c.Limits.AccountSegmentStreams = 5
	})
	// Every ticket here is one account's.
	n.join(seed, n.fx.full(), func(o *transport.SwarmOptions) {
		o.Verifier = verifier{pub: n.auth.pub, now: n.clock.Now, budget: "one-subscription"}
	})
	a, b := n.host(), n.host()
	for _, h := range []*transport.Host{a, b} {
		s := n.join(h, nil)
		connect(t, h, seed)
		hasCandidate(t, s, n.fx.paths[1], seed.ID())
	}
	require.Equal(t, "one-subscription", transport.BudgetKey(seed, a.ID()))
	require.Equal(t, "one-subscription", transport.BudgetKey(seed, b.ID()))
	// Handlers start in no particular order, so which stream is refused
	// is not known: count the answers. A refused one is answered at once;
	// the others wait for their requests (RequestTimeout is a minute).
	busyOf := func(sts []network.Stream) (busy, held int) {
		for _, st := range sts {
			switch answer(st, time.Second) {
			case statusBusy:
				busy++
			case -2:
				held++
			}
		}
		return busy, held
	}
	var fromA []network.Stream
	for range 4 {
		fromA = append(fromA, halfRequest(t, a, seed))
	}
	busy, held := busyOf(fromA)
	require.Equal(t, [2]int{1, 3}, [2]int{busy, held}, "4 streams of one peer (cap 3): busy and held")
	var fromB []network.Stream
	for range 3 {
		fromB = append(fromB, halfRequest(t, b, seed))
	}
	busy, held = busyOf(fromB)
	require.Equal(t, [2]int{1, 2}, [2]int{busy, held}, "3 more streams of the account (cap 5, 3 held): busy and held")
}

// A segment stream whose request does not arrive within RequestTimeout is
// reset and is a strike; IdleStreamStrikes of them ban the peer.
func TestRequestDeadlineStrikes(t *testing.T) {
	n := newNet(t)
	seed := n.host(func(c *transport.Config) { c.RequestTimeout = 200 * time.Millisecond })
	sSeed := n.join(seed, n.fx.full())
	slow := n.host(func(c *transport.Config) { c.AdmissionGrace = -1 })
	s := n.join(slow, nil)
	connect(t, slow, seed)
	hasCandidate(t, s, n.fx.paths[1], seed.ID())
	admitted(t, sSeed, slow.ID())
	for i := range transport.DefaultIdleStreamStrikes {
		require.Equal(t, -1, answer(halfRequest(t, slow, seed), 10*time.Second), fmt.Sprintf("stalled request %d not reset", i))
	}
	require.Eventually(t, func() bool { return seed.Banned(slow.ID()) }, 10*time.Second, 20*time.Millisecond)
	require.GreaterOrEqual(t, seed.Stats().RequestTimeouts, int64(transport.DefaultIdleStreamStrikes))
}

// The segment handler checks admission before it reads: with the stream
// gate off (a host that never evicts, AdmissionGrace < 0), a peer without
// a ticket that sends half a request is told "not admitted" at once
// instead of being read from for RequestTimeout.
func TestSegmentChecksAdmissionFirst(t *testing.T) {
	n := newNet(t)
	seed := n.host(func(c *transport.Config) {
		c.AdmissionGrace = -1
		c.RequestTimeout = time.Minute
	})
	n.join(seed, n.fx.full())
	stranger := n.host(func(c *transport.Config) { c.AdmissionGrace = -1 })
	connect(t, stranger, seed)
	require.Equal(t, 1, answer(halfRequest(t, stranger, seed), 5*time.Second), "statusNotAdmitted before the request is read")
}
