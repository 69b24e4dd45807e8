//go:build linux

// Command guestinit is the virtual rig's /init: it prepares the guest (file
// systems, kernel modules, network), runs the test binary with its output on
// a serial port of its own, sends the report files and the exit status to
// the host on the control port, and powers the machine off.
//
// It runs as PID 1 in an initramfs that holds no shell and no other program,
// so it must never exit: an exiting PID 1 panics the kernel. Every failure is
// reported on the control port, then the machine powers off.
//
// The host builds it with CGO_ENABLED=0 GOOS=linux GOARCH=amd64; see package
// txtimeout/rig. It links only the guest side (txtimeout/rig/guest and the
// protocol), not the host's QEMU launcher.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/rig/guest"
	"txtimeout/rig/internal/guestproto"
)

// ctl is the control port; nil until it is open. ctlMu serialises the
// main goroutine's lines and the heartbeat's.
var (
	ctlMu   sync.Mutex
	ctl     *bufio.Writer
	ctlFile *os.File
)

// send writes one control line. The buffer is empty between calls, so the
// line leaves in one write(2): openTTY's Fd call put the port in blocking
// mode, where a tty write is not split.
func send(verb string, args ...any) {
	ctlMu.Lock()
	defer ctlMu.Unlock()
	if ctl == nil {
		return
	}
	line := guestproto.Prefix + verb
	for _, a := range args {
		line += " " + fmt.Sprint(a)
	}
	ctl.WriteString(line + "\n")
	ctl.Flush()
}

func logf(format string, a ...any) {
	// The console (ttyS0) is the kernel's; init's stdout is /dev/console.
	fmt.Fprintf(os.Stdout, "guestinit: "+format+"\n", a...)
}

func main() {
	code := guestproto.ExitInitFailed
	defer func() {
		if r := recover(); r != nil {
			logf("panic: %v", r)
			send(guestproto.Error, fmt.Sprintf("init panicked: %v", r))
		}
		send(guestproto.Exit, code)
		powerOff()
	}()
	var err error
	code, err = run()
	if err != nil {
		logf("%v", err)
		send(guestproto.Error, strings.ReplaceAll(err.Error(), "\n", " "))
	}
}

func run() (int, error) {
	if err := mountAll(); err != nil {
		return guestproto.ExitInitFailed, err
	}
	stopCmdRecord()
	c, err := openTTY(guestproto.ControlTTY)
	if err != nil {
		return guestproto.ExitInitFailed, err
	}
	ctlFile = c
	ctl = bufio.NewWriterSize(c, 64<<10)
	send(guestproto.Hello)

	b, err := os.ReadFile(guestproto.ConfigPath)
	if err != nil {
		return guestproto.ExitInitFailed, err
	}
	var cfg guestproto.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return guestproto.ExitInitFailed, fmt.Errorf("%s: %w", guestproto.ConfigPath, err)
	}
	if cfg.Probe {
		return 0, nil
	}
	if cfg.CrashForTest {
		if err := os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0); err != nil {
			return guestproto.ExitInitFailed, fmt.Errorf("crashing the kernel for the test: %w", err)
		}
	}
	for _, m := range cfg.Modules {
		if err := loadModule(m); err != nil {
			return guestproto.ExitInitFailed, err
		}
		send(guestproto.Module, m.Name)
	}
	if err := setupNetwork(cfg.NICs); err != nil {
		return guestproto.ExitInitFailed, err
	}
	stopPartners, err := startLoopPartners(cfg.NICs)
	if err != nil {
		return guestproto.ExitInitFailed, err
	}
	defer stopPartners()
	if err := os.MkdirAll(guestproto.ReportDir, 0o755); err != nil {
		return guestproto.ExitInitFailed, err
	}
	out, err := openTTY(guestproto.OutputTTY)
	if err != nil {
		return guestproto.ExitInitFailed, err
	}
	send(guestproto.Ready, cfg.NICs[0].Iface)
	code, stopHeartbeat := runTest(cfg, out)
	// The heartbeat goes on while the output drains: a host slow to read
	// it is no hung guest.
	drain(out)
	stopHeartbeat()
	if err := sendReports(); err != nil {
		send(guestproto.Error, "sending reports: "+err.Error())
	}
	return code, nil
}

