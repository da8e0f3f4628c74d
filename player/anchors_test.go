package player_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/player"
	"github.com/sealmesh/sealmesh/segment"
)

// mitm is a man in the middle on plain HTTP: a real reverse proxy in front
// of the license server that adds its own manifest key to GET /v1/keys, and
// one in front of the origin that serves a manifest it signed, listing a
// tampered first video segment, and that segment.
type mitm struct {
	license, origin *httptest.Server
	keyFetches      atomic.Int64 // GET /v1/keys that reached the proxy
}

const mitmKeyID = "mitm"

func startMITM(t *testing.T, st *stack.Stack) *mitm {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	// The forged manifest: the real one with the first video segment
	// replaced, re-signed with the attacker's key.
	forged := *st.Manifest
	forged.SigningKeyID = mitmKeyID
	forged.Renditions = append([]segment.Rendition(nil), st.Manifest.Renditions...)
	var video *segment.Rendition
	for i := range forged.Renditions {
		if forged.Renditions[i].Type == "video" {
			video = &forged.Renditions[i]
			break
		}
	}
	require.NotNil(t, video)
	video.Files = append([]segment.File(nil), video.Files...)
	orig := video.Files[1]
	resp, err := http.Get(st.OriginURL + orig.Path)
	require.NoError(t, err)
	seg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	seg[len(seg)/2] ^= 0xff
	tampered := segment.File{Path: orig.Path, Kind: orig.Kind, Index: orig.Index, Period: orig.Period, Start: orig.Start, Duration: orig.Duration}
	sum := sha256.Sum256(seg)
	tampered.Size, tampered.SHA256 = int64(len(seg)), hex.EncodeToString(sum[:])
	video.Files[1] = tampered
	forgedBytes, err := segment.SignManifest(&forged, priv)
	require.NoError(t, err)

	m := &mitm{}
	licURL, err := url.Parse(st.LicenseURL)
	require.NoError(t, err)
	lp := httputil.NewSingleHostReverseProxy(licURL)
	lp.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path != "/v1/keys" {
			return nil
		}
		m.keyFetches.Add(1)
		var pk license.PublicKeys
		if err := json.NewDecoder(r.Body).Decode(&pk); err != nil {
			return err
		}
		r.Body.Close()
		pk.Manifest[mitmKeyID] = hex.EncodeToString(pub)
		b, err := json.Marshal(pk)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	m.license = httptest.NewServer(lp)
	t.Cleanup(m.license.Close)
	originURL, err := url.Parse(st.OriginURL)
	require.NoError(t, err)
	originURL.Path = "/"
	op := httputil.NewSingleHostReverseProxy(originURL)
	m.origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/"+segment.ManifestFile):
			_, _ = w.Write(forgedBytes)
		case strings.HasSuffix(r.URL.Path, "/"+orig.Path):
			_, _ = w.Write(seg)
		default:
			op.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(m.origin.Close)
	return m
}

