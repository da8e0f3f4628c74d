package interop

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Environment variables read by this package.
const (
	EnvInterop        = "SEALMESH_INTEROP" // "1": a missing tool fails the test instead of skipping it
	EnvFFmpeg         = "SEALMESH_FFMPEG"
	EnvShakaPackager  = "SEALMESH_SHAKA_PACKAGER"
	EnvChromium       = "SEALMESH_CHROMIUM"
	EnvNodeDir        = "SEALMESH_NODE_DIR"
	setupHint         = "run ./scripts/test, which installs the tools and sets it"
	defaultChromium   = "/usr/bin/chromium"
	nodeWorkspacePath = "scripts/node"
)

// Required reports whether SEALMESH_INTEROP=1, i.e. whether a missing tool must fail
// the test rather than skip it.
func Required() bool { return os.Getenv(EnvInterop) == "1" }

// unavailable skips or fails t because a tool is missing.
func unavailable(t testing.TB, tool, envVar, why string) {
	t.Helper()
	msg := fmt.Sprintf("interop: %s not available (%s); set %s or %s", tool, why, envVar, setupHint)
	if Required() {
		t.Fatalf("%s [%s=1, so this is an error, not a skip]", msg, EnvInterop)
	}
	t.Skip(msg)
}

// fromEnv returns the value of envVar if set. A variable that names a missing file is
// a configuration error and fails the test whatever SEALMESH_INTEROP says.
func fromEnv(t testing.TB, envVar string) (string, bool) {
	t.Helper()
	p := os.Getenv(envVar)
	if p == "" {
		return "", false
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("interop: %s=%q: %v", envVar, p, err)
	}
	return p, true
}

// FFmpeg returns the path of the ffmpeg binary.
func FFmpeg(t testing.TB) string {
	t.Helper()
	if p, ok := fromEnv(t, EnvFFmpeg); ok {
		return p
	}
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		unavailable(t, "ffmpeg", EnvFFmpeg, "not on PATH")
	}
	return p
}

// ShakaPackager returns the path of the shaka-packager binary, by default the one
// bundled in the pinned npm package under scripts/node/node_modules.
func ShakaPackager(t testing.TB) string {
	t.Helper()
	if p, ok := fromEnv(t, EnvShakaPackager); ok {
		return p
	}
	if root, err := RepoRoot(); err == nil {
		if name, ok := packagerBinaryName(); ok {
			p := filepath.Join(root, nodeWorkspacePath, "node_modules", "shaka-packager", "bin", name)
			if isExecutable(p) {
				return p
			}
		}
	}
	if p, err := exec.LookPath("packager"); err == nil {
		return p
	}
	unavailable(t, "shaka-packager", EnvShakaPackager, "not in "+nodeWorkspacePath+"/node_modules nor on PATH")
	return ""
}

// packagerBinaryName is the file name that the shaka-packager npm package uses for
// this platform.
func packagerBinaryName() (string, bool) {
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	osName := map[string]string{"linux": "linux", "darwin": "osx", "windows": "win"}[runtime.GOOS]
	if arch == "" || osName == "" {
		return "", false
	}
	name := "packager-" + osName + "-" + arch
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return name, true
}

// Chromium returns the path of the system Chromium.
func Chromium(t testing.TB) string {
	t.Helper()
	if p, ok := fromEnv(t, EnvChromium); ok {
		return p
	}
	if isExecutable(defaultChromium) {
		return defaultChromium
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	unavailable(t, "Chromium", EnvChromium, "no "+defaultChromium+" nor chromium on PATH")
	return ""
}

// NodeDir returns the absolute path of the pinned npm workspace (scripts/node), after
// checking that its node_modules are installed and that node is on PATH.
func NodeDir(t testing.TB) string {
	t.Helper()
	dir, ok := fromEnv(t, EnvNodeDir)
	if !ok {
		root, err := RepoRoot()
		if err != nil {
			unavailable(t, "the npm workspace", EnvNodeDir, err.Error())
		}
		dir = filepath.Join(root, nodeWorkspacePath)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		unavailable(t, "the npm workspace", EnvNodeDir, "no node_modules in "+dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		unavailable(t, "node", EnvNodeDir, "node not on PATH")
	}
	return dir
}

// RepoRoot returns the directory holding go.mod, walking up from the working directory
// (a test runs in its package's directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Testdata returns the absolute path of a file under the repository's testdata/ folder,
// e.g. Testdata(t, "clip", "360p.mp4"), failing the test if it does not exist.
func Testdata(t testing.TB, elem ...string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	p := filepath.Join(append([]string{root, "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("interop: %v (testdata/make-clip.sh regenerates the clips)", err)
	}
	return p
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
