//go:build linux

package faultinject

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	tc "github.com/florianl/go-tc"
	"github.com/florianl/go-tc/core"
	"golang.org/x/sys/unix"
)

// usePfifoSeam makes Netem install a pfifo qdisc (with the project's
// handle) instead of netem, which this host's kernel lacks, so that the
// save, state, crash and restore paths run against a real kernel.
func usePfifoSeam(tb testing.TB) {
	tb.Helper()
	old := netemKind
	netemKind = "pfifo"
	tb.Cleanup(func() { netemKind = old })
}

// seamVeth sets up the pfifo seam and a test veth pair, and returns the
// pair and its options.
func seamVeth(tb testing.TB) (*vethPair, Options) {
	tb.Helper()
	usePfifoSeam(tb)
	v := testVeth(tb)
	return v, v.opts(tb)
}

// injectNetem makes a Netem for iface and injects it, failing the test if
// either fails; it is restored at cleanup at the latest.
func injectNetem(tb testing.TB, iface string, o Options) *Netem {
	tb.Helper()
	n, err := NewNetem(iface, NetemConfig{}, o)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := n.Inject(ctx); err != nil {
		tb.Fatalf("Inject: %v", err)
	}
	tb.Cleanup(func() { n.Restore(ctx) })
	return n
}

// addTBF makes "tbf rate 1mbit burst 20k limit 20k" the root qdisc 1: of
// ifindex, standing in for a DUT's explicitly configured root qdisc.
func addTBF(tb testing.TB, v *vethPair, ifindex int) {
	tb.Helper()
	burst := uint32(20480)
	err := v.tc(tb).Qdisc().Add(&tc.Object{
		Msg: tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(ifindex), Handle: core.BuildHandle(1, 0), Parent: tc.HandleRoot},
		Attribute: tc.Attribute{Kind: "tbf", Tbf: &tc.Tbf{
			Parms: &tc.TbfQopt{Mtu: 1514, Limit: 20480, Rate: tc.RateSpec{Rate: 125000, Linklayer: 1, CellLog: 3}},
			Burst: &burst,
		}},
	})
	if err != nil {
		tb.Fatalf("adding tbf: %v", err)
	}
}

func sameQdisc(tb testing.TB, what string, got, want qdiscInfo) {
	tb.Helper()
	if got.Kind != want.Kind || got.Handle != want.Handle || !bytes.Equal(got.Options, want.Options) {
		tb.Errorf("%s: root qdisc is %s %s options %x, want %s %s options %x",
			what, got.Kind, fmtHandle(got.Handle), got.Options, want.Kind, fmtHandle(want.Handle), want.Options)
	}
}

func TestIntegrationRestoreExplicitRoot(t *testing.T) {
	v, o := seamVeth(t)
	addTBF(t, v, v.AIdx)
	before := v.root(t, v.AIdx)
	if before.Kind != "tbf" {
		t.Fatalf("setup: root is %s", before.Kind)
	}
	n := injectNetem(t, v.A, o)
	ctx := context.Background()
	during := v.root(t, v.AIdx)
	if during.Kind != "pfifo" || during.Handle != ProjectQdiscHandle {
		t.Fatalf("during injection root is %s %s, want pfifo 7478:", during.Kind, fmtHandle(during.Handle))
	}
	sb, err := os.ReadFile(statePath(o, v.A))
	if err != nil {
		t.Fatalf("no state file during injection: %v", err)
	}
	t.Logf("state file:\n%s", sb)
	st, err := n.Stats(ctx)
	if err != nil || st.Kind != "pfifo" || st.Handle != ProjectQdiscHandle {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	t.Log(n.Describe())
	if err := n.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Log(n.Describe())
	sameQdisc(t, "after Restore", v.root(t, v.AIdx), before)
	if _, err := os.Stat(statePath(o, v.A)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file still there after Restore: %v", err)
	}
	if err := n.Restore(ctx); err != nil {
		t.Errorf("second Restore: %v", err)
	}
	sameQdisc(t, "after second Restore", v.root(t, v.AIdx), before)
}

func TestIntegrationRestoreDefaultRoot(t *testing.T) {
	v, o := seamVeth(t)
	before := v.root(t, v.AIdx)
	if before.Handle != 0 {
		t.Fatalf("setup: veth root %s %s is not a default qdisc", before.Kind, fmtHandle(before.Handle))
	}
	n := injectNetem(t, v.A, o)
	ctx := context.Background()
	if err := n.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameQdisc(t, "after Restore", v.root(t, v.AIdx), before)
}

// A classful root qdisc (htb) cannot be re-created with its classes and
// filters, so Inject must refuse before changing anything.
func TestIntegrationRefuseNotRestorable(t *testing.T) {
	v, o := seamVeth(t)
	err := v.tc(t).Qdisc().Add(&tc.Object{
		Msg:       tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(v.AIdx), Handle: core.BuildHandle(1, 0), Parent: tc.HandleRoot},
		Attribute: tc.Attribute{Kind: "htb", Htb: &tc.Htb{Init: &tc.HtbGlob{Version: 3, Rate2Quantum: 10}}},
	})
	if err != nil {
		t.Fatalf("adding htb: %v", err)
	}
	before := v.root(t, v.AIdx)
	n, err := NewNetem(v.A, NetemConfig{}, o)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Inject(context.Background())
	t.Logf("Inject: %v", err)
	if !errors.Is(err, ErrNotRestorable) {
		t.Fatalf("Inject = %v, want ErrNotRestorable", err)
	}
	sameQdisc(t, "after refusal", v.root(t, v.AIdx), before)
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state file written for a refused injection: %v", stale)
	}
}

