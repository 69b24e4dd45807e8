package rig

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"txtimeout/rig/internal/guestproto"
	"txtimeout/rig/partner"
)

// testHookQEMUStarted, when set, is called with QEMU's PID once it runs.
var testHookQEMUStarted func(pid int)

// Run boots the guest with testBinary (a static linux/amd64 test binary,
// e.g. from `go test -c` with CGO_ENABLED=0) and runs it with args. The
// binary's output is copied to out as it arrives. Run returns an error only
// when the rig itself failed (QEMU missing, a module missing, no boot, a
// panic, the deadline); the tests' own verdict is Result.ExitCode.
func Run(ctx context.Context, c Config, testBinary string, args []string, out io.Writer) (*Result, error) {
	start := time.Now()
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Result{NIC: c.NIC, ModParams: c.ModParams}
	ctx, cancel := context.WithTimeoutCause(ctx, c.Timeout, ErrRunTimeout)
	defer cancel()

	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return r, ErrQEMUMissing
	}
	nic, _ := LookupNIC(c.NIC)
	if err := checkQEMUDevice(ctx, qemu, nic.Name); err != nil {
		if nic.Note != "" {
			err = fmt.Errorf("%w (%s)", err, nic.Note)
		}
		return r, err
	}
	if nic.Note != "" {
		c.progressf("NIC %s: %s", nic.Name, nic.Note)
	}
	if st, err := os.Stat(testBinary); err != nil || !st.Mode().IsRegular() {
		return r, fmt.Errorf("rig: test binary %s: not a regular file", testBinary)
	}

	image, modDir := c.Kernel, c.Modules
	if image == "" {
		k, err := FetchKernel(ctx, c.progressf)
		if err != nil {
			return r, err
		}
		image, modDir = k.Image, k.Modules
	} else if _, err := os.Stat(image); err != nil {
		return r, fmt.Errorf("%w: %w", ErrKernelMissing, err)
	}
	ix, err := loadModuleIndex(modDir)
	if err != nil {
		return r, err
	}
	r.Kernel = ix.release
	want, reasons := wantedModules(nic, c.ExtraModules)
	mods, err := ix.resolve(want, reasons)
	if err != nil {
		return r, err
	}
	params, err := moduleParams(c.ModParams, mods, ix)
	if err != nil {
		return r, fmt.Errorf("rig: %w", err)
	}

	work, err := os.MkdirTemp("", "txtimeout-rig-")
	if err != nil {
		return r, err
	}
	keep := c.Keep
	defer func() {
		if keep {
			r.WorkDir = work
			c.progressf("work directory kept: %s", work)
		} else {
			os.RemoveAll(work)
		}
	}()

	c.progressf("building initramfs (%s, %d modules, %s)", ix.release, len(mods), filepath.Base(testBinary))
	initBin := filepath.Join(work, "init")
	if err := buildGuestInit(ctx, initBin); err != nil {
		return r, err
	}
	gc := guestproto.Config{
		CrashForTest:         c.crashForTest,
		FreezeHeartbeatAfter: c.freezeHeartbeatAfter,
		Iface:                DUTIface,
		Addr:                 dutCIDR,
		Args:                 args,
		Env: []string{
			"TXTIMEOUT_RIG=1",
			"TXTIMEOUT_IFACE=" + DUTIface,
			"TXTIMEOUT_PEER_IP=" + PeerIP.String(),
			"TXTIMEOUT_PEER_MAC=" + PeerMAC.String(),
			"TXTIMEOUT_PARTNER=inband",
			"TXTIMEOUT_NIC=" + nic.Name,
			"TXTIMEOUT_MODPARAMS=" + strings.Join(c.ModParams, " "),
			"TXTIMEOUT_EXTRA_MODULES=" + strings.Join(c.ExtraModules, " "),
			"TXTIMEOUT_REPORT_DIR=" + guestproto.ReportDir,
			"TXTIMEOUT_KERNEL_RELEASE=" + ix.release,
		},
	}
	env, err := guestEnv(gc.Env, c.GuestEnv)
	if err != nil {
		return r, err
	}
	gc.Env = env
	files := []initramfsFile{
		{Name: "init", Path: initBin, Mode: 0o755},
		{Name: strings.TrimPrefix(guestproto.TestPath, "/"), Path: testBinary, Mode: 0o755},
	}
	for _, m := range mods {
		p := path.Join(guestproto.ModuleDir, m.Name+".ko")
		gc.Modules = append(gc.Modules, guestproto.ModuleFile{Name: m.Name, Path: p, Params: params[m.Name]})
		files = append(files, initramfsFile{Name: strings.TrimPrefix(p, "/"), Data: m.Data, Mode: 0o644})
	}
	accel, err := c.accel(ctx, qemu, image, work)
	if err != nil {
		return r, err
	}
	b := &boot{
		c: c, qemu: qemu, image: image, accel: accel, nic: nic, work: work,
		gc: gc, files: files, out: out, start: start,
	}
	err = b.run(ctx, r)
	if err != nil {
		// A failed run keeps its work directory: the console log is there.
		keep = true
	}
	return r, err
}

