package transport_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// The attacks of issue 12 (M1, M2) on a seed, as separate processes: the
// seed runs in one child process with the default Config (plus
// LimitLoopback, so that its per-source budgets apply to 127.0.0.0/8), the
// attacker in another, and the honest peers in the test process. Sources
// are told apart by loopback address: honest peers dial from 127.0.0.1,
// attackers from 127.0.1.x (half-open sockets), 127.0.2.x (rotating
// identities) and 127.0.3.x (ticketed identities), each a /24 of its own,
// which is what an attacker holding that many addresses would have.

const (
	inboundSeedEnv     = "SEALMESH_INBOUND_SEED_DIR"
	inboundAttackerEnv = "SEALMESH_INBOUND_ATTACKER_DIR"
)

// attackPlan is what the attacker process reads from attack.json.
type attackPlan struct {
	Kind    string   // "ticketed" (M1) or "strangers" (M2)
	Seed    []string // the seed's TCP multiaddrs, with /p2p/ID
	Tickets [][]byte // M1: one ticket per identity file id-N
	Streams int      // stalled streams per identity
	// M2
	HalfOpen   int // sockets kept open without a handshake
	Identities int // unticketed identities kept connected, rotating
}

// TestInboundSeedChild is the seed process of the attack tests; it does
// nothing unless started by them.
func TestInboundSeedChild(t *testing.T) {
	dir := os.Getenv(inboundSeedEnv)
	if dir == "" {
		t.Skip("the seed process of TestTicketedStreamFlood and TestStrangerFlood")
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		return b
	}
	m, err := segment.ParseManifest(read(segment.ManifestFile), segment.TrustedKeys{"test-key": ed25519.PublicKey(read("packager.pub"))})
	require.NoError(t, err)
	store := transport.NewMemStore()
	for _, f := range m.Files() {
		require.NoError(t, store.Put(f.Path, read(filepath.Join("files", f.Path))))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// Default limits, grace and timeouts; the per-source budgets apply to
	// loopback, where the whole test runs.
	h, err := transport.NewHost(ctx, transport.Config{
		Logger: testLogger(t), IdentityFile: filepath.Join(dir, "identity"),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Limits:      transport.Limits{LimitLoopback: true},
	})
	require.NoError(t, err)
	defer h.Close()
	_, err = h.Join(ctx, m.ContentID, m, transport.SwarmOptions{
		Verifier: accountVerifier{verifier: verifier{pub: ed25519.PublicKey(read("authority.pub")), now: time.Now}, dir: dir},
		Tickets:  fixedTicket(read("ticket"), time.Now().Add(10*time.Minute)),
		Store:    store,
	})
	require.NoError(t, err)
	for _, a := range h.Addrs() {
		fmt.Printf("ADDR %s\n", a)
	}
	fmt.Println("READY")
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		st := h.Stats()
		st.Contents = nil
		b, _ := json.Marshal(st)
		fmt.Printf("STAT %s\n", b)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// accountVerifier is the test verifier with the license server's account
// budget: a ticket of a peer listed in dir/accounts.json (written by the
// test before its attacker starts) carries that account's Budget, as
// every ticket of one subscription does; any other peer is its own
// account.
type accountVerifier struct {
	verifier
	dir string
}

func (v accountVerifier) VerifyTicket(ticket []byte, remote peer.ID, content string) (transport.Admission, error) {
	adm, err := v.verifier.VerifyTicket(ticket, remote, content)
	if err != nil {
		return adm, err
	}
	var accounts map[string]string
	if b, err := os.ReadFile(filepath.Join(v.dir, "accounts.json")); err == nil && json.Unmarshal(b, &accounts) == nil {
		adm.Budget = accounts[remote.String()]
	}
	return adm, nil
}

// seedReports keeps the seed process's latest Stats.
type seedReports struct {
	mu   sync.Mutex
	last transport.Stats
}

func (r *seedReports) get() transport.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// startInboundSeed runs TestInboundSeedChild serving n's content and returns
// its TCP address and its reports.
func startInboundSeed(t *testing.T, n *testNet) (peer.AddrInfo, *seedReports, string) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authority.pub"), n.auth.pub, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "packager.pub"), n.fx.pub, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, segment.ManifestFile), n.fx.signed, 0o600))
	for p, b := range n.fx.files {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "files", filepath.Dir(p)), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "files", p), b, 0o600))
	}
	id := identityIn(t, filepath.Join(dir, "identity"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ticket"), n.auth.issue(id, content, time.Now().Add(10*time.Minute)), 0o600))

	info := peer.AddrInfo{ID: id}
	reports := &seedReports{}
	lines := startChild(t, "^TestInboundSeedChild$", inboundSeedEnv+"="+dir)
	for l := range lines {
		if a, ok := strings.CutPrefix(l, "ADDR "); ok {
			addr, err := ma.NewMultiaddr(a)
			require.NoError(t, err)
			info.Addrs = append(info.Addrs, addr)
		}
		if l == "READY" {
			break
		}
	}
	require.NotEmpty(t, info.Addrs, "seed process did not start")
	go func() {
		for l := range lines {
			if js, ok := strings.CutPrefix(l, "STAT "); ok {
				var st transport.Stats
				if json.Unmarshal([]byte(js), &st) == nil {
					reports.mu.Lock()
					reports.last = st
					reports.mu.Unlock()
				}
			}
		}
	}()
	return info, reports, dir
}

func identityIn(t *testing.T, path string) peer.ID {
	t.Helper()
	sk, err := transport.LoadIdentity(path)
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	return id
}

// startChild re-runs the test binary for the test named by run with env
// set, killed at cleanup, and returns its stdout lines; the channel closes
// when the process exits, or after 30 s without a line during start-up.
func startChild(t *testing.T, run, env string) <-chan string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// startAttacker runs TestInboundAttackerChild with plan and waits until it
// reports its attack under way.
func startAttacker(t *testing.T, dir string, plan attackPlan) {
	t.Helper()
	b, err := json.Marshal(plan)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "attack.json"), b, 0o600))
	lines := startChild(t, "^TestInboundAttackerChild$", inboundAttackerEnv+"="+dir)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "attacker process exited before attacking")
			if strings.HasPrefix(l, "ATTACKING") {
				t.Logf("attacker: %s", l)
				go func() {
					for l := range lines {
						if testing.Verbose() {
							t.Log("attacker: " + l)
						}
					}
				}()
				return
			}
		case <-deadline:
			t.Fatal("attacker process did not start its attack")
		}
	}
}

