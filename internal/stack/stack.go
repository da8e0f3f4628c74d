// Package stack starts a whole sealmesh control plane and origin in one
// process: a key store, packaged content, a license server and a static
// origin, all on 127.0.0.1. The demo, the swarm benchmark and the player's
// tests use it; production runs each part as its own process.
package stack

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/license/token"
	"github.com/sealmesh/sealmesh/segment"
)

// Options configures Start. Zero values are documented.
type Options struct {
	// Dir holds the key store, state and packaged content. Required.
	Dir string
	// Inputs to pack. Required.
	Inputs []string
	// ContentID: zero "demo".
	ContentID string
	// Scheme: zero cbcs.
	Scheme segment.Scheme
	// SegmentDuration: zero 4 s. CryptoPeriod: zero, one key.
	SegmentDuration, CryptoPeriod time.Duration
	// License server settings; zero values are the server's defaults.
	LicenseTTL, RenewAfter time.Duration
	// MaxStreamsPerAccount: zero 1000 (the demo's viewers share an account).
	MaxStreamsPerAccount int
	// PlaybackSpeed is how fast the viewers play (zero: 1); the license
	// server's key window lets sessions advance at twice that (at least its
	// default), so fast-forwarded demos are not throttled by it.
	PlaybackSpeed float64
	// Origin wraps the origin's handler (to count or shape traffic). Zero:
	// a plain file server.
	Origin func(http.Handler) http.Handler
	// Logger: zero discards.
	Logger *slog.Logger
}

// Stack is a running control plane and origin.
type Stack struct {
	ContentID    string
	Manifest     *segment.Manifest
	ManifestKeys segment.TrustedKeys
	LicenseKeys  []ed25519.PublicKey
	LicenseURL   string
	OriginURL    string
	ContentDir   string
	PackTime     time.Duration

	issuer  *token.Issuer
	state   *license.State
	verify  *token.Verifier
	reader  *keys.Reader
	server  *license.Server
	servers []*http.Server
	cancel  context.CancelFunc
	done    []chan struct{}
	sctx    context.Context
	lic     licenseListener
}

const audience = "sealmesh"

