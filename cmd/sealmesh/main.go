// Command sealmesh packages, licenses and delivers DRM-protected video over a
// ticket-gated peer-to-peer swarm. Run "sealmesh help" for the commands.
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
)

const usage = `sealmesh moves CENC-encrypted video between viewers' machines.

Usage:
  sealmesh <command> [flags]

Commands:
  demo     the whole system in one process: pack, license server, origin and
           a swarm of viewers; prints P2P offload, start-up and stalls
  pack     encrypt MP4 or CMAF input into CMAF + HLS + DASH with a signed manifest
  keys     create the key store, list content keys, export keys for tests
  peer     play content through the swarm (local HLS URL), or seed it
  license  run the license server (licenses, Clear Key, tickets, tracker); revoke
  token    issue development entitlement tokens
  version  print the module version and VCS revision this binary was built from

Run "sealmesh <command> --help" for a command's flags. Flags and positional
arguments (such as a content ID) may come in any order.

The swarm benchmark is a command of its own, so that this binary links no
plotting code: go run ./cmd/sealmesh-bench swarm --help

Environment:
  SEALMESH_KEYSTORE             key store path when --keystore is not given
  SEALMESH_KEYSTORE_PASSPHRASE  key store passphrase for non-interactive use
  SEALMESH_KEYSTORE_KEY         or: a random 32-byte master key (hex/base64) from a secrets manager
`

// usageErr reports a mistake in how the command was called (exit 2, cli.ExitError).
func usageErr(format string, a ...any) error { return cli.UsageError(format, a...) }

func main() { cli.Main("sealmesh", run) }

// helpOut is where --help output goes: run's stdout (help is the output the
// user asked for, so it can be piped to a pager; mistakes go to stderr).
var helpOut io.Writer = os.Stdout

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	helpOut = stdout
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "version", "--version":
		return runVersion(rest, stdout, stderr)
	case "pack":
		return runPack(ctx, rest, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, stdout, stderr)
	case "peer":
		return runPeer(ctx, rest, stdout, stderr)
	case "license":
		return runLicense(ctx, rest, stdout, stderr)
	case "token":
		return runToken(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageErr("unknown command %q: see 'sealmesh help' for the commands", cmd)
	}
}

// newFlagSet makes a flag set whose --help prints the command's manual on
// stdout. Its own messages are silenced: parseFlags turns a mistake into one
// sentence that names the flag and points at --help.
func newFlagSet(name, synopsis string, _ io.Writer) *flag.FlagSet {
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

// parseFlags parses args, flags and positional arguments in any order, and
// refuses stray positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	_, err := parseArgs(fs, args, 0)
	return err
}

// parseArgs parses args, flags and positional arguments in any order, and
// returns the positional arguments: at most maxPos of them.
func parseArgs(fs *flag.FlagSet, args []string, maxPos int) ([]string, error) {
	defer manuals.Delete(fs) // parsed once: the manual is needed no more
	if err := fs.Parse(cli.Reorder(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printManual(fs)
			return nil, err
		}
		return nil, usageErr("%s: %v (see 'sealmesh %s --help')", fs.Name(), err, fs.Name())
	}
	if fs.NArg() > maxPos {
		return nil, usageErr("%s: unexpected argument %q (see 'sealmesh %s --help')", fs.Name(), fs.Arg(maxPos), fs.Name())
	}
	return fs.Args(), nil
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "Usage: sealmesh version [--json]\n\nPrints the module version and the VCS revision this binary was built from.", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b := cli.Build()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(b)
	}
	fmt.Fprintln(stdout, b)
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
