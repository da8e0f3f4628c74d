// Package sealmesh holds what the repository bundles into its binaries: the
// 12-second test clip (testdata/clip, made by testdata/make-clip.sh), so
// that 'sealmesh demo' and 'sealmesh-bench swarm --content 12' run from any
// folder, with no checkout beside them.
//
// The code lives in the packages below this one; docs/ARCHITECTURE.md maps
// them.
package sealmesh

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The clip is about 1 MB (two renditions of 12 s): small enough to carry in
// every binary, and the demo has nothing to play without it.
//
//go:embed testdata/clip/360p.mp4 testdata/clip/180p.mp4
var clipFS embed.FS

// ClipSeconds is the bundled clip's length.
const ClipSeconds = 12

// ClipFiles are the bundled clip's renditions, best first: H.264 High 24 fps
// with an IDR every 2 s, AAC-LC stereo 48 kHz.
var ClipFiles = []string{"360p.mp4", "180p.mp4"}

// Clip returns the bundled clip as a file system holding ClipFiles.
func Clip() fs.FS {
	sub, err := fs.Sub(clipFS, "testdata/clip")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// WriteClip writes the bundled clip's renditions into dir (created if
// missing) and returns their paths, best first. Each file is written to a
// temporary name and renamed, so a reader never sees half of one.
func WriteClip(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write the bundled clip: %w", err)
	}
	var out []string
	for _, name := range ClipFiles {
		b, err := fs.ReadFile(Clip(), name)
		if err != nil {
			return nil, fmt.Errorf("read the bundled clip: %w", err)
		}
		dst := filepath.Join(dir, name)
		tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
		if err != nil {
			return nil, fmt.Errorf("write the bundled clip: %w", err)
		}
		_, werr := tmp.Write(b)
		cerr := tmp.Close()
		if werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Rename(tmp.Name(), dst)
		}
		if werr != nil {
			os.Remove(tmp.Name())
			return nil, fmt.Errorf("write the bundled clip: %w", werr)
		}
		out = append(out, dst)
	}
	return out, nil
}
