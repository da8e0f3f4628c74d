package transport_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

const content = "demo-1"

// clock is an injectable clock shared by hosts and verifiers of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// authority issues test swarm tickets: Ed25519 over a context string and
// "peerID|content|expiry(unix)". It stands in for the license server, whose
// tickets are another package's business; the verification below is honest
// (signature, peer, content, expiry), which is what transport relies on.
type authority struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

const ticketContext = "sealmesh test ticket\x00"

func newAuthority(t testing.TB) *authority {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return &authority{priv: priv, pub: pub}
}

func (a *authority) issue(p peer.ID, content string, expiry time.Time) []byte {
	payload := fmt.Sprintf("%s|%s|%d", p, content, expiry.Unix())
	sig := ed25519.Sign(a.priv, append([]byte(ticketContext), payload...))
	return append([]byte(payload), sig...)
}

// verifier checks tickets against pub at now().
type verifier struct {
	pub    ed25519.PublicKey
	now    func() time.Time
	budget string // Admission.Budget of every ticket
}

func (v verifier) VerifyTicket(ticket []byte, remote peer.ID, content string) (transport.Admission, error) {
	if len(ticket) <= ed25519.SignatureSize {
		return transport.Admission{}, errors.New("ticket too short")
	}
	payload, sig := ticket[:len(ticket)-ed25519.SignatureSize], ticket[len(ticket)-ed25519.SignatureSize:]
	if !ed25519.Verify(v.pub, append([]byte(ticketContext), payload...), sig) {
		return transport.Admission{}, errors.New("bad ticket signature")
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 3 {
		return transport.Admission{}, errors.New("malformed ticket")
	}
	if parts[0] != remote.String() {
		return transport.Admission{}, errors.New("ticket names another peer")
	}
	if parts[1] != content {
		return transport.Admission{}, errors.New("ticket is for another content")
	}
	var unix int64
	if _, err := fmt.Sscanf(parts[2], "%d", &unix); err != nil {
		return transport.Admission{}, errors.New("malformed expiry")
	}
	exp := time.Unix(unix, 0)
	if !v.now().Before(exp) {
		return transport.Admission{}, errors.New("ticket expired")
	}
	return transport.Admission{Expiry: exp, Budget: v.budget}, nil
}

// tickets is a TicketSource handing out a fixed or computed ticket.
type tickets struct {
	fn func() ([]byte, time.Time, error)
}

func (t tickets) Ticket(context.Context, string) ([]byte, time.Time, error) { return t.fn() }

func fixedTicket(raw []byte, exp time.Time) tickets {
	return tickets{fn: func() ([]byte, time.Time, error) { return raw, exp, nil }}
}

// fixture is one packaged content: real random bytes under a signed manifest.
type fixture struct {
	m      *segment.Manifest
	signed []byte            // sealmesh.json bytes
	pub    ed25519.PublicKey // the packager's key
	files  map[string][]byte
	paths  []string // init and media, in manifest order
}

// newFixture builds a manifest over random files of the given sizes (the
// first is the init segment), signs it and parses it back, as a peer would.
func newFixture(t testing.TB, sizes ...int) *fixture {
	t.Helper()
	if len(sizes) == 0 {
		sizes = []int{700, 40 << 10, 90 << 10, 130 << 10, 64 << 10, 200 << 10}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	fx := &fixture{files: map[string][]byte{}}
	var files []segment.File
	for i, n := range sizes {
		b := make([]byte, n)
		_, err := rand.Read(b)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		f := segment.File{Kind: segment.KindMedia, Index: i, Size: int64(n), SHA256: hex.EncodeToString(sum[:])}
		if i == 0 {
			f.Kind, f.Path = segment.KindInit, "video-640x360/init.mp4"
		} else {
			f.Path = fmt.Sprintf("video-640x360/%d.m4s", i)
		}
		fx.files[f.Path] = b
		fx.paths = append(fx.paths, f.Path)
		files = append(files, f)
	}
	m := &segment.Manifest{
		Version: segment.ManifestVersion, ContentID: content, Scheme: segment.SchemeCBCS,
		Created: time.Now().UTC().Truncate(time.Second), SegmentDuration: 2, Duration: float64(2 * (len(sizes) - 1)),
		SigningKeyID: "test-key",
		Periods:      []segment.Period{{Index: 0, KID: strings.Repeat("ab", 16)}},
		Renditions: []segment.Rendition{{
			ID: "video-640x360", Type: "video", Codec: "avc1.64001e", Bandwidth: 800_000, Width: 640, Height: 360,
			Timescale: 90000, Files: files,
		}},
	}
	signed, err := segment.SignManifest(m, priv)
	require.NoError(t, err)
	fx.signed, fx.pub = signed, pub
	fx.m, err = segment.ParseManifest(signed, segment.TrustedKeys{"test-key": pub})
	require.NoError(t, err)
	return fx
}

// full returns a MemStore holding every file.
func (fx *fixture) full() *transport.MemStore {
	s := transport.NewMemStore()
	for p, b := range fx.files {
		_ = s.Put(p, b)
	}
	return s
}

func (fx *fixture) size(p string) int64 { return int64(len(fx.files[p])) }

// net is a test network: one clock, one ticket authority.
type testNet struct {
	t     testing.TB
	clock *clock
	auth  *authority
	fx    *fixture
}

func newNet(t testing.TB, sizes ...int) *testNet {
	return &testNet{t: t, clock: newClock(), auth: newAuthority(t), fx: newFixture(t, sizes...)}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TRANSPORT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// host starts a host on 127.0.0.1 (TCP and QUIC) with the test clock and a
// one-second admission grace.
func (n *testNet) host(mods ...func(*transport.Config)) *transport.Host {
	n.t.Helper()
	cfg := transport.Config{
		ListenAddrs:    []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		AdmissionGrace: time.Second,
		Now:            n.clock.Now,
		Logger:         testLogger(n.t),
	}
	for _, m := range mods {
		m(&cfg)
	}
	h, err := transport.NewHost(context.Background(), cfg)
	require.NoError(n.t, err)
	n.t.Cleanup(func() { _ = h.Close() })
	return h
}

func (n *testNet) verifier() verifier { return verifier{pub: n.auth.pub, now: n.clock.Now} }

// ticketFor is a valid ticket source for h, expiring in 10 minutes.
func (n *testNet) ticketFor(h *transport.Host) tickets {
	exp := n.clock.Now().Add(10 * time.Minute)
	return fixedTicket(n.auth.issue(h.ID(), content, exp), exp)
}

// renewingTickets hands out a ticket valid for 10 minutes from whenever it
// is asked, like a license client that renews.
func (n *testNet) renewingTickets(h *transport.Host) func(*transport.SwarmOptions) {
	return func(o *transport.SwarmOptions) {
		o.Tickets = tickets{fn: func() ([]byte, time.Time, error) {
			exp := n.clock.Now().Add(10 * time.Minute)
			return n.auth.issue(h.ID(), content, exp), exp, nil
		}}
	}
}

// join joins the test content with a valid ticket; mods adjust the options.
func (n *testNet) join(h *transport.Host, store transport.Store, mods ...func(*transport.SwarmOptions)) *transport.Swarm {
	n.t.Helper()
	opts := transport.SwarmOptions{Verifier: n.verifier(), Tickets: n.ticketFor(h), Store: store}
	for _, m := range mods {
		m(&opts)
	}
	s, err := h.Join(context.Background(), content, n.fx.m, opts)
	require.NoError(n.t, err)
	return s
}

func connect(t testing.TB, a, b *transport.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.Connect(ctx, b.AddrInfo()))
}

// admitted waits until s has admitted p.
func admitted(t testing.TB, s *transport.Swarm, p peer.ID) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, ps := range s.Peers() {
			if ps.ID == p {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "peer %s not admitted", p)
}

// hasCandidate waits until s lists p as a candidate for path.
func hasCandidate(t testing.TB, s *transport.Swarm, path string, p peer.ID) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, c := range s.Candidates(path) {
			if c == p {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "peer %s never announced %s", p, path)
}

func connected(a, b *transport.Host) bool {
	return a.LibP2P().Network().Connectedness(b.ID()) == network.Connected
}

// rawRequest sends a segment request from a to b on a bare stream, skipping
// every client-side check, and returns the status byte (-1 if none came)
// and how many payload bytes followed.
func rawRequest(t testing.TB, a, b *transport.Host, path string) (status int, payload int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := a.LibP2P().NewStream(ctx, b.ID(), transport.SegmentProtocol)
	if err != nil {
		return -1, 0
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(5 * time.Second))
	req := []byte{1, byte(len(content))}
	req = append(req, content...)
	req = binary.BigEndian.AppendUint16(req, uint16(len(path)))
	req = append(req, path...)
	if _, err := st.Write(req); err != nil {
		return -1, 0
	}
	_ = st.CloseWrite()
	all, _ := io.ReadAll(st)
	if len(all) == 0 {
		return -1, 0
	}
	return int(all[0]), int64(max(len(all)-9, 0))
}

// evilStore serves whatever its func returns, regardless of the manifest
// (used with TrustStore so the host serves it as is).
type evilStore struct {
	*transport.MemStore
	get func(path string) ([]byte, bool)
}

func (e evilStore) Get(p string) ([]byte, bool) { return e.get(p) }

func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	return c
}
