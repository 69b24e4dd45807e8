package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// scanInput holds every line of kernel-facts.md sections 2 and 3 in the
// three saved forms, a WARN_ONCE report, lines that are no event and
// lines that are no log at all.
const scanInput = `[    9.164193] virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms
<3>[    9.164300] virtio_net virtio0 eth0: TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 5764000 usecs ago
6,100,10000000,-;usb 1-1: device descriptor read/64, error -110
4,101,10000001,-;------------[ cut here ]------------
4,102,10000002,-;NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out 5120 ms
 SUBSYSTEM=net
4,103,10000003,-;WARNING: CPU: 1 PID: 0 at net/sched/sch_generic.c:525 dev_watchdog+0x21f/0x230
4,104,10000004,-;Call Trace:
4,105,10000005,-;---[ end trace 0000000000000000 ]---
[   11.000000] Bluetooth: hci0: command 0x0c03 tx timeout
[   12.000000] NMI watchdog: Enabled. Permanently consumes one hw-PMU counter.
[   13.000000] tg3 0000:02:00.0 eth1: transmit timed out, resetting
[   14.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008
garbage line
` + "\x00\xff\xfe\n"

func TestScanFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte(scanInput), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"scan", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	want := `{"kind":"watchdog","iface":"eth0","driver":"virtio_net","bus":"virtio0","queue":0,"timed_out_ms":5760,"ts_usec":9164193,"seq":0,"text":"virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms"}
{"kind":"driver","iface":"eth0","driver":"virtio_net","bus":"virtio0","queue":0,"timed_out_ms":5764,"ts_usec":9164300,"seq":0,"text":"virtio_net virtio0 eth0: TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 5764000 usecs ago"}
{"kind":"watchdog","iface":"eth0","driver":"e1000e","bus":"","queue":0,"timed_out_ms":5120,"ts_usec":10000002,"seq":102,"text":"NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out 5120 ms"}
{"kind":"driver","iface":"eth1","driver":"tg3","bus":"0000:02:00.0","queue":-1,"timed_out_ms":0,"ts_usec":13000000,"seq":0,"text":"tg3 0000:02:00.0 eth1: transmit timed out, resetting","reset":true}
{"kind":"splat","iface":"","driver":"","bus":"","queue":-1,"timed_out_ms":0,"ts_usec":14000000,"seq":0,"text":"BUG: kernel NULL pointer dereference, address: 0000000000000008"}
`
	if diff := cmp.Diff(want, stdout.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if got := stderr.String(); got != "txtimeout: scan: 2 lines not understood (skipped)\n" {
		t.Errorf("stderr = %q, want the skipped count on one line", got)
	}
}

func TestScanStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.WriteString(w, "[    1.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kworker/1:2:123]\n")
		w.Close()
	}()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	for _, args := range [][]string{{"scan", "-"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
		var ev map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &ev); err != nil || ev["kind"] != "splat" {
			t.Errorf("%v: stdout %q, want one splat", args, stdout.String())
		}
		if stderr.Len() != 0 {
			t.Errorf("%v: stderr %q, want none", args, stderr.String())
		}
	}
}

func TestScanErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i*7919 + i>>8)
	}
	if err := os.WriteFile(garbage, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string // prefix of stderr's first line
	}{
		{"missing file", []string{"scan", filepath.Join(dir, "nope")}, 1, "txtimeout: scan: open "},
		{"directory", []string{"scan", dir}, 1, "txtimeout: scan: read "},
		{"two files", []string{"scan", "a", "b"}, 2, "txtimeout: scan: at most one FILE"},
		{"follow with a file", []string{"scan", "-follow", "a"}, 2, "txtimeout: scan: -follow reads"},
		{"unknown flag", []string{"scan", "-bogus"}, 2, "txtimeout: scan: flag provided but not defined: -bogus"},
		{"help", []string{"scan", "-h"}, 0, "usage: txtimeout scan"},
		{"binary garbage", []string{"scan", garbage}, 0, "txtimeout: scan: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want it to begin %q", stderr.String(), tt.stderr)
			}
			if tt.code != 0 && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr %q, want one line", stderr.String())
			}
			if tt.code != 0 && stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// TestScanFollowFIFO runs -follow on a named pipe standing in for
// /dev/kmsg, so that an event can be fed without writing a fake tx
// timeout into this machine's real kernel log.
func TestScanFollowFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "kmsg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_RDWR, 0) // keeps a writer: no EOF
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runScan(ctx, []string{"-follow", "-kmsg", fifo}, outW, &stderr)
		outW.Close()
	}()
	if _, err := w.WriteString("2,77,9164193,-;virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms\n"); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		want := `{"kind":"watchdog","iface":"eth0","driver":"virtio_net","bus":"virtio0","queue":0,"timed_out_ms":5760,"ts_usec":9164193,"seq":77,"text":"virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms"}`
		if l != want {
			t.Errorf("event line\n got %s\nwant %s", l, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("-follow after interrupt = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("-follow did not stop within 10s of the interrupt")
	}
	if !strings.HasPrefix(stderr.String(), "txtimeout: scan: following ") {
		t.Errorf("stderr %q, want the following notice", stderr.String())
	}
}

// TestScanFollowKmsg follows the real /dev/kmsg until interrupted.
func TestScanFollowKmsg(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: reading /dev/kmsg needs root (run the tests as root)")
	}
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := runScan(ctx, []string{"-follow", "-kernel-only"}, &stdout, &stderr); err != nil {
		t.Fatalf("-follow = %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("kernel events while following this machine's log: %s", stdout.String())
	}
}
