package faultinject

import (
	"path/filepath"
	"strings"
	"testing"
)

// CleanupAll's pktgen sweep, against a fake /proc/net/pktgen (the thread
// files in pktgen_thread_show's format, net/core/pktgen.c): every thread
// holding a device of the project's IFACE@N form is emptied, whatever the
// interface, pktgen is stopped once when one of them runs, and the
// actions name the untagged devices that go with them.
func TestCleanupProjectPktgen(t *testing.T) {
	fake := newFakePktgen(t)
	dir, write, read := fake.dir, fake.write, fake.read
	const pgctrl = "Packet Generator (module version 2.75)\n"
	write("pgctrl", pgctrl)
	write("kpktgend_0", "Running: \nStopped: eth7@0 \nResult: OK: add_device=eth7@0\n")
	write("kpktgend_1", "Running: \nStopped: \nResult: Idle\n")
	write("kpktgend_2", "Running: \nStopped: byhand \nResult: OK: add_device=byhand\n")
	write("kpktgend_3", "Running: gone0@3 \nStopped: byhand2 \nResult: OK\n")
	write("eth7@0", "Params: count 0\n") // a device file, not a thread: never written

	acts, err := cleanupProjectPktgen(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%q", acts)
	for name, want := range map[string]string{
		"kpktgend_0": "rem_device_all",
		"kpktgend_3": "rem_device_all",
		"pgctrl":     "stop", // gone0@3 was running
	} {
		if got := read(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"kpktgend_1", "kpktgend_2", "eth7@0"} {
		if strings.Contains(read(name), "rem_device_all") {
			t.Errorf("%s emptied, but it holds no device of the project", name)
		}
	}
	all := strings.Join(acts, "\n")
	if len(acts) != 3 || !strings.Contains(all, "stopped pktgen") || !strings.Contains(all, "eth7@0") ||
		!strings.Contains(all, "gone0@3") || !strings.Contains(all, "byhand2") {
		t.Errorf("actions %q: want the stop, and each removal naming the project's devices and what went with them", acts)
	}
	if len(acts) > 0 && !strings.Contains(acts[0], "stopped pktgen") {
		t.Errorf("actions %q: pktgen must be stopped before any thread is emptied", acts)
	}
	if strings.Contains(all, "byhand ") || strings.HasSuffix(all, "byhand") {
		t.Errorf("actions %q name byhand, which was left alone", acts)
	}

	// A second sweep of what is left (the fake does not empty threads
	// itself: rewrite them as the kernel would) does nothing.
	write("pgctrl", pgctrl)
	write("kpktgend_0", "Running: \nStopped: \nResult: OK: rem_device_all\n")
	write("kpktgend_3", "Running: \nStopped: \nResult: OK: rem_device_all\n")
	if acts, err := cleanupProjectPktgen(dir); err != nil || len(acts) != 0 {
		t.Errorf("second sweep: %q, %v; want nothing to do", acts, err)
	}
	if got := read("pgctrl"); got != pgctrl {
		t.Errorf("second sweep wrote %q to pgctrl", got)
	}

	// No pktgen in the kernel (no such directory) is clean.
	if acts, err := cleanupProjectPktgen(filepath.Join(dir, "none")); err != nil || len(acts) != 0 {
		t.Errorf("without pktgen: %q, %v", acts, err)
	}
}
