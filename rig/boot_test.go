package rig

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"txtimeout/rig/internal/guestproto"
)

// runFake runs a boot with the fake QEMU f as Run does after resolving the
// host: in a work directory that a failure keeps. tune adjusts the boot
// (deadlines below the ranges withDefaults allows).
func runFake(t *testing.T, c Config, f *fakeQEMU, tune func(*boot)) (r *Result, out string, err error) {
	t.Helper()
	var o strings.Builder
	r = &Result{}
	err = inWorkDir(c, r, func(work string) error {
		b := fakeBoot(t, c, work, f)
		b.out, b.start = &o, time.Now()
		if tune != nil {
			tune(b)
		}
		return b.run(context.Background(), r)
	})
	if r.WorkDir != "" {
		t.Cleanup(func() { os.RemoveAll(r.WorkDir) })
	}
	return r, o.String(), err
}

// checkKept checks that a failed run kept its work directory with the
// console log and that the error (if any) names both and the QEMU
// command line, quoted for a shell.
func checkKept(t *testing.T, r *Result, err error, console string) {
	t.Helper()
	if r.WorkDir == "" {
		t.Fatal("the failed run did not keep its work directory")
	}
	con := filepath.Join(r.WorkDir, "console.log")
	b, rerr := os.ReadFile(con)
	if rerr != nil {
		t.Fatalf("console log not kept: %v", rerr)
	}
	if !strings.Contains(string(b), console) {
		t.Errorf("kept console log %q lacks %q", b, console)
	}
	if _, serr := os.Stat(filepath.Join(r.WorkDir, "initramfs.cpio")); serr != nil {
		t.Errorf("initramfs not kept: %v", serr)
	}
	if err == nil {
		return
	}
	var re *RunError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is no RunError", err)
	}
	cmd := CmdlineQuoted(r.QEMUCommand)
	for _, want := range []string{"rig: work directory kept: " + r.WorkDir, "rig: console log: " + con, "rig: QEMU command line: " + cmd, "'" + kernelCmdline() + "'"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestFakeQEMUPasses(t *testing.T) {
	report := t.TempDir()
	f := &fakeQEMU{script: func(g *fakeGuest) error {
		g.control(guestproto.File, 3, "report.json")
		io.WriteString(g.ctl, "e30K\n") // "{}\n" in base64
		g.control(guestproto.EndFile)
		return g.runTests("\x16=== RUN   TestA\n\x16--- PASS: TestA (0.00s)\nPASS\n", 0)
	}}
	r, out, err := runFake(t, Config{ReportDir: report}, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != 0 || r.WorkDir != "" || r.Evidence() != "" {
		t.Errorf("exit %d, work directory %q, evidence %q: want 0 and nothing kept", r.ExitCode, r.WorkDir, r.Evidence())
	}
	if !strings.Contains(out, "--- PASS: TestA") {
		t.Errorf("test output not passed through: %q", out)
	}
	if r.ConsoleLogPath != filepath.Join(report, "console.log") || !strings.Contains(r.ConsoleLog, "Linux version") {
		t.Errorf("console log %q (%q), want it copied to the report directory", r.ConsoleLogPath, r.ConsoleLog)
	}
	if b, err := os.ReadFile(filepath.Join(report, "report.json")); err != nil || string(b) != "{}\n" || len(r.ReportFiles) != 1 {
		t.Errorf("report file %q (%v), files %q: want the guest's report.json copied", b, err, r.ReportFiles)
	}
	if r.Heartbeats != 1 || r.BootTime <= 0 {
		t.Errorf("heartbeats %d, boot time %v: want 1 and the time measured", r.Heartbeats, r.BootTime)
	}
}

// QEMU refuses its command line and exits at once: its message is the
// error.
func TestFakeQEMUExitsAtOnce(t *testing.T) {
	f := &fakeQEMU{stderr: "qemu-system-x86_64: -device igb: 'igb' is not a valid device model name\n", exitAtOnce: errors.New("exit status 1")}
	r, _, err := runFake(t, Config{}, f, nil)
	if err == nil || !strings.Contains(err.Error(), "QEMU exited at start (exit status 1): qemu-system-x86_64: -device igb: 'igb' is not a valid device model name") {
		t.Fatalf("error %v, want QEMU's exit and message", err)
	}
	checkKept(t, r, err, "")
}

// The guest kernel panics: the panic's lines are the error, and QEMU
// (with -no-reboot) exits by itself.
func TestFakeQEMUKernelPanic(t *testing.T) {
	f := &fakeQEMU{script: func(g *fakeGuest) error {
		g.control(guestproto.Hello)
		io.WriteString(g.console, "sysrq: Trigger a crash\r\nKernel panic - not syncing: sysrq triggered crash\r\nCPU: 0 PID: 1 Comm: init\r\n---[ end Kernel panic - not syncing: sysrq triggered crash ]---\r\n")
		return nil
	}}
	r, _, err := runFake(t, Config{}, f, nil)
	if !errors.Is(err, ErrGuestPanic) {
		t.Fatalf("error %v, want ErrGuestPanic", err)
	}
	for _, want := range []string{"sysrq: Trigger a crash", "Kernel panic - not syncing: sysrq triggered crash", "---[ end Kernel panic"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("panic error lacks %q", want)
		}
	}
	checkKept(t, r, err, "Kernel panic - not syncing")
}

// The guest's tests run, then the guest stops sending anything: the hang
// watch stops QEMU, and the error says where the guest stood and what
// QEMU's monitor said.
func TestFakeQEMUGuestHangs(t *testing.T) {
	f := &fakeQEMU{script: func(g *fakeGuest) error {
		io.WriteString(g.console, "Linux version 6.1.0-fake\r\n")
		g.control(guestproto.Hello)
		g.control(guestproto.Ready, DUTIface)
		g.control(guestproto.Alive, guestproto.Heartbeat{Seq: 1, Uptime: 3 * time.Second, Load1: 0.5, TestCPU: -1})
		io.WriteString(g.console, "watchdog: BUG: soft lockup - CPU#0 stuck for 22s!\r\n")
		return g.hang()
	}}
	r, _, err := runFake(t, Config{}, f, func(b *boot) { b.c.HangTimeout = 300 * time.Millisecond })
	if !errors.Is(err, ErrGuestHung) {
		t.Fatalf("error %v, want ErrGuestHung", err)
	}
	for _, want := range []string{"last heartbeat (#1)", "guest uptime 3s", "QEMU monitor: VM status: running; CPU#0 RIP=ffffffff81e0f2d4", "soft lockup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("hang error lacks %q:\n%v", want, err)
		}
	}
	if r.Heartbeats != 1 || r.MaxSilence < 300*time.Millisecond {
		t.Errorf("heartbeats %d, longest silence %v: want 1 and at least the hang window", r.Heartbeats, r.MaxSilence)
	}
	checkKept(t, r, err, "soft lockup")
}

