package token_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license/token"
)

// opaqueSigner hides the concrete key type, as a KMS or HSM handle would.
type opaqueSigner struct{ crypto.Signer }

func TestIssuerRoundTrip(t *testing.T) {
	k := newTestKeys(t)
	tests := []struct {
		name    string
		key     crypto.Signer
		kid     string
		wantAlg jose.SignatureAlgorithm
	}{
		{"Ed25519", k.ed, "ed-1", jose.EdDSA},
		{"ECDSA P-256", k.ec, "ec-1", jose.ES256},
		{"opaque Ed25519 signer", opaqueSigner{k.ed}, "ed-2", jose.EdDSA},
		{"opaque P-256 signer", opaqueSigner{k.ec}, "ec-2", jose.ES256},
		{"derived kid", k.ed, "", jose.EdDSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := token.NewIssuer(tt.key, tt.kid)
			require.NoError(t, err)
			require.Equal(t, tt.wantAlg, iss.Algorithm())
			wantKID := tt.kid
			if wantKID == "" {
				wantKID, err = token.KeyID(tt.key.Public())
				require.NoError(t, err)
				require.Len(t, wantKID, 16)
			}
			require.Equal(t, wantKID, iss.KeyID())

			// The verifier reads the issuer's JWK Set as its key set file.
			path := filepath.Join(t.TempDir(), "keys.json")
			require.NoError(t, os.WriteFile(path, iss.PublicJWKS(), 0o644))
			v, err := token.NewVerifier(token.VerifierConfig{KeySetFile: path, Audience: testAudience, Now: newClock(t0).Now})
			require.NoError(t, err)
			defer v.Close()

			in := token.Claims{
				Account:   "acct-7",
				Content:   []string{"movie-7", "series-1/*"},
				Device:    "stb-1",
				Audience:  []string{testAudience},
				IssuedAt:  t0.Add(-time.Second),
				NotBefore: t0.Add(-time.Second),
				Expiry:    t0.Add(5*time.Minute + 500*time.Millisecond), // sub-second part is dropped
			}
			raw, err := iss.Issue(in)
			require.NoError(t, err)

			parsed, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{tt.wantAlg})
			require.NoError(t, err)
			require.Equal(t, wantKID, parsed.Headers[0].KeyID)

			got, err := v.Verify(raw)
			require.NoError(t, err)
			require.NotEmpty(t, got.ID, "Issue fills a random jti")
			want := in
			want.ID = got.ID
			want.Expiry = t0.Add(5 * time.Minute)
			require.Equal(t, &want, got)

			raw2, err := iss.Issue(in)
			require.NoError(t, err)
			got2, err := v.Verify(raw2)
			require.NoError(t, err)
			require.NotEqual(t, got.ID, got2.ID, "jti is random per token")
		})
	}
}

func TestIssuerFillsIssuedAt(t *testing.T) {
	k := newTestKeys(t)
	iss, err := token.NewIssuer(k.ed, "ed")
	require.NoError(t, err)
	before := time.Now().Truncate(time.Second)
	raw, err := iss.Issue(token.Claims{Account: "a", Content: []string{"*"}, ID: "fixed", Audience: []string{testAudience}, Expiry: time.Now().Add(time.Minute)})
	require.NoError(t, err)

	v, err := token.NewVerifier(token.VerifierConfig{Audience: testAudience, ExtraKeys: []jose.JSONWebKey{iss.PublicJWK()}})
	require.NoError(t, err)
	defer v.Close()
	c, err := v.Verify(raw)
	require.NoError(t, err)
	require.Equal(t, "fixed", c.ID, "a given jti is kept")
	require.False(t, c.IssuedAt.Before(before))
	require.False(t, c.IssuedAt.After(time.Now()))
}

