//go:build linux

package main

import (
	"os"
	"testing"
	"time"

	"txtimeout/rig/internal/guestproto"
)

// The heartbeat's numbers come from this (host) kernel's /proc the same
// way as from the guest's: uptime and load are read, and the CPU time of a
// process that has burnt some CPU is positive and grows.
func TestHeartbeatReadsProc(t *testing.T) {
	burn := func() {
		for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		}
	}
	burn()
	h := heartbeat(3, os.Getpid())
	if h.Seq != 3 || h.Uptime <= 0 || h.Load1 < 0 || h.TestCPU <= 0 {
		t.Fatalf("heartbeat %+v: want seq 3 and positive uptime, load and CPU time", h)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		burn()
		cpu, ok := processCPU(os.Getpid())
		if !ok {
			t.Fatal("processCPU of this process failed")
		}
		if cpu > h.TestCPU {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %v while the test burnt CPU", cpu)
		}
	}
	if _, err := guestproto.ParseHeartbeat(h.String()); err != nil {
		t.Errorf("the init's heartbeat %q does not parse: %v", h, err)
	}
	if _, ok := processCPU(1 << 30); ok {
		t.Errorf("processCPU of a process that cannot exist succeeded")
	}
}
