package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// ExitError carries an exit code and a message meant for the user.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// UsageError reports a mistake in how a command was called (exit 2).
func UsageError(format string, a ...any) error {
	return &ExitError{Code: 2, Msg: fmt.Sprintf(format, a...)}
}

// OneLine is err's message on one line: joined errors are separated by
// "; " so that the message reads as one sentence in a terminal or a log.
func OneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// Main runs a command's run function under a context cancelled by SIGINT or
// SIGTERM and exits: 0 on success or --help, the ExitError's code, or 1,
// after printing "name: message" on one line to stderr.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(ExitCode(name, err, os.Stderr))
}

// ExitCode prints err for the user (nothing for nil or flag.ErrHelp) and
// returns the process exit code Main uses.
func ExitCode(name string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, name+":", OneLine(err))
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}
