package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sealmesh/sealmesh/internal/cli"
	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/license/token"
	"github.com/sealmesh/sealmesh/segment"
)

// DefaultState is the license server state path when --state is not given.
const DefaultState = "sealmesh.state"

const licenseSynopsis = `Usage: sealmesh license <serve|revoke|unrevoke|revocations|audit> [flags]

  serve        run the license server: native licenses, W3C Clear Key, swarm
               tickets and the tracker (see the license package documentation)
  revoke       revoke an account, a device or a libp2p peer ID; takes effect at
               its next license, renewal, Clear Key request, ticket or announce
  unrevoke     undo a revocation
  revocations  print the revocation list (accounts appear as their hashes)
  audit        print the audit log of issued licenses, renewals, Clear Key
               responses and tickets (no key material, accounts as hashes)

revoke, unrevoke, revocations and audit reach a running server through its
loopback admin endpoint (found in <state>.admin.json); when no server holds
the state file they use the file directly (revocations and audit read-only).
A server started with --admin-listen off must be stopped first.

The admin endpoint listens on a free loopback port by default (printed at
start-up, so two servers on one host never collide) and also serves the
Prometheus /metrics, which the public API does not; give it a fixed address
(--admin-listen 127.0.0.1:9444) for a scraper on the host. --access-log
writes one structured line per request (method, path, status, duration,
client address; never a header, so never a token).

With --content-dir, serve reads the signed manifests (<DIR>/*/sealmesh.json)
of packaged content, checked against the key store's manifest signing key,
so that players may ask for keys by playback position; content packed into
those folders later is found on first request.

Examples:
  export SEALMESH_KEYSTORE_PASSPHRASE=...
  sealmesh license serve --keystore keys.db --state license.state --dev-tokens
  sealmesh license serve --keystore keys.db --state license.state --dev-tokens \
      --admin-listen 127.0.0.1:9444 --access-log - --log-format json
  sealmesh license serve --keystore keys.db --state license.state --dev-tokens \
      --content-dir /srv/media --cors-origin http://localhost:8080
  sealmesh license serve --listen :443 --tls-cert cert.pem --tls-key key.pem \
      --keystore keys.db --state license.state --jwks backend-keys.json \
      --audience license.example.com --cors-origin https://player.example.com
  sealmesh license revoke --state license.state --account account-42
  sealmesh license unrevoke --state license.state --peer 12D3KooW...
  sealmesh license revocations --state license.state
  sealmesh license audit --state license.state --since 1h
  sealmesh license audit --state license.state --json | jq 'select(.event=="license")'`

const tokenSynopsis = `Usage: sealmesh token issue --account A --content C [flags]

Prints a development entitlement token (a JWT signed with EdDSA) on stdout.
The development key lives beside the state file (<state>.devkey.json, created
on first use); "sealmesh license serve" trusts it only with --dev-tokens.
Production tokens come from the operator's backend (see package license/token).

Examples:
  sealmesh token issue --state license.state --account account-42 --content movie-7
  sealmesh token issue --account a --content 'series-1/*' --content movie-7 --device stb-9 --ttl 10m
  sealmesh token issue --account a --content movie-7 --ttl -2m   # already expired: test refusals`

func runLicense(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, licenseSynopsis)
		return usageErr("license: give a subcommand: serve, revoke, unrevoke, revocations or audit")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, licenseSynopsis)
		return nil
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "serve":
		return runLicenseServe(ctx, rest, stdout, stderr)
	case "revoke", "unrevoke":
		return runRevoke(ctx, sub == "revoke", rest, stdout, stderr)
	case "revocations":
		return runRevocations(ctx, rest, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, stdout, stderr)
	default:
		return usageErr("license: unknown subcommand %q (serve, revoke, unrevoke, revocations or audit; see 'sealmesh license --help')", sub)
	}
}

func runLicenseServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("license serve", licenseSynopsis, stderr)
	listen := fs.String("listen", license.DefaultListen, "`address` to serve the API on")
	adminListen := fs.String("admin-listen", license.DefaultAdminListen, "loopback `address` of the admin endpoint (revocations, audit, /metrics; port 0: a free one); \"off\" disables it")
	accessLog := fs.String("access-log", "", "write one line per request to `dest`: - (stderr, as the other logs) or a file (appended); default none")
	logFlags := cli.AddLogFlags(fs, "info")
	ksPath := fs.String("keystore", "", "key store `path` (default $SEALMESH_KEYSTORE or "+DefaultKeystore+")")
	passFile := fs.String("passphrase-file", "", "read the key store passphrase from `file` instead of $"+keys.PassphraseEnv)
	statePath := fs.String("state", DefaultState, "state file `path` (sessions, used nonces, revocations, audit log)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate chain `file` (PEM)")
	tlsKey := fs.String("tls-key", "", "TLS private key `file` (PEM)")
	devTokens := fs.Bool("dev-tokens", false, "trust development tokens from 'sealmesh token issue' (never in production)")
	jwks := fs.String("jwks", "", "JWK set `file` of the token issuers' public keys (re-read when it changes)")
	audience := fs.String("audience", "sealmesh", "this server's name: tokens' \"aud\" must contain it")
	var cors multiFlag
	fs.Var(&cors, "cors-origin", "`origin` allowed to call the API from a browser (repeatable; \"*\" for any)")
	insecure := fs.Bool("insecure-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy)")
	maxStreams := fs.Int("max-streams", license.DefaultMaxStreamsPerAccount, "concurrent streams per account (-1: no limit)")
	licenseTTL := fs.Duration("license-ttl", license.DefaultLicenseTTL, "license and session lifetime")
	var issuers multiFlag
	fs.Var(&issuers, "issuer", "accepted token `issuer` (\"iss\"; repeatable); none: iss is not checked")
	maxTokenLife := fs.Duration("max-token-lifetime", token.DefaultMaxLifetime, "refuse tokens valid for longer than this (exp-iat or exp-now; negative: no limit)")
	keySpeed := fs.Float64("key-window-speed", license.DefaultWindowSpeed, "seconds of content a license session may advance per second of wall time")
	keyPeriod := fs.Duration("key-window-period", license.DefaultWindowPeriod, "crypto period assumed for content not under --content-dir")
	noKeyWindow := fs.Bool("no-key-window", false, "let license requests name any two adjacent periods, at any pace (not for production)")
	var ckWindow multiFlag
	fs.Var(&ckWindow, "clearkey-window", "`content` ID (or prefix ending in *) whose Clear Key requests follow the key window too (repeatable; \"*\" for all)")
	maxTickets := fs.Int("max-tickets", license.DefaultMaxTicketsPerAccount, "peer IDs per account holding a live swarm ticket for one content (-1: no limit)")
	ticketTTL := fs.Duration("ticket-ttl", license.DefaultTicketTTL, "swarm ticket lifetime: a revoked peer no seed hears of in an announce answer is cut off when it ends")
	var contentDirs multiFlag
	fs.Var(&contentDirs, "content-dir", "`folder` of packaged content (<DIR>/*/sealmesh.json), for requests by playback position (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *maxTickets == 0 || *maxTickets < -1 {
		return usageErr("license serve: --max-tickets must be -1 (no limit) or at least 1")
	}
	if *ticketTTL <= 0 {
		return usageErr("license serve: --ticket-ttl must be positive (e.g. 2m)")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usageErr("license serve: give both --tls-cert and --tls-key, or neither")
	}
	if *tlsCert == "" && !*insecure && !loopbackAddr(*listen) {
		return usageErr("license serve: refusing plain HTTP on %s: give --tls-cert and --tls-key, listen on loopback, or pass --insecure-http behind a TLS proxy", *listen)
	}
	if !(*keySpeed >= 1 && *keySpeed <= 1000) {
		return usageErr("license serve: --key-window-speed %v: use 1 (real time) to 1000", *keySpeed)
	}
	if *keyPeriod < 100*time.Millisecond {
		return usageErr("license serve: --key-window-period %v: use the crypto period of your content (at least 100ms)", *keyPeriod)
	}
	if *jwks == "" && !*devTokens {
		return usageErr("license serve: no token keys: give --jwks FILE (the operator backend's public keys) or --dev-tokens for development")
	}
	logger, err := logFlags.Logger(stderr)
	if err != nil {
		return usageErr("license serve: %v", err)
	}
	var access *slog.Logger
	if *accessLog != "" {
		var closeLog func() error
		if access, closeLog, err = openAccessLog(*accessLog, logFlags, stderr); err != nil {
			return err
		}
		defer closeLog()
	}

	pass, kopts, err := unlock(*passFile)
	if err != nil {
		return err
	}
	path := keystorePath(*ksPath)
	kr, err := keys.NewReader(path, pass, kopts...)
	if err != nil {
		if errors.Is(err, keys.ErrNotInitialized) {
			return fmt.Errorf("key store %s does not exist: create it with 'sealmesh keys init --keystore %s'", path, path)
		}
		if errors.Is(err, keys.ErrWrongPassphrase) {
			return fmt.Errorf("key store %s: wrong passphrase (check %s)", path, keys.PassphraseEnv)
		}
		return fmt.Errorf("open key store %s: %w", path, err)
	}
	defer kr.Close()
	sk, err := kr.SigningKey(ctx, keys.SigningKeyLicense)
	if errors.Is(err, keys.ErrNotFound) {
		return fmt.Errorf("key store %s has no %q signing key: it is made by 'sealmesh keys init'", path, keys.SigningKeyLicense)
	}
	if err != nil {
		return err
	}

	manifestKeys := segment.TrustedKeys{}
	if msk, err := kr.SigningKey(ctx, keys.SigningKeyManifest); err == nil {
		manifestKeys[msk.ID()] = msk.Public()
	}
	var catalog license.ContentCatalog
	if len(contentDirs) > 0 {
		cat, err := contentCatalog(ctx, kr, contentDirs, logger)
		if err != nil {
			return err
		}
		catalog = cat
	}

	vcfg := token.VerifierConfig{KeySetFile: *jwks, Audience: *audience, Logger: logger, Issuers: issuers, MaxLifetime: *maxTokenLife}
	if *jwks != "" && len(issuers) == 0 {
		logger.Warn("tokens' iss is not checked: give --issuer with your backend's issuer name")
	}
	if *devTokens && len(issuers) > 0 {
		vcfg.Issuers = append(vcfg.Issuers, token.DevIssuerName)
	}
	if *devTokens {
		dev, err := token.LoadOrCreateDevIssuer(devKeyPath(*statePath))
		if err != nil {
			return fmt.Errorf("development token key: %w", err)
		}
		vcfg.ExtraKeys = []jose.JSONWebKey{dev.PublicJWK()}
		logger.Warn("trusting development tokens (--dev-tokens): never use this in production", "dev_key", devKeyPath(*statePath))
	}
	verifier, err := token.NewVerifier(vcfg)
	if err != nil {
		return fmt.Errorf("token verifier: %w", err)
	}
	defer verifier.Close()

	state, err := license.OpenState(*statePath, time.Second, nil)
	if errors.Is(err, license.ErrStateLocked) {
		return fmt.Errorf("state %s is in use by another license server: stop it, or give this one its own --state", *statePath)
	}
	if err != nil {
		return err
	}
	defer state.Close()

	kw := license.KeyWindow{Off: *noKeyWindow, Speed: *keySpeed, Period: *keyPeriod, ClearKey: ckWindow}
	srv, err := license.New(license.Config{Listen: *listen, CORSOrigins: cors, MaxStreamsPerAccount: *maxStreams, LicenseTTL: *licenseTTL,
		MaxTicketsPerAccount: *maxTickets, TicketTTL: *ticketTTL, KeyWindow: kw, Logger: logger, AccessLog: access},
		license.Deps{Keys: kr, Tokens: verifier, Signer: sk.Signer(), State: state, Catalog: catalog, ManifestKeys: manifestKeys})
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	scheme := "http"
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
		scheme = "https"
	}

	errc := make(chan error, 2)
	adminLine := "admin endpoint off (--admin-listen off): no /metrics; revoke and audit need this server stopped"
	if *adminListen != "off" {
		if !loopbackAddr(*adminListen) {
			_ = ln.Close()
			return usageErr("license serve: --admin-listen must be a loopback address, not %s", *adminListen)
		}
		aln, err := net.Listen("tcp", *adminListen)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("admin endpoint: listen on %s: %w (pass another --admin-listen, or off)", *adminListen, err)
		}
		tok := license.NewAdminToken()
		if err := license.WriteAdminFile(*statePath, license.AdminInfo{Addr: aln.Addr().String(), Token: tok}); err != nil {
			_ = ln.Close()
			_ = aln.Close()
			return err
		}
		defer os.Remove(license.AdminFilePath(*statePath))
		go func() { errc <- srv.ServeAdmin(ctx, aln, tok) }()
		adminLine = fmt.Sprintf("admin endpoint http://%s: %s (address and token in %s; /metrics needs no token)",
			aln.Addr(), strings.Join(license.AdminEndpoints, " "), license.AdminFilePath(*statePath))
	}
	_, keyID := srv.PublicKey()
	fmt.Fprintf(stdout, "license server listening on %s://%s (signing key %s)\n", scheme, ln.Addr(), keyID)
	fmt.Fprintf(stdout, "  API %s://%s: %s\n", scheme, ln.Addr(), strings.Join(srv.Endpoints(), " "))
	fmt.Fprintf(stdout, "  %s\n", adminLine)
	switch *accessLog {
	case "":
	case "-", "stderr":
		fmt.Fprintln(stdout, "  access log: stderr")
	default:
		fmt.Fprintf(stdout, "  access log: %s\n", *accessLog)
	}
	go func() { errc <- srv.Serve(ctx, ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		logger.Warn("license server: shutdown", "err", serr)
	}
	_ = srv.Close()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "license server stopped")
	return nil
}

