package rig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"txtimeout/rig/internal/guestproto"
)

// bootMu makes a process's boots take turns; lockBoot adds the machine's
// other processes (go test ./... runs packages side by side).
var bootMu sync.Mutex

// lockBoot waits, until ctx ends, for this process's and then the
// machine's boot lock (a flock on boot.lock in the rig's cache): two
// guests on the same few CPUs under TCG skew each other's timing
// (measured: a shared boot's PartnerStall lost its stall beside another
// boot). The kernel drops the flock when its holder dies.
func lockBoot(ctx context.Context, c Config) (unlock func(), err error) {
	if !bootMu.TryLock() {
		c.progressf("waiting for this process's other rig boot to end")
		locked := make(chan struct{})
		go func() { bootMu.Lock(); close(locked) }()
		select {
		case <-locked:
		case <-ctx.Done():
			go func() { <-locked; bootMu.Unlock() }()
			return nil, fmt.Errorf("waiting for this process's other rig boot: %w", context.Cause(ctx))
		}
	}
	dir, err := CacheDir()
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(filepath.Join(dir, "boot.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	}
	if err != nil {
		bootMu.Unlock()
		return nil, fmt.Errorf("the rig's boot lock: %w", err)
	}
	said := false
	pace := time.NewTicker(200 * time.Millisecond)
	defer pace.Stop()
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			break
		} else if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			bootMu.Unlock()
			return nil, fmt.Errorf("the rig's boot lock %s: %w", f.Name(), err)
		}
		if !said {
			c.progressf("waiting for another process's rig boot to end (%s)", f.Name())
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			bootMu.Unlock()
			return nil, fmt.Errorf("waiting for another process's rig boot: %w", context.Cause(ctx))
		case <-pace.C:
		}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		bootMu.Unlock()
	}, nil
}

// Run boots the guest with testBinary (a static linux/amd64 test binary,
// e.g. from `go test -c` with CGO_ENABLED=0) and runs it with args. The
// binary's output is copied to out as it arrives. Run returns an error only
// when the rig itself failed (QEMU missing, a module missing, no boot, a
// panic, the deadline); the tests' own verdict is Result.ExitCode.
//
// A run that fails, the rig's or the tests', keeps its work directory
// (initramfs, console.log) in Result.WorkDir; the rig's error is then a
// *RunError, which names it, the console log and the QEMU command line.
// A process runs one boot at a time: a second Run waits for the first.
func Run(ctx context.Context, c Config, testBinary string, args []string, out io.Writer) (*Result, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	// The run's deadline covers the wait for the boot lock too.
	ctx, cancel := context.WithTimeoutCause(ctx, c.Timeout, ErrRunTimeout)
	defer cancel()
	r := &Result{NIC: c.NIC, Topology: c.Topology, ModParams: c.ModParams}
	unlock, err := lockBoot(ctx, c)
	if err != nil {
		return r, err
	}
	defer unlock()
	start := time.Now()
	h, err := c.resolveHost(ctx, testBinary)
	if err != nil {
		return r, err
	}
	r.Kernel = h.ix.release
	err = inWorkDir(c, r, func(work string) error {
		b, err := h.newBoot(ctx, c, work, testBinary, args)
		if err != nil {
			return err
		}
		b.out, b.start = out, start
		return b.run(ctx, r)
	})
	return r, err
}

// host is what a run needs of this machine: QEMU with the NIC models, the
// kernel, and the modules to load with their parameters.
type host struct {
	qemu, image string
	nics        []NICModel
	ix          *moduleIndex
	mods        []kmod
	params      map[string]string
}

// resolveHost finds QEMU, the kernel (fetching the pinned one) and the
// modules, before anything is built.
func (c Config) resolveHost(ctx context.Context, testBinary string) (*host, error) {
	qemu, nics, err := c.findQEMU(ctx)
	if err != nil {
		return nil, err
	}
	for _, nic := range nics {
		if nic.Note != "" {
			c.progressf("NIC %s: %s", nic.Name, nic.Note)
		}
	}
	if st, err := os.Stat(testBinary); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("rig: test binary %s: not a regular file", testBinary)
	}
	image, modDir := c.Kernel, c.Modules
	if image == "" {
		k, err := FetchKernel(ctx, c.progressf)
		if err != nil {
			return nil, err
		}
		image, modDir = k.Image, k.Modules
	} else if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKernelMissing, err)
	}
	ix, err := loadModuleIndex(modDir)
	if err != nil {
		return nil, err
	}
	want, reasons := wantedModules(nics, c.ExtraModules)
	mods, err := ix.resolve(want, reasons)
	if err != nil {
		return nil, err
	}
	params, err := moduleParams(c.ModParams, mods, ix)
	if err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	return &host{qemu: qemu, image: image, nics: nics, ix: ix, mods: mods, params: params}, nil
}

// findQEMU finds qemu-system-x86_64 and checks that it has the NIC models.
func (c Config) findQEMU(ctx context.Context) (string, []NICModel, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", nil, ErrQEMUMissing
	}
	nics := c.nicModels()
	for _, nic := range nics {
		if err := checkQEMUDevice(ctx, qemu, nic.Name); err != nil {
			if nic.Note != "" {
				err = fmt.Errorf("%w (%s)", err, nic.Note)
			}
			return "", nil, err
		}
	}
	return qemu, nics, nil
}