// Start packs the inputs and starts the license server and the origin.
func Start(ctx context.Context, o Options) (st *Stack, err error) {
	if o.Dir == "" || len(o.Inputs) == 0 {
		return nil, errors.New("stack: Dir and Inputs are required")
	}
	if o.ContentID == "" {
		o.ContentID = "demo"
	}
	if o.MaxStreamsPerAccount == 0 {
		o.MaxStreamsPerAccount = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	st = &Stack{ContentID: o.ContentID, ContentDir: filepath.Join(o.Dir, "origin", o.ContentID)}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	// A master-key store: no passphrase KDF in a demo that runs in seconds.
	master, err := keys.MasterKeyAEAD(randomKey())
	if err != nil {
		return nil, err
	}
	ksPath := filepath.Join(o.Dir, "keys.db")
	ks, err := keys.Init(ksPath, nil, keys.WithMasterAEAD(master))
	if err != nil {
		return nil, fmt.Errorf("stack: key store: %w", err)
	}
	msk, err := ks.SigningKey(ctx, keys.SigningKeyManifest)
	if err == nil {
		_, err = ks.SigningKey(ctx, keys.SigningKeyLicense)
	}
	if err != nil {
		ks.Close()
		return nil, err
	}
	var cks []keys.ContentKey
	start := time.Now()
	res, err := segment.Pack(ctx, segment.Config{
		Inputs: o.Inputs, OutDir: st.ContentDir, ContentID: o.ContentID, Scheme: o.Scheme,
		SegmentDuration: o.SegmentDuration, CryptoPeriod: o.CryptoPeriod,
		Signer: msk.Signer(), SigningKeyID: msk.ID(), LicenseURL: "/v1/clearkey",
		Keys: func(p int) (segment.Key, error) {
			ck, err := keys.NewContentKey(p)
			if err != nil {
				return segment.Key{}, err
			}
			cks = append(cks, ck)
			return segment.NewKey(ck.KID(), ck.InsecureRawKey())
		},
		BeforeCommit: func(*segment.Manifest) error { return ks.PutContent(ctx, o.ContentID, cks, false) },
	})
	cerr := ks.Close()
	if err != nil {
		return nil, fmt.Errorf("stack: pack: %w", err)
	}
	if cerr != nil {
		return nil, cerr
	}
	st.PackTime = time.Since(start)
	st.Manifest = res.Manifest
	st.ManifestKeys = segment.TrustedKeys{msk.ID(): msk.Public()}

	if st.reader, err = keys.NewReader(ksPath, nil, keys.WithMasterAEAD(master)); err != nil {
		return nil, err
	}
	lsk, err := st.reader.SigningKey(ctx, keys.SigningKeyLicense)
	if err != nil {
		return nil, err
	}
	st.LicenseKeys = []ed25519.PublicKey{lsk.Public()}
	if st.issuer, err = token.LoadOrCreateDevIssuer(filepath.Join(o.Dir, "devkey.json")); err != nil {
		return nil, err
	}
	if st.verify, err = token.NewVerifier(token.VerifierConfig{Audience: audience, ExtraKeys: []jose.JSONWebKey{st.issuer.PublicJWK()}}); err != nil {
		return nil, err
	}
	if st.state, err = license.OpenState(filepath.Join(o.Dir, "state.db"), time.Second, nil); err != nil {
		return nil, err
	}
	st.server, err = license.New(license.Config{
		LicenseTTL: o.LicenseTTL, RenewAfter: o.RenewAfter, MaxStreamsPerAccount: o.MaxStreamsPerAccount,
		KeyWindow: license.KeyWindow{Speed: max(license.DefaultWindowSpeed, 2*o.PlaybackSpeed)},
		Logger:    o.Logger, CORSOrigins: []string{"*"},
		// Many viewers on one machine share an IP and an account.
		IPRate: rate.Limit(10000), IPBurst: 10000, AccountRate: rate.Limit(10000), AccountBurst: 10000,
	}, license.Deps{Keys: st.reader, Tokens: st.verify, Signer: lsk.Signer(), State: st.state, ManifestKeys: st.ManifestKeys,
		Catalog: license.ManifestCatalog{o.ContentID: res.Manifest}})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	st.sctx = sctx
	lln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	st.LicenseURL = "http://" + lln.Addr().String()
	st.serveLicense(lln)

	var origin http.Handler = http.FileServer(http.Dir(filepath.Join(o.Dir, "origin")))
	if o.Origin != nil {
		origin = o.Origin(origin)
	}
	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	osrv := &http.Server{Handler: origin, ReadHeaderTimeout: 5 * time.Second}
	st.servers = append(st.servers, osrv)
	st.OriginURL = "http://" + oln.Addr().String() + "/" + o.ContentID + "/"
	odone := make(chan struct{})
	st.done = append(st.done, odone)
	go func() { defer close(odone); _ = osrv.Serve(oln) }()
	return st, nil
}

// Token mints a development entitlement token for account, valid for ttl.
func (st *Stack) Token(account string, ttl time.Duration) (string, error) {
	now := time.Now()
	return st.issuer.Issue(token.Claims{
		Account: account, Content: []string{st.ContentID}, Audience: []string{audience},
		NotBefore: now.Add(-time.Minute), Expiry: now.Add(ttl),
	})
}

// TokenFunc returns a token source for a player: a fresh token per call.
func (st *Stack) TokenFunc(account string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return st.Token(account, time.Hour) }
}

// Revoke revokes an account at the running license server.
func (st *Stack) Revoke(account string) error {
	return st.state.Revoke(context.Background(), license.RevokeAccount, account, time.Now())
}

// Close stops the servers and closes the stores. It is safe to call twice.
func (st *Stack) Close() {
	if st.cancel != nil {
		st.cancel()
	}
	for _, s := range st.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	for _, d := range st.done {
		<-d
	}
	st.done = nil
	st.StopLicense()
	if st.server != nil {
		st.server.Close()
	}
	if st.state != nil {
		st.state.Close()
	}
	if st.verify != nil {
		st.verify.Close()
	}
	if st.reader != nil {
		st.reader.Close()
	}
}

func randomKey() []byte {
	b := make([]byte, keys.MasterKeySize)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// ManifestSigner returns the packager's manifest signing key, for tests
// that re-sign manifests (an older or altered one the packager signed).
func (st *Stack) ManifestSigner(ctx context.Context) (crypto.Signer, error) {
	sk, err := st.reader.SigningKey(ctx, keys.SigningKeyManifest)
	if err != nil {
		return nil, err
	}
	return sk.Signer(), nil
}
