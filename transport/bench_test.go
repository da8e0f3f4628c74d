package transport_test

// Benchmarks of the peer transport, run side by side by scripts/bench-transport
// (see BENCHMARKS.md, "Peer transport"):
//
//   - BenchmarkPeerTransfer: 2 MiB segments through Swarm.Fetch (request,
//     header, size-bounded read, SHA-256 against the manifest) over TCP+Noise,
//     TCP+TLS and QUIC, with the server re-hashing each file before serving
//     (the default) and trusting its store; beside them, on the same
//     connection, a raw libp2p stream carrying the same 2 MiB with no framing
//     or verification.
//     A "paired" run alternates the two to compare them under the same noise.
//   - BenchmarkLoopbackTCP: 2 MiB per request over one persistent net.Conn.
//   - BenchmarkVerify: one SHA-256 check of a 2 MiB file against the manifest.
//   - BenchmarkDialToFirstSegment: a fresh host dials a seed, both present
//     tickets, the seed's have-map arrives and Fetch returns a verified 2 MiB
//     segment.
//   - BenchmarkSeed50Downloaders: a seed in its own OS process serves a
//     20-segment content to 50 downloaders at once; its peak RSS, Go heap and
//     resource-manager peaks are reported.
//
// Nothing here asserts a time: the machines are shared and noisy.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

const benchSegment = 2 << 20

// benchTransports are the transports compared. Security picks the one
// secure channel offered on TCP; QUIC always runs its own TLS 1.3.
var benchTransports = []struct {
	name, security, listen string
}{
	{"tcp-noise", "noise", "/ip4/127.0.0.1/tcp/0"},
	{"tcp-tls", "tls", "/ip4/127.0.0.1/tcp/0"},
	{"quic", "", "/ip4/127.0.0.1/udp/0/quic-v1"},
}

// rawProtocol is the baseline: one stream, a one-byte request, 2 MiB back.
const rawProtocol protocol.ID = "/sealmesh-bench/raw/1.0.0"

// discardStore holds nothing, so a downloader measures the transfer and
// the verification, not a store's copy (MemStore.Put clones the file).
type discardStore struct{}

func (discardStore) Get(string) ([]byte, bool) { return nil, false }
func (discardStore) Put(string, []byte) error  { return nil }
func (discardStore) Paths() []string           { return nil }

func benchHostConfig(security, listen string) func(*transport.Config) {
	return func(c *transport.Config) {
		c.ListenAddrs = []string{listen}
		c.Security = security
	}
}

// serveRaw makes h answer rawProtocol with payload.
func serveRaw(h *transport.Host, payload []byte) {
	h.LibP2P().SetStreamHandler(rawProtocol, func(st network.Stream) {
		var req [1]byte
		if _, err := io.ReadFull(st, req[:]); err != nil {
			_ = st.Reset()
			return
		}
		if _, err := io.Copy(st, bytes.NewReader(payload)); err != nil {
			_ = st.Reset()
			return
		}
		_ = st.Close()
	})
}

// fetchRaw reads one raw payload from p into buf, which must be its size.
func fetchRaw(ctx context.Context, h *transport.Host, p peer.ID, buf []byte) error {
	st, err := h.LibP2P().NewStream(ctx, p, rawProtocol)
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{1}); err != nil {
		_ = st.Reset()
		return err
	}
	_ = st.CloseWrite()
	if _, err := io.ReadFull(st, buf); err != nil {
		_ = st.Reset()
		return err
	}
	if n, _ := st.Read(buf[:1]); n != 0 {
		_ = st.Reset()
		return errors.New("raw stream: bytes past the payload")
	}
	return st.Close()
}

