package segment_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

// packInto packs the test clip into out, signed by priv under keyID.
func packInto(t *testing.T, out string, priv ed25519.PrivateKey, keyID string, force bool, opts ...packOpt) (*segment.Result, error) {
	t.Helper()
	cfg := segment.Config{
		Inputs: clipPaths(t), OutDir: out, ContentID: "clip", Force: force, Signer: priv, SigningKeyID: keyID,
		SegmentDuration: 2 * time.Second,
		Keys:            func(int) (segment.Key, error) { return randomKey(t), nil },
	}
	for _, o := range opts {
		o(&cfg)
	}
	return segment.Pack(context.Background(), cfg)
}

// snapshot lists every path under dir with its contents, to show a folder
// was left exactly as it was.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if e.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	}))
	return out
}

// TestPackOutputFolder: --force replaces only a folder holding sealmesh
// output signed by the run's key; anything else is left intact, and an
// empty folder (a pre-created mount point) is accepted.
func TestPackOutputFolder(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, other, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	foreign := func(t *testing.T, out string) {
		require.NoError(t, os.MkdirAll(filepath.Join(out, "site"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(out, "index.html"), []byte("the origin's home page"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(out, "site", "a.css"), []byte("body{}"), 0o644))
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, out string)
		force   bool
		want    error  // nil: the run succeeds
		msg     string // in the error
	}{
		{"missing", func(*testing.T, string) {}, false, nil, ""},
		{"empty folder", func(t *testing.T, out string) { require.NoError(t, os.Mkdir(out, 0o755)) }, false, nil, ""},
		{"empty folder with force", func(t *testing.T, out string) { require.NoError(t, os.Mkdir(out, 0o755)) }, true, nil, ""},
		{"foreign folder", foreign, false, segment.ErrForeignOutput, "--force replaces only sealmesh output"},
		{"foreign folder with force", foreign, true, segment.ErrForeignOutput, "has no sealmesh.json"},
		{"a lone sealmesh.json that does not verify, with force", func(t *testing.T, out string) {
			foreign(t, out)
			require.NoError(t, os.WriteFile(filepath.Join(out, segment.ManifestFile), []byte(`{"manifest":"e30=","key_id":"k","signature":"AAAA"}`), 0o644))
		}, true, segment.ErrForeignOutput, "not signed by this key store"},
		{"output of another key store, with force", func(t *testing.T, out string) {
			_, err := packInto(t, out, other, "other", false)
			require.NoError(t, err)
		}, true, segment.ErrForeignOutput, "not signed by this key store"},
		{"own output", func(t *testing.T, out string) {
			_, err := packInto(t, out, priv, "k", false)
			require.NoError(t, err)
		}, false, segment.ErrOutputExists, "pass --force"},
		{"own output with force", func(t *testing.T, out string) {
			_, err := packInto(t, out, priv, "k", false)
			require.NoError(t, err)
			// A file left by hand in the old output goes with it.
			require.NoError(t, os.WriteFile(filepath.Join(out, "stray.txt"), []byte("x"), 0o644))
		}, true, nil, ""},
		{"a file", func(t *testing.T, out string) { require.NoError(t, os.WriteFile(out, []byte("x"), 0o644)) }, true, segment.ErrOutputExists, "not a folder"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			tc.prepare(t, out)
			var before map[string]string
			if _, err := os.Stat(out); err == nil {
				before = snapshot(t, parent)
			}
			res, err := packInto(t, out, priv, "k", tc.force)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				require.Contains(t, err.Error(), tc.msg)
				require.Equal(t, before, snapshot(t, parent), "a refused run must leave the folder and its parent exactly as they were")
				return
			}
			require.NoError(t, err)
			data, err := os.ReadFile(filepath.Join(out, segment.ManifestFile))
			require.NoError(t, err)
			m, err := segment.ParseManifest(data, segment.TrustedKeys{"k": priv.Public().(ed25519.PublicKey)})
			require.NoError(t, err)
			require.Equal(t, res.Manifest.Periods, m.Periods, "the folder holds this run's output")
			require.NoFileExists(t, filepath.Join(out, "stray.txt"))
			entries, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Len(t, entries, 1, "no temporary or old folder left beside the output")
		})
	}
}

// TestPackModes: folders 0755 and files 0644 less the umask, not the 0700 of
// a temporary folder, so an origin running as another user can read them.
func TestPackModes(t *testing.T) {
	umask := processUmask(t)
	p := packClip(t, segment.SchemeCBCS, 0)
	var dirs, files int
	require.NoError(t, filepath.WalkDir(p.dir, func(path string, e fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := e.Info()
		require.NoError(t, err)
		if e.IsDir() {
			dirs++
			require.Equal(t, fs.FileMode(0o755)&^umask, info.Mode().Perm(), path)
		} else {
			files++
			require.Equal(t, fs.FileMode(0o644)&^umask, info.Mode().Perm(), path)
		}
		return nil
	}))
	require.Greater(t, dirs, 2)
	require.Greater(t, files, 10)
}

// TestPackNoLicenseURL: without a license URL no playlist names one (no
// loopback default); with one, every playlist carries exactly it.
func TestPackNoLicenseURL(t *testing.T) {
	playlists := func(p *packed) map[string]string {
		out := map[string]string{}
		for _, f := range p.m.Playlists {
			out[f.Path] = string(p.read(t, f.Path))
		}
		require.NotEmpty(t, out)
		return out
	}
	for path, body := range playlists(packClip(t, segment.SchemeCBCS, 8*time.Second)) {
		for _, bad := range []string{"127.0.0.1", "localhost", "[::1]", "Laurl", "/v1/clearkey"} {
			require.NotContains(t, body, bad, "%s names a license URL nobody gave", path)
		}
		if strings.HasSuffix(path, ".m3u8") {
			require.NotContains(t, body, "http", path)
		}
		if strings.HasSuffix(path, "index.m3u8") {
			require.Contains(t, body, `#EXT-X-KEY:METHOD=SAMPLE-AES,URI="data:text/plain;base64,`)
			require.Contains(t, body, `KEYFORMAT="org.w3.clearkey"`)
		}
	}
	const lic = "https://license.example.com/v1/clearkey"
	for path, body := range playlists(packClip(t, segment.SchemeCBCS, 0, func(c *segment.Config) { c.LicenseURL = lic })) {
		if path != segment.HLSMaster {
			require.Contains(t, body, lic, path)
		}
		require.NotContains(t, body, "127.0.0.1", path)
	}
}