// newBoot builds the guest init into work and makes the guest's
// configuration and initramfs files.
func (h *host) newBoot(ctx context.Context, c Config, work, testBinary string, args []string) (*boot, error) {
	c.progressf("building initramfs (%s, %d modules, %s)", h.ix.release, len(h.mods), filepath.Base(testBinary))
	initBin := filepath.Join(work, "init")
	if err := buildGuestInit(ctx, initBin); err != nil {
		return nil, err
	}
	gc := guestproto.Config{
		CrashForTest:         c.crashForTest,
		FreezeHeartbeatAfter: c.freezeHeartbeatAfter,
		Args:                 args,
	}
	links := c.links()
	for _, l := range links {
		gc.NICs = append(gc.NICs, l.guestNIC())
	}
	env, err := guestEnv(guestOwnEnv(c, h.ix.release), c.GuestEnv)
	if err != nil {
		return nil, err
	}
	gc.Env = env
	files := []initramfsFile{
		{Name: "init", Path: initBin, Mode: 0o755},
		{Name: strings.TrimPrefix(guestproto.TestPath, "/"), Path: testBinary, Mode: 0o755},
	}
	for _, m := range h.mods {
		p := path.Join(guestproto.ModuleDir, m.Name+".ko")
		gc.Modules = append(gc.Modules, guestproto.ModuleFile{Name: m.Name, Path: p, Params: h.params[m.Name]})
		files = append(files, initramfsFile{Name: strings.TrimPrefix(p, "/"), Data: m.Data, Mode: 0o644})
	}
	accel, err := c.accel(ctx, h.qemu, h.image, work)
	if err != nil {
		return nil, err
	}
	return &boot{c: c, qemu: h.qemu, image: h.image, accel: accel, links: links, work: work, gc: gc, files: files}, nil
}

// guestOwnEnv is the environment the rig sets for its guest's tests: the
// rig's DUT, eth0, or on the loop topology hardware mode (LoopEnv).
func guestOwnEnv(c Config, release string) []string {
	env := []string{
		"TXTIMEOUT_RIG=1",
		"TXTIMEOUT_IFACE=" + DUTIface,
		"TXTIMEOUT_PEER_IP=" + PeerIP.String(),
		"TXTIMEOUT_PEER_MAC=" + PeerMAC.String(),
		"TXTIMEOUT_PARTNER=inband",
	}
	if c.Topology == TopologyLoop {
		env = LoopEnv()
	}
	return append(env,
		"TXTIMEOUT_NIC="+c.NIC,
		"TXTIMEOUT_MODPARAMS="+strings.Join(c.ModParams, " "),
		"TXTIMEOUT_EXTRA_MODULES="+strings.Join(c.ExtraModules, " "),
		"TXTIMEOUT_REPORT_DIR="+guestproto.ReportDir,
		"TXTIMEOUT_KERNEL_RELEASE="+release,
	)
}

// inWorkDir runs fn in a new work directory. It removes the directory
// afterwards unless c.Keep is set or the run failed (fn's error, or the
// guest's tests): then Result.WorkDir names it, and fn's error becomes a
// RunError that says where the evidence is.
func inWorkDir(c Config, r *Result, fn func(work string) error) error {
	work, err := os.MkdirTemp("", "txtimeout-rig-")
	if err != nil {
		return err
	}
	err = fn(work)
	if !c.Keep && err == nil && r.ExitCode == 0 {
		os.RemoveAll(work)
		return nil
	}
	r.WorkDir = work
	c.progressf(progressKept, work)
	if err != nil {
		return &RunError{Err: err, Evidence: r.Evidence()}
	}
	return nil
}

// RunError is a failed run's error: the cause (for errors.Is and
// errors.As), then where the evidence is.
type RunError struct {
	Err error
	// Evidence is Result.Evidence of the run.
	Evidence string
}

func (e *RunError) Error() string { return e.Err.Error() + "\n" + e.Evidence }

func (e *RunError) Unwrap() error { return e.Err }

// Evidence says where a kept run's evidence is, in lines to paste: the
// work directory, the console log, the QEMU command line. It is "" when
// the work directory was removed.
func (r *Result) Evidence() string {
	if r == nil || r.WorkDir == "" {
		return ""
	}
	lines := []string{"rig: " + fmt.Sprintf(progressKept, r.WorkDir)}
	if r.ConsoleLogPath != "" {
		con := filepath.Join(r.WorkDir, "console.log")
		if r.ConsoleLogPath != con {
			con += ", copied to " + r.ConsoleLogPath
		}
		lines = append(lines, "rig: console log: "+con)
	}
	if len(r.QEMUCommand) > 0 {
		lines = append(lines, "rig: QEMU command line: "+CmdlineQuoted(r.QEMUCommand))
	}
	return strings.Join(lines, "\n")
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
	if _, _, err := c.findQEMU(ctx); err != nil {
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
