package scenario

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"txtimeout/faultinject"
)

// What a run does when it is interrupted, times out or finds a mess.
//
// A scenario registers every fault and load it puts in place with active.
// SIGINT or SIGTERM (Ctrl-C, a CI job cancelled) reaches the handler that
// TestMain installs: it stops the loads, restores the faults, removes what
// a load left on the interface (pktgen devices) and exits with status 1,
// so the DUT is as it was found. SIGKILL cannot be caught: the state files
// under /run/txtimeout let `txtimeout cleanup -all` (or the next run with
// -clean-stale) put it back.
//
// `go test -timeout` panics without running cleanups, so a scenario's
// context ends restoreMargin before the test's deadline: the scenario
// removes its fault and fails with the reason before the panic comes.

// cleanStale makes a run that finds state left by an earlier one clean it
// first instead of refusing (env TXTIMEOUT_CLEAN_STALE=1).
var cleanStale = flag.Bool("clean-stale", false, "restore the DUT from state left by an earlier (killed) run before starting, instead of refusing (env TXTIMEOUT_CLEAN_STALE=1)")

// active holds what the scenarios of this process have in place now.
var active = &registry{}

// registry is a set of things to undo.
type registry struct {
	mu      sync.Mutex
	next    int
	entries map[int]activeEntry
}

type activeEntry struct {
	what string
	// iface is cleaned with faultinject.Cleanup after every restore,
	// which removes pktgen devices and any leftover project qdisc.
	iface string
	// stop ends a load (cancels its context); restore puts a fault back.
	// Either may be nil.
	stop    func()
	restore func(context.Context) error
}

// add registers e and returns the function that unregisters it.
func (r *registry) add(e activeEntry) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[int]activeEntry{}
	}
	id := r.next
	r.next++
	r.entries[id] = e
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.entries, id)
	}
}

// len is the number of registered entries.
func (r *registry) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// restoreAll stops every load, then restores every fault (newest first),
// then cleans every interface named. It reports one line per action and
// the errors.
func (r *registry) restoreAll(ctx context.Context, cleanup func(context.Context, string) ([]string, error)) ([]string, error) {
	r.mu.Lock()
	ids := make([]int, 0, len(r.entries))
	for id := range r.entries {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	entries := make([]activeEntry, 0, len(ids))
	for _, id := range ids {
		entries = append(entries, r.entries[id])
	}
	r.mu.Unlock()

	var actions []string
	var errs []error
	var ifaces []string
	for _, e := range entries {
		if e.stop != nil {
			e.stop()
			actions = append(actions, "stopped "+e.what)
		}
		if e.iface != "" && !slices.Contains(ifaces, e.iface) {
			ifaces = append(ifaces, e.iface)
		}
	}
	for _, e := range entries {
		if e.restore == nil {
			continue
		}
		if err := e.restore(ctx); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", e.what, err))
			continue
		}
		actions = append(actions, "restored "+e.what)
	}
	for _, iface := range ifaces {
		acts, err := cleanup(ctx, iface)
		actions = append(actions, acts...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return actions, errors.Join(errs...)
}

// cleanupIface is faultinject.Cleanup in the default state directory.
func cleanupIface(ctx context.Context, iface string) ([]string, error) {
	return faultinject.Cleanup(ctx, iface, faultinject.Options{})
}

// restoreBudget bounds what the signal handler spends restoring: a
// partner stall cannot be ended early and lasts at most MaxStall.
const restoreBudget = faultinject.MaxStall + time.Minute

// installSignalHandler makes SIGINT and SIGTERM restore the DUT and exit
// with status 1. A second signal while restoring says what is going on;
// SIGKILL is the way out that leaves the state files for a cleanup.
func installSignalHandler(stderr io.Writer, exit func(int)) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	handling := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var sig os.Signal
		select {
		case sig = <-ch:
		case <-done:
			return
		}
		close(handling)
		fmt.Fprintf(stderr, "txtimeout: caught %v: restoring the DUT (%d fault(s) and load(s) in place)\n", sig, active.len())
		go func() {
			for s := range ch {
				fmt.Fprintf(stderr, "txtimeout: caught %v while restoring the DUT; a partner stall cannot be cut short. SIGKILL abandons the restore (then run 'txtimeout cleanup -all')\n", s)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), restoreBudget)
		defer cancel()
		actions, err := active.restoreAll(ctx, cleanupIface)
		for _, a := range actions {
			fmt.Fprintf(stderr, "txtimeout: %s\n", a)
		}
		if err != nil {
			fmt.Fprintf(stderr, "txtimeout: restoring after %v failed: %s (run 'txtimeout cleanup -all')\n", sig, oneLine(err))
		} else {
			fmt.Fprintf(stderr, "txtimeout: the DUT is restored; exiting after %v\n", sig)
		}
		exit(1)
	}()
	// stop: once a signal is being handled, the handler ends the process
	// when the DUT is restored; the tests finishing first (their contexts
	// were cancelled) must not exit before that.
	return func() {
		select {
		case <-handling:
			<-finished // never closes when exit is os.Exit
		default:
		}
		signal.Stop(ch)
		close(done)
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// checkStale refuses to run over state an earlier run left behind (a run
// killed with SIGKILL, a machine that lost power), or cleans it first when
// -clean-stale or TXTIMEOUT_CLEAN_STALE=1 asks. It returns what it did.
func checkStale(ctx context.Context, o faultinject.Options, clean bool) ([]string, error) {
	stale, err := faultinject.StaleState(o)
	if err != nil {
		return nil, fmt.Errorf("checking for state left by an earlier run: %w", err)
	}
	if len(stale) == 0 {
		return nil, nil
	}
	if !clean {
		return nil, fmt.Errorf("%w: an earlier run left its fault recorded on %s (state in %s); run 'txtimeout cleanup -all' first, or rerun with -clean-stale (TXTIMEOUT_CLEAN_STALE=1) to restore it before the run",
			faultinject.ErrStaleState, strings.Join(stale, ", "), stateDirOf(o))
	}
	acts, err := faultinject.CleanupAll(ctx, o)
	if err != nil {
		return acts, fmt.Errorf("cleaning state left by an earlier run on %s: %s", strings.Join(stale, ", "), oneLine(err))
	}
	return acts, nil
}

func stateDirOf(o faultinject.Options) string {
	if o.StateDir != "" {
		return o.StateDir
	}
	return faultinject.DefaultStateDir
}

func cleanStaleWanted() bool {
	return *cleanStale || os.Getenv("TXTIMEOUT_CLEAN_STALE") == "1"
}

// staleOnce runs checkStale once per process.
var staleOnce = sync.OnceValues(func() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), restoreBudget)
	defer cancel()
	return checkStale(ctx, faultinject.Options{}, cleanStaleWanted())
})

// restoreMargin is how long before the test's deadline a scenario ends,
// so that it can remove its fault before `go test -timeout` panics: the
// injector's restore (a partner stall cannot be ended early: up to its
// whole length) plus stopping the observers and writing the report.
func restoreMargin(inj faultinject.Injector) time.Duration {
	return inj.RestoreBound() + 10*time.Second
}

// scenarioContext bounds a scenario by d and by the test's deadline less
// margin, whichever comes first.
func scenarioContext(t *testing.T, d, margin time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	if dl, ok := t.Deadline(); ok {
		c2, cancel2 := context.WithDeadline(ctx, dl.Add(-margin))
		return c2, func() { cancel2(); cancel() }
	}
	return ctx, cancel
}
