//go:build linux

package faultinject

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// This host's kernel has no sch_netem: the kernel answers RTM_NEWQDISC
// with ENOENT, which must reach the caller as ErrNetemUnavailable, and
// nothing may be left behind.
func TestIntegrationNetemUnavailable(t *testing.T) {
	v := testVeth(t)
	o := v.opts(t)
	before := v.root(t, v.AIdx)
	n, err := NewNetem(v.A, NetemConfig{}, o)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Inject(context.Background())
	if err == nil {
		n.Restore(context.Background())
		t.Skip("skipping: this kernel has netem; the unavailable path cannot be tested here")
	}
	t.Logf("Inject: %v", err)
	if !errors.Is(err, ErrNetemUnavailable) {
		t.Fatalf("Inject error = %v, want ErrNetemUnavailable", err)
	}
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state left behind for %v", stale)
	}
	if after := v.root(t, v.AIdx); after.Kind != before.Kind || after.Handle != before.Handle {
		t.Errorf("root qdisc changed from %s %x to %s %x", before.Kind, before.Handle, after.Kind, after.Handle)
	}
	if err := n.Restore(context.Background()); err != nil {
		t.Errorf("Restore after failed Inject: %v", err)
	}
}

// TestIntegrationNetemErrno pins the kernel's answer that mapNetemErr
// relies on: without sch_netem, qdisc_create returns -ENOENT ("Specified
// qdisc kind is unknown") after request_module fails.
func TestIntegrationNetemErrno(t *testing.T) {
	v := testVeth(t)
	err := v.tc(t).Qdisc().Replace(netemObject(v.AIdx, NetemConfig{}.withDefaults()))
	if err == nil {
		v.tc(t).Qdisc().Delete(netemObject(v.AIdx, NetemConfig{}.withDefaults()))
		t.Skip("skipping: this kernel has netem")
	}
	t.Logf("kernel answer: %v", err)
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Replace netem = %v, want ENOENT", err)
	}
}
