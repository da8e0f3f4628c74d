package transport_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
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

// sybilSeedEnv makes TestSybilSeedChild the seed process of TestSybilFloodBoundedOnSeed.
const sybilSeedEnv = "SEALMESH_SYBIL_SEED_DIR"

// sybilSeedStat is one line of the seed process's resource report.
type sybilSeedStat struct {
	heap                        uint64 // HeapInuse of the seed process
	conns                       int    // open connections
	streams, transientStreams   int    // resource manager: system and transient scopes
	memory                      int64  // resource manager: reserved memory (system)
	maxPeerStreams, maxPeerConn int    // the largest per-peer scope
	admitted                    int
	evictions, bans             int64
}

// TestSybilFloodBoundedOnSeed backs the "sybil flood" row of SECURITY.md. A
// seed with the default Config limits (Limits: 96 connections, 256 streams,
// 64 MiB; per peer 16 streams and 8 connections) runs in a process of its
// own, so that its heap is measured apart from the attackers'. 100 sybil
// hosts with distinct peer IDs dial it at once: 50 hold valid tickets (so
// they are admitted, as paying viewers' peers would be) and 50 hold none.
// Each then opens 32 segment streams and leaves them idle, twice its
// per-peer budget. Meanwhile one honest admitted peer fetches every file.
//
// The seed reports its resource manager's counts and its heap every 50 ms;
// over the whole run they must stay within the limits: connections ≤ 96,
// streams ≤ 256 (system) and ≤ 16 (any one peer), heap growth < 64 MiB.
// Unticketed sybils must be evicted, and the honest peer must get every
// file, verified against the manifest.
//
// 100 real libp2p hosts in the test process cost about 1 s of setup on two
// cores; they dial over TCP only (the seed listens on QUIC too).
func TestSybilFloodBoundedOnSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process and 100 hosts")
	}
	const (
		sybils         = 100
		streamsEach    = 32
		ticketedSybils = sybils / 2
	)
	n := newNet(t)
	seedInfo, stats := startSybilSeed(t, n)
	var tcp []ma.Multiaddr
	for _, a := range seedInfo.Addrs {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			tcp = append(tcp, a)
		}
	}
	require.NotEmpty(t, tcp)
	seedTCP := peer.AddrInfo{ID: seedInfo.ID, Addrs: tcp}

	// The honest peer: connected and admitted before the flood.
	honest := n.host()
	sHonest := n.join(honest, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, honest.Connect(ctx, seedInfo))
	hasCandidate(t, sHonest, n.fx.paths[len(n.fx.paths)-1], seedInfo.ID)
	base := stats.waitBaseline(t)

	// The sybils.
	var wg sync.WaitGroup
	var dialed, refused, opened atomic.Int64
	hosts := make([]*transport.Host, sybils)
	for i := range hosts {
		hosts[i] = n.host(func(c *transport.Config) {
			c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
			c.AdmissionGrace = -1 // the sybils themselves never evict
		})
		if i < ticketedSybils {
			n.join(hosts[i], nil)
		}
	}
	floodStart := time.Now()
	connectedSybil := make([]bool, sybils)
	for i, h := range hosts {
		wg.Go(func() {
			// A refused dial (the seed's transient scope admits a quarter of
			// its connections while they handshake) is retried, bypassing
			// the dialler's backoff, as a determined attacker would.
			var err error
			for range 20 {
				if err = h.Connect(network.WithForceDirectDial(ctx, "sybil retry"), seedTCP); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				refused.Add(1)
				return
			}
			dialed.Add(1)
			connectedSybil[i] = true
			for range streamsEach {
				sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
				st, err := h.LibP2P().NewStream(sctx, seedInfo.ID, transport.SegmentProtocol)
				scancel()
				if err != nil {
					continue
				}
				opened.Add(1)
				// Held open, idle: no request is ever sent. Closed with
				// the host at the end of the test.
				_ = st
			}
		})
	}
	wg.Wait()
	t.Logf("sybils: %d connected, %d refused after 20 tries, %d streams opened on their side in %v",
		dialed.Load(), refused.Load(), opened.Load(), time.Since(floodStart).Round(time.Millisecond))

	// The honest peer fetches every file during the flood. A busy answer or
	// a stream refused for resources is retried, as the scheduler would.
	var retries int
	var firstErr error
	for _, p := range n.fx.paths {
		var got []byte
		var err error
		for {
			got, err = sHonest.Fetch(ctx, seedInfo.ID, p)
			if err == nil || time.Since(floodStart) > 20*time.Second {
				break
			}
			retries++
			if firstErr == nil {
				firstErr = err
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err, "honest fetch of %s during the sybil flood", p)
		require.NoError(t, n.fx.m.CheckFile(p, got))
	}
	t.Logf("honest peer fetched all %d files %v into the flood, after %d retries (first error: %v)",
		len(n.fx.paths), time.Since(floodStart).Round(time.Millisecond), retries, firstErr)

	// Unticketed sybils are evicted after the 5 s grace; ticketed ones stay.
	stillConnected := func() (ticketed, unticketed int) {
		for i, h := range hosts {
			if h.LibP2P().Network().Connectedness(seedInfo.ID) == network.Connected {
				if i < ticketedSybils {
					ticketed++
				} else {
					unticketed++
				}
			}
		}
		return
	}
	require.Eventually(t, func() bool { _, u := stillConnected(); return u == 0 }, 15*time.Second, 50*time.Millisecond,
		"unticketed sybils still connected; seed: %+v", stats.last())
	tk, _ := stillConnected()
	t.Logf("after the grace period: %d ticketed sybils still connected, no unticketed one", tk)

	peak := stats.peak()
	t.Logf("seed: baseline %+v", base)
	t.Logf("seed: peak     %+v", peak)
	require.LessOrEqual(t, peak.conns, transport.DefaultConns, "connections")
	require.LessOrEqual(t, peak.streams, transport.DefaultStreams, "streams (system scope)")
	require.LessOrEqual(t, peak.maxPeerStreams, transport.DefaultPeerStreams, "streams of one peer")
	require.LessOrEqual(t, peak.maxPeerConn, transport.DefaultPeerConns, "connections of one peer")
	require.LessOrEqual(t, peak.memory, int64(transport.DefaultMemory), "reserved memory")
	require.Less(t, int64(peak.heap)-int64(base.heap), int64(64<<20), "the seed's heap grew by %d MiB", (int64(peak.heap)-int64(base.heap))>>20)
	require.LessOrEqual(t, stats.last().admitted, ticketedSybils+1, "only ticket holders are admitted")
	for i := ticketedSybils; i < sybils; i++ {
		if connectedSybil[i] {
			// Evicted after the grace period, or banned sooner for
			// leaving streams idle (TestIdleStreamFloodReset).
			require.Positive(t, stats.last().evictions+stats.last().bans, "connected unticketed sybils must be counted as evicted or banned")
			break
		}
	}
}