// Preflight checks what Run needs before anything slow happens (building
// the test binary, fetching the kernel): the configuration, QEMU and its
// NIC model, and a given kernel and module tree. It returns the same named
// errors as Run.
func Preflight(ctx context.Context, c Config) error {
	c, err := c.withDefaults()
	if err != nil {
		return err
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return ErrQEMUMissing
	}
	nic, _ := LookupNIC(c.NIC)
	if err := checkQEMUDevice(ctx, qemu, nic.Name); err != nil {
		if nic.Note != "" {
			err = fmt.Errorf("%w (%s)", err, nic.Note)
		}
		return err
	}
	if c.Kernel != "" {
		if st, err := os.Stat(c.Kernel); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is not a kernel image file", ErrKernelMissing, c.Kernel)
		}
		if st, err := os.Stat(c.Modules); err != nil || !st.IsDir() {
			return fmt.Errorf("%w: %s is not a module tree (want PATH/lib/modules/VERSION)", ErrKernelMissing, c.Modules)
		}
	}
	return nil
}

// buildGuestInit builds rig/guestinit as a static linux/amd64 binary. The
// go command finds the module from the working directory, so Run works from
// inside the txtimeout module (as go test and the CLI do).
func buildGuestInit(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "txtimeout/rig/guestinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rig: building the guest init (run from inside the txtimeout module): %w: %s", err, bytes.TrimSpace(b))
	}
	return nil
}

var qemuDevices struct {
	sync.Mutex
	help map[string]string
}

// checkQEMUDevice asks QEMU (once per binary) whether it has the NIC model.
func checkQEMUDevice(ctx context.Context, qemu, dev string) error {
	qemuDevices.Lock()
	defer qemuDevices.Unlock()
	help, ok := qemuDevices.help[qemu]
	if !ok {
		out, err := exec.CommandContext(ctx, qemu, "-device", "help").CombinedOutput()
		if err != nil {
			return fmt.Errorf("rig: %s -device help: %w", qemu, err)
		}
		help = string(out)
		if qemuDevices.help == nil {
			qemuDevices.help = map[string]string{}
		}
		qemuDevices.help[qemu] = help
	}
	if !strings.Contains(help, `name "`+dev+`"`) {
		ver, _ := exec.CommandContext(ctx, qemu, "--version").Output()
		v := strings.TrimSpace(strings.SplitN(string(ver), "\n", 2)[0])
		return fmt.Errorf("%w: this QEMU (%s) has no %s device", ErrNICUnsupported, v, dev)
	}
	return nil
}

// boot is one QEMU run.
type boot struct {
	c     Config
	qemu  string
	image string
	accel string
	nic   NICModel
	work  string
	gc    guestproto.Config
	files []initramfsFile
	out   io.Writer
	start time.Time
}

