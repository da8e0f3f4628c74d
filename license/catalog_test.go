package license_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/segment"
)

func packFilm(t *testing.T, out string, priv ed25519.PrivateKey) *segment.Manifest {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	res, err := segment.Pack(context.Background(), segment.Config{
		Inputs: []string{filepath.Join(filepath.Dir(file), "..", "testdata", "clip", "180p.mp4")},
		OutDir: out, ContentID: "film", Scheme: segment.SchemeCBCS, Signer: priv, SigningKeyID: "m", Force: true,
		Keys: func(int) (segment.Key, error) {
			var kid [16]byte
			raw := make([]byte, segment.KeySize)
			rand.Read(kid[:])
			rand.Read(raw)
			return segment.NewKey(kid, raw)
		},
	})
	require.NoError(t, err)
	return res.Manifest
}

// TestDirCatalogFollowsRepack: the digest licenses name is the current
// manifest's, also after `pack --force` replaced it while the server runs,
// and with the content in two folders it is the newer manifest's.
func TestDirCatalogFollowsRepack(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	root := t.TempDir()
	first := packFilm(t, filepath.Join(root, "film"), priv)
	cat, err := license.NewDirCatalog([]string{root}, segment.TrustedKeys{"m": pub}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	now := time.Now()
	license.SetCatalogClock(cat, func() time.Time { return now })
	ctx := context.Background()
	d, err := cat.ManifestDigest(ctx, "film")
	require.NoError(t, err)
	require.Equal(t, first.Digest(), d)
	require.Len(t, d, 64)

	// An older copy of the manifest in a folder scanned first.
	old, err := os.ReadFile(filepath.Join(root, "film", segment.ManifestFile))
	require.NoError(t, err)
	second := packFilm(t, filepath.Join(root, "film"), priv)
	require.Greater(t, second.Sequence, first.Sequence)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "aaa"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "aaa", segment.ManifestFile), old, 0o644))

	d, err = cat.ManifestDigest(ctx, "film")
	require.NoError(t, err)
	require.Equal(t, first.Digest(), d, "no rescan before the interval")
	now = now.Add(5 * time.Second)
	d, err = cat.ManifestDigest(ctx, "film")
	require.NoError(t, err)
	require.Equal(t, second.Digest(), d, "the re-packed manifest, not the older copy")

	_, err = cat.ManifestDigest(ctx, "other")
	require.Error(t, err)
}

// TestLicenseNamesManifestDigest: licenses and renewals carry the digest of
// the catalog's manifest; without a catalog they carry none.
func TestLicenseNamesManifestDigest(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	cat := license.ManifestCatalog{}
	e := newEnv(t, withCatalog(cat))
	m := &segment.Manifest{Version: segment.ManifestVersion, ContentID: movie, Scheme: segment.SchemeCBCS, SigningKeyID: "m", Sequence: 7,
		Periods: []segment.Period{{Index: 0, KID: e.movieKeys[0].KID().String()}},
		Renditions: []segment.Rendition{{ID: "audio", Type: "audio", Files: []segment.File{
			{Path: "audio/init.mp4", Kind: segment.KindInit, Size: 1, SHA256: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
		}}}}
	_, err := segment.SignManifest(m, priv)
	require.NoError(t, err)
	cat[movie] = m
	c := e.client(t, e.token(t, "acct-1", []string{movie}))
	l, err := c.License(context.Background(), license.KeyRequest{Content: movie})
	require.NoError(t, err)
	require.Equal(t, m.Digest(), l.ManifestSHA256)
	l, err = c.Renew(context.Background(), l, license.KeyRequest{})
	require.NoError(t, err)
	require.Equal(t, m.Digest(), l.ManifestSHA256)

	e2 := newEnv(t)
	l, err = e2.client(t, e2.token(t, "acct-1", []string{movie})).License(context.Background(), license.KeyRequest{Content: movie})
	require.NoError(t, err)
	require.Empty(t, l.ManifestSHA256)
}
