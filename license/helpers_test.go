package license_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/license/token"
)

const (
	audience = "sealmesh-test"
	movie    = "movie-1"
	other    = "movie-2"
)

// Test peers: libp2p Ed25519 identities from fixed seeds, so a test can
// prove possession of each.
var (
	keyA, peerA = testPeer(1)
	keyB, peerB = testPeer(2)
	keyC, peerC = testPeer(3)
)

func testPeer(seed byte) (crypto.PrivKey, string) {
	sk, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		panic(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		panic(err)
	}
	return sk, id.String()
}

var b64 = base64.RawURLEncoding

// clock is a settable clock shared by the server and the token verifier.
type clock struct {
	real bool // the wall clock (load generator)
	mu   sync.Mutex
	t    time.Time
}

func (c *clock) Now() time.Time {
	if c.real {
		return time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a running license server over a real key store, a real state file
// and real tokens, listening on 127.0.0.1.
type env struct {
	dir       string
	store     *keys.FileStore
	statePath string
	state     *license.State
	srv       *license.Server
	url       string
	issuer    *token.Issuer
	verifier  *token.Verifier
	clock     *clock
	pub       ed25519.PublicKey
	keyID     string
	movieKeys []keys.ContentKey // 3 periods
	otherKeys []keys.ContentKey // 1 period
	cfg       license.Config
	catalog   license.ContentCatalog
	vcfg      func(*token.VerifierConfig)
	cancel    context.CancelFunc
	done      chan error
}

type envOption func(*env)

func withConfig(f func(*license.Config)) envOption { return func(e *env) { f(&e.cfg) } }
func withVerifier(f func(*token.VerifierConfig)) envOption {
	return func(e *env) { e.vcfg = f }
}
func withCatalog(c license.ContentCatalog) envOption {
	return func(e *env) { e.catalog = c }
}

// testConfig has rate limits off (tests that need them turn them on).
func testConfig() license.Config {
	return license.Config{AccountRate: rate.Inf, IPRate: rate.Inf}
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{dir: dir, statePath: filepath.Join(dir, "state.db"), clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, cfg: testConfig()}
	for _, o := range opts {
		o(e)
	}
	var err error
	e.store, err = keys.Init(filepath.Join(dir, "keys.db"), []byte("test passphrase"), keys.WithArgon2Params(1, 64, 1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.store.Close() })
	for p := range 3 {
		k, err := keys.NewContentKey(p)
		require.NoError(t, err)
		e.movieKeys = append(e.movieKeys, k)
	}
	require.NoError(t, e.store.PutContent(ctx, movie, e.movieKeys, false))
	k, err := keys.NewContentKey(0)
	require.NoError(t, err)
	e.otherKeys = []keys.ContentKey{k}
	require.NoError(t, e.store.PutContent(ctx, other, e.otherKeys, false))

	e.issuer, err = token.LoadOrCreateDevIssuer(filepath.Join(dir, "dev.jwk"))
	require.NoError(t, err)
	vcfg := token.VerifierConfig{Audience: audience, Now: e.clock.Now, ExtraKeys: []jose.JSONWebKey{e.issuer.PublicJWK()}}
	if e.vcfg != nil {
		e.vcfg(&vcfg)
	}
	e.verifier, err = token.NewVerifier(vcfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.verifier.Close() })
	e.start(t)
	return e
}

// start opens the state and serves on a fresh loopback port.
func (e *env) start(t testing.TB) {
	t.Helper()
	var err error
	e.state, err = license.OpenState(e.statePath, time.Second, e.clock.Now)
	require.NoError(t, err)
	sk, err := e.store.SigningKey(context.Background(), keys.SigningKeyLicense)
	require.NoError(t, err)
	cfg := e.cfg
	cfg.Now = e.clock.Now
	cfg.Logger = discardLogger()
	e.srv, err = license.New(cfg, license.Deps{Keys: e.store, Tokens: e.verifier, Signer: sk.Signer(), State: e.state, Catalog: e.catalog})
	require.NoError(t, err)
	e.pub, e.keyID = e.srv.PublicKey()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- e.srv.Serve(ctx, ln) }()
	t.Cleanup(func() { e.stop(t) })
}

// stop shuts the server down and closes the state (idempotent).
func (e *env) stop(t testing.TB) {
	if e.srv == nil {
		return
	}
	// Connections the client transport dialed but never used sit in the
	// server's StateNew, which Shutdown waits 5 s for: close them first.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.srv.Shutdown(ctx))
	e.cancel()
	require.NoError(t, <-e.done)
	require.NoError(t, e.srv.Close())
	require.NoError(t, e.srv.Close(), "Close is idempotent")
	require.NoError(t, e.state.Close())
	e.srv = nil
}

func (e *env) restart(t testing.TB) {
	e.stop(t)
	e.start(t)
}

// token issues a valid token for account acct covering content; mods adjust it.
func (e *env) token(t testing.TB, acct string, content []string, mods ...func(*token.Claims)) string {
	t.Helper()
	now := e.clock.Now()
	c := token.Claims{Account: acct, Content: content, Audience: []string{audience}, IssuedAt: now, Expiry: now.Add(time.Hour)}
	for _, m := range mods {
		m(&c)
	}
	tok, err := e.issuer.Issue(c)
	require.NoError(t, err)
	return tok
}

func (e *env) client(t testing.TB, tok string, mods ...func(*license.ClientConfig)) *license.Client {
	t.Helper()
	cfg := license.ClientConfig{
		BaseURL: e.url, ServerKeys: []ed25519.PublicKey{e.pub}, Now: e.clock.Now,
		Token: func(context.Context) (string, error) { return tok, nil },
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := license.NewClient(cfg)
	require.NoError(t, err)
	return c
}

// response is a raw HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errCode decodes an error body, failing the test if it is not one.
func (r response) errCode(t testing.TB) string {
	t.Helper()
	var eb license.ErrorBody
	require.NoError(t, json.Unmarshal(r.body, &eb), "error body must be JSON: %s", r.body)
	require.NotEmpty(t, eb.Error.Code)
	require.NotEmpty(t, eb.Error.Message)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	return eb.Error.Code
}

// do sends a request; body may be nil, []byte (raw) or a value to marshal.
func (e *env) do(t testing.TB, method, path, tok string, body any, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) nonce(t testing.TB) string {
	t.Helper()
	r := e.do(t, http.MethodPost, "/v1/nonce", "", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var n license.NonceResponse
	require.NoError(t, json.Unmarshal(r.body, &n))
	return n.Nonce
}

func rawKeyPair(t testing.TB) (string, hpke.PrivateKey) {
	t.Helper()
	priv, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	return b64.EncodeToString(priv.PublicKey().Bytes()), priv
}
