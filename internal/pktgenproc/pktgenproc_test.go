package pktgenproc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeDir writes thread files in pktgen_thread_show's format.
func fakeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestThreads(t *testing.T) {
	dir := fakeDir(t, map[string]string{
		"pgctrl":      "Packet Generator (module version 2.75)\n",
		"kpktgend_10": "Running: \nStopped: eth3@10 \nResult: OK: add_device=eth3@10\n",
		"kpktgend_2":  "Running: eth1@2 eth10@2 \nStopped: eth1 \nResult: OK\n",
		"kpktgend_3":  "Running: \nStopped: \nResult: Idle\n",
		"eth1@2":      "Params: count 0\n", // a device file, not a thread
	})
	ths, err := Threads(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, th := range ths {
		names = append(names, th.Name())
	}
	if want := []string{"kpktgend_2", "kpktgend_3", "kpktgend_10"}; !slices.Equal(names, want) {
		t.Errorf("threads %q, want %q", names, want)
	}
	if got := ths[0].Devices(); !slices.Equal(got, []string{"eth1@2", "eth10@2", "eth1"}) {
		t.Errorf("kpktgend_2 devices %q", got)
	}
	devs, err := Devices(dir)
	if want := []string{"kpktgend_10: eth3@10", "kpktgend_2: eth1", "kpktgend_2: eth10@2", "kpktgend_2: eth1@2"}; err != nil || !slices.Equal(devs, want) {
		t.Errorf("Devices = %q, %v; want %q", devs, err, want)
	}
	for iface, want := range map[string]bool{"eth1": true, "eth10": true, "eth3": false, "eth": false} {
		if got, err := RunningOn(dir, iface); got != want || err != nil {
			t.Errorf("RunningOn(%s) = %v, %v; want %v", iface, got, err, want)
		}
	}
	// No pktgen in the kernel: nothing, and no error.
	if ths, err := Threads(filepath.Join(dir, "none")); ths != nil || err != nil {
		t.Errorf("without pktgen: %v, %v", ths, err)
	}
}

// TestOnTagged: which devices send on eth1, and which carry the
// project's @TAG.
func TestOnTagged(t *testing.T) {
	type want struct{ on, tagged bool }
	for dev, w := range map[string]want{
		"eth1":    {on: true},
		"eth1@0":  {on: true, tagged: true},
		"eth10@0": {tagged: true},
		"eth":     {},
	} {
		if got := (want{On(dev, "eth1"), Tagged(dev)}); got != w {
			t.Errorf("%s: On(eth1), Tagged = %+v, want %+v", dev, got, w)
		}
	}
	if ThreadFile(3) != "kpktgend_3" {
		t.Errorf("ThreadFile(3) = %q", ThreadFile(3))
	}
}

func FuzzParseThread(f *testing.F) {
	f.Add("Running: eth1@0 \nStopped: eth2 \nResult: OK\n")
	f.Add("Running: \nStopped: \nResult: Idle\n")
	// ParseThread caps its input itself (maxThreadFile).
	f.Fuzz(func(t *testing.T, s string) {
		run, stop := ParseThread(s)
		for _, d := range append(run, stop...) {
			if d == "" || strings.ContainsAny(d, " \n\t") {
				t.Fatalf("bad device name %q", d)
			}
		}
	})
}
