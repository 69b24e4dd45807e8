package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestRigGuestFlags(t *testing.T) {
	got, err := guestFlags([]string{"-run", "TxTimeout/NetemDelay", "-v", "-count=2", "--failfast", "-iface", "eth1", "-test.timeout", "3m"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-test.run=TxTimeout/NetemDelay", "-test.count=2", "-test.failfast", "-iface", "eth1", "-test.timeout=3m"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("guestFlags:\n got %q\nwant %q", got, want)
	}
	if _, err := guestFlags([]string{"-run"}); err == nil {
		t.Error("-run without a value: no error")
	}
}

func TestRigUnframe(t *testing.T) {
	var out bytes.Buffer
	u := &unframe{w: &out}
	for _, chunk := range []string{"\x16=== RUN   TestA\n    a.go:1: hi\n\x16=== NA", "ME  TestA\n\x16--- PASS: TestA (0.00s)\nPA", "SS"} {
		u.Write([]byte(chunk))
	}
	u.Flush()
	want := "=== RUN   TestA\n    a.go:1: hi\n--- PASS: TestA (0.00s)\nPASS"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestRigUsage(t *testing.T) {
	for _, args := range [][]string{
		{"rig", "-nic", "ne2k"},
		{"rig", "-smp", "0"},
		{"rig", "-kernel", "/boot/vmlinuz"},
		{"rig", "-accel", "xen"},
		{"rig", "-timeout", "1s"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if !strings.HasPrefix(stderr.String(), "txtimeout: rig: ") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%q: stderr %q, want one line beginning txtimeout: rig:", args, stderr.String())
		}
	}
}
