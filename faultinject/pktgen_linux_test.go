package faultinject

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePktgen is a temporary directory that stands in for
// /proc/net/pktgen, with its files written and read back by name.
type fakePktgen struct {
	tb  testing.TB
	dir string
}

func newFakePktgen(tb testing.TB) fakePktgen { return fakePktgen{tb: tb, dir: tb.TempDir()} }

func (f fakePktgen) write(name, s string) {
	f.tb.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(s), 0o644); err != nil {
		f.tb.Fatal(err)
	}
}

func (f fakePktgen) read(name string) string {
	f.tb.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		f.tb.Fatal(err)
	}
	return string(b)
}

// The thread file text is pktgen_thread_show's format (net/core/pktgen.c):
//
//	Running: DEV ...
//	Stopped: DEV ...
//	Result: ...
func TestCleanupPktgen(t *testing.T) {
	fake := newFakePktgen(t)
	dir, write, read := fake.dir, fake.write, fake.read
	write("pgctrl", "Packet Generator (module version 2.75)\n")
	write("kpktgend_0", "Running: eth1@0 \nStopped: \nResult: OK: add_device=eth1@0\n")
	write("kpktgend_1", "Running: \nStopped: eth10@1 \nResult: OK: add_device=eth10@1\n")
	write("kpktgend_2", "Running: \nStopped: eth1 \nResult: Idle\n")

	acts, err := cleanupPktgen(dir, "eth1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%q", acts)
	if got := read("pgctrl"); got != "stop" {
		t.Errorf("pgctrl got %q, want stop (a device was running)", got)
	}
	if read("kpktgend_0") != "rem_device_all" || read("kpktgend_2") != "rem_device_all" {
		t.Errorf("threads driving eth1 not emptied: %q %q", read("kpktgend_0"), read("kpktgend_2"))
	}
	if strings.Contains(read("kpktgend_1"), "rem_device_all") {
		t.Error("thread driving only eth10 was emptied")
	}
	if len(acts) != 3 {
		t.Errorf("actions %q, want stop + two removals", acts)
	}

	// No pktgen at all (no such directory) is clean.
	acts, err = cleanupPktgen(filepath.Join(dir, "none"), "eth1")
	if err != nil || len(acts) != 0 {
		t.Errorf("without pktgen: %q, %v", acts, err)
	}
}
