// Command sealmesh-bench runs sealmesh's swarm benchmark: a swarm of
// viewers against a real license server and origin on 127.0.0.1, with
// tables, CSV and PNG plots. It is a command of its own so that the plotting
// stack (gonum/plot and its fonts) stays out of cmd/sealmesh, the binary
// that plays and seeds. From the repository:
//
//	go run ./cmd/sealmesh-bench swarm --help
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sealmesh/sealmesh/internal/cli"
	"github.com/sealmesh/sealmesh/internal/swarmbench"
)

const usage = `sealmesh-bench measures a sealmesh swarm: offload against N, start-up,
stalls, per-viewer RSS, and adversaries (poisoning peers, leeches).

Usage:
  sealmesh-bench swarm [flags]     run the swarm benchmark (see swarm --help)
  sealmesh-bench version           print the module version and VCS revision

From the repository: go run ./cmd/sealmesh-bench swarm --peers 8
`

// exitError and usageErr are the shared CLI error types (internal/cli).
type exitError = cli.ExitError

// usageErr reports a mistake in how the command was called (exit 2).
func usageErr(format string, a ...any) error { return cli.UsageError(format, a...) }

func main() { cli.Main("sealmesh-bench", run) }

// helpOut is where --help output goes: run's stdout.
var helpOut io.Writer = os.Stdout

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	helpOut = stdout
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("name a benchmark: swarm")
	}
	// "bench swarm" (the old spelling, under 'sealmesh bench') still works.
	if args[0] == "bench" {
		args = args[1:]
		if len(args) == 0 {
			fmt.Fprint(stderr, usage)
			return usageErr("name a benchmark: swarm")
		}
	}
	switch args[0] {
	case "swarm":
		return runBenchSwarm(ctx, args[1:], stdout, stderr)
	case "viewer":
		// Hidden: one viewer of --mode processes, driven over stdin/stdout.
		return swarmbench.RunChild(ctx, os.Stdin, stdout)
	case "version", "--version":
		b := cli.Build()
		if len(args) > 1 && args[1] == "--json" {
			return json.NewEncoder(stdout).Encode(b)
		}
		fmt.Fprintln(stdout, b)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageErr("unknown benchmark %q (want swarm)", args[0])
	}
}

// newFlagSet makes a flag set whose --help prints the manual on stdout and
// whose mistakes come back as one sentence from parseFlags.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on a mistake too: print the manual only
	// when it was asked for (see printManual).
	fs.Usage = func() {}
	manuals.Store(fs, func() {
		fmt.Fprintf(helpOut, "%s\n\nFlags:\n", synopsis)
		fs.SetOutput(helpOut)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	})
	return fs
}

// parseFlags parses flags and positional arguments in any order and
// refuses positional ones.
func parseFlags(fs *flag.FlagSet, args []string) error {
	defer manuals.Delete(fs) // parsed once: the manual is needed no more
	if err := fs.Parse(cli.Reorder(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printManual(fs)
			return err
		}
		return usageErr("%s: %v (see 'sealmesh-bench %s --help')", fs.Name(), err, fs.Name())
	}
	if fs.NArg() > 0 {
		return usageErr("%s: unexpected argument %q (see 'sealmesh-bench %s --help')", fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}

// manuals holds each flag set's manual printer (newFlagSet).
var manuals sync.Map // *flag.FlagSet → func()

func printManual(fs *flag.FlagSet) {
	if p, ok := manuals.Load(fs); ok {
		p.(func())()
	}
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint([]string(*m)) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
