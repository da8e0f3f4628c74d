package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sealmesh/sealmesh/internal/cli"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/player"
	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

const peerSynopsis = `Usage: sealmesh peer <play|seed> <content> --origin URL --license URL [flags]

  play   get a license, join the content's swarm, fetch ahead from peers and
         the origin, decrypt in memory and serve your media player a clear
         HLS stream on 127.0.0.1; prints the URL and a live status line
  seed   fetch and serve the content's ciphertext to entitled peers without
         any key and without playing: for edge boxes

The entitlement token comes from --token or $SEALMESH_TOKEN (for testing:
'sealmesh token issue'). Pin the license server's and the packager's public
keys with --license-key and --manifest-key ('sealmesh keys list --pins'
prints both flags). Keys that are not pinned are fetched from the license
server's /v1/keys, trusting its TLS certificate: only from an https://
--license, since over plain HTTP anyone on the path could substitute keys of
their own, unless --insecure-http-keys says so (test setups only).

Examples:
  sealmesh peer play film --origin https://cdn.example.com/film/ \
      --license https://license.example.com --player ffplay \
      --license-key HEX --manifest-key ID:HEX
  sealmesh peer seed film --origin https://cdn.example.com/film/ \
      --license https://license.example.com --cache /var/cache/sealmesh \
      --p2p-listen /ip4/0.0.0.0/tcp/4001 --identity /var/lib/sealmesh/peer.key \
      $(sealmesh keys list --keystore keys.db --pins)`