func (b *boot) run(ctx context.Context, r *Result) error {
	c := b.c
	gcJSON, err := json.Marshal(b.gc)
	if err != nil {
		return err
	}
	files := append(b.files, initramfsFile{Name: strings.TrimPrefix(guestproto.ConfigPath, "/"), Data: gcJSON, Mode: 0o644})
	initrd := filepath.Join(b.work, "initramfs.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := writeInitramfs(bw, files); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}

	socks := map[string]string{}
	lns := map[string]*net.UnixListener{}
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for _, n := range []string{"net", "console", "out", "ctl"} {
		socks[n] = filepath.Join(b.work, n+".sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socks[n], Net: "unix"})
		if err != nil {
			return fmt.Errorf("rig: %w", err)
		}
		lns[n] = l
	}
	args, err := qemuArgs(qemuSpec{
		Binary: b.qemu, Accel: b.accel, SMP: c.SMP, MemMB: c.MemMB,
		Kernel: b.image, Initrd: initrd, Append: kernelCmdline(),
		NIC: b.nic.Name, MAC: DUTMAC.String(), NetSock: socks["net"],
		Serials: []string{socks["console"], socks["out"], socks["ctl"]},
		Monitor: filepath.Join(b.work, "monitor.sock"),
	})
	if err != nil {
		return fmt.Errorf("rig: %w", err)
	}
	r.QEMUCommand = append([]string{b.qemu}, args...)

	p, err := partner.New(partner.Config{MAC: PeerMAC, IP: PeerIP, Logf: c.PartnerLogf})
	if err != nil {
		return fmt.Errorf("rig: link partner: %w", err)
	}

	// The console log is written into the work directory, which a
	// failed run keeps (a hang included), and copied into the report
	// directory at the end: a report directory that its caller removes
	// must not take the evidence of a failure with it.
	consolePath := filepath.Join(b.work, "console.log")
	if c.ReportDir != "" {
		if err := os.MkdirAll(c.ReportDir, 0o755); err != nil {
			return fmt.Errorf("rig: report directory: %w", err)
		}
	}
	con, err := newConsole(consolePath)
	if err != nil {
		return err
	}
	defer func() {
		con.close()
		r.ConsoleLog = con.String()
		r.ConsoleLogPath = consolePath
		if c.ReportDir != "" {
			kept := filepath.Join(c.ReportDir, "console.log")
			if b, err := os.ReadFile(consolePath); err == nil && os.WriteFile(kept, b, 0o644) == nil {
				r.ConsoleLogPath = kept
			}
		}
	}()

	cmd := exec.Command(b.qemu, args...)
	var qstderr tailBuffer
	cmd.Stdout = &qstderr
	cmd.Stderr = &qstderr
	cmd.SysProcAttr = qemuProcAttr()
	c.progressf("booting %s (%s, %d vCPUs, %d MiB, %s)", r.Kernel, b.accel, c.SMP, c.MemMB, strings.Join(append([]string{b.nic.Name}, c.ModParams...), ", "))
	qemuStart := time.Now()
	exited, err := startReaped(cmd)
	if err != nil {
		return fmt.Errorf("rig: starting QEMU: %w", err)
	}
	pid := cmd.Process.Pid
	if testHookQEMUStarted != nil {
		testHookQEMUStarted(pid)
	}
	qemuDone := false
	kill := func() { syscall.Kill(-pid, syscall.SIGKILL) }
	defer func() {
		if !qemuDone {
			kill()
			<-exited
		}
	}()

	// QEMU connects to every socket while it starts, before the guest runs.
	conns := map[string]net.Conn{}
	type accepted struct {
		name string
		conn net.Conn
		err  error
	}
	acc := make(chan accepted, len(lns))
	for n, l := range lns {
		go func() {
			conn, err := l.Accept()
			acc <- accepted{n, conn, err}
		}()
	}
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	acceptDeadline := time.NewTimer(c.BootTimeout)
	defer acceptDeadline.Stop()
	for len(conns) < len(lns) {
		select {
		case a := <-acc:
			if a.err != nil {
				return fmt.Errorf("rig: accepting QEMU's %s connection: %w", a.name, a.err)
			}
			conns[a.name] = a.conn
		case werr := <-exited:
			qemuDone = true
			return fmt.Errorf("rig: QEMU exited at start (%v): %s", werr, qstderr.String())
		case <-acceptDeadline.C:
			return fmt.Errorf("%w: QEMU did not connect its sockets within %v: %s", ErrBootTimeout, c.BootTimeout, qstderr.String())
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}

	var wg sync.WaitGroup
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	wg.Add(4)
	go func() {
		defer wg.Done()
		if err := p.Serve(pctx, conns["net"]); err != nil && pctx.Err() == nil && c.PartnerLogf != nil {
			c.PartnerLogf("partner: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		io.Copy(con, conns["console"])
	}()
	watch := &runWatcher{w: b.out, start: b.start, progressf: c.progressf}
	go func() {
		defer wg.Done()
		io.Copy(watch, conns["out"])
		watch.flush()
	}()
	ctl := newControl(c.ReportDir)
	ctl.watch = newHangWatch(c.HangTimeout, time.Now)
	// The guest's test ends a partner stall early through the control
	// port (guest.ResumePartner): the stalled partner reads nothing from
	// the link, but it is ours.
	ctl.resume = func(nonce string) bool {
		stalled := p.Stalled()
		p.Resume()
		if stalled {
			c.progressf("partner stall ended early at the guest's request (resume %s)", nonce)
		} else {
			c.progressf("the guest asked to resume the partner (resume %s), which was not stalled", nonce)
		}
		return stalled
	}
	go func() {
		defer wg.Done()
		ctl.read(conns["ctl"])
	}()

	bootTimer := time.NewTimer(c.BootTimeout)
	defer bootTimer.Stop()
	// The hang watch arms itself at READY; checking it every second (or
	// more often for a short window) is precise enough.
	hangTick := time.NewTicker(min(time.Second, c.HangTimeout/4))
	defer hangTick.Stop()
	var hangInfo, qemuState string
	var powerOff <-chan time.Time
	hello, exit := ctl.hello, ctl.exit
	var qemuErr error
	bootTimedOut, powerOffTimedOut, hung := false, false, false
	ctxDone := ctx.Done()
	for !qemuDone {
		select {
		case <-hello:
			hello = nil
			bootTimer.Stop()
			r.GuestBootTime = time.Since(qemuStart)
			c.progressf("guest init up %.1fs after QEMU started", r.GuestBootTime.Seconds())
		case <-exit:
			exit = nil
			// The init powers off right after EXIT.
			powerOff = time.After(30 * time.Second)
		case <-powerOff:
			powerOffTimedOut = true
			kill()
		case <-bootTimer.C:
			if hello != nil {
				bootTimedOut = true
				kill()
			}
		case <-hangTick.C:
			if silent, h := ctl.watch.check(); h && !hung {
				hung = true
				hangInfo = ctl.watch.describe()
				c.progressf("the guest made no progress for %v: stopping QEMU", silent.Round(time.Second))
				qemuState = queryMonitor(filepath.Join(b.work, "monitor.sock"), 5*time.Second)
				kill()
			}
		case <-ctxDone:
			ctxDone = nil
			kill()
		case qemuErr = <-exited:
			qemuDone = true
		}
	}
	// QEMU is gone and its ends of the sockets are closed: the readers
	// drain what is buffered (a panic's last lines) and meet EOF. Closing
	// our ends first would throw that away; the deadline only guards
	// against a reader that never ends.
	pcancel()
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		for _, conn := range conns {
			conn.Close()
		}
		<-drained
	}
	r.PartnerStats = p.Stats()
	r.BootTime = watch.bootTime()
	r.ReportFiles = ctl.files
	r.Resumes = ctl.resumes
	r.Heartbeats, r.MaxSilence = ctl.watch.stats()
	if c.ReportDir != "" {
		r.ReportDir = c.ReportDir
	}
	con.close()

	tail := con.tail(30)
	if pl := panicLines(con.String()); pl != "" {
		return fmt.Errorf("%w:\n%s", ErrGuestPanic, pl)
	}
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), ErrRunTimeout) {
			return fmt.Errorf("%w (%v); last console lines:\n%s", ErrRunTimeout, c.Timeout, tail)
		}
		return context.Cause(ctx)
	}
	if bootTimedOut {
		return fmt.Errorf("%w (%v after QEMU started); last console lines:\n%s", ErrBootTimeout, c.BootTimeout, tail)
	}
	if hung {
		return fmt.Errorf("%w for %v: its kernel hung or QEMU stalled; %s; %s; last console lines:\n%s", ErrGuestHung, c.HangTimeout, hangInfo, qemuState, tail)
	}
	code, gotExit := ctl.exitCode()
	if msg := ctl.errorText(); msg != "" {
		return fmt.Errorf("%w: %s; last console lines:\n%s", ErrGuestInit, msg, tail)
	}
	if !gotExit {
		return fmt.Errorf("%w (QEMU: %v %s); last console lines:\n%s", ErrGuestDied, qemuErr, strings.TrimSpace(qstderr.String()), tail)
	}
	if ctl.fileErr != nil {
		return fmt.Errorf("rig: copying report files: %w", ctl.fileErr)
	}
	r.ExitCode = code
	if powerOffTimedOut {
		c.progressf("guest did not power off within 30s of its exit report; QEMU killed")
	}
	return nil
}

// startReaped starts cmd (whose SysProcAttr is qemuProcAttr) and returns a
// channel that receives cmd.Wait's result. The parent-death signal fires
// when the thread that forked the child ends, not the process: the child is
// started from a goroutine locked to its thread, which then waits for it,
// so that thread outlives the child.
func startReaped(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	return exited, <-started
}

// panicLines returns the kernel panic in a console log, with the lines
// before it (the oops and its trace usually precede "Kernel panic"), or "".
func panicLines(console string) string {
	i := strings.Index(console, "Kernel panic - not syncing")
	if i < 0 {
		return ""
	}
	lines := strings.Split(console[:i], "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	rest := console[i:]
	if j := strings.Index(rest, "---[ end Kernel panic"); j >= 0 {
		if k := strings.IndexByte(rest[j:], '\n'); k >= 0 {
			rest = rest[:j+k]
		}
	} else if len(rest) > 4096 {
		rest = rest[:4096]
	}
	return strings.Join(lines, "\n") + rest
}

// console keeps the kernel console: all of it in a file, the last
// consoleMax bytes in memory.
type console struct {
	mu   sync.Mutex
	f    *os.File
	buf  []byte
	done bool
}

const consoleMax = 4 << 20

func newConsole(path string) (*console, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("rig: console log: %w", err)
	}
	return &console{f: f}, nil
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	p = bytes.ReplaceAll(p, []byte("\r"), nil)
	if !c.done {
		c.f.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) > consoleMax {
		c.buf = append([]byte(nil), c.buf[len(c.buf)-consoleMax:]...)
	}
	// All of p was consumed, carriage returns included: io.Copy stops
	// at a short count.
	return n, nil
}

func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.f.Close()
		c.done = true
	}
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