// The guest never starts the test: its init does not speak by the boot
// deadline, or it speaks and reports that it failed.
func TestFakeQEMUTestNeverStarts(t *testing.T) {
	t.Run("NoBoot", func(t *testing.T) {
		f := &fakeQEMU{script: func(g *fakeGuest) error {
			io.WriteString(g.console, "Booting the kernel.\r\n")
			return g.hang()
		}}
		r, _, err := runFake(t, Config{}, f, func(b *boot) { b.c.BootTimeout = 200 * time.Millisecond })
		if !errors.Is(err, ErrBootTimeout) || !strings.Contains(err.Error(), "Booting the kernel.") {
			t.Fatalf("error %v, want ErrBootTimeout with the console", err)
		}
		checkKept(t, r, err, "Booting the kernel.")
	})
	t.Run("InitFails", func(t *testing.T) {
		f := &fakeQEMU{script: func(g *fakeGuest) error {
			g.control(guestproto.Hello)
			g.control(guestproto.Error, "loading module e1000e with \"IntMode=9\": invalid argument")
			g.control(guestproto.Exit, guestproto.ExitInitFailed)
			return nil
		}}
		r, _, err := runFake(t, Config{}, f, nil)
		if !errors.Is(err, ErrGuestInit) || !strings.Contains(err.Error(), "IntMode=9") {
			t.Fatalf("error %v, want ErrGuestInit with the init's message", err)
		}
		checkKept(t, r, err, "")
	})
	t.Run("QEMUDies", func(t *testing.T) {
		f := &fakeQEMU{stderr: "qemu-system-x86_64: terminating on signal 15\n", script: func(g *fakeGuest) error {
			g.control(guestproto.Hello)
			return errors.New("exit status 1")
		}}
		r, _, err := runFake(t, Config{}, f, nil)
		if !errors.Is(err, ErrGuestDied) || !strings.Contains(err.Error(), "terminating on signal 15") {
			t.Fatalf("error %v, want ErrGuestDied with QEMU's message", err)
		}
		checkKept(t, r, err, "")
	})
}

// The guest's tests fail: that is no rig error, but the run keeps its work
// directory and says where.
func TestFakeQEMUTestFails(t *testing.T) {
	f := &fakeQEMU{script: func(g *fakeGuest) error {
		return g.runTests("\x16=== RUN   TestA\n    a_test.go:9: broken\n\x16--- FAIL: TestA (0.00s)\nFAIL\n", 1)
	}}
	r, out, err := runFake(t, Config{}, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode != 1 || !strings.Contains(out, "a_test.go:9: broken") {
		t.Errorf("exit %d, output %q: want 1 and the failure", r.ExitCode, out)
	}
	checkKept(t, r, nil, "Linux version")
	if ev := r.Evidence(); !strings.Contains(ev, r.WorkDir) || !strings.Contains(ev, "QEMU command line: ") {
		t.Errorf("evidence %q lacks the work directory or the command line", ev)
	}
}

// Cancelling the run kills QEMU and returns the cause.
func TestFakeQEMUCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeQEMU{script: func(g *fakeGuest) error {
		g.control(guestproto.Hello)
		cancel()
		return g.hang()
	}}
	r := &Result{}
	err := inWorkDir(Config{}, r, func(work string) error {
		b := fakeBoot(t, Config{}, work, f)
		return b.run(ctx, r)
	})
	t.Cleanup(func() { os.RemoveAll(r.WorkDir) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}