// sybilSeedReports collects the seed process's STAT lines.
type sybilSeedReports struct {
	mu  sync.Mutex
	all []sybilSeedStat
}

func (s *sybilSeedReports) add(st sybilSeedStat) {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
}

func (s *sybilSeedReports) last() sybilSeedStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return sybilSeedStat{}
	}
	return s.all[len(s.all)-1]
}

// waitBaseline waits for a few reports and returns the last.
func (s *sybilSeedReports) waitBaseline(t *testing.T) sybilSeedStat {
	t.Helper()
	s.mu.Lock()
	from := len(s.all)
	s.mu.Unlock()
	require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.all) >= from+3 }, 10*time.Second, 20*time.Millisecond)
	return s.last()
}

// peak is the field-wise maximum of every report.
func (s *sybilSeedReports) peak() sybilSeedStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p sybilSeedStat
	for _, st := range s.all {
		p.heap = max(p.heap, st.heap)
		p.conns = max(p.conns, st.conns)
		p.streams = max(p.streams, st.streams)
		p.transientStreams = max(p.transientStreams, st.transientStreams)
		p.memory = max(p.memory, st.memory)
		p.maxPeerStreams = max(p.maxPeerStreams, st.maxPeerStreams)
		p.maxPeerConn = max(p.maxPeerConn, st.maxPeerConn)
		p.admitted = max(p.admitted, st.admitted)
		p.evictions = max(p.evictions, st.evictions)
		p.bans = max(p.bans, st.bans)
	}
	return p
}