// openAccessLog returns the access logger for --access-log: "-" or
// "stderr" write with the other logs' format to stderr, anything else is a
// file opened for appending (created 0640: it holds client addresses).
// Access lines are written at Info whatever --log-level says: asking for an
// access log is asking for them.
func openAccessLog(dest string, lf *cli.LogFlags, stderr io.Writer) (*slog.Logger, func() error, error) {
	w := stderr
	closeFn := func() error { return nil }
	if dest != "-" && dest != "stderr" {
		f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("--access-log: %w", err)
		}
		w, closeFn = f, f.Close
	}
	l, err := lf.AccessLogger(w)
	if err != nil {
		_ = closeFn()
		return nil, nil, usageErr("license serve: %v", err)
	}
	return l, closeFn, nil
}

// loopbackAddr reports whether host:port names a loopback address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func devKeyPath(statePath string) string { return statePath + ".devkey.json" }

func runRevoke(ctx context.Context, revoke bool, args []string, stdout, stderr io.Writer) error {
	name := "unrevoke"
	if revoke {
		name = "revoke"
	}
	fs := newFlagSet("license "+name, licenseSynopsis, stderr)
	statePath := fs.String("state", DefaultState, "state file `path` of the license server")
	account := fs.String("account", "", "account `ID` (as in the tokens' \"sub\")")
	device := fs.String("device", "", "device `ID`")
	peer := fs.String("peer", "", "libp2p peer `ID`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var kind license.RevocationKind
	var value string
	n := 0
	for _, c := range []struct {
		k license.RevocationKind
		v string
	}{{license.RevokeAccount, *account}, {license.RevokeDevice, *device}, {license.RevokePeer, *peer}} {
		if c.v != "" {
			kind, value = c.k, c.v
			n++
		}
	}
	if n != 1 {
		return usageErr("license %s: give exactly one of --account, --device or --peer", name)
	}
	via, err := license.ChangeRevocation(ctx, *statePath, kind, value, revoke)
	if err != nil {
		return fmt.Errorf("license %s: %w", name, err)
	}
	fmt.Fprintf(stdout, "%sd %s %s (via the %s)\n", name, kind, value, via)
	return nil
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, tokenSynopsis)
		return usageErr("token: give a subcommand: issue")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, tokenSynopsis)
		return nil
	}
	if args[0] != "issue" {
		return usageErr("token: unknown subcommand %q (issue; see 'sealmesh token --help')", args[0])
	}
	fs := newFlagSet("token issue", tokenSynopsis, stderr)
	statePath := fs.String("state", DefaultState, "state file `path` of the license server; the development key is <path>.devkey.json")
	account := fs.String("account", "", "account `ID` (\"sub\")")
	var content multiFlag
	fs.Var(&content, "content", "content `ID` the token covers (repeatable; a trailing * makes a prefix)")
	device := fs.String("device", "", "bind the token to a device `ID`")
	ttl := fs.Duration("ttl", time.Hour, "token lifetime; negative mints an already-expired token (for tests)")
	audience := fs.String("audience", "sealmesh", "the license server's audience (\"aud\")")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *account == "" || len(content) == 0 {
		return usageErr("token issue: give --account and at least one --content")
	}
	if *ttl == 0 {
		return usageErr("token issue: --ttl must not be zero (a negative TTL mints an already-expired token, for testing refusals)")
	}
	dev, err := token.LoadOrCreateDevIssuer(devKeyPath(*statePath))
	if err != nil {
		return fmt.Errorf("development token key: %w", err)
	}
	now := time.Now()
	iat := now
	if *ttl < 0 {
		// An already-expired token, for testing that servers refuse it: it
		// was issued a minute before it expired.
		iat = now.Add(*ttl - time.Minute)
	}
	tok, err := dev.Issue(token.Claims{Account: *account, Content: content, Device: *device, Audience: []string{*audience}, IssuedAt: iat, Expiry: now.Add(*ttl)})
	if err != nil {
		return err
	}
	_ = ctx
	fmt.Fprintln(stdout, tok)
	return nil
}