func BenchmarkPeerTransfer(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			n := newNet(b, 700, benchSegment)
			path := n.fx.paths[1]
			cfg := benchHostConfig(tr.security, tr.listen)
			seed := n.host(cfg)     // re-hashes every file it serves (the default)
			trusting := n.host(cfg) // TrustStore: serves its store as is
			downloader := n.host(cfg)
			n.join(seed, n.fx.full())
			n.join(trusting, n.fx.full(), func(o *transport.SwarmOptions) { o.TrustStore = true })
			s := n.join(downloader, discardStore{})
			serveRaw(seed, n.fx.files[path])
			for _, h := range []*transport.Host{seed, trusting} {
				connect(b, downloader, h)
				hasCandidate(b, s, path, h.ID())
			}
			conn := downloader.LibP2P().Network().ConnsToPeer(seed.ID())
			require.Len(b, conn, 1)
			b.Logf("%s: %s, security %q, muxer %q", tr.name, conn[0].RemoteMultiaddr(), conn[0].ConnState().Security, conn[0].ConnState().StreamMultiplexer)
			ctx := context.Background()

			fetchFrom := func(from *transport.Host) func(*testing.B) {
				return func(b *testing.B) {
					b.SetBytes(benchSegment)
					for b.Loop() {
						if _, err := s.Fetch(ctx, from.ID(), path); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.Run("segment", fetchFrom(seed))
			b.Run("segment-truststore", fetchFrom(trusting))
			b.Run("raw-stream", func(b *testing.B) {
				buf := make([]byte, benchSegment)
				b.SetBytes(benchSegment)
				for b.Loop() {
					if err := fetchRaw(ctx, downloader, seed.ID(), buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			// paired alternates a segment fetch and a raw copy, so that
			// both see the same machine noise; the ratio of their summed
			// times is the protocol's cost, robust to a neighbour's load.
			b.Run("paired", func(b *testing.B) {
				buf := make([]byte, benchSegment)
				var seg, raw time.Duration
				b.SetBytes(2 * benchSegment)
				for b.Loop() {
					t0 := time.Now()
					if _, err := s.Fetch(ctx, seed.ID(), path); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					if err := fetchRaw(ctx, downloader, seed.ID(), buf); err != nil {
						b.Fatal(err)
					}
					seg, raw = seg+t1.Sub(t0), raw+time.Since(t1)
				}
				n := float64(b.N) * benchSegment / 1e6
				b.ReportMetric(n/seg.Seconds(), "segment-MB/s")
				b.ReportMetric(n/raw.Seconds(), "raw-MB/s")
				b.ReportMetric(100*raw.Seconds()/seg.Seconds(), "segment/raw-%")
			})
		})
	}
}

// BenchmarkVerify is what one verification of a 2 MiB file costs (SHA-256
// through segment.File.Check): Fetch does it once, and a serving peer once
// more unless its swarm sets TrustStore.
func BenchmarkVerify(b *testing.B) {
	fx := newFixture(b, 700, benchSegment)
	f := fx.m.Renditions[0].Files[1]
	data := fx.files[f.Path]
	b.SetBytes(benchSegment)
	for b.Loop() {
		if err := f.Check(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoopbackTCP is the ceiling: 2 MiB per one-byte request over a
// persistent loopback TCP connection, no encryption, no multiplexing.
func BenchmarkLoopbackTCP(b *testing.B) {
	payload := make([]byte, benchSegment)
	_, _ = rand.Read(payload)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var req [1]byte
		for {
			if _, err := io.ReadFull(c, req[:]); err != nil {
				return
			}
			if _, err := c.Write(payload); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(b, err)
	defer c.Close()
	buf := make([]byte, benchSegment)
	b.SetBytes(benchSegment)
	for b.Loop() {
		if _, err := c.Write([]byte{1}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDialToFirstSegment times, per iteration, a fresh host from its
// dial to a seed until Fetch returns a verified 2 MiB segment: the secure
// handshake, both ticket presentations, the seed's have-map, the transfer.
// Host start and Close are outside the timed span. It reports the median
// and the 90th percentile, and the median time until the have-map came;
// with SEALMESH_BENCH_SAMPLES set it appends every sample ("name total-ms
// have-ms" lines) to that file, for medians across -count.
func BenchmarkDialToFirstSegment(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			n := newNet(b, 700, benchSegment)
			path := n.fx.paths[1]
			cfg := benchHostConfig(tr.security, tr.listen)
			seed := n.host(cfg)
			n.join(seed, n.fx.full())
			var samples, haves []time.Duration
			for b.Loop() {
				have, d, err := dialToFirstSegment(n, cfg, seed, path)
				if err != nil {
					b.Fatal(err)
				}
				samples, haves = append(samples, d), append(haves, have)
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			var sb strings.Builder
			for i, d := range samples {
				fmt.Fprintf(&sb, "%s %.3f %.3f\n", b.Name(), ms(d), ms(haves[i]))
			}
			slices.Sort(samples)
			slices.Sort(haves)
			b.ReportMetric(ms(samples[len(samples)/2]), "ms-median")
			b.ReportMetric(ms(samples[len(samples)*9/10]), "ms-p90")
			b.ReportMetric(ms(haves[len(haves)/2]), "ms-to-have-median")
			b.ReportMetric(float64(len(samples)), "samples")
			if f := os.Getenv("SEALMESH_BENCH_SAMPLES"); f != "" {
				out, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				require.NoError(b, err)
				_, err = out.WriteString(sb.String())
				require.NoError(b, errors.Join(err, out.Close()))
			}
		})
	}
}

// dialToFirstSegment returns the time from the dial until the seed's
// have-map arrived, and until Fetch returned the verified segment.
func dialToFirstSegment(n *testNet, cfg func(*transport.Config), seed *transport.Host, path string) (have, total time.Duration, err error) {
	c := transport.Config{AdmissionGrace: time.Second, Now: n.clock.Now, Logger: testLogger(n.t)}
	cfg(&c)
	h, err := transport.NewHost(context.Background(), c)
	if err != nil {
		return 0, 0, err
	}
	defer h.Close()
	s, err := h.Join(context.Background(), content, n.fx.m, transport.SwarmOptions{
		Verifier: n.verifier(), Tickets: n.ticketFor(h), Store: discardStore{},
	})
	if err != nil {
		return 0, 0, err
	}
	// The have hook fires once this host admitted the seed and read its
	// hello, which the seed sends only after admitting this host.
	announced := make(chan struct{}, 1)
	s.OnHave(func(p peer.ID, got string) {
		if p == seed.ID() && got == path {
			select {
			case announced <- struct{}{}:
			default:
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.Connect(ctx, seed.AddrInfo()); err != nil {
		return 0, 0, err
	}
	select {
	case <-announced:
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("no have-map from the seed: %w", ctx.Err())
	}
	have = time.Since(start)
	if _, err := s.Fetch(ctx, seed.ID(), path); err != nil {
		return 0, 0, err
	}
	return have, time.Since(start), nil
}

// Seed in its own process ------------------------------------------------

// benchSeedEnv selects TestBenchSeedProcess's seed when the test binary
// re-executes itself (like peerEnv and peerMain in process_test.go).
const benchSeedEnv = "SEALMESH_TRANSPORT_BENCH_SEED"

// seedStats are the peaks the seed process samples while it serves.
type seedStats struct {
	SystemMemory    int64  `json:"system_memory"`    // resource manager, system scope
	TransientMemory int64  `json:"transient_memory"` // resource manager, transient scope
	ServiceMemory   int64  `json:"service_memory"`   // resource manager, sealmesh service
	StreamsInbound  int    `json:"streams_inbound"`  // system scope
	ConnsInbound    int    `json:"conns_inbound"`    // system scope
	HeapInuseBase   uint64 `json:"heap_inuse_base"`  // after GC, before the downloads
	HeapInusePeak   uint64 `json:"heap_inuse_peak"`  // sampled every 20 ms
	BytesUp         int64  `json:"bytes_up"`         // Host.Stats
	GoroutinesPeak  int    `json:"goroutines_peak"`
	Bans            int64  `json:"bans"`               // Host.Stats: must stay 0, every downloader is honest
	IdleResets      int64  `json:"idle_stream_resets"` // Host.Stats
}

// TestBenchSeedProcess is not a test: it is BenchmarkSeed50Downloaders's
// seed, run in a child process (skipped unless benchSeedEnv names its
// folder). It holds the content in a MemStore, serves it with the default
// checks, prints "ADDR <multiaddr>" lines and "READY", and answers the
// commands "reset" (start measuring) and "stats" (print "STATS <json>")
// on stdin until stdin closes.
func TestBenchSeedProcess(t *testing.T) {
	dir := os.Getenv(benchSeedEnv)
	if dir == "" {
		t.Skip("the seed process of BenchmarkSeed50Downloaders")
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		return b
	}
	var keys struct {
		Authority, Packager []byte
		Ticket              []byte
		MaxConcurrent       int
	}
	require.NoError(t, json.Unmarshal(read("seed.json"), &keys))
	m, err := segment.ParseManifest(read(segment.ManifestFile), segment.TrustedKeys{"test-key": keys.Packager})
	require.NoError(t, err)
	store := transport.NewMemStore()
	for _, f := range m.Files() {
		data := read(filepath.Join("files", f.Path))
		require.NoError(t, f.Check(data))
		require.NoError(t, store.Put(f.Path, data))
	}
	h, err := transport.NewHost(context.Background(), transport.Config{
		IdentityFile: filepath.Join(dir, "identity"),
		ListenAddrs:  []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		Logger:       testLogger(t),
	})
	require.NoError(t, err)
	defer h.Close()
	_, err = h.Join(context.Background(), m.ContentID, m, transport.SwarmOptions{
		Verifier: verifier{pub: keys.Authority, now: time.Now},
		Tickets:  fixedTicket(keys.Ticket, time.Now().Add(10*time.Minute)),
		Store:    store,
		Upload:   transport.UploadPolicy{MaxConcurrent: keys.MaxConcurrent},
	})
	require.NoError(t, err)

	viewer, ok := h.LibP2P().Network().ResourceManager().(network.ResourceScopeViewer)
	var mu sync.Mutex
	var st seedStats
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		defer mu.Unlock()
		st.HeapInusePeak = max(st.HeapInusePeak, ms.HeapInuse)
		st.GoroutinesPeak = max(st.GoroutinesPeak, runtime.NumGoroutine())
		if !ok {
			return
		}
		_ = viewer.ViewSystem(func(s network.ResourceScope) error {
			v := s.Stat()
			st.SystemMemory = max(st.SystemMemory, v.Memory)
			st.StreamsInbound = max(st.StreamsInbound, v.NumStreamsInbound)
			st.ConnsInbound = max(st.ConnsInbound, v.NumConnsInbound)
			return nil
		})
		_ = viewer.ViewTransient(func(s network.ResourceScope) error {
			st.TransientMemory = max(st.TransientMemory, s.Stat().Memory)
			return nil
		})
		_ = viewer.ViewService("sealmesh", func(s network.ServiceScope) error {
			st.ServiceMemory = max(st.ServiceMemory, s.Stat().Memory)
			return nil
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				sample()
			}
		}
	}()

	for _, a := range h.Addrs() {
		fmt.Printf("ADDR %s\n", a)
	}
	fmt.Println("READY")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "reset":
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mu.Lock()
			st = seedStats{HeapInuseBase: ms.HeapInuse}
			mu.Unlock()
			fmt.Println("OK")
		case "stats":
			sample()
			mu.Lock()
			hs := h.Stats()
			st.BytesUp, st.Bans, st.IdleResets = hs.BytesUp, hs.Bans, hs.IdleStreamResets
			out, _ := json.Marshal(st)
			mu.Unlock()
			fmt.Printf("STATS %s\n", out)
		}
	}
}

// seedProcess is a running TestBenchSeedProcess child.
type seedProcess struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	info  peer.AddrInfo
}

func startBenchSeed(b *testing.B, n *testNet, maxConcurrent int) *seedProcess {
	b.Helper()
	dir := b.TempDir()
	for p, data := range n.fx.files {
		require.NoError(b, os.MkdirAll(filepath.Join(dir, "files", filepath.Dir(p)), 0o700))
		require.NoError(b, os.WriteFile(filepath.Join(dir, "files", p), data, 0o600))
	}
	require.NoError(b, os.WriteFile(filepath.Join(dir, segment.ManifestFile), n.fx.signed, 0o600))
	sk, err := transport.LoadIdentity(filepath.Join(dir, "identity"))
	require.NoError(b, err)
	id, err := peer.IDFromPrivateKey(sk)
	require.NoError(b, err)
	cfg, err := json.Marshal(map[string]any{
		"Authority": n.auth.pub, "Packager": n.fx.pub, "MaxConcurrent": maxConcurrent,
		"Ticket": n.auth.issue(id, content, time.Now().Add(10*time.Minute)),
	})
	require.NoError(b, err)
	require.NoError(b, os.WriteFile(filepath.Join(dir, "seed.json"), cfg, 0o600))

	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchSeedProcess$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), benchSeedEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(b, err)
	in, err := cmd.StdinPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	sp := &seedProcess{cmd: cmd, in: in, lines: make(chan string, 16), info: peer.AddrInfo{ID: id}}
	b.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			sp.lines <- sc.Text()
		}
		close(sp.lines)
	}()
	for {
		l := sp.next(b, 30*time.Second)
		if a, ok := strings.CutPrefix(l, "ADDR "); ok {
			addr, err := ma.NewMultiaddr(a)
			require.NoError(b, err)
			sp.info.Addrs = append(sp.info.Addrs, addr)
		}
		if l == "READY" {
			return sp
		}
	}
}

func (sp *seedProcess) next(b *testing.B, wait time.Duration) string {
	b.Helper()
	select {
	case l, ok := <-sp.lines:
		require.True(b, ok, "seed process exited")
		return l
	case <-time.After(wait):
		b.Fatal("seed process did not answer")
	}
	return ""
}

// command sends cmd and returns the first answer line starting with prefix.
func (sp *seedProcess) command(b *testing.B, cmd, prefix string) string {
	b.Helper()
	_, err := fmt.Fprintln(sp.in, cmd)
	require.NoError(b, err)
	for {
		if l := sp.next(b, 10*time.Second); strings.HasPrefix(l, prefix) {
			return strings.TrimPrefix(l, prefix)
		}
	}
}

// procKiB reads a "Field: N kB" line of /proc/PID/status.
func procKiB(b *testing.B, pid int, field string) float64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	for l := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			require.NoError(b, err)
			return kib
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// BenchmarkSeed50Downloaders: one seed process holding a 20 x 2 MiB
// content, 50 downloader hosts in this process, each fetching every
// segment with 4 fetches in flight (a "busy" answer is retried after a
// random 10-40 ms pause, as a scheduler would try later). One iteration is
// all 50 downloaders getting all 20 segments; MB/s is what the seed
// sustained. The seed's peak RSS (VmHWM, reset through clear_refs once the
// downloaders are connected), its Go heap and its resource manager's peaks
// are reported, and must stay within the default Limits. uploads=2 is the
// default UploadPolicy; uploads=200 lets
// every request in at once.
func BenchmarkSeed50Downloaders(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc")
	}
	const downloaders, segments, inFlight = 50, 20, 4
	for _, tr := range []struct{ name, addrPart string }{{"tcp-noise", "/tcp/"}, {"quic", "/quic-v1"}} {
		for _, uploads := range []int{transport.DefaultMaxConcurrent, downloaders * inFlight} {
			b.Run(fmt.Sprintf("%s/uploads=%d", tr.name, uploads), func(b *testing.B) {
				sizes := []int{700}
				for range segments {
					sizes = append(sizes, benchSegment)
				}
				n := newNet(b, sizes...)
				seed := startBenchSeed(b, n, uploads)
				target := peer.AddrInfo{ID: seed.info.ID}
				for _, a := range seed.info.Addrs {
					if strings.Contains(a.String(), tr.addrPart) {
						target.Addrs = append(target.Addrs, a)
					}
				}
				require.NotEmpty(b, target.Addrs)
				listen := "/ip4/127.0.0.1/tcp/0"
				if tr.name == "quic" {
					listen = "/ip4/127.0.0.1/udp/0/quic-v1"
				}
				paths := n.fx.paths[1:]
				swarms := make([]*transport.Swarm, downloaders)
				for i := range swarms {
					h := n.host(benchHostConfig("", listen))
					swarms[i] = n.join(h, discardStore{})
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					require.NoError(b, h.Connect(ctx, target))
					cancel()
				}
				for _, s := range swarms {
					hasCandidate(b, s, paths[len(paths)-1], target.ID)
				}
				seed.command(b, "reset", "OK")
				pid := seed.cmd.Process.Pid
				idleKiB := procKiB(b, pid, "VmRSS")
				// "5" resets the peak RSS (VmHWM) to the current RSS.
				hwmReset := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil

				var busy, failures atomic.Int64
				b.SetBytes(downloaders * segments * benchSegment)
				for b.Loop() {
					var wg sync.WaitGroup
					errs := make(chan error, downloaders*inFlight)
					for _, s := range swarms {
						queue := make(chan string, len(paths))
						for _, p := range paths {
							queue <- p
						}
						close(queue)
						for range inFlight {
							wg.Go(func() {
								for p := range queue {
									if err := fetchRetrying(s, target.ID, p, &busy, &failures); err != nil {
										errs <- err
										return
									}
								}
							})
						}
					}
					wg.Wait()
					close(errs)
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				peakKiB := procKiB(b, pid, "VmHWM")
				var st seedStats
				require.NoError(b, json.Unmarshal([]byte(seed.command(b, "stats", "STATS ")), &st))
				mib := func(v float64) float64 { return v / (1 << 20) }
				b.ReportMetric(idleKiB/1024, "seed-idle-RSS-MiB")
				b.ReportMetric(peakKiB/1024, "seed-peak-RSS-MiB")
				if !hwmReset {
					b.Logf("could not reset VmHWM: seed-peak-RSS-MiB includes start-up")
				}
				b.ReportMetric(mib(float64(st.HeapInuseBase)), "seed-heap-base-MiB")
				b.ReportMetric(mib(float64(st.HeapInusePeak)), "seed-heap-peak-MiB")
				b.ReportMetric(mib(float64(st.SystemMemory)), "rcmgr-system-MiB")
				b.ReportMetric(mib(float64(st.TransientMemory)), "rcmgr-transient-MiB")
				b.ReportMetric(mib(float64(st.ServiceMemory)), "rcmgr-service-MiB")
				b.ReportMetric(float64(st.StreamsInbound), "rcmgr-streams-in")
				b.ReportMetric(float64(st.ConnsInbound), "rcmgr-conns-in")
				b.ReportMetric(float64(st.GoroutinesPeak), "seed-goroutines")
				b.ReportMetric(float64(busy.Load()), "busy-answers")
				b.ReportMetric(float64(st.IdleResets), "seed-idle-stream-resets")
				require.Zero(b, st.Bans, "the seed banned an honest downloader")
				// The seed stays inside its resource manager's default limits.
				require.LessOrEqual(b, st.SystemMemory, int64(transport.DefaultMemory), "rcmgr memory")
				require.LessOrEqual(b, st.StreamsInbound, transport.DefaultStreams, "inbound streams")
				require.LessOrEqual(b, st.ConnsInbound, transport.DefaultConns, "inbound connections")
				b.ReportMetric(float64(failures.Load()), "failed-fetches")
			})
		}
	}
}

// fetchRetrying fetches path from p, retrying "busy" answers and transport
// failures after a random 10-40 ms pause, as a scheduler would.
func fetchRetrying(s *transport.Swarm, p peer.ID, path string, busy, failures *atomic.Int64) error {
	var last error
	for range 2000 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := s.Fetch(ctx, p, path)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, transport.ErrBusy):
			busy.Add(1)
		case errors.Is(err, transport.ErrPeerBanned):
			return err
		default:
			failures.Add(1)
		}
		last = err
		// A 2 MiB upload takes tens of milliseconds here: asking again
		// sooner would only add load.
		time.Sleep(time.Duration(10+mrand.IntN(30)) * time.Millisecond)
	}
	return fmt.Errorf("gave up on %s: %w", path, last)
}