// startSybilSeed runs TestSybilSeedChild in a child process serving n's
// content, and returns its address and its reports.
func startSybilSeed(t *testing.T, n *testNet) (peer.AddrInfo, *sybilSeedReports) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authority.pub"), n.auth.pub, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "packager.pub"), n.fx.pub, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, segment.ManifestFile), n.fx.signed, 0o600))
	for p, b := range n.fx.files {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "files", filepath.Dir(p)), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "files", p), b, 0o600))
	}
	sk, err := transport.LoadIdentity(filepath.Join(dir, "identity"))
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ticket"), n.auth.issue(id, content, time.Now().Add(10*time.Minute)), 0o600))

	cmd := exec.Command(os.Args[0], "-test.run=^TestSybilSeedChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), sybilSeedEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	info := peer.AddrInfo{ID: id}
	stats := &sybilSeedReports{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.HasPrefix(l, "ADDR "):
				if a, err := ma.NewMultiaddr(strings.TrimPrefix(l, "ADDR ")); err == nil {
					info.Addrs = append(info.Addrs, a)
				}
			case l == "READY":
				close(ready)
			case strings.HasPrefix(l, "STAT "):
				var st sybilSeedStat
				if _, err := fmt.Sscanf(l, "STAT heap=%d conns=%d streams=%d transient=%d memory=%d peerstreams=%d peerconns=%d admitted=%d evictions=%d bans=%d",
					&st.heap, &st.conns, &st.streams, &st.transientStreams, &st.memory, &st.maxPeerStreams, &st.maxPeerConn, &st.admitted, &st.evictions, &st.bans); err == nil {
					stats.add(st)
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("seed process did not start")
	}
	return info, stats
}

// TestSybilSeedChild is the seed process of TestSybilFloodBoundedOnSeed;
// it does nothing unless started by it.
func TestSybilSeedChild(t *testing.T) {
	dir := os.Getenv(sybilSeedEnv)
	if dir == "" {
		t.Skip("the seed process of TestSybilFloodBoundedOnSeed")
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
	// Default limits, grace and timeouts: only the identity and the listen
	// addresses are set.
	h, err := transport.NewHost(ctx, transport.Config{Logger: testLogger(t), IdentityFile: filepath.Join(dir, "identity"), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}})
	require.NoError(t, err)
	defer h.Close()
	_, err = h.Join(ctx, m.ContentID, m, transport.SwarmOptions{
		Verifier: verifier{pub: ed25519.PublicKey(read("authority.pub")), now: time.Now},
		Tickets:  fixedTicket(read("ticket"), time.Now().Add(10*time.Minute)),
		Store:    store,
	})
	require.NoError(t, err)
	for _, a := range h.Addrs() {
		fmt.Printf("ADDR %s\n", a)
	}
	fmt.Println("READY")
	rm := h.LibP2P().Network().ResourceManager()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var sys, tr network.ScopeStat
		_ = rm.ViewSystem(func(s network.ResourceScope) error { sys = s.Stat(); return nil })
		_ = rm.ViewTransient(func(s network.ResourceScope) error { tr = s.Stat(); return nil })
		peerStreams, peerConns := 0, 0
		for _, p := range h.LibP2P().Network().Peers() {
			_ = rm.ViewPeer(p, func(s network.PeerScope) error {
				st := s.Stat()
				peerStreams = max(peerStreams, st.NumStreamsInbound+st.NumStreamsOutbound)
				peerConns = max(peerConns, st.NumConnsInbound+st.NumConnsOutbound)
				return nil
			})
		}
		hs := h.Stats()
		fmt.Printf("STAT heap=%d conns=%d streams=%d transient=%d memory=%d peerstreams=%d peerconns=%d admitted=%d evictions=%d bans=%d\n",
			ms.HeapInuse, len(h.LibP2P().Network().Conns()), sys.NumStreamsInbound+sys.NumStreamsOutbound,
			tr.NumStreamsInbound+tr.NumStreamsOutbound, sys.Memory, peerStreams, peerConns, hs.AdmittedPeers, hs.Evictions, hs.Bans)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
