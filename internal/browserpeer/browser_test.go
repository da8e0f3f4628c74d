package browserpeer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// The fixture written by segment.SignManifest (go run ./web/testdata/gen).
type fixtureKey struct {
	KeyID     string `json:"key_id"`
	PublicHex string `json:"public_hex"`
}

// testVerifier admits a ticket "sealmesh-test-ticket|content|peer" when peer
// is the authenticated remote: enough to exercise admission, which is
// transport's, not the ticket format's (the license server's is tested in
// license).
type testVerifier struct{}

func testTicket(content string, p peer.ID) []byte {
	return []byte("sealmesh-test-ticket|" + content + "|" + p.String())
}

func (testVerifier) VerifyTicket(ticket []byte, remote peer.ID, content string) (transport.Admission, error) {
	if !bytes.Equal(ticket, testTicket(content, remote)) {
		return transport.Admission{}, errors.New("ticket does not name this peer and content")
	}
	return transport.Admission{Expiry: time.Now().Add(10 * time.Minute)}, nil
}

type fixedTicket []byte

func (t fixedTicket) Ticket(context.Context, string) ([]byte, time.Time, error) {
	return t, time.Now().Add(10 * time.Minute), nil
}

// flippingStore serves every file with one bit flipped, and claims to verify
// on read so the seed does not catch it before sending.
type flippingStore struct{ *transport.MemStore }

func (f flippingStore) Get(p string) ([]byte, bool) {
	b, ok := f.MemStore.Get(p)
	if !ok {
		return nil, false
	}
	b = bytes.Clone(b)
	b[len(b)/2] ^= 0x10
	return b, true
}

type pageResult struct {
	Peer      string `json:"peer"`
	Admitted  any    `json:"admitted"`
	Bytes     int    `json:"bytes"`
	Status    *int   `json:"status"`
	Error     string `json:"error"`
	Banned    int    `json:"banned"`
	Transport string `json:"transport"`
	SeedHas   bool   `json:"seedHas"` // the seed's have-map reached the page and lists the path
	Fatal     string `json:"fatal"`
	// ManifestError is set when the page refused the manifest.
	ManifestError string   `json:"manifestError"`
	Logs          []string `json:"logs"`

	HarnessError string `json:"harnessError"`
}

// need fails the test when interop tools are required, else skips it.
func need(t *testing.T, what string) {
	t.Helper()
	if interop.Required() {
		t.Fatalf("browserpeer: %s (SEALMESH_INTEROP=1)", what)
	}
	t.Skipf("browserpeer: %s; run ./scripts/test or set SEALMESH_INTEROP=1 to require it", what)
}

const pageHTML = `<!doctype html><meta charset="utf-8"><title>sealmesh web peer test</title>
<script type="module">
import * as sm from '/sealmesh-web.js'
const fromHex = (h) => new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16)))
try {
  const cfg = await (await fetch('/config' + location.search)).json()
  const node = await sm.createNode()
  const me = node.peerId.toString()
  const data = new Uint8Array(await (await fetch('/manifest')).arrayBuffer())
  let m
  try {
    m = await sm.verifyManifest(data, { [cfg.keyID]: fromHex(cfg.keyHex) })
  } catch (e) {
    window.__result = { manifestError: e.name + ': ' + e.message }
    throw e
  }
  const have = new sm.HaveMap(m)
  await sm.listenHave(node, have)
  // The seed shows its own ticket once it has admitted us, and sends its
  // have-map once we accept it: the test's stand-in ticket format here, a
  // license ticket check in a real page.
  await sm.listenTickets(node, m.body.content_id, async (t, p, c) => new TextDecoder().decode(t) === 'sealmesh-test-ticket|' + c + '|' + p)
  const peer = await sm.dial(node, cfg.seedAddr, AbortSignal.timeout(10000))
  const transport = node.getConnections(peer).map((c) => c.remoteAddr.toString()).join(' ')
  let admitted = null
  if (cfg.ticket !== 'none') {
    const t = new Uint8Array(await (await fetch('/ticket?peer=' + (cfg.ticket === 'other' ? 'other' : me))).arrayBuffer())
    try { await sm.presentTicket(node, peer, m.body.content_id, t, AbortSignal.timeout(10000)); admitted = true } catch (e) { admitted = e.name + ': ' + e.message }
  }
  // Once admitted, the seed sends its have-map: wait (bounded) for it.
  let seedHas = false
  for (const end = Date.now() + 5000; admitted === true && !seedHas && Date.now() < end;) {
    seedHas = have.has(peer.toString(), cfg.path)
    if (!seedHas) await new Promise((r) => setTimeout(r, 20))
  }
  const bans = new sm.PeerBans()
  let bytes = 0, status = null, error = ''
  try {
    bytes = (await sm.fetchSegment(node, bans, peer, m, cfg.path, { signal: AbortSignal.timeout(10000) })).length
  } catch (e) { error = e.name + ': ' + e.message; status = e.status ?? null }
  window.__result = { peer: me, admitted, bytes, status, error, banned: bans.size, transport, seedHas }
  await node.stop()
} catch (e) {
  if (window.__result === undefined) window.__result = { fatal: String(e && e.stack || e) }
}
</script>`

