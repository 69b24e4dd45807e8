package main

import (
	"bytes"
	"strings"
	"testing"
)

// trafficCLI runs the command line and returns its exit status, stdout and
// stderr.
func trafficCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	rc := run(args, &out, &errb)
	return rc, out.String(), errb.String()
}

// trafficOneLineErr fails unless stderr is one line beginning "txtimeout:".
func trafficOneLineErr(tb testing.TB, stderr string) {
	tb.Helper()
	if !strings.HasPrefix(stderr, "txtimeout: ") || strings.Count(stderr, "\n") != 1 {
		tb.Fatalf("stderr %q is not one line beginning \"txtimeout: \"", stderr)
	}
}

func TestFloodUsage(t *testing.T) {
	for _, args := range [][]string{
		{"flood"},
		{"flood", "udp"},
		{"flood", "-dst", "198.18.0.1"},
		{"flood", "icmp"},
		{"flood", "icmp", "-dst", "198.18.0.1"},                 // unbounded
		{"flood", "icmp", "-dst", "nope", "-count", "1"},        // bad address
		{"flood", "icmp", "-dst", "2001:db8::1", "-count", "1"}, // IPv6
		{"flood", "icmp", "-dst", "198.18.0.1", "-count", "-1"},
		{"flood", "icmp", "-dst", "198.18.0.1", "-count", "1", "-size", "70000"},
		{"flood", "icmp", "-dst", "198.18.0.1", "-count", "1", "-size", "0"},
		{"flood", "icmp", "-dst", "198.18.0.1", "-count", "1", "-senders", "0"},
		{"flood", "icmp", "-dst", "198.18.0.1", "-count", "1", "-interval", "-1s"},
		{"flood", "icmp", "-dst", "198.18.0.1", "-count", "1", "extra"},
		{"flood", "icmp", "-bogus"},
	} {
		rc, out, errb := trafficCLI(args...)
		if rc != 2 || out != "" {
			t.Errorf("%q: exit %d stdout %q, want 2 and nothing", args, rc, out)
			continue
		}
		if args[len(args)-1] == "-bogus" {
			continue // the flag package prints its help too
		}
		trafficOneLineErr(t, errb)
	}
}

func TestFloodRuntimeError(t *testing.T) {
	rc, out, errb := trafficCLI("flood", "icmp", "-dst", "198.18.0.1", "-count", "1", "-netns", "/nonexistent/txto")
	if rc != 1 || out != "" {
		t.Fatalf("exit %d stdout %q", rc, out)
	}
	trafficOneLineErr(t, errb)
	if strings.Contains(errb, "flood: flood:") {
		t.Fatalf("doubled prefix: %q", errb)
	}
}
