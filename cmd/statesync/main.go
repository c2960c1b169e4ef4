// Command statesync is the statesync daemon and its command-line client.
//
// Usage:
//
//	statesync <command> [arguments]
//
// Run `statesync help` for the list of commands.
package main

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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling: a second
	// signal ends the process at once.
	context.AfterFunc(ctx, stop)

	m := NewMain()
	err := m.Run(ctx, os.Args[1:])
	stop()
	os.Exit(m.exitCode(err))
}

// Main is the statesync program: its standard streams and environment,
// and the dispatcher of its subcommands. It has no other state; tests make
// their own with other streams.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv looks up an environment variable (os.Getenv).
	Getenv func(string) string
}

// NewMain returns a Main on the process's standard streams and environment.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// usage is the text of `statesync help`.
const usage = `statesync keeps state consistent across processes with the invalidation-pull protocol.

Usage:

	statesync <command> [arguments]

Commands:

	serve       run the daemon: HTTP API, dashboard, /healthz, /metrics
	get         print a topic's snapshot
	put         set a topic's data (--if-revision for compare-and-set)
	patch       apply a JSON merge patch to a topic's data
	delete      set a topic's data to null at a new revision
	topics      list the topics
	watch       follow topics (or every topic under --prefix) and print every applied snapshot
	bench       run the benchmark scenarios, one JSON line each
	version     print the version (also statesync --version)
	completion  print a bash or zsh completion script
	help        print this help

Client commands talk to --server (STATESYNC_SERVER, default http://127.0.0.1:8765;
host:port means http:// on a loopback host, https:// elsewhere) with the token
in STATESYNC_TOKEN. get and topics print a table on a terminal, JSON lines
otherwise; -o json|table|name chooses.

Run 'statesync <command> -h' for the flags of a command.
`

// errUsage is returned for a command line that cannot be run; its
// explanation has already been printed to Stderr.
var errUsage = errors.New("usage error")

// Run runs the command named by args[0] with the rest of args.
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve":
		return m.runServe(ctx, args)
	case "get":
		return m.runGet(ctx, args)
	case "put", "patch", "delete":
		return m.runWrite(ctx, cmd, args)
	case "topics":
		return m.runTopics(ctx, args)
	case "watch":
		return m.runWatch(ctx, args)
	case "bench":
		return m.runBench(ctx, args)
	case "version", "--version", "-version":
		return m.runVersion(ctx, args)
	case "completion":
		return m.runCompletion(ctx, args)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	default:
		fmt.Fprintf(m.Stderr, "statesync: unknown command %q\nRun 'statesync help' for usage.\n", cmd)
		return errUsage
	}
}

// exitCode reports err (if not yet reported) and returns the process's
// exit status: 0 for success (and for -h), 2 for a usage error, 1 otherwise.
func (m *Main) exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "statesync: ") { // errors of the root package carry it already
		msg = "statesync: " + msg
	}
	fmt.Fprintln(m.Stderr, msg)
	return 1
}

// newFlagSet returns a flag set for a subcommand that reports its errors
// on m.Stderr instead of exiting.
func (m *Main) newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("statesync "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "Usage: statesync %s %s\n", name, synopsis)
		if hasFlags(fs) {
			fmt.Fprintln(m.Stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args with fs, allowing flags after positional
// arguments ("bench fanout -runs 3"), and returns the positional ones. A
// parse error has been printed; it is returned as errUsage (or
// flag.ErrHelp for -h).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
