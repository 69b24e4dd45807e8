package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"txtimeout/faultinject"
)

func init() {
	register(command{
		name:    "cleanup",
		summary: "restore interfaces after a crashed or killed run (-iface IFACE | -all)",
		run:     runCleanup,
	})
}

func runCleanup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cleanup", stderr)
	iface := fs.String("iface", "", "interface to restore")
	all := fs.Bool("all", false, "restore every interface with state or a leftover project qdisc")
	netns := fs.String("netns", "", "network namespace (path) to act in; a state file's own namespace is used when unset")
	stateDir := fs.String("state-dir", faultinject.DefaultStateDir, "directory of the crash-recovery state files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if (*iface == "") == !*all {
		return usagef("give exactly one of -iface IFACE or -all")
	}
	o := faultinject.Options{NetNS: *netns, StateDir: *stateDir}
	var (
		acts []string
		err  error
	)
	if *all {
		acts, err = faultinject.CleanupAll(ctx, o)
	} else {
		acts, err = faultinject.Cleanup(ctx, *iface, o)
	}
	for _, a := range acts {
		fmt.Fprintln(stdout, a)
	}
	return err
}

// lockIface takes iface's ownership lock (faultinject.Lock) for a command
// that drives the interface without an injector (pktgen, flood). A state
// directory this user may not write (an unprivileged flood) leaves the
// run unlocked, with a note: the lock guards against other runs of this
// tool, which need root.
func lockIface(iface string, o faultinject.Options, stderr io.Writer) (release func(), err error) {
	release, err = faultinject.Lock(iface, o)
	if errors.Is(err, fs.ErrPermission) {
		fmt.Fprintf(stderr, "txtimeout: note: %s not locked for this run: %v\n", iface, err)
		return func() {}, nil
	}
	return release, err
}
