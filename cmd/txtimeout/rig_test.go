package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"txtimeout/rig"
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
	u := unframe(&out)
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
		{"rig", "-modparam", "e1000e.IntMode"},
		{"rig", "-modparam", "e1000e.IntMode=1", "-modparam", `e1000e.x="a b"`},
		{"rig", "-modparam", ""},
		{"rig", "-more-nic", "ne2k"},
		{"rig", "-more-nic", ""},
		{"rig", "-topology", "ring"},
		{"rig", "-topology", "loop", "-more-nic", "e1000"},
		{"rig", "-more-nic", "e1000,e1000,e1000,e1000,e1000,e1000,e1000,e1000"},
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

func TestRigModParamFlag(t *testing.T) {
	f := &modParamFlag{items: []string{"e1000e.IntMode=2"}} // as from TXTIMEOUT_MODPARAMS
	for _, v := range []string{"e1000e.IntMode=1", "virtio-net.napi_tx=1,pktgen.pg_count_d=5"} {
		if err := f.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	got, err := rig.ParseModParams(f.String())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"e1000e.IntMode=1", "virtio_net.napi_tx=1", "pktgen.pg_count_d=5"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("flag items %q, want %q (a later value of a parameter wins)", got, want)
	}
	for _, bad := range []string{"", "IntMode=1", "e1000e.IntMode=", "e1000e.IntMode='1'"} {
		if err := (&modParamFlag{}).Set(bad); err == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
}

func TestRigExtraModuleFlag(t *testing.T) {
	f := &listFlag{items: []string{"lkdtm"}} // as from TXTIMEOUT_EXTRA_MODULES
	for _, v := range []string{"txtimeout_splat", "a,b"} {
		if err := f.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if got := f.String(); got != "lkdtm,txtimeout_splat,a,b" {
		t.Errorf("items %q", got)
	}
	for _, bad := range []string{"", "a,,b"} {
		if err := (&listFlag{}).Set(bad); err == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
}

// A malformed TXTIMEOUT_MODPARAMS is a usage error of one line, as a
// malformed flag is.
func TestRigModParamEnv(t *testing.T) {
	t.Setenv("TXTIMEOUT_MODPARAMS", "e1000e.IntMode=1 oops")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"rig"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2 (stderr %q)", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `TXTIMEOUT_MODPARAMS: bad module parameter "oops"`) || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want one line naming the bad item", stderr.String())
	}
}
