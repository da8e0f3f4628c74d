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
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// peerEnv selects the "peer main" when the test binary re-executes itself.
const peerEnv = "SEALMESH_TRANSPORT_TEST_PEER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(peerEnv); dir != "" {
		if err := peerMain(dir); err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// peerMain is a seed in its own process: it reads a packaged content, its
// identity, its ticket and the ticket authority's key from dir, prints
// "ADDR <multiaddr>" lines and "READY", and serves until killed.
func peerMain(dir string) error {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			panic(err)
		}
		return b
	}
	pub := ed25519.PublicKey(read("authority.pub"))
	m, err := segment.ParseManifest(read(segment.ManifestFile), segment.TrustedKeys{"test-key": ed25519.PublicKey(read("packager.pub"))})
	if err != nil {
		return err
	}
	store := transport.NewMemStore()
	for _, f := range m.Files() {
		data := read(filepath.Join("files", f.Path))
		if err := f.Check(data); err != nil {
			return err
		}
		_ = store.Put(f.Path, data)
	}
	rateLimit, _ := strconv.ParseInt(os.Getenv("SEALMESH_TEST_MAXRATE"), 10, 64)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	h, err := transport.NewHost(ctx, transport.Config{
		IdentityFile: filepath.Join(dir, "identity"),
		ListenAddrs:  []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
	})
	if err != nil {
		return err
	}
	defer h.Close()
	exp := time.Now().Add(10 * time.Minute)
	sw, err := h.Join(ctx, m.ContentID, m, transport.SwarmOptions{
		Verifier: verifier{pub: pub, now: time.Now},
		Tickets:  fixedTicket(read("ticket"), exp),
		Store:    store,
		Upload:   transport.UploadPolicy{MaxRate: rateLimit},
	})
	if err != nil {
		return err
	}
	for _, a := range h.Addrs() {
		fmt.Printf("ADDR %s\n", a)
	}
	fmt.Println("READY")
	// Report what has been uploaded, so that the parent can act mid-transfer
	// on a signal rather than after a guessed sleep.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var up int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if n := sw.Stats().BytesUp; n != up {
				up = n
				fmt.Printf("UP %d\n", n)
			}
		}
	}
}

// startPeer runs peerMain in a child process and returns its address and
// a counter of the bytes it reports having uploaded.
func startPeer(t *testing.T, n *testNet, maxRate int64) (peer.AddrInfo, *exec.Cmd, *atomic.Int64) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "authority.pub"), n.auth.pub, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "packager.pub"), n.fx.pub, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, segment.ManifestFile), n.fx.signed, 0o600))
	for p, b := range n.fx.files {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "files", filepath.Dir(p)), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "files", p), b, 0o600))
	}
	// The child's identity is made here so its ticket can name it.
	sk, err := transport.LoadIdentity(filepath.Join(dir, "identity"))
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ticket"), n.auth.issue(id, content, time.Now().Add(10*time.Minute)), 0o600))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), peerEnv+"="+dir, "SEALMESH_TEST_MAXRATE="+strconv.FormatInt(maxRate, 10))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	info := peer.AddrInfo{ID: id}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "peer process exited before READY")
			if a, ok := strings.CutPrefix(l, "ADDR "); ok {
				addr, err := ma.NewMultiaddr(a)
				require.NoError(t, err)
				info.Addrs = append(info.Addrs, addr)
			}
			if l == "READY" {
				up := new(atomic.Int64)
				go func() {
					for l := range lines {
						if v, ok := strings.CutPrefix(l, "UP "); ok {
							if n, err := strconv.ParseInt(v, 10, 64); err == nil {
								up.Store(n)
							}
						}
					}
				}()
				return info, cmd, up
			}
		case <-deadline:
			t.Fatal("peer process did not start")
		}
	}
}

// Peers in separate OS processes: a fetch across processes works; a peer
// process killed (SIGKILL) mid-transfer makes the fetch fail fast without a
// ban, and a retry on another peer succeeds.
func TestSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	n := newNet(t, 700, 64<<10, 2<<20)
	child, cmd, uploaded := startPeer(t, n, 256<<10) // 2 MiB at 256 KiB/s: 8 s
	viewer := n.host(func(c *transport.Config) { c.IdleTimeout = 2 * time.Second })
	backup := n.host()
	sViewer := n.join(viewer, nil)
	n.join(backup, n.fx.full())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, viewer.Connect(ctx, child))
	connect(t, viewer, backup)
	hasCandidate(t, sViewer, n.fx.paths[1], child.ID)

	got, err := sViewer.Fetch(ctx, child.ID, n.fx.paths[1])
	require.NoError(t, err)
	require.Equal(t, n.fx.files[n.fx.paths[1]], got)

	big := n.fx.paths[2]
	before := uploaded.Load()
	done := make(chan error, 1)
	go func() {
		_, err := sViewer.Fetch(context.Background(), child.ID, big)
		done <- err
	}()
	// Kill once the child has sent part of the big file (at least 64 KiB
	// of its 2 MiB): mid-transfer, whatever the machine's speed.
	require.Eventually(t, func() bool { return uploaded.Load()-before >= 64<<10 }, 10*time.Second, 5*time.Millisecond,
		"the child never started sending the big file")
	killed := time.Now()
	require.NoError(t, cmd.Process.Kill())
	select {
	case err := <-done:
		require.Error(t, err)
		require.NotErrorIs(t, err, transport.ErrPeerBanned)
		t.Logf("fetch from the killed process failed after %v: %v", time.Since(killed).Round(time.Millisecond), err)
		require.Less(t, time.Since(killed), 4*time.Second, "within the 2 s idle timeout, not QUIC's 30 s")
	case <-time.After(10 * time.Second):
		t.Fatal("fetch from a killed process did not fail")
	}
	require.False(t, viewer.Banned(child.ID))
	got, err = sViewer.Fetch(context.Background(), backup.ID(), big)
	require.NoError(t, err)
	require.Equal(t, n.fx.files[big], got)
}