func runPeer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, peerSynopsis)
		return usageErr("peer: give play or seed")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, peerSynopsis)
		return nil
	}
	mode := args[0]
	if mode != "play" && mode != "seed" {
		fmt.Fprintln(stderr, peerSynopsis)
		return usageErr("peer: unknown subcommand %q (play or seed)", mode)
	}
	rest := args[1:]
	fs := newFlagSet("peer "+mode, peerSynopsis, stderr)
	origin := fs.String("origin", "", "`URL` of the packaged folder on the origin or CDN (holds sealmesh.json)")
	lic := fs.String("license", "", "license server base `URL`")
	tok := fs.String("token", "", "entitlement `token` (default $SEALMESH_TOKEN)")
	licKey := fs.String("license-key", "", "the license server's Ed25519 public key, `hex` (pin it; default: fetched from an https:// --license's /v1/keys)")
	var manKeys multiFlag
	fs.Var(&manKeys, "manifest-key", "trusted manifest key as `ID:HEX` (repeatable; default: fetched from an https:// --license's /v1/keys)")
	insecureKeys := fs.Bool("insecure-http-keys", false, "fetch keys that are not pinned from a plain-http --license (test setups only: anyone on the path could replace them)")
	cacheDir := fs.String("cache", "", "`folder` for the ciphertext cache (default: memory only)")
	cacheMB := fs.Int64("cache-mb", 0, "cache size cap in `MiB` (default 512 on disk, 64 in memory)")
	listen := fs.String("listen", "127.0.0.1:0", "loopback `address` of the local HLS gateway (play)")
	var p2pListen multiFlag
	fs.Var(&p2pListen, "p2p-listen", "libp2p listen `multiaddr` (repeatable; default TCP and QUIC on all interfaces)")
	browsers := fs.Bool("browser-transports", false, "also listen for browser peers: WebTransport and WebRTC-direct on the QUIC port (needs a QUIC --p2p-listen); browsers still need a ticket")
	identity := fs.String("identity", "", "`file` holding this peer's libp2p key, created if missing (default: a new key per run)")
	maxUp := fs.Int64("max-upload", 0, "upload rate cap in `bytes/s` (0: unlimited)")
	maxUploads := fs.Int("max-uploads", 0, "concurrent uploads; more are answered busy and go to other peers (0: 2)")
	consumeOnly := fs.Bool("consume-only", false, "never upload to other peers (play)")
	noP2P := fs.Bool("no-p2p", false, "origin only")
	mdns := fs.Bool("mdns", false, "find peers on the local network with mDNS")
	dht := fs.Bool("dht", false, "find peers through the private sealmesh DHT as well as the tracker")
	video := fs.String("video", "", "video rendition `ID` (default: the best one)")
	eme := fs.Bool("eme", false, "serve the ciphertext (HLS and DASH) for a browser player with EME Clear Key instead of clear HLS")
	ext := fs.String("player", "", "start this `player` on the URL: ffplay, mpv or vlc")
	logFlags := cli.AddLogFlags(fs, "warn")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics (transport and player series) at http://`address`/metrics")
	statusEvery := fs.Duration("status-every", 0, "status line `interval` (default 1s on a terminal, 10s otherwise, one line each)")
	pprofAddr := fs.String("pprof", "", "serve Go's pprof profiles on this loopback `address` (for diagnosing memory and CPU)")
	memLimit := fs.Int64("memory-limit", 32, "soft memory limit in `MiB` for the Go runtime (0: none; $GOMEMLIMIT wins)")
	pos, err := parseArgs(fs, rest, 1)
	if err != nil {
		return err
	}
	content := ""
	if len(pos) > 0 {
		content = pos[0]
	}
	if *statusEvery < 0 {
		return usageErr("--status-every must not be negative")
	}
	if content == "" || *origin == "" || *lic == "" {
		return usageErr("peer %s: give the content ID, --origin and --license; see 'sealmesh peer --help'", mode)
	}
	if *tok == "" {
		*tok = os.Getenv("SEALMESH_TOKEN")
	}
	if *tok == "" {
		return usageErr("peer %s: no token: pass --token or set SEALMESH_TOKEN ('sealmesh token issue' makes development tokens)", mode)
	}
	if *ext != "" && mode == "play" {
		switch *ext {
		case "ffplay", "mpv", "vlc":
		default:
			return usageErr("--player %q: use ffplay, mpv or vlc", *ext)
		}
	}
	logger, err := logFlags.Logger(stderr)
	if err != nil {
		return usageErr("peer %s: %v", mode, err)
	}
	metrics, err := newPeerMetrics(*metricsAddr)
	if err != nil {
		return err
	}
	defer metrics.Close()
	if *pprofAddr != "" {
		if !loopbackAddr(*pprofAddr) {
			return usageErr("--pprof must be a loopback address, not %s", *pprofAddr)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { _ = http.ListenAndServe(*pprofAddr, mux) }()
	}
	if *memLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A set-top box has little RAM: make the collector work harder
		// rather than let the heap double before it runs.
		debug.SetMemoryLimit(*memLimit << 20)
	}
	licKeys, mkeys, err := peerKeys(*licKey, manKeys)
	if err != nil {
		return err
	}
	token := *tok
	cfg := player.Config{
		Content: content, OriginURL: *origin, LicenseURL: *lic,
		Token:       func(context.Context) (string, error) { return token, nil },
		LicenseKeys: licKeys, ManifestKeys: mkeys, InsecureHTTPTrustAnchors: *insecureKeys, Video: *video, Listen: *listen,
		CacheDir: *cacheDir, CacheBytes: *cacheMB << 20, SeedOnly: mode == "seed", Logger: logger, Registerer: metrics.Registerer(),
		P2P: player.P2P{Disable: *noP2P, ListenAddrs: p2pListen, IdentityFile: *identity, MDNS: *mdns, DHT: *dht, BrowserTransports: *browsers,
			Upload: transport.UploadPolicy{MaxRate: *maxUp, MaxConcurrent: *maxUploads, ConsumeOnly: *consumeOnly}},
	}
	if *eme {
		cfg.Mode = player.ModeEME
	}
	opened := time.Now()
	s, err := player.Open(ctx, cfg)
	switch {
	case errors.Is(err, player.ErrInsecureTrustAnchors):
		return usageErr("peer %s: the license server's and the packager's keys are not pinned, and %s would deliver them over plain HTTP, where anyone on the path could replace them. "+
			"Pin them with the flags 'sealmesh keys list --pins' prints (--license-key HEX --manifest-key ID:HEX), or use an https:// --license; "+
			"for a test setup only, --insecure-http-keys fetches them anyway", mode, *lic)
	case errors.Is(err, segment.ErrRollback), errors.Is(err, player.ErrManifestNotLicensed):
		return fmt.Errorf("%v (the origin serves a manifest other than the current one: a stale cache or an attack; if the content was just re-packed, retry)", err)
	case errors.Is(err, player.ErrLicenseUnavailable):
		return fmt.Errorf("cannot get a license: the license server at %s is unreachable or failing (%v); check that it runs and that --license is right, or try again later", *lic, err)
	case errors.Is(err, license.ErrLicenseSignature), errors.Is(err, license.ErrLicenseMismatch), errors.Is(err, license.ErrLicenseMalformed):
		return fmt.Errorf("the license server's answer did not verify (%v); check --license-key against 'sealmesh keys list' on the server", err)
	case errors.Is(err, license.ErrLicenseExpired):
		return fmt.Errorf("the license server's license is outside its validity (%v); check this machine's clock", err)
	case errors.Is(err, player.ErrNoLicense):
		return fmt.Errorf("the license server refused: %v (check the token's account, content and expiry)", err)
	case errors.Is(err, player.ErrManifest):
		return fmt.Errorf("%v (check --origin and the manifest key)", err)
	case err != nil:
		return err
	}
	defer s.Close()
	if mode == "play" {
		fmt.Fprintf(stdout, "%s\n", s.URL())
		if *eme {
			fmt.Fprintf(stdout, "%s\n", s.DASHURL())
		}
	} else {
		fmt.Fprintf(stdout, "seeding %q as peer %s\n", content, s.PeerID())
	}
	// Every endpoint on the start-up lines: where other peers reach this one.
	if h := s.Host(); h != nil {
		for _, a := range h.Addrs() {
			fmt.Fprintf(stdout, "libp2p listening on %s/p2p/%s\n", a, h.ID())
		}
	}
	if err := metrics.Serve(ctx, s, content, stdout); err != nil {
		return err
	}
	var done <-chan struct{} = ctx.Done()
	if *ext != "" && mode == "play" {
		cmd := exec.CommandContext(ctx, *ext, s.URL())
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w (is it installed?)", *ext, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		done = exited
	}
	status(ctx, s, mode, done, stderr, *statusEvery)
	summary(stdout, s.Stats(), mode, content, time.Since(opened))
	return nil
}

// peerKeys parses the pinned keys; the player fetches those not given.
func peerKeys(licHex string, manifest []string) ([]ed25519.PublicKey, segment.TrustedKeys, error) {
	var lk []ed25519.PublicKey
	var mk segment.TrustedKeys
	if licHex != "" {
		b, err := hex.DecodeString(licHex)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, nil, usageErr("--license-key: want %d bytes of hex, as 'sealmesh keys list --pins' prints", ed25519.PublicKeySize)
		}
		lk = append(lk, b)
	}
	for _, m := range manifest {
		id, h, ok := strings.Cut(m, ":")
		b, err := hex.DecodeString(h)
		if !ok || id == "" || err != nil || len(b) != ed25519.PublicKeySize {
			return nil, nil, usageErr("--manifest-key %q: want ID:HEX as 'sealmesh keys list --pins' prints", m)
		}
		if mk == nil {
			mk = segment.TrustedKeys{}
		}
		mk[id] = b
	}
	return lk, mk, nil
}
