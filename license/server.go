package license

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealmesh/sealmesh/license/token"
)

// HTTP server limits. Every phase of a request has a deadline so that a
// slow client cannot pin a connection (slowloris): headers must arrive in
// 5 s, the whole request in 10 s, and the answer must be written in 15 s.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10 // a JWT of a few hundred bytes fits many times over
	pruneInterval     = 30 * time.Second
)

// Server is the license server. Create it with New, serve it with Serve (or
// mount Handler in your own http.Server), stop it with Shutdown then Close.
type Server struct {
	cfg     Config
	deps    Deps
	keyID   string
	pubKey  ed25519.PublicKey
	metrics *metrics
	handler http.Handler
	ipLim   *limiterSet
	acctLim *limiterSet
	tracker *tracker
	book    *ticketBook     // live tickets per account and content
	tickets *TicketVerifier // this server's own key, for /v1/announce
	tokens  *tokenCache     // verified tokens; nil when Config.TokenCacheSize < 0

	endpoints []string // the public API's paths, for start-up lines

	mu       sync.Mutex
	servers  []*http.Server
	draining atomic.Bool

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New checks cfg and deps and returns a Server. It starts one goroutine
// that prunes expired sessions, nonces and tracker entries; Close stops it.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	switch {
	case deps.Keys == nil:
		return nil, errors.New("license: Deps.Keys is nil")
	case deps.Tokens == nil:
		return nil, errors.New("license: Deps.Tokens is nil")
	case deps.State == nil:
		return nil, errors.New("license: Deps.State is nil")
	}
	pub, keyID, err := signerKey(deps.Signer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, deps: deps, keyID: keyID, pubKey: pub,
		ipLim:   newLimiterSet(cfg.IPRate, cfg.IPBurst, cfg.MaxLimiters),
		acctLim: newLimiterSet(cfg.AccountRate, cfg.AccountBurst, cfg.MaxLimiters),
		tracker: newTracker(cfg.TrackerPeersPerContent, cfg.NetworkGroup),
		book:    newTicketBook(),
		tokens:  newTokenCache(cfg.TokenCacheSize),
	}
	if s.tickets, err = NewTicketVerifier([]ed25519.PublicKey{pub}); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(func() float64 { return float64(deps.State.ActiveSessions(cfg.Now())) })
	s.handler = s.routes()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.pruneLoop()
	return s, nil
}

// PublicKey returns the Ed25519 key that verifies this server's licenses
// and tickets, and its ID. Players and peers pin it.
func (s *Server) PublicKey() (ed25519.PublicKey, string) {
	return append(ed25519.PublicKey(nil), s.pubKey...), s.keyID
}

// Handler returns the HTTP API (see the package documentation).
func (s *Server) Handler() http.Handler { return s.handler }

// Endpoints returns the paths the public API serves, in registration order.
func (s *Server) Endpoints() []string { return append([]string(nil), s.endpoints...) }

func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
}

// Serve serves the API on ln until ctx is done or Shutdown is called. When
// ctx ends it shuts down gracefully (up to 10 s) then closes. It returns nil
// after a shutdown and the listener's error otherwise. Wrap ln with
// tls.NewListener for HTTPS.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.handler)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := s.newHTTPServer(h)
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return errors.New("license: server closed")
	}
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
	})
	defer stop()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, lets requests in flight finish,
// and returns when they have or when ctx ends (then with ctx's error; call
// Close to cut the rest). /healthz answers 503 while draining.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	servers := append([]*http.Server(nil), s.servers...)
	s.mu.Unlock()
	var errs []error
	for _, hs := range servers {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes every listener and connection at once and stops the
// background goroutine. It does not close Deps.State. It is idempotent.
func (s *Server) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		s.draining.Store(true)
		s.mu.Lock()
		s.cancel()
		servers := s.servers
		s.mu.Unlock()
		for _, hs := range servers {
			if err := hs.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.wg.Wait()
	})
	return errors.Join(errs...)
}

func (s *Server) pruneLoop() {
	defer s.wg.Done()
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			now := s.cfg.Now()
			if err := s.deps.State.Prune(s.ctx, now); err != nil && s.ctx.Err() == nil {
				s.cfg.Logger.Warn("license: prune state", "err", err)
			}
			s.tracker.prune(now)
			s.book.prune(now)
		}
	}
}

// handlerFunc is a route's work: it gets the request body (already bounded
// and type-checked) and returns an error to send, or nil after writing.
type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte) error

