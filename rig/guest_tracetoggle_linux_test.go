package rig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"txtimeout/rig/guest"
)

// traceToggleCycles is how many times TestGuestTraceToggle enables and
// disables the event. With tracefs's record-cmd on, 9 of 9 such runs hung
// before cycle 150 (kernel-facts §12).
const traceToggleCycles = 300

// TestGuestTraceToggle runs inside the guest only, for
// TestIntegrationTraceToggle: it enables and disables
// net:net_dev_xmit_timeout traceToggleCycles times in a tracefs instance of
// its own, as the harness's observers do at every scenario's start and end,
// while UDP datagrams keep the scheduler and the NIC busy. The guest init
// turned record-cmd off; were it on, each toggle would int3-patch
// __schedule and the guest would lock up under multi-threaded TCG, which
// the host names ErrGuestHung.
func TestGuestTraceToggle(t *testing.T) {
	if !guest.Inside() {
		t.Skip("runs only inside the virtual rig's guest (TestIntegrationTraceToggle boots it)")
	}
	const root = "/sys/kernel/tracing"
	b, err := os.ReadFile(root + "/options/record-cmd")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "0" {
		// Go on toggling: the hang, if it comes, is the real evidence.
		t.Errorf("top-level options/record-cmd %s, want 0 (the guest init turns it off)", got)
	}
	inst := filepath.Join(root, "instances", fmt.Sprintf("txtimeout-toggle-%d", os.Getpid()))
	if err := os.Mkdir(inst, 0o700); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := os.Remove(inst); err != nil {
			t.Error(err)
		}
	}()
	// The instance has no record-cmd of its own (a top-level-only flag):
	// the top level's, as the init left it, is what counts.
	if _, err := os.Stat(inst + "/options/record-cmd"); err == nil {
		t.Logf("this kernel gives instances their own options/record-cmd")
	}
	enable, err := os.OpenFile(inst+"/events/net/net_dev_xmit_timeout/enable", os.O_WRONLY, 0)
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
		if (i+1)%50 == 0 {
			t.Logf("cycle %d after %v", i+1, time.Since(start).Round(10*time.Millisecond))
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d enable/disable cycles in %v", i+1, traceToggleCycles, time.Since(start).Round(time.Second))
		}
	}
	stopUDP()
	t.Logf("%d enable/disable cycles in %v under UDP traffic (%d datagrams sent)",
		traceToggleCycles, time.Since(start).Round(10*time.Millisecond), sent.Load())
}