// honestRounds fetches a file from the seed once a second, rounds times,
// in two ways: over a connection made before the attack (long, admitted
// already) and from a new peer that connects for the round (its
// handshake, ticket exchange and admission happen under attack). A round
// counts as a success for a way if one Fetch (after one Connect, for the
// new peer) brings the file, verified, within 3 s (4 s with the
// connection); nothing is retried. It returns the successes of each way.
func honestRounds(t *testing.T, n *testNet, seed peer.AddrInfo, long *transport.Swarm, rounds int) (longOK, freshOK int) {
	t.Helper()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	fetch := func(ctx context.Context, s *transport.Swarm, path string) error {
		got, err := s.Fetch(ctx, seed.ID, path)
		if err != nil {
			return err
		}
		return n.fx.m.CheckFile(path, got)
	}
	for i := range rounds {
		path := n.fx.paths[1+i%(len(n.fx.paths)-1)]
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := fetch(ctx, long, path)
		cancel()
		if err == nil {
			longOK++
		} else {
			t.Logf("round %d: the connected peer failed: %v", i, err)
		}

		err = func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			h := n.host(func(c *transport.Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"} })
			defer h.Close()
			s := n.join(h, nil)
			if err := h.Connect(ctx, seed); err != nil {
				return err
			}
			// As a scheduler would, wait for the seed's have-map, which it
			// sends once both sides have admitted each other.
			for !slices.Contains(s.Candidates(path), seed.ID) {
				select {
				case <-ctx.Done():
					return fmt.Errorf("the seed's have-map never came: %w", ctx.Err())
				case <-time.After(20 * time.Millisecond):
				}
			}
			return fetch(ctx, s, path)
		}()
		if err == nil {
			freshOK++
		} else {
			t.Logf("round %d: a new peer failed: %v", i, err)
		}
		<-tick.C
	}
	return longOK, freshOK
}

// onlyTCP keeps p's TCP addresses.
func onlyTCP(p peer.AddrInfo) peer.AddrInfo {
	out := peer.AddrInfo{ID: p.ID}
	for _, a := range p.Addrs {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			out.Addrs = append(out.Addrs, a)
		}
	}
	return out
}