func (c *console) tail(n int) string {
	lines := strings.Split(strings.TrimRight(c.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailBuffer keeps the last 8 KiB written to it (QEMU's own messages).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8192 {
		t.buf = t.buf[len(t.buf)-8192:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// runWatcher passes the guest's test output through and notes the tests
// that start ("=== RUN", with or without test2json's ^V framing).
type runWatcher struct {
	w         io.Writer
	start     time.Time
	progressf func(string, ...any)

	mu    sync.Mutex
	line  []byte
	first time.Time
	n     int
}

func (rw *runWatcher) Write(p []byte) (int, error) {
	rw.mu.Lock()
	for _, c := range p {
		if c == '\n' {
			rw.sawLine(rw.line)
			rw.line = rw.line[:0]
			continue
		}
		if len(rw.line) < 4096 {
			rw.line = append(rw.line, c)
		}
	}
	rw.mu.Unlock()
	if rw.w != nil {
		if _, err := rw.w.Write(p); err != nil {
			// A reader that stops must not stall the guest.
			rw.w = nil
		}
	}
	return len(p), nil
}

func (rw *runWatcher) sawLine(l []byte) {
	l = bytes.TrimPrefix(l, []byte{0x16})
	name, ok := bytes.CutPrefix(l, []byte("=== RUN"))
	if !ok {
		return
	}
	rw.n++
	if rw.first.IsZero() {
		rw.first = time.Now()
		rw.progressf("first test running in the guest %.1fs after start", rw.first.Sub(rw.start).Seconds())
	}
	rw.progressf("running test %d: %s", rw.n, strings.TrimSpace(string(name)))
}

func (rw *runWatcher) flush() {
	if w, ok := rw.w.(interface{ Flush() error }); ok {
		w.Flush()
	}
}

func (rw *runWatcher) bootTime() time.Duration {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.first.IsZero() {
		return 0
	}
	return rw.first.Sub(rw.start)
}

// control reads the guest init's control lines.
type control struct {
	reportDir   string
	hello, exit chan struct{}
	// watch, if set, hears every line and the heartbeats.
	watch *hangWatch
	// resume ends the partner's stall and reports whether there was one;
	// nil ignores RESUME lines.
	resume func(nonce string) bool

	mu      sync.Mutex
	code    int
	gotExit bool
	errs    []string
	files   []string
	fileErr error
	resumes []ResumeRequest
}

func newControl(reportDir string) *control {
	return &control{reportDir: reportDir, hello: make(chan struct{}), exit: make(chan struct{})}
}

func (c *control) read(r io.Reader) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	var (
		file    *os.File
		name    string
		b64     strings.Builder
		inFile  bool
		helloed bool
	)
	for s.Scan() {
		line := strings.TrimRight(s.Text(), "\r")
		c.watch.line()
		if inFile && !strings.HasPrefix(line, guestproto.Prefix) {
			b64.WriteString(strings.TrimSpace(line))
			continue
		}
		rest, ok := strings.CutPrefix(line, guestproto.Prefix)
		if !ok {
			continue
		}
		verb, arg, _ := strings.Cut(rest, " ")
		switch verb {
		case guestproto.Hello:
			if !helloed {
				helloed = true
				close(c.hello)
			}
		case guestproto.Ready:
			c.watch.arm()
		case guestproto.Alive:
			// A malformed heartbeat is still a sign of life (the line).
			if hb, err := guestproto.ParseHeartbeat(arg); err == nil {
				c.watch.beat(hb)
			}
		case guestproto.Resume:
			nonce := strings.TrimSpace(arg)
			stalled := false
			if c.resume != nil {
				stalled = c.resume(nonce)
			}
			c.mu.Lock()
			c.resumes = append(c.resumes, ResumeRequest{Nonce: nonce, At: time.Now(), Stalled: stalled})
			c.mu.Unlock()
		case guestproto.File:
			_, n, _ := strings.Cut(arg, " ")
			name, inFile = n, true
			b64.Reset()
		case guestproto.EndFile:
			inFile = false
			c.saveFile(name, b64.String())
		case guestproto.Error:
			c.mu.Lock()
			c.errs = append(c.errs, arg)
			c.mu.Unlock()
		case guestproto.Exit:
			n, err := strconv.Atoi(strings.TrimSpace(arg))
			if err != nil {
				n = guestproto.ExitInitFailed
			}
			c.mu.Lock()
			if !c.gotExit {
				c.code, c.gotExit = n, true
				close(c.exit)
			}
			c.watch.disarm()
			c.mu.Unlock()
		}
	}
	_ = file
}

func (c *control) saveFile(name, b64 string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		c.fileErr = errors.Join(c.fileErr, fmt.Errorf("%s: %w", name, err))
		return
	}
	clean := filepath.Clean("/" + name)[1:]
	if clean == "" || clean == "console.log" {
		c.fileErr = errors.Join(c.fileErr, fmt.Errorf("report file name %q refused", name))
		return
	}
	c.files = append(c.files, clean)
	if c.reportDir == "" {
		return
	}
	dst := filepath.Join(c.reportDir, clean)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		c.fileErr = errors.Join(c.fileErr, err)
		return
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		c.fileErr = errors.Join(c.fileErr, err)
	}
}

func (c *control) exitCode() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.gotExit
}

func (c *control) errorText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "; ")
}

