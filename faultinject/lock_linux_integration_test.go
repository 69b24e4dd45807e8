//go:build linux

package faultinject

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"txtimeout/internal/testnet"
)

// wantBusy checks that err is ErrBusy, not stale state, naming pid as the
// owner ("in use by pid N (COMMAND)").
func wantBusy(tb testing.TB, what string, err error, pid int) {
	tb.Helper()
	if !errors.Is(err, ErrBusy) || errors.Is(err, ErrStaleState) {
		tb.Fatalf("%s: %v, want ErrBusy", what, err)
	}
	if want := fmt.Sprintf("in use by pid %d (", pid); !strings.Contains(err.Error(), want) {
		tb.Fatalf("%s: %q does not name the owner (%q...)", what, err, want)
	}
}

// A second injector on an interface that an injector holds is refused,
// whatever its kind, and naming this process; after Restore the
// interface is free again and no lock file is left.
func TestIntegrationLockSecondInjector(t *testing.T) {
	v, o := seamVeth(t)
	ctx := context.Background()
	first := injectNetem(t, v.A, o)

	second, err := NewNetem(v.A, NetemConfig{}, o)
	check.NoError(t, err)
	wantBusy(t, "second netem", second.Inject(ctx), os.Getpid())
	stall, err := NewStall(v.A, StallConfig{For: time.Second, AckTimeout: 100 * time.Millisecond}, o)
	check.NoError(t, err)
	wantBusy(t, "stall over netem", stall.Inject(ctx), os.Getpid())
	_, err = Lock(v.A, o)
	wantBusy(t, "Lock", err, os.Getpid())
	// The refused ones restore nothing and leave the first's fault alone.
	check.NoError(t, second.Restore(ctx))
	check.NoError(t, stall.Restore(ctx))
	if r := v.root(t, v.AIdx); r.Handle != ProjectQdiscHandle {
		t.Fatalf("after the refusals the root qdisc is %s %s, want the first injector's", r.Kind, fmtHandle(r.Handle))
	}

	check.NoError(t, first.Restore(ctx))
	release, err := Lock(v.A, o)
	check.NoError(t, err)
	release()
	release() // idempotent
	if _, err := os.Stat(lockPath(o, v.A)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after release: %v, want none", err)
	}

	// The case: a PAUSE flood holds its partner port; a second
	// one is refused as busy, not as stale state.
	p1, err := NewPauseFlood(v.B, PauseConfig{For: 4 * time.Second}, o)
	check.NoError(t, err)
	check.NoError(t, p1.Inject(ctx))
	t.Cleanup(func() { p1.Restore(ctx) })
	p2, err := NewPauseFlood(v.B, PauseConfig{For: 4 * time.Second}, o)
	check.NoError(t, err)
	wantBusy(t, "second pause flood", p2.Inject(ctx), os.Getpid())
	check.NoError(t, p1.Restore(ctx))
	p3, err := NewPauseFlood(v.B, PauseConfig{For: time.Second}, o)
	check.NoError(t, err)
	check.NoError(t, p3.Inject(ctx))
	check.NoError(t, p3.Restore(ctx))
}

// The lock of a process killed with SIGKILL is gone with it: while the
// helper (this test binary, injecting netem) lives, Lock, a second
// injector and Cleanup are refused naming its pid; once it is killed the
// lock is free, its state is stale (a new injection refuses and suggests
// cleanup), and Cleanup restores and removes the lock file it left.
func TestIntegrationLockReleasedOnKill(t *testing.T) {
	v, o := seamVeth(t)
	exe, err := os.Executable()
	check.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	helper := exec.CommandContext(ctx, exe)
	helper.Env = append(os.Environ(), "TXTO_FI_HELPER=netem", "TXTO_FI_NETNS="+v.NS, "TXTO_FI_STATE="+o.StateDir, "TXTO_FI_IFACE="+v.A)
	out, err := helper.StdoutPipe()
	check.NoError(t, err)
	check.NoError(t, helper.Start())
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "injected" {
		t.Fatalf("helper: %q", line)
	}
	pid := helper.Process.Pid

	_, err = Lock(v.A, o)
	wantBusy(t, "Lock while the helper runs", err, pid)
	if !strings.Contains(err.Error(), exe) {
		t.Errorf("%q does not name the owner's command %s", err, exe)
	}
	n, err := NewNetem(v.A, NetemConfig{}, o)
	check.NoError(t, err)
	wantBusy(t, "netem while the helper runs", n.Inject(context.Background()), pid)
	_, err = Cleanup(context.Background(), v.A, o)
	wantBusy(t, "Cleanup while the helper runs", err, pid)

	check.NoError(t, helper.Process.Kill()) // SIGKILL: no cleanup of its own
	helper.Wait()
	release, err := Lock(v.A, o)
	check.NoError(t, err)
	release()
	err = n.Inject(context.Background())
	check.ErrorIs(t, err, ErrStaleState)
	check.ErrorContains(t, err, "txtimeout cleanup -iface "+v.A)
	acts, err := Cleanup(context.Background(), v.A, o)
	check.NoError(t, err)
	t.Logf("cleanup: %q", acts)
	if r := v.root(t, v.AIdx); IsProjectHandle(r.Handle) {
		t.Errorf("after cleanup the root qdisc is still the project's %s", fmtHandle(r.Handle))
	}
	check.NoError(t, n.Inject(context.Background()))
	check.NoError(t, n.Restore(context.Background()))
	ents, _ := os.ReadDir(o.StateDir)
	check.Equal(t, 0, len(ents), "files left in the state directory")
}

// Cleanup of a name that is no interface: with no state, an error that
// says so; with state left for it (a stall whose owner died), the actions
// say that the interface is gone, and the state goes.
func TestIntegrationCleanupMissingInterface(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	gone := "txto-g" + testnet.UniqueName(t, "")
	_, err := Cleanup(context.Background(), gone, o)
	check.ErrorIs(t, err, os.ErrNotExist)
	check.ErrorContains(t, err, gone+": no such interface and no state recorded for it")

	check.NoError(t, writeState(o, &state{Injector: "stall", Iface: gone, Ifindex: 99, NetNS: v.NS, PID: 1 << 30,
		Created: time.Now().Add(-time.Minute).UTC(), StallUntil: time.Now().Add(-time.Second).UTC()}))
	acts, err := Cleanup(context.Background(), gone, o)
	check.NoError(t, err)
	if len(acts) == 0 || !strings.Contains(acts[0], gone+": no such interface any more") {
		t.Errorf("cleanup of state for a gone interface: %q, want it to say the interface is gone", acts)
	}
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state left: %v", stale)
	}
}
