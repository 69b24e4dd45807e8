package main

import (
	"errors"
	"strings"
	"testing"

	"txtimeout/traffic"
)

func TestPktgenUsage(t *testing.T) {
	for _, args := range [][]string{
		{"pktgen"},
		{"pktgen", "-threads", "2"},
		{"pktgen", "-iface", "eth0", "-threads", "0"},
		{"pktgen", "-iface", "eth0", "-for", "0"},
		{"pktgen", "-iface", "eth0", "-size", "0"},
		{"pktgen", "-iface", "eth0", "-clone", "-1"},
		{"pktgen", "-iface", "eth0", "-dst-min", "nope"},
		{"pktgen", "-iface", "eth0", "-dst-max", "2001:db8::1"},
		{"pktgen", "-iface", "eth0", "-dst-mac", "00:11"},
		{"pktgen", "-iface", "eth0", "-flag", "A=B"},
		{"pktgen", "-iface", "eth0@1"},
		{"pktgen", "-iface", "eth0", "stray"},
	} {
		rc, out, errb := trafficCLI(args...)
		if rc != 2 || out != "" {
			t.Errorf("%q: exit %d stdout %q, want 2 and nothing", args, rc, out)
			continue
		}
		trafficOneLineErr(t, errb)
	}
}

// TestPktgenNotSupported: without pktgen (this host's kernel), a valid
// command line is a runtime error in one line.
func TestPktgenNotSupported(t *testing.T) {
	err := traffic.PktgenAvailable()
	if err == nil {
		t.Skip("skipping: this kernel has pktgen; a real run acts on a device and belongs to the virtual rig")
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("inconclusive pktgen probe: %v", err)
	}
	rc, out, errb := trafficCLI("pktgen", "-iface", "lo", "-for", "1s", "-json")
	if rc != 1 || out != "" {
		t.Fatalf("exit %d stdout %q", rc, out)
	}
	trafficOneLineErr(t, errb)
	if !strings.Contains(errb, "CONFIG_NET_PKTGEN") || strings.Contains(errb, "pktgen: pktgen:") {
		t.Fatalf("stderr %q", errb)
	}
}
