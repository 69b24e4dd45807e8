// Command txtimeout drives the tx-timeout suite by hand: it scans kernel logs,
// injects and removes faults, floods, runs pktgen, boots the virtual rig,
// plays the link partner on a hardware rig and cleans up after a crashed run.
//
// Every subcommand lives in its own file and registers itself in init.
// Errors print one line on stderr that begins "txtimeout:"; runtime errors
// exit 1 and usage errors exit 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of txtimeout.
type command struct {
	name    string
	summary string
	// run executes the subcommand with its arguments (without the name).
	// It returns a usageError for bad usage; any other error is a runtime
	// failure.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("txtimeout: duplicate command " + c.name)
	}
	commands[c.name] = c
}

// usageError marks bad usage: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// newFlagSet returns a FlagSet that reports errors through the returned
// error instead of exiting, and prints its help on stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("txtimeout "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args into fs and turns any failure into a usageError.
// The flag package would print its error and the whole usage before run's
// one "txtimeout:" line, so it parses with its output discarded; only -h
// or -help (flag.ErrHelp, passed through so that it exits 0) prints the
// usage: the command's own fs.Usage, or the flag defaults on fs's output.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package also calls Usage itself on every error; a command's
	// own Usage may write to its stderr directly, so it is silenced too.
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if fs.Usage != nil { // flag.NewFlagSet sets a default one
				fs.Usage()
			} else {
				fs.PrintDefaults()
			}
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// parseInterspersed parses args into fs with flags allowed between the
// positional arguments ("report DIR -o x.svg"), and returns those.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: txtimeout COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'txtimeout COMMAND -h' for a command's flags.")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, so that tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "txtimeout: unknown command %q (run 'txtimeout help')\n", args[0])
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, args[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "txtimeout: %s: %s\n", c.name, oneLine(err))
		return 2
	default:
		fmt.Fprintf(stderr, "txtimeout: %s: %s\n", c.name, oneLine(err))
		return 1
	}
}

// oneLine is err's message on one line: errors.Join and some kernel
// messages carry newlines, and an error is one line on stderr.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