// TestTicketedStreamFlood backs the M1 row of SECURITY.md: 20 identities
// with valid tickets (one account's, as the license server would mint
// them without a per-account cap) each keep 16 segment streams open that
// send half a request and stall, reopening any the seed ends. Before the
// fix they filled the seed's stream limit for the 30 s stream timeout
// and the honest peers got 2 of 18 fetches. Now the seed answers "busy"
// at once past Limits.PeerSegmentStreams (per peer) and
// AccountSegmentStreams (per account), resets a stream whose request has
// not arrived within Config.RequestTimeout (2 s) and bans its peer after
// IdleStreamStrikes such resets. An honest connected peer and a new
// honest peer each round must get at least 80% of 15 once-a-second
// fetches.
func TestTicketedStreamFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes and 20 attacking hosts")
	}
	const identities, streams, rounds = 20, 16, 15
	n := newNet(t)
	seed, reports, seedDir := startInboundSeed(t, n)
	seed = onlyTCP(seed)

	long := n.host(func(c *transport.Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"} })
	sLong := n.join(long, nil)
	connectInfo(t, long, seed)
	hasCandidate(t, sLong, n.fx.paths[1], seed.ID)

	dir := t.TempDir()
	accounts := map[string]string{}
	plan := attackPlan{Kind: "ticketed", Streams: streams}
	for _, a := range seed.Addrs {
		plan.Seed = append(plan.Seed, a.String()+"/p2p/"+seed.ID.String())
	}
	for i := range identities {
		id := identityIn(t, filepath.Join(dir, fmt.Sprintf("id-%d", i)))
		plan.Tickets = append(plan.Tickets, n.auth.issue(id, content, time.Now().Add(10*time.Minute)))
		accounts[id.String()] = "one-subscription"
	}
	b, err := json.Marshal(accounts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(seedDir, "accounts.json"), b, 0o600))
	startAttacker(t, dir, plan)

	longOK, freshOK := honestRounds(t, n, seed, sLong, rounds)
	st := reports.get()
	t.Logf("honest fetches under attack: connected peer %d/%d, new peers %d/%d; seed: bans %d, request timeouts %d, idle resets %d",
		longOK, rounds, freshOK, rounds, st.Bans, st.RequestTimeouts, st.IdleStreamResets)
	require.GreaterOrEqual(t, longOK*10, rounds*8, "connected honest peer: %d of %d fetches", longOK, rounds)
	require.GreaterOrEqual(t, freshOK*10, rounds*8, "new honest peers: %d of %d fetches", freshOK, rounds)
	require.Positive(t, st.RequestTimeouts, "the attack never stalled a request on the seed")
}

// TestStrangerFlood backs the M2 row of SECURITY.md: 30 TCP sockets that
// never start a handshake (from 8 addresses of one /24) plus 40 rotating
// identities without tickets that open stalled segment streams (from 40
// addresses of another /24). Before the fix the sockets held the
// transient scope for go-libp2p's 15 s accept timeout and the identities
// held stream and connection slots for the 5 s admission grace: honest
// peers got 1 of 18 fetches. Now an inbound handshake gets
// Config.HandshakeTimeout (3 s), a source and its subnet a few unfinished
// handshakes and unadmitted connections (Limits), and a peer without an
// admission only the ticket stream. An honest connected peer and a new
// honest peer each round must get at least 80% of 15 once-a-second
// fetches.
func TestStrangerFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes and 40 attacking hosts")
	}
	const rounds = 15
	n := newNet(t)
	seed, reports, _ := startInboundSeed(t, n)
	seed = onlyTCP(seed)

	long := n.host(func(c *transport.Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"} })
	sLong := n.join(long, nil)
	connectInfo(t, long, seed)
	hasCandidate(t, sLong, n.fx.paths[1], seed.ID)

	plan := attackPlan{Kind: "strangers", Streams: 16, HalfOpen: 30, Identities: 40}
	for _, a := range seed.Addrs {
		plan.Seed = append(plan.Seed, a.String()+"/p2p/"+seed.ID.String())
	}
	startAttacker(t, t.TempDir(), plan)

	longOK, freshOK := honestRounds(t, n, seed, sLong, rounds)
	st := reports.get()
	t.Logf("honest fetches under attack: connected peer %d/%d, new peers %d/%d; seed: refused handshakes %d, unadmitted conns %d, streams %d; evictions %d",
		longOK, rounds, freshOK, rounds, st.RefusedHandshakes, st.RefusedUnadmitted, st.RefusedStreams, st.Evictions)
	require.GreaterOrEqual(t, longOK*10, rounds*8, "connected honest peer: %d of %d fetches", longOK, rounds)
	require.GreaterOrEqual(t, freshOK*10, rounds*8, "new honest peers: %d of %d fetches", freshOK, rounds)
}

func connectInfo(t *testing.T, h *transport.Host, p peer.AddrInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.Connect(ctx, p))
}

