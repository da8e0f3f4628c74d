package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// BuildInfo is what a binary knows about its own build.
type BuildInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"`            // module version, "(devel)" for a build from a checkout
	Revision string `json:"revision,omitempty"` // VCS revision, when built from a checkout with VCS stamping
	Time     string `json:"time,omitempty"`     // the revision's commit time
	Modified bool   `json:"modified"`           // the checkout had uncommitted changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// Build returns the running binary's build information
// (runtime/debug.ReadBuildInfo).
func Build() BuildInfo {
	b := BuildInfo{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Module, b.Version = bi.Main.Path, bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one-line form 'sealmesh version' prints.
func (b BuildInfo) String() string {
	s := fmt.Sprintf("%s %s", b.Module, b.Version)
	if b.Revision != "" {
		s += " (revision " + b.Revision
		if b.Modified {
			s += ", modified"
		}
		if b.Time != "" {
			s += ", " + b.Time
		}
		s += ")"
	}
	return s + fmt.Sprintf(", %s %s", b.Go, b.Platform)
}