// leftoverVeth returns a test veth pair whose A side has a project qdisc
// left over without a state file, the pair's options, and A's root qdisc
// from before the leftover.
func leftoverVeth(tb testing.TB) (*vethPair, Options, qdiscInfo) {
	tb.Helper()
	v := testVeth(tb)
	o := v.opts(tb)
	before := v.root(tb, v.AIdx)
	if err := v.tc(tb).Qdisc().Add(seamObject(v.AIdx, "pfifo")); err != nil {
		tb.Fatal(err)
	}
	return v, o, before
}

// A leftover project qdisc without a state file is recognised by its
// handle: Inject refuses, Cleanup removes it.
func TestIntegrationLeftoverQdisc(t *testing.T) {
	v, o, before := leftoverVeth(t)
	usePfifoSeam(t)
	n, _ := NewNetem(v.A, NetemConfig{}, o)
	err := n.Inject(context.Background())
	if !errors.Is(err, ErrStaleState) {
		t.Fatalf("Inject over a leftover qdisc = %v, want ErrStaleState", err)
	}
	acts, err := Cleanup(context.Background(), v.A, o)
	t.Logf("Cleanup: %q", acts)
	if err != nil {
		t.Fatal(err)
	}
	sameQdisc(t, "after Cleanup", v.root(t, v.AIdx), before)
	acts, err = Cleanup(context.Background(), v.A, o)
	if err != nil || len(acts) != 1 {
		t.Errorf("second Cleanup = %q, %v; want one 'clean' line", acts, err)
	}
}

// CleanupAll finds state files and leftover qdiscs alike, and refuses to
// undo an injection whose process is still running.
func TestIntegrationCleanupAll(t *testing.T) {
	v, o, before := leftoverVeth(t)
	if err := writeState(o, &state{Injector: "stall", Iface: v.B, Ifindex: v.BIdx, PID: 1 << 30, StallUntil: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	acts, err := CleanupAll(context.Background(), o)
	t.Logf("CleanupAll: %q", acts)
	if err != nil {
		t.Fatal(err)
	}
	sameQdisc(t, "after CleanupAll", v.root(t, v.AIdx), before)
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state left: %v", stale)
	}

	// Our parent process is alive: its injection must not be undone.
	if err := writeState(o, &state{Injector: "stall", Iface: v.B, Ifindex: v.BIdx, PID: os.Getppid()}); err != nil {
		t.Fatal(err)
	}
	_, err = Cleanup(context.Background(), v.B, o)
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Cleanup of a live injection = %v, want a 'still running' refusal", err)
	}
	if stale, _ := StaleState(o); len(stale) != 1 {
		t.Errorf("state of a live injection removed: %v", stale)
	}
}