func TestBrowserFetchesFromGoSeed(t *testing.T) {
	root, err := interop.RepoRoot()
	require.NoError(t, err)
	bundle := filepath.Join(root, "web", "dist", "sealmesh-web.js")
	if _, err := os.Stat(bundle); err != nil {
		need(t, "no web/dist/sealmesh-web.js (build it: cd web && npm ci && node build.mjs)")
	}
	nodeDir := interop.NodeDir(t)
	chromium := interop.Chromium(t)

	fx := filepath.Join(root, "web", "testdata", "manifest")
	raw, err := os.ReadFile(filepath.Join(fx, segment.ManifestFile))
	require.NoError(t, err)
	var key fixtureKey
	kb, err := os.ReadFile(filepath.Join(fx, "key.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(kb, &key))
	pub, err := hex.DecodeString(key.PublicHex)
	require.NoError(t, err)
	m, err := segment.ParseManifest(raw, segment.TrustedKeys{key.KeyID: ed25519.PublicKey(pub)})
	require.NoError(t, err)
	const path = "v0/seg-1.m4s"
	file, ok := m.Lookup(path)
	require.True(t, ok)

	for _, tc := range []struct {
		name, ticket string
		flip, tamper bool
		check        func(t *testing.T, r pageResult, up int64)
	}{
		{name: "ticket", ticket: "own", check: func(t *testing.T, r pageResult, up int64) {
			require.Equal(t, true, r.Admitted)
			require.True(t, r.SeedHas, "the page learnt from the seed's have stream that it holds %s", path)
			require.Empty(t, r.Error)
			require.Equal(t, int(file.Size), r.Bytes, "the page got the verified file")
			require.Equal(t, file.Size, up)
		}},
		{name: "no ticket", ticket: "none", check: func(t *testing.T, r pageResult, up int64) {
			require.Zero(t, r.Bytes)
			require.Zero(t, up, "the seed sent no byte to a page without a ticket")
			require.False(t, r.SeedHas, "no have-map for an unadmitted page")
			require.NotEmpty(t, r.Error)
		}},
		{name: "another peer's ticket", ticket: "other", check: func(t *testing.T, r pageResult, up int64) {
			// The seed refuses the ticket and evicts the peer at once, so the
			// page sees a refusal or a closed stream, never an admission.
			require.NotEqual(t, true, r.Admitted, "admitted with another peer's ticket")
			require.NotEmpty(t, fmt.Sprint(r.Admitted))
			require.Zero(t, r.Bytes)
			require.Zero(t, up, "the seed sent no byte for a ticket naming another peer")
		}},
		{name: "flipped bits", ticket: "own", flip: true, check: func(t *testing.T, r pageResult, up int64) {
			require.Equal(t, true, r.Admitted)
			require.Zero(t, r.Bytes, "bad bytes are never handed to the page")
			require.Contains(t, r.Error, "PeerBannedError")
			require.Equal(t, 1, r.Banned)
		}},
		{name: "tampered manifest", ticket: "own", tamper: true, check: func(t *testing.T, r pageResult, up int64) {
			require.Contains(t, r.ManifestError, "signature does not verify")
			require.Zero(t, up)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := transport.NewMemStore()
			for _, f := range m.Files() {
				b, err := os.ReadFile(filepath.Join(fx, filepath.FromSlash(f.Path)))
				require.NoError(t, err)
				require.NoError(t, store.Put(f.Path, b))
			}
			var st transport.Store = store
			if tc.flip {
				st = flippingStore{store}
			}
			seed, err := transport.NewHost(t.Context(), transport.Config{
				ListenAddrs:       []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
				BrowserTransports: true,
				Logger:            slog.New(slog.DiscardHandler),
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = seed.Close() })
			sw, err := seed.Join(t.Context(), m.ContentID, m, transport.SwarmOptions{
				Verifier: testVerifier{}, Tickets: fixedTicket(testTicket(m.ContentID, seed.ID())), Store: st,
			})
			require.NoError(t, err)
			var wt string
			for _, a := range seed.Addrs() {
				if strings.Contains(a.String(), "/webtransport/") {
					wt = a.String() + "/p2p/" + seed.ID().String()
				}
			}
			require.NotEmpty(t, wt, "seed has no WebTransport address: %v", seed.Addrs())

			mux := http.NewServeMux()
			mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, pageHTML)
			})
			mux.HandleFunc("GET /sealmesh-web.js", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/javascript")
				http.ServeFile(w, r, bundle)
			})
			served := raw
			if tc.tamper {
				// One more byte of file: still valid JSON, no longer what was signed.
				served = bytes.Replace(raw, fmt.Appendf(nil, `"size": %d`, file.Size), fmt.Appendf(nil, `"size": %d`, file.Size+1), 1)
				require.NotEqual(t, raw, served)
			}
			mux.HandleFunc("GET /manifest", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(served) })
			mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]string{
					"keyID": key.KeyID, "keyHex": key.PublicHex, "seedAddr": wt, "path": path, "ticket": tc.ticket,
				})
			})
			mux.HandleFunc("GET /ticket", func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query().Get("peer")
				if q == "other" {
					other, err := peer.Decode("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
					require.NoError(t, err)
					_, _ = w.Write(testTicket(m.ContentID, other))
					return
				}
				p, err := peer.Decode(q)
				if err != nil {
					http.Error(w, `{"error":"bad peer ID"}`, http.StatusBadRequest)
					return
				}
				_, _ = w.Write(testTicket(m.ContentID, p))
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)

			r := runPage(t, nodeDir, chromium, srv.URL+"/")
			t.Logf("page: %+v", r)
			require.Empty(t, r.Fatal, "page failed: %s\nlogs: %s", r.Fatal, strings.Join(r.Logs, "\n"))
			if tc.tamper {
				tc.check(t, r, sw.Stats().BytesUp)
				return
			}
			require.Empty(t, r.ManifestError)
			require.Contains(t, r.Transport, "/webtransport", "the page reached the seed over WebTransport")
			tc.check(t, r, sw.Stats().BytesUp)
		})
	}
}

func runPage(t *testing.T, nodeDir, chromium, url string) pageResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(nodeDir, "webpeer.mjs"), url, "30000")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "SEALMESH_CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var r pageResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("webpeer.mjs: %v (exit %v)\nstdout: %s\nstderr: %s", err, runErr, stdout.String(), stderr.String())
	}
	if r.HarnessError != "" {
		t.Fatalf("webpeer.mjs: %s\nstderr: %s", r.HarnessError, stderr.String())
	}
	return r
}
