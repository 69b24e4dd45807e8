package rig

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"txtimeout/internal/tracefs"
)

// traceToggleCycles is how many times TestGuestTraceToggle enables and
// disables the event. With task-name recording on, 9 of 9 such runs hung
// before cycle 150 (kernel-facts §12).
const traceToggleCycles = 300

// TestGuestTraceToggle runs inside the guest only, for
// TestIntegrationTraceToggle: it enables and disables
// net:net_dev_xmit_timeout traceToggleCycles times in a tracefs instance
// made as the harness makes its own (package tracefs), while UDP datagrams
// keep the scheduler and the NIC busy. Were the instance's record-cmd on,
// each toggle would int3-patch __schedule, and the guest would lock up
// under multi-threaded TCG; the host then names ErrGuestHung.
func TestGuestTraceToggle(t *testing.T) {
	if !InGuest() {
		t.Skip("runs only inside the virtual rig's guest (TestIntegrationTraceToggle boots it)")
	}
	const root = "/sys/kernel/tracing"
	in, err := tracefs.NewInstance(root, "txtimeout-toggle-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := in.Remove(); err != nil {
			t.Error(err)
		}
	}()
	// The instance's option is its own: the top level keeps its default.
	if b, err := os.ReadFile(root + "/options/record-cmd"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Errorf("top-level options/record-cmd %q (%v), want the default 1 left alone", b, err)
	}
	enable, err := os.OpenFile(filepath.Join(in.Path(), "events/net/net_dev_xmit_timeout/enable"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer enable.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var attempts, sent atomic.Uint64
	stopUDP := offerUDP(t, ctx, &attempts, &sent)
	defer stopUDP()

	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for i := 0; i < traceToggleCycles; i++ {
		for _, v := range []string{"1", "0"} {
			if _, err := enable.WriteAt([]byte(v), 0); err != nil {
				t.Fatalf("cycle %d: writing %s to enable: %v", i, v, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d enable/disable cycles in %v", i+1, traceToggleCycles, time.Since(start).Round(time.Second))
		}
	}
	stopUDP()
	t.Logf("%d enable/disable cycles in %v under UDP traffic (%d datagrams sent)",
		traceToggleCycles, time.Since(start).Round(10*time.Millisecond), sent.Load())
}