type routeOpts struct {
	method  string // GET or POST
	body    bool   // read a JSON body
	cors    bool   // answer CORS preflight and add CORS headers
	anyType bool   // accept bodies without Content-Type: application/json (Clear Key from CDMs)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	add := func(path, name string, o routeOpts, h handlerFunc) {
		mux.Handle(path, s.wrap(name, o, h))
		if path != "/" {
			s.endpoints = append(s.endpoints, path)
		}
	}
	add("/healthz", "healthz", routeOpts{method: http.MethodGet}, s.handleHealth)
	add("/v1/keys", "keys", routeOpts{method: http.MethodGet, cors: true}, s.handleKeys)
	// No /metrics here: the series tell who is busy and how (routes, error
	// codes, sessions, tracker size), which is for the operator, not the
	// Internet. It is on the loopback admin listener (ServeAdmin).
	post := routeOpts{method: http.MethodPost, body: true, cors: true}
	add("/v1/nonce", "nonce", routeOpts{method: http.MethodPost, cors: true}, s.handleNonce)
	add("/v1/license", "license", post, s.handleLicense)
	add("/v1/license/renew", "renew", post, s.handleRenew)
	add("/v1/clearkey", "clearkey", routeOpts{method: http.MethodPost, body: true, cors: true, anyType: true}, s.handleClearKey)
	add("/v1/ticket", "ticket", post, s.handleTicket)
	add("/v1/announce", "announce", post, s.handleAnnounce)
	add("/", "unknown", routeOpts{method: ""}, func(http.ResponseWriter, *http.Request, []byte) error {
		return fail(http.StatusNotFound, CodeNotFound, "no such endpoint (see the sealmesh license package documentation)")
	})
	return mux
}

// statusWriter records the status and error code for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	code   string
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts requests by route and outcome code and times them,
// writes the access log line when Config.AccessLog is set, and turns a panic
// into a 500 JSON error (and a log line) instead of a dropped connection.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	// The series of the common outcome are resolved once, not per request.
	okCount := s.metrics.requests.WithLabelValues(route, "ok")
	latency := s.metrics.latency.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Logger.Error("license: panic in handler", "route", route, "panic", fmt.Sprint(v))
				if sw.status == 0 {
					writeAPIError(sw, internal(fmt.Errorf("panic: %v", v)))
				}
			}
			switch code := sw.code; {
			case code == "" && sw.status < 400:
				okCount.Inc()
			case code == "":
				s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
			default:
				s.metrics.requests.WithLabelValues(route, code).Inc()
			}
			took := time.Since(start)
			latency.Observe(took.Seconds())
			if al := s.cfg.AccessLog; al != nil {
				s.accessLog(al, r, route, sw, took)
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

// accessLog writes one line for a request. Only the method, the path (no
// query), the outcome, the duration and the client address are logged:
// never a header or a body, where tokens and key requests travel.
func (s *Server) accessLog(al *slog.Logger, r *http.Request, route string, sw *statusWriter, took time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
		slog.Duration("duration", took), slog.String("remote", s.clientIP(r).String()), slog.String("route", route),
	}
	if sw.code != "" {
		attrs = append(attrs, slog.String("code", sw.code))
	}
	al.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

func (s *Server) wrap(route string, o routeOpts, h handlerFunc) http.Handler {
	return s.instrument(route, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.pre(w, r, o, h); err != nil {
			ae := asAPIError(err)
			if ae.status >= 500 {
				s.cfg.Logger.Error("license: request failed", "route", route, "err", err)
			}
			writeAPIError(w, ae)
		}
	}))
}

// pre runs the checks every route shares, cheapest first, then h.
func (s *Server) pre(w http.ResponseWriter, r *http.Request, o routeOpts, h handlerFunc) error {
	if o.cors {
		if r.Method == http.MethodOptions {
			return s.preflight(w, r)
		}
		s.corsHeaders(w, r)
	}
	// The Date header follows the server's clock (Config.Now), which
	// proofs of possession are checked against: clients correct theirs by it.
	w.Header().Set("Date", s.cfg.Now().UTC().Format(http.TimeFormat))
	if o.method != "" && r.Method != o.method {
		w.Header().Set("Allow", o.method)
		return fail(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "use "+o.method)
	}
	if s.draining.Load() && r.URL.Path != "/healthz" {
		w.Header().Set("Connection", "close")
		return fail(http.StatusServiceUnavailable, CodeUnavailable, "the server is shutting down: retry on another replica or in a moment")
	}
	if o.method == http.MethodPost {
		if ok, wait := s.ipLim.allow(s.clientIP(r).String(), s.cfg.Now()); !ok {
			return rateLimited(wait, "too many requests from this address")
		}
	}
	var body []byte
	if o.body {
		if !o.anyType {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				return fail(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send the request as Content-Type: application/json")
			}
		}
		// The body is read whole, but never more than MaxBody: a request
		// this API takes is a few KiB at most.
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return fail(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", s.cfg.MaxBody))
			}
			return badRequest("could not read the request body")
		}
	}
	return h(w, r, body)
}