func connectedTo(h *transport.Host, p peer.ID) bool {
	return h.LibP2P().Network().Connectedness(p) == network.Connected
}

// TestInboundAttackerChild is the attacker process of the attack tests; it
// does nothing unless started by them. It prints "ATTACKING" once its
// first wave is out, then attacks until killed.
func TestInboundAttackerChild(t *testing.T) {
	dir := os.Getenv(inboundAttackerEnv)
	if dir == "" {
		t.Skip("the attacker process of TestTicketedStreamFlood and TestStrangerFlood")
	}
	b, err := os.ReadFile(filepath.Join(dir, "attack.json"))
	require.NoError(t, err)
	var plan attackPlan
	require.NoError(t, json.Unmarshal(b, &plan))
	seed, err := peer.AddrInfosFromP2pAddrs(mustAddrs(t, plan.Seed)...)
	require.NoError(t, err)
	require.Len(t, seed, 1)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var a attacker
	a.seed = seed[0]
	switch plan.Kind {
	case "ticketed":
		a.ticketed(ctx, t, dir, plan)
	case "strangers":
		a.strangers(ctx, t, plan)
	default:
		t.Fatalf("unknown attack %q", plan.Kind)
	}
}

func mustAddrs(t *testing.T, ss []string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		require.NoError(t, err)
		out = append(out, a)
	}
	return out
}

type attacker struct {
	seed                       peer.AddrInfo
	streams, sockets, identity atomic.Int64
	mu                         sync.Mutex
	lastErr                    error
}