// accel resolves Config.Accel: "auto" becomes "kvm" when /dev/kvm opens and
// a probe boot with KVM succeeds (the result is cached per kernel), else
// "tcg".
func (c Config) accel(ctx context.Context, qemu, image, work string) (string, error) {
	switch c.Accel {
	case "tcg":
		return "tcg", nil
	case "kvm":
		if err := kvmUsable(); err != nil {
			return "", fmt.Errorf("rig: KVM asked for but %w", err)
		}
		return "kvm", nil
	}
	if kvmUsable() != nil {
		return "tcg", nil
	}
	ok, err := kvmProbe(ctx, c, qemu, image, work)
	if err != nil {
		return "", err
	}
	if ok {
		return "kvm", nil
	}
	c.progressf("KVM probe boot failed: using TCG")
	return "tcg", nil
}

func kvmUsable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("/dev/kvm is not usable: %w", err)
	}
	f.Close()
	return nil
}

// guestEnv appends the caller's extra items to the rig's own guest
// environment, refusing a malformed item and one that would override a
// key the rig sets.
func guestEnv(own, extra []string) ([]string, error) {
	keys := map[string]bool{}
	for _, kv := range own {
		k, _, _ := strings.Cut(kv, "=")
		keys[k] = true
	}
	out := append([]string(nil), own...)
	for _, kv := range extra {
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "" || strings.ContainsAny(kv, "\x00\n"):
			return nil, fmt.Errorf("rig: guest environment item %q: want KEY=value on one line", kv)
		case keys[k]:
			return nil, fmt.Errorf("rig: guest environment item %s: the rig sets %s for its guest itself", kv, k)
		}
		keys[k] = true
		out = append(out, kv)
	}
	return out, nil
}
