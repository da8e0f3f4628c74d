package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogFlags are a long-running command's logging flags.
type LogFlags struct {
	level, format string
	verbose       bool
}

// AddLogFlags registers --log-level, --log-format and --verbose on fs.
// defaultLevel is one of debug, info, warn, error or off.
func AddLogFlags(fs *flag.FlagSet, defaultLevel string) *LogFlags {
	l := &LogFlags{}
	fs.StringVar(&l.level, "log-level", defaultLevel, "log `level` on stderr: debug, info, warn, error or off")
	fs.StringVar(&l.format, "log-format", "text", "log `format`: text (logfmt) or json (one object per line)")
	fs.BoolVar(&l.verbose, "verbose", false, "log everything, debug included (same as --log-level debug)")
	return l
}

// Logger returns a logger writing to w at the chosen level and format, or
// an error naming the flag to fix.
func (l *LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	name := l.level
	if l.verbose {
		name = "debug"
	}
	var level slog.Level
	switch strings.ToLower(name) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	case "off", "none":
		if l.format != "text" && l.format != "json" {
			return nil, fmt.Errorf("--log-format %q: use text or json", l.format)
		}
		return slog.New(slog.DiscardHandler), nil
	default:
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn, error or off", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", l.format)
}

// AccessLogger returns an Info-level logger in the chosen format on w,
// whatever --log-level says: a server's access log is asked for on its own.
func (l *LogFlags) AccessLogger(w io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", l.format)
}