// stall opens segment streams to the seed on h, keeping n of them open
// with half a request written, until ctx ends or h is disconnected for
// good (give up after disconnected returns true).
func (a *attacker) stall(ctx context.Context, h *transport.Host, n int, disconnected func() bool) {
	half := []byte{1, byte(len(content))}
	half = append(half, content[:2]...)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				if !connectedTo(h, a.seed.ID) {
					if disconnected() {
						return
					}
					continue
				}
				sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				st, err := h.LibP2P().NewStream(sctx, a.seed.ID, transport.SegmentProtocol)
				cancel()
				if err == nil {
					_, err = st.Write(half)
				}
				if err != nil {
					pause(ctx, 50*time.Millisecond)
					continue
				}
				a.streams.Add(1)
				// Held until the seed ends it; then another.
				start := time.Now()
				_, _ = io.Copy(io.Discard, st)
				_ = st.Reset()
				if time.Since(start) < 100*time.Millisecond {
					pause(ctx, 100*time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ticketed is M1: one host per ticket, from 127.0.3.x, each connected and
// admitted, each keeping plan.Streams stalled segment streams; a host the
// seed drops redials every 200 ms.
func (a *attacker) ticketed(ctx context.Context, t *testing.T, dir string, plan attackPlan) {
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	for i, ticket := range plan.Tickets {
		h, err := transport.NewHost(ctx, transport.Config{
			IdentityFile:   filepath.Join(dir, fmt.Sprintf("id-%d", i)),
			ListenAddrs:    []string{fmt.Sprintf("/ip4/127.0.3.%d/tcp/0", 1+i%250)},
			AdmissionGrace: -1,
			Logger:         testLogger(t),
		})
		require.NoError(t, err)
		defer h.Close()
		ready.Add(1)
		wg.Go(func() {
			// One dial at a time; the first one tells ready.
			var mu sync.Mutex
			first := true
			redial := func() bool {
				mu.Lock()
				defer mu.Unlock()
				if !connectedTo(h, a.seed.ID) {
					cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					err := h.Connect(network.WithForceDirectDial(cctx, "attack"), a.seed)
					cancel()
					if err == nil {
						a.identity.Add(1)
						// The host joined nothing: its ticket goes by hand.
						presentTicket(ctx, h, a.seed.ID, ticket)
					} else {
						pause(ctx, 200*time.Millisecond)
					}
				}
				if first {
					first = false
					ready.Done()
				}
				return ctx.Err() != nil
			}
			redial()
			a.stall(ctx, h, plan.Streams, redial)
		})
	}
	ready.Wait()
	fmt.Printf("ATTACKING identities=%d streams=%d\n", a.identity.Load(), a.streams.Load())
	wg.Wait()
}

// presentTicket runs the ticket protocol by hand (version 2, swarm tag,
// ticket; one status byte back).
func presentTicket(ctx context.Context, h *transport.Host, seed peer.ID, ticket []byte) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := h.LibP2P().NewStream(sctx, seed, transport.TicketProtocol)
	if err != nil {
		return
	}
	defer st.Close()
	tag := sha256.Sum256([]byte("sealmesh swarm tag v1\x00" + content))
	msg := append([]byte{2}, tag[:]...)
	msg = append(msg, byte(len(ticket)>>8), byte(len(ticket)))
	msg = append(msg, ticket...)
	_ = st.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := st.Write(msg); err != nil {
		return
	}
	_ = st.CloseWrite()
	var b [1]byte
	_, _ = io.ReadFull(st, b[:])
}

// strangers is M2: plan.HalfOpen raw TCP sockets from 127.0.1.1-8 that
// never send a byte, redialled as soon as the seed closes them, and
// plan.Identities hosts without tickets from 127.0.2.x, each opening
// plan.Streams stalled segment streams and replaced by a new identity
// when the seed drops it.
func (a *attacker) strangers(ctx context.Context, t *testing.T, plan attackPlan) {
	tcpAddr, err := net.ResolveTCPAddr("tcp", tcpHostPort(t, a.seed.Addrs[0]))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range plan.HalfOpen {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%8))}
		wg.Go(func() {
			d := net.Dialer{LocalAddr: src, Timeout: 2 * time.Second}
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", tcpAddr.String())
				if err != nil {
					pause(ctx, 50*time.Millisecond)
					continue
				}
				a.sockets.Add(1)
				start := time.Now()
				stopRead := context.AfterFunc(ctx, func() { _ = c.Close() })
				_, _ = io.Copy(io.Discard, c) // until the seed closes it
				stopRead()
				_ = c.Close()
				if time.Since(start) < 100*time.Millisecond {
					pause(ctx, 20*time.Millisecond)
				}
			}
		})
	}
	for j := range plan.Identities {
		listen := fmt.Sprintf("/ip4/127.0.2.%d/tcp/0", 1+j%250)
		wg.Go(func() {
			for ctx.Err() == nil {
				a.rotate(ctx, t, listen, plan.Streams)
			}
		})
	}
	// The first wave: every socket out, and the identities given 2 s
	// (without the defences most of them cannot even connect).
	for ctx.Err() == nil && a.sockets.Load() < int64(plan.HalfOpen) {
		pause(ctx, 50*time.Millisecond)
	}
	pause(ctx, 2*time.Second)
	fmt.Printf("ATTACKING sockets=%d identities=%d streams=%d\n", a.sockets.Load(), a.identity.Load(), a.streams.Load())
	for ctx.Err() == nil {
		pause(ctx, 2*time.Second)
		a.mu.Lock()
		last := a.lastErr
		a.mu.Unlock()
		fmt.Printf("sockets=%d identities=%d streams=%d; last failed connect: %v\n", a.sockets.Load(), a.identity.Load(), a.streams.Load(), last)
	}
	wg.Wait()
}

// rotate is one unticketed identity's life: connect, stall streams until
// the seed drops it, close.
func (a *attacker) rotate(ctx context.Context, t *testing.T, listen string, streams int) {
	h, err := transport.NewHost(ctx, transport.Config{ListenAddrs: []string{listen}, AdmissionGrace: -1, Logger: testLogger(t)})
	if err != nil {
		pause(ctx, 100*time.Millisecond)
		return
	}
	defer h.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = h.Connect(cctx, a.seed)
	cancel()
	if err != nil {
		a.mu.Lock()
		a.lastErr = err
		a.mu.Unlock()
		pause(ctx, 100*time.Millisecond)
		return
	}
	a.identity.Add(1)
	a.stall(ctx, h, streams, func() bool { return true })
}

func tcpHostPort(t *testing.T, a ma.Multiaddr) string {
	ip, err := a.ValueForProtocol(ma.P_IP4)
	require.NoError(t, err)
	port, err := a.ValueForProtocol(ma.P_TCP)
	require.NoError(t, err)
	return net.JoinHostPort(ip, port)
}
