// Command sealmesh packages, licenses and delivers DRM-protected video over a
// ticket-gated peer-to-peer swarm. Run "sealmesh help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `sealmesh moves CENC-encrypted video between viewers' machines.

Usage:
  sealmesh <command> [flags]

Commands:
  demo     the whole system in one process: pack, license server, origin and
           a swarm of viewers; prints P2P offload, start-up and stalls
  bench    swarm benchmark: offload vs N, start-up, stalls, RSS, adversaries
  pack     encrypt MP4 or CMAF input into CMAF + HLS + DASH with a signed manifest
  keys     create the key store, list content keys, export keys for tests
  peer     play content through the swarm (local HLS URL), or seed it
  license  run the license server (licenses, Clear Key, tickets, tracker); revoke
  token    issue development entitlement tokens

Run "sealmesh <command> --help" for a command's flags.

Environment:
  SEALMESH_KEYSTORE             key store path when --keystore is not given
  SEALMESH_KEYSTORE_PASSPHRASE  key store passphrase for non-interactive use
  SEALMESH_KEYSTORE_KEY         or: a random 32-byte master key (hex/base64) from a secrets manager
`

// exitError carries an exit code and a message meant for the user.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageErr reports a mistake in how the command was called (exit 2).
func usageErr(format string, a ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, a...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "sealmesh:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
		fmt.Fprint(stderr, usage)
		return usageErr("unknown command %q", cmd)
	}
}

// newFlagSet makes a flag set whose --help prints the command's manual.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and refuses stray positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q (flags go before it; see --help)", fs.Arg(0))
	}
	return nil
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint([]string(*m)) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