func TestIssueRefusesIncompleteClaims(t *testing.T) {
	k := newTestKeys(t)
	iss, err := token.NewIssuer(k.ed, "ed")
	require.NoError(t, err)
	full := token.Claims{Account: "a", Content: []string{"m"}, Audience: []string{testAudience}, Expiry: t0}
	tests := []struct {
		name   string
		modify func(*token.Claims)
		want   error
	}{
		{"no account", func(c *token.Claims) { c.Account = "" }, token.ErrMissingClaim},
		{"no content", func(c *token.Claims) { c.Content = nil }, token.ErrMissingClaim},
		{"empty content entry", func(c *token.Claims) { c.Content = []string{""} }, token.ErrMalformed},
		{"no expiry", func(c *token.Claims) { c.Expiry = time.Time{} }, token.ErrMissingClaim},
		{"no audience", func(c *token.Claims) { c.Audience = nil }, token.ErrMissingClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := full
			tt.modify(&c)
			_, err := iss.Issue(c)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestNewIssuerRefusesOtherKeys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tests := []struct {
		name string
		key  crypto.Signer
	}{
		{"nil", nil},
		{"P-384", p384},
		{"RSA", rsaKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := token.NewIssuer(tt.key, "k")
			require.Error(t, err)
		})
	}
}

func TestIssuerDoesNotPrintSecrets(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	iss, err := token.NewIssuer(priv, "kid-1")
	require.NoError(t, err)
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("issuer", "issuer", iss)
	for _, s := range []string{fmt.Sprint(iss), fmt.Sprintf("%+v", iss), logged.String()} {
		require.Contains(t, s, "kid-1")
		require.NotContains(t, s, string(priv))
		require.NotContains(t, s, fmt.Sprint([]byte(priv)))
	}
	var set struct{ Keys []map[string]any }
	require.NoError(t, json.Unmarshal(iss.PublicJWKS(), &set))
	require.Len(t, set.Keys, 1)
	require.Equal(t, "kid-1", set.Keys[0]["kid"])
	require.NotContains(t, set.Keys[0], "d", "public JWK set must not hold the private key")
}

func TestLoadOrCreateDevIssuer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "dev-token-key.json")

	first, err := token.LoadOrCreateDevIssuer(path)
	require.NoError(t, err)
	require.Equal(t, jose.EdDSA, first.Algorithm())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	if runtime.GOOS != "windows" {
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	wantKID, err := token.KeyID(first.PublicJWK().Key)
	require.NoError(t, err)
	require.Equal(t, wantKID, first.KeyID(), "dev kid is the short hash of the public key")

	second, err := token.LoadOrCreateDevIssuer(path)
	require.NoError(t, err)
	require.Equal(t, first.KeyID(), second.KeyID())
	require.Equal(t, first.PublicJWKS(), second.PublicJWKS(), "the key persists")

	// A token from the first instance verifies against the second's key.
	v, err := token.NewVerifier(token.VerifierConfig{Audience: testAudience, Now: newClock(t0).Now, ExtraKeys: []jose.JSONWebKey{second.PublicJWK()}})
	require.NoError(t, err)
	defer v.Close()
	raw, err := first.Issue(token.Claims{Account: "dev", Content: []string{"*"}, Audience: []string{testAudience}, IssuedAt: t0, Expiry: t0.Add(time.Hour)})
	require.NoError(t, err)
	_, err = v.Verify(raw)
	require.NoError(t, err)

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary files left behind")
}

func TestLoadOrCreateDevIssuerRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecJWK, err := json.Marshal(jose.JSONWebKey{Key: ec, KeyID: "ec"})
	require.NoError(t, err)
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
		unix    bool
	}{
		{"world readable", "{}", 0o644, "chmod 600", true},
		{"not a JWK", "nope", 0o600, "not a JWK", false},
		{"not Ed25519", string(ecJWK), 0o600, "want an Ed25519 private key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unix && runtime.GOOS == "windows" {
				t.Skip("no Unix permissions")
			}
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			require.NoError(t, os.WriteFile(path, []byte(tt.content), tt.mode))
			require.NoError(t, os.Chmod(path, tt.mode))
			_, err := token.LoadOrCreateDevIssuer(path)
			require.ErrorContains(t, err, tt.wantErr)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, tt.content, string(got), "an existing file is never overwritten")
		})
	}
}