func mountAll() error {
	for _, m := range []struct {
		src, dst, fstype string
		optional         bool
	}{
		{"proc", "/proc", "proc", false},
		{"sysfs", "/sys", "sysfs", false},
		{"devtmpfs", "/dev", "devtmpfs", false},
		{"tmpfs", "/tmp", "tmpfs", false},
		// tracefs is where the net:net_dev_xmit_timeout tracepoint lives
		// (CONFIG_TRACING); the scenarios decide what its absence means.
		{"tracefs", "/sys/kernel/tracing", "tracefs", true},
		{"debugfs", "/sys/kernel/debug", "debugfs", true},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil && !m.optional {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil {
			if m.optional {
				logf("mount %s on %s: %v (continuing)", m.fstype, m.dst, err)
				continue
			}
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}

// recordCmdPath is tracefs's top-level options/record-cmd.
const recordCmdPath = "/sys/kernel/tracing/options/record-cmd"

// stopCmdRecord turns tracefs's record-cmd off before any test runs. With
// it on (the default), enabling or disabling any trace event also
// registers or unregisters the sched_switch/sched_wakeup probes that record
// task names, which int3-patches live code in __schedule; under
// multi-threaded TCG a vCPU can keep executing a stale translation holding
// the int3, and the guest locks up (soft lockup in text_poke_bp /
// smp_call_function_many_cond; kernel-facts §12). The option must be the
// top level's: record-cmd is one of the kernel's TOP_LEVEL_TRACE_FLAGS, so
// an instance has no options/record-cmd file and copies the top level's
// value when it is made (kernel/trace/trace.c, trace_array_create). The
// harness's instances are made later, so they get it off. Nothing in the
// suite reads task names from trace lines.
func stopCmdRecord() {
	if err := os.WriteFile(recordCmdPath, []byte("0"), 0); err != nil {
		logf("tracefs record-cmd left on: %v (toggling trace events may hang a multi-threaded TCG guest)", err)
	}
}

// openTTY opens a serial port in raw mode, so that bytes pass unchanged
// (no CR inserted before LF, no echo).
func openTTY(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.B115200 | unix.CLOCAL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// drain waits until the serial port has sent everything (tcdrain).
func drain(f *os.File) {
	unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
}

func loadModule(m guestproto.ModuleFile) error {
	if err := guest.Module(m).Load(); err != nil {
		return err
	}
	if m.Params != "" {
		logf("module %s loaded with %s", m.Name, m.Params)
	}
	return nil
}

// runTest runs the test binary with a heartbeat, which it leaves running
// for the caller to stop.
func runTest(cfg guestproto.Config, out *os.File) (code int, stopHeartbeat func()) {
	cmd := exec.Command(guestproto.TestPath, cfg.Args...)
	cmd.Dir = "/"
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = append([]string{"PATH=/", "HOME=/", "TMPDIR=/tmp"}, cfg.Env...)
	stopHeartbeat = func() {}
	err := cmd.Start()
	if err == nil {
		stopHeartbeat = startHeartbeat(cmd.Process.Pid, cfg.FreezeHeartbeatAfter)
		err = cmd.Wait()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stopHeartbeat
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(out, "\nguestinit: test binary killed by %v\n", ws.Signal())
			return 128 + int(ws.Signal()), stopHeartbeat
		}
		return ee.ExitCode(), stopHeartbeat
	default:
		fmt.Fprintf(out, "\nguestinit: %v\n", err)
		return guestproto.ExitInitFailed, stopHeartbeat
	}
}

// startHeartbeat sends an ALIVE line at once and then every
// guestproto.HeartbeatInterval until the returned function is called
// (which waits for the last line to be out). After freezeAfter lines
// (when positive) it goes silent, as a hung guest would.
func startHeartbeat(pid, freezeAfter int) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		// A panic here would end PID 1 and panic the kernel; a silent
		// heartbeat makes the host report the guest as hung instead,
		// with this line on the console.
		defer func() {
			if r := recover(); r != nil {
				logf("heartbeat panicked: %v", r)
			}
		}()
		t := time.NewTicker(guestproto.HeartbeatInterval)
		defer t.Stop()
		for seq := 1; ; seq++ {
			if freezeAfter <= 0 || seq <= freezeAfter {
				send(guestproto.Alive, heartbeat(seq, pid))
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// heartbeat reads what the guest kernel says about itself and the test
// binary (pid); a number it cannot read is left out (-1).
func heartbeat(seq, pid int) guestproto.Heartbeat {
	h := guestproto.Heartbeat{Seq: seq, Load1: -1, TestCPU: -1}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if s, err := strconv.ParseFloat(f[0], 64); err == nil {
				h.Uptime = time.Duration(s * float64(time.Second))
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if l, err := strconv.ParseFloat(f[0], 64); err == nil {
				h.Load1 = l
			}
		}
	}
	if cpu, ok := processCPU(pid); ok {
		h.TestCPU = cpu
	}
	return h
}

// processCPU returns the user and system time of process pid and all its
// threads (/proc/PID/stat fields 14 and 15, in USER_HZ ticks, which is 100
// on every Linux architecture's user ABI).
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 63)
	stime, err2 := strconv.ParseUint(f[12], 10, 63)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * (time.Second / 100), true
}

func sendReports() error {
	return filepath.WalkDir(guestproto.ReportDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(guestproto.ReportDir, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		send(guestproto.File, st.Size(), rel)
		enc := base64.NewEncoder(base64.StdEncoding, &lineWriter{w: ctl, n: 76})
		if _, err := io.Copy(enc, f); err != nil {
			return err
		}
		enc.Close()
		ctl.WriteString("\n")
		send(guestproto.EndFile)
		return nil
	})
}

// lineWriter breaks a base64 stream into lines of n characters.
type lineWriter struct {
	w   *bufio.Writer
	n   int
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if l.col == l.n {
			l.w.WriteByte('\n')
			l.col = 0
		}
		l.w.WriteByte(c)
		l.col++
	}
	return len(p), nil
}

func powerOff() {
	if ctl != nil {
		ctl.Flush()
		drain(ctlFile)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logf("power off: %v", err)
	}
	// PID 1 must not exit.
	for {
		time.Sleep(time.Hour)
	}
}
