package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"txtimeout/kmsg"
)

// Two objects in /sys/kernel/debug/kmemleak, one in 6.x's form and one in
// the older "[<addr>] func" form (made-up content in mm/kmemleak.c's
// print_unreferenced layout): two splat events, each with its object line
// and its first backtrace frames.
const kmemleakText = `unreferenced object 0xffff888104c2e400 (size 256):
  comm "txtimeout.test", pid 412, jiffies 4294901377
  hex dump (first 32 bytes):
    08 e4 c2 04 81 88 ff ff 08 e4 c2 04 81 88 ff ff  ................
  backtrace (crc 1b2c3d4e):
    __kmalloc_cache_noprof+0x2a1/0x350
    e1000_setup_tx_resources+0x5c/0x2f0 [e1000]
    e1000_open+0x7b/0x1d0 [e1000]
    __dev_open+0xf1/0x1c0
    __dev_change_flags+0x1e4/0x250
unreferenced object 0xffff888100a3c000 (size 64):
  comm "kworker/0:1", pid 58, jiffies 4294902000 (age 12.5s)
  hex dump (first 32 bytes):
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace:
    [<ffffffff81234567>] kmalloc_trace+0x25/0x90
    [<ffffffffc0123456>] e1000_reset_task+0x40/0x60 [e1000]
`

func TestKmemleakEvents(t *testing.T) {
	evs := kmemleakEvents(kmemleakText)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2: %+v", len(evs), evs)
	}
	for i, want := range [][]string{
		{"kmemleak: unreferenced object 0xffff888104c2e400 (size 256):", "e1000_setup_tx_resources", "__dev_open"},
		{"kmemleak: unreferenced object 0xffff888100a3c000 (size 64):", "e1000_reset_task"},
	} {
		if evs[i].Kind != kmsg.KindSplat {
			t.Errorf("event %d is %s, want a splat", i, evs[i].Kind)
		}
		for _, w := range want {
			if !strings.Contains(evs[i].Text, w) {
				t.Errorf("event %d %q lacks %q", i, evs[i].Text, w)
			}
		}
	}
	if strings.Contains(evs[0].Text, "__dev_change_flags") {
		t.Errorf("event 0 takes more than four frames: %q", evs[0].Text)
	}
	if evs := kmemleakEvents(""); len(evs) != 0 {
		t.Errorf("an empty kmemleak file gives %d events", len(evs))
	}
}

// Scan writes "scan", reads the objects and writes "clear" when it found
// some; a kernel without kmemleak has no file and no detector.
func TestKmemleakScan(t *testing.T) {
	if OpenKmemleak(filepath.Join(t.TempDir(), "none")) != nil {
		t.Error("a detector without its file")
	}
	p := filepath.Join(t.TempDir(), "kmemleak")
	mustNoErr(t, os.WriteFile(p, []byte(kmemleakText), 0o644))
	k := OpenKmemleak(p)
	if k == nil {
		t.Fatal("no detector although its file exists")
	}
	// A regular file stands in: each write replaces its content, so the
	// file ends holding the last command.
	evs, err := k.Scan()
	mustNoErr(t, err)
	if len(evs) != 0 {
		t.Errorf("the stand-in file read back %d events after the scan command replaced it", len(evs))
	}
	b, _ := os.ReadFile(p)
	if string(b) != "scan" {
		t.Errorf("after Scan the file holds %q, want the scan command", b)
	}
	mustNoErr(t, k.Clear())
	b, _ = os.ReadFile(p)
	if string(b) != "clear" {
		t.Errorf("after Clear the file holds %q", b)
	}
}
