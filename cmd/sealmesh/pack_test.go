package main_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/interop"
)

// tree lists every path under dir with its contents.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if e.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	}))
	return out
}

// TestPackForceOnlyOwnOutput: 'pack --out /srv/origin --force' on a folder
// that holds no sealmesh output of this key store exits non-zero with a
// clear message and leaves the folder intact; an empty pre-created folder is
// accepted; the store's own output is replaced with --force.
func TestPackForceOnlyOwnOutput(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	pack := func(out, content string, extra ...string) result {
		args := append([]string{"pack", "--no-license-url", "--keystore", ks, "--in", clip(t, "180p.mp4"), "--out", out, "--content", content, "--quiet"}, extra...)
		return sealmesh(t, dir, nil, args...)
	}

	origin := filepath.Join(dir, "srv", "origin")
	require.NoError(t, os.MkdirAll(filepath.Join(origin, "other-film"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(origin, "index.html"), []byte("home page"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(origin, "other-film", "master.m3u8"), []byte("#EXTM3U\n"), 0o644))
	before := tree(t, filepath.Dir(origin))
	r := pack(origin, "film", "--force")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "is not empty and has no sealmesh.json; --force replaces only sealmesh output signed by this key store")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %s", r.stderr)
	require.Equal(t, before, tree(t, filepath.Dir(origin)), "the folder and its parent are exactly as they were")

	// Output signed by another key store is not ours either.
	otherKS := initStoreAt(t, dir, "other.db")
	foreign := filepath.Join(dir, "foreign")
	r = sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", otherKS, "--in", clip(t, "180p.mp4"), "--out", foreign, "--content", "x", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	before = tree(t, foreign)
	r = pack(foreign, "film", "--force")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "its sealmesh.json is not signed by this key store")
	require.Equal(t, before, tree(t, foreign))

	// An empty folder (a pre-created mount point) is accepted without --force.
	empty := filepath.Join(dir, "mnt")
	require.NoError(t, os.Mkdir(empty, 0o755))
	r = pack(empty, "film")
	require.Equal(t, 0, r.code, r.stderr)
	require.FileExists(t, filepath.Join(empty, "sealmesh.json"))

	// Our own output: refused without --force, replaced with it.
	r = pack(empty, "film2")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "pass --force to replace it")
	r = pack(empty, "film2", "--force")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, tree(t, empty)["sealmesh.json"], `film2`)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), "partial", "a temporary folder was left behind")
	}
}

// TestPackUmask: folders and files are created 0755/0644 less the umask,
// here 027 (an operator who wants nothing world-readable gets 0750/0640).
func TestPackUmask(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to set a umask with")
	}
	dir := t.TempDir()
	ks := initStore(t, dir)
	out := filepath.Join(dir, "out")
	cmd := exec.Command(sh, "-c", `umask 027 && exec "$@"`, "sh", binary, "pack", "--no-license-url", "--keystore", ks,
		"--in", clip(t, "180p.mp4"), "--out", out, "--content", "film", "--quiet")
	cmd.Env = append(os.Environ(), "SEALMESH_KEYSTORE_PASSPHRASE="+testPass)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	n := 0
	require.NoError(t, filepath.WalkDir(out, func(p string, e fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := e.Info()
		require.NoError(t, err)
		want := fs.FileMode(0o640)
		if e.IsDir() {
			want = 0o750
		}
		require.Equal(t, want, info.Mode().Perm(), p)
		n++
		return nil
	}))
	require.Greater(t, n, 10)
}

// TestPackNoDefaultLicenseURL: without --license-url pack refuses and says
// what to pass; with --no-license-url no playlist names a license server;
// with --license-url every media playlist and the MPD carry exactly it.
func TestPackNoDefaultLicenseURL(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	base := []string{"pack", "--keystore", ks, "--in", clip(t, "180p.mp4"), "--quiet"}
	r := sealmesh(t, dir, nil, append(base, "--out", "a", "--content", "a")...)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "no --license-url: pass the Clear Key URL players should use")
	require.Contains(t, r.stderr, "--no-license-url")
	require.NoDirExists(t, filepath.Join(dir, "a"))

	r = sealmesh(t, dir, nil, append(base, "--out", "b", "--content", "b", "--no-license-url")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "drm.servers['org.w3.clearkey']", "says how players get keys")
	for rel, body := range tree(t, filepath.Join(dir, "b")) {
		if strings.HasSuffix(rel, ".m3u8") || strings.HasSuffix(rel, ".mpd") {
			for _, bad := range []string{"127.0.0.1", "localhost", "8443", "/v1/clearkey", "Laurl"} {
				require.NotContains(t, body, bad, rel)
			}
		}
	}

	const lic = "https://license.example.com/v1/clearkey"
	r = sealmesh(t, dir, nil, append(base, "--out", "c", "--content", "c", "--license-url", lic)...)
	require.Equal(t, 0, r.code, r.stderr)
	c := tree(t, filepath.Join(dir, "c"))
	require.Contains(t, c["manifest.mpd"], `">`+lic+"</dashif:Laurl>") // the element declares its namespace
	require.Contains(t, c["video-320x180/index.m3u8"], `URI="`+lic+"?kid=")
	for rel, body := range c {
		require.NotContains(t, body, "127.0.0.1", rel)
	}
}