// TestTrustAnchorsOverPlainHTTP: with the keys not pinned and a plain-HTTP
// license server, a man in the middle adds its own manifest key. Without
// pins or the explicit insecure flag the player and the seed refuse before
// fetching any key, with an error that says what to do; with pins they
// refuse the forged manifest. The insecure flag shows the attack is real:
// a seed (no license) then accepts the forged manifest, and only the digest
// its license names saves a player.
func TestTrustAnchorsOverPlainHTTP(t *testing.T) {
	st := startStack(t, stack.Options{})
	m := startMITM(t, st)
	type pins int
	const (
		none pins = iota
		licenseOnly
		both
	)
	for _, tc := range []struct {
		name     string
		seed     bool
		pins     pins
		insecure bool
		check    func(t *testing.T, s *player.Session, err error)
	}{
		{"player, no pins: refused", false, none, false, refusedInsecure},
		{"seed, no pins: refused", true, none, false, refusedInsecure},
		{"player, only the license key pinned: refused", false, licenseOnly, false, refusedInsecure},
		{"player, pinned: forged manifest refused", false, both, false, func(t *testing.T, _ *player.Session, err error) {
			require.ErrorIs(t, err, player.ErrManifest)
			require.ErrorIs(t, err, segment.ErrBadSignature)
		}},
		{"seed, pinned: forged manifest refused", true, both, false, func(t *testing.T, _ *player.Session, err error) {
			require.ErrorIs(t, err, segment.ErrBadSignature)
		}},
		{"seed, insecure flag: the attack works", true, none, true, func(t *testing.T, s *player.Session, err error) {
			require.NoError(t, err)
			require.Equal(t, mitmKeyID, s.Manifest().SigningKeyID, "the seed took the forged manifest")
		}},
		{"player, insecure flag: the license's digest refuses it", false, none, true, func(t *testing.T, _ *player.Session, err error) {
			require.ErrorIs(t, err, player.ErrManifestNotLicensed)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config(st, "viewer")
			c.LicenseURL = m.license.URL
			c.OriginURL = m.origin.URL + "/" + st.ContentID + "/"
			c.SeedOnly, c.P2P.Disable, c.InsecureHTTPTrustAnchors = tc.seed, true, tc.insecure
			switch tc.pins {
			case none:
				c.LicenseKeys, c.ManifestKeys = nil, nil
			case licenseOnly:
				c.ManifestKeys = nil
			}
			before := m.keyFetches.Load()
			s, err := player.Open(context.Background(), c)
			if s != nil {
				defer s.Close()
			}
			tc.check(t, s, err)
			if !tc.insecure {
				require.Equal(t, before, m.keyFetches.Load(), "no key was fetched")
			}
		})
	}
}

func refusedInsecure(t *testing.T, _ *player.Session, err error) {
	t.Helper()
	require.ErrorIs(t, err, player.ErrInsecureTrustAnchors)
	require.ErrorIs(t, err, player.ErrConfig)
	for _, want := range []string{"plain HTTP", "pin", "https://", "InsecureHTTPTrustAnchors"} {
		require.Contains(t, err.Error(), want)
	}
}

// TestPinnedKeysOverPlainHTTPPlay: pinned keys need no secure channel: the
// player plays from a plain-HTTP license server and origin (every existing
// test does too), and fetches nothing from /v1/keys.
func TestPinnedKeysOverPlainHTTPPlay(t *testing.T) {
	st := startStack(t, stack.Options{})
	require.True(t, strings.HasPrefix(st.LicenseURL, "http://"))
	cfg := config(st, "viewer")
	cfg.P2P.Disable = true
	s, err := player.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer s.Close()
	code, body := get(t, s.URL())
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), "#EXTM3U")
}

// TestTrustAnchorsOverHTTPS: keys that are not pinned are fetched from an
// https:// license server (trusting its certificate), but not when it
// redirects the request to plain HTTP.
func TestTrustAnchorsOverHTTPS(t *testing.T) {
	st := startStack(t, stack.Options{})
	licURL, err := url.Parse(st.LicenseURL)
	require.NoError(t, err)
	tlsProxy := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(licURL))
	defer tlsProxy.Close()
	redirect := httptest.NewTLSServer(http.RedirectHandler(st.LicenseURL+"/v1/keys", http.StatusFound))
	defer redirect.Close()
	for _, tc := range []struct {
		name, url string
		ok        bool
	}{
		{"https", tlsProxy.URL, true},
		{"https redirecting to http", redirect.URL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config(st, "viewer")
			c.LicenseURL, c.HTTPClient = tc.url, tlsProxy.Client()
			c.LicenseKeys, c.ManifestKeys = nil, nil
			c.P2P.Disable, c.SeedOnly = true, true
			s, err := player.Open(context.Background(), c)
			if !tc.ok {
				require.ErrorIs(t, err, player.ErrInsecureTrustAnchors)
				return
			}
			require.NoError(t, err)
			require.NoError(t, s.Close())
		})
	}
}