func rateLimited(wait time.Duration, msg string) *apiError {
	e := fail(http.StatusTooManyRequests, CodeRateLimited, msg+": slow down and retry after the Retry-After delay")
	e.retryAfter = max(1, int(wait.Seconds()+0.999))
	return e
}

// clientIP is the remote address of the connection, or the first
// X-Forwarded-For address when Config.TrustProxyHeaders is set.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	if s.cfg.TrustProxyHeaders {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				return a.Unmap()
			}
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	if s.draining.Load() {
		return fail(http.StatusServiceUnavailable, CodeUnavailable, "draining")
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "key_id": s.keyID})
	return nil
}

// PublicKeys is the answer of GET /v1/keys: the public keys players and
// peers must trust, hex-encoded, by key ID. Apps should pin them; fetching
// them trusts the TLS connection to this server instead.
type PublicKeys struct {
	License  map[string]string `json:"license_keys"`
	Manifest map[string]string `json:"manifest_keys"`
}

func (s *Server) handleKeys(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	out := PublicKeys{License: map[string]string{s.keyID: hex.EncodeToString(s.pubKey)}, Manifest: map[string]string{}}
	for id, k := range s.deps.ManifestKeys {
		out.Manifest[id] = hex.EncodeToString(k)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// authInfo is what a verified token says about the caller.
type authInfo struct {
	claims      *token.Claims
	accountHash string
}

// authorize verifies the bearer token, refuses revoked accounts and applies
// the per-account rate limit.
func (s *Server) authorize(r *http.Request) (*authInfo, error) {
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		w := fail(http.StatusUnauthorized, CodeMissingToken, "send the entitlement token as Authorization: Bearer <token>")
		return nil, w
	}
	a, err := s.verifyToken(strings.TrimSpace(raw))
	if err != nil {
		return nil, err
	}
	// Checked on every request, cached token or not.
	if s.deps.State.isRevoked(RevokeAccount, a.accountHash) {
		return nil, fail(http.StatusForbidden, CodeAccountRevoked, "this account is revoked")
	}
	if ok, wait := s.acctLim.allow(a.accountHash, s.cfg.Now()); !ok {
		return nil, rateLimited(wait, "too many requests for this account")
	}
	return a, nil
}

// tokenError maps the token package's errors to API errors. The token and
// the verifier's message stay out of the answer.
func tokenError(err error) *apiError {
	e := func(code, msg string) *apiError {
		return &apiError{status: http.StatusUnauthorized, code: code, msg: msg, err: err}
	}
	switch {
	case errors.Is(err, token.ErrExpired):
		return e(CodeTokenExpired, "the token has expired: get a new one from the service")
	case errors.Is(err, token.ErrNotYetValid):
		return e(CodeTokenNotYetValid, "the token is not valid yet (check the clocks)")
	case errors.Is(err, token.ErrAudience):
		return e(CodeTokenAudience, "the token is not meant for this license server (aud)")
	case errors.Is(err, token.ErrIssuer):
		return e(CodeTokenIssuer, "the token's issuer (iss) is not one this server accepts")
	case errors.Is(err, token.ErrLifetime):
		return e(CodeTokenLifetime, "the token is valid for longer than this server accepts (exp too far from iat or now): issue shorter-lived tokens")
	case errors.Is(err, token.ErrAlgorithm):
		return e(CodeTokenAlgorithm, "the token's algorithm is not accepted (EdDSA or ES256 only)")
	case errors.Is(err, token.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable, msg: "the server is shutting down", err: err}
	}
	return e(CodeInvalidToken, "the token is malformed, badly signed, signed by an unknown key or lacks a required claim")
}

// deviceOf settles the device of a request: a token bound to a device
// fixes it, and the request may not name another. A revoked device is refused.
func (s *Server) deviceOf(a *authInfo, asked string) (string, error) {
	device := asked
	if d := a.claims.Device; d != "" {
		if asked != "" && asked != d {
			return "", fail(http.StatusForbidden, CodeDeviceMismatch, "the token is bound to another device")
		}
		device = d
	}
	if s.deps.State.isRevoked(RevokeDevice, device) {
		return "", fail(http.StatusForbidden, CodeDeviceRevoked, "this device is revoked")
	}
	return device, nil
}

// corsAllowed reports whether origin may call the API from a browser.
func (s *Server) corsAllowed(origin string) bool {
	if origin == "" {
		return false
	}
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

func (s *Server) corsHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin := r.Header.Get("Origin"); s.corsAllowed(origin) {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Retry-After")
	}
}

// preflight answers a CORS preflight: 204 with the allowed methods and
// headers for a configured origin, 403 origin_not_allowed otherwise. No
// token is needed (browsers send none on preflight).
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) error {
	origin := r.Header.Get("Origin")
	if !s.corsAllowed(origin) {
		return fail(http.StatusForbidden, CodeOriginNotAllowed, "this origin may not call the license server (see --cors-origin)")
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