// TestPackWarnsSparseKeyframes: a clip with a keyframe every 10 s (ffmpeg
// -g 250 at 25 fps) packed for 4 s segments gets a warning that says why and
// what to do; the bundled clip (a keyframe every 2 s) gets none.
func TestPackWarnsSparseKeyframes(t *testing.T) {
	ffmpeg := interop.FFmpeg(t)
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse.mp4")
	b, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-t", "21", "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", "-keyint_min", "250", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", sparse).CombinedOutput()
	require.NoError(t, err, "%s", b)
	ks := initStore(t, dir)
	r := sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", sparse, "--out", "o", "--content", "sparse", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "warning: segments last up to 10.0s, 2.5× the 4s segment duration asked for, because sparse.mp4 has keyframes up to 10.0s apart")
	require.Contains(t, r.stderr, "--segment-duration 10s")

	r = sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", clip(t, "180p.mp4"), "--out", "p", "--content", "clip", "--quiet")
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stderr, "warning")
}

// TestPackErrorsInWords: a damaged input and a failed write each get one
// line that names the file the operator gave, never raw box bytes, parser
// offsets chains or the hidden temporary folder.
func TestPackErrorsInWords(t *testing.T) {
	dir := t.TempDir()
	ks := initStore(t, dir)
	src, err := os.ReadFile(clip(t, "180p.mp4"))
	require.NoError(t, err)
	damage := func(name, box string, at int, with []byte) string {
		d := append([]byte(nil), src...)
		i := strings.Index(string(d), box)
		require.Positive(t, i, box)
		copy(d[i+at:], with)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, d, 0o644))
		return p
	}
	seq := make([]byte, 56)
	for i := range seq {
		seq[i] = byte(i)
	}
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"damaged sample description", damage("stsd.mp4", "stsd", 4, seq), "stsd.mp4 is not a readable MP4 file: its stsd box (at byte "},
		{"impossible sample count", damage("stsz.mp4", "stsz", 12, []byte{0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}), "stsz.mp4 is not a readable MP4 file: its stsz box (at byte "},
		{"damaged top-level box", damage("top.mp4", "mdat", -4, []byte{0, 0, 0, 0x10}), "top.mp4 is not a readable MP4 file: its boxes cannot be read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := sealmesh(t, dir, nil, "pack", "--no-license-url", "--keystore", ks, "--in", tc.in, "--out", "o", "--content", "c", "--quiet")
			require.Equal(t, 1, r.code, r.stderr)
			require.Contains(t, r.stderr, tc.want)
			requireCleanLine(t, r.stderr)
		})
	}

	t.Run("write fails", func(t *testing.T) {
		prlimit, err := exec.LookPath("prlimit")
		if err != nil {
			t.Skip("no prlimit to make a write fail with")
		}
		cmd := exec.Command(prlimit, "--fsize=20000", binary, "pack", "--no-license-url", "--keystore", ks, "--in", clip(t, "180p.mp4"), "--out", "small", "--content", "small", "--quiet")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SEALMESH_KEYSTORE_PASSPHRASE="+testPass)
		b, err := cmd.CombinedOutput()
		require.Error(t, err)
		msg := string(b)
		require.Contains(t, msg, "write small/", "the error names the output folder the operator gave")
		require.Contains(t, msg, "file too large")
		requireCleanLine(t, msg)
		require.NoDirExists(t, filepath.Join(dir, "small"))
	})
}

func requireCleanLine(t *testing.T, msg string) {
	t.Helper()
	require.Equal(t, 1, strings.Count(strings.TrimRight(msg, "\n"), "\n")+1, "one line: %q", msg)
	for _, bad := range []string{`\x`, "pos ", "decode box", ".partial-", "write small/video-320x180/1.m4s: write"} {
		require.NotContains(t, msg, bad)
	}
}
