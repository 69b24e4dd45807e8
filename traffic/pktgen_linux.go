package traffic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"txtimeout/internal/pktgenproc"
)

// pktgenRoot is where the kernel's pktgen lives.
const pktgenRoot = pktgenproc.Dir

// enotsupp is the kernel-internal ENOTSUPP (524) that pktgen returns for
// clone_skb or burst on a device that cannot share skbs; it leaks to user
// space as is.
const enotsupp = unix.Errno(524)

// PktgenError is a pktgen write that failed or whose Result line is not OK.
type PktgenError struct {
	File    string // file under /proc/net/pktgen, e.g. "kpktgend_0" or "eth0@0"
	Command string // what was written, e.g. "flag QUEUE_MAP_CPU"
	Result  string // the first line of the kernel's Result, if any
	Err     error  // the write's error, or nil when only the Result line failed
}

func (e *PktgenError) Error() string {
	msg := fmt.Sprintf("pktgen: %s: %q", e.File, e.Command)
	if e.Result != "" {
		msg += ": " + e.Result
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *PktgenError) Unwrap() error { return e.Err }

// Is maps ENOTSUPP and EOPNOTSUPP to ErrNotSupported (and so to
// errors.ErrUnsupported), and ENODEV (an add_device of a device that does
// not exist) to os.ErrNotExist.
func (e *PktgenError) Is(target error) bool {
	switch target {
	case ErrNotSupported, errors.ErrUnsupported:
		return errors.Is(e.Err, enotsupp) || errors.Is(e.Err, unix.EOPNOTSUPP)
	case os.ErrNotExist:
		return errors.Is(e.Err, unix.ENODEV)
	}
	return false
}

// pktgenFS is the seam between the driver and /proc/net/pktgen, so that
// unit tests run against a fake kernel.
type pktgenFS interface {
	// write writes cmd plus a newline to the named file in one write(2).
	write(name, cmd string) error
	// read returns the named file's content.
	read(name string) (string, error)
	// exists reports whether the named file exists.
	exists(name string) (bool, error)
}

// procFS is the real pktgenFS under root.
type procFS struct{ root string }

func (p procFS) write(name, cmd string) error {
	f, err := os.OpenFile(filepath.Join(p.root, name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	b := []byte(cmd + "\n")
	var n int
	var werr error
	// One write(2): pktgen parses each write as one command, so the
	// retry-on-short-write of os.File.Write would send a second, bogus one.
	if err := rc.Write(func(fd uintptr) bool {
		n, werr = unix.Write(int(fd), b)
		return werr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if n != len(b) {
		return fmt.Errorf("short write: %d of %d bytes taken", n, len(b))
	}
	return nil
}

func (p procFS) read(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(p.root, name))
	return string(b), err
}

func (p procFS) exists(name string) (bool, error) {
	_, err := os.Stat(filepath.Join(p.root, name))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, err
}

var pktgenProbe struct {
	sync.Mutex
	done bool
	err  error
}

// PktgenAvailable reports whether pktgen can be used: nil if it can, an
// error matching ErrNotSupported if the kernel has no pktgen
// (CONFIG_NET_PKTGEN, net/core/pktgen.c, any kernel since 2.6), any other
// error if the probe was inconclusive. When /proc/net/pktgen is absent it
// loads the module, with modprobe when there is one, else from
// /lib/modules/$(uname -r) with finit_module(2) (compressed modules need
// CONFIG_MODULE_DECOMPRESS). Conclusive answers are cached.
func PktgenAvailable() error {
	pktgenProbe.Lock()
	defer pktgenProbe.Unlock()
	if pktgenProbe.done {
		return pktgenProbe.err
	}
	err := probePktgen(procFS{pktgenRoot}, loadPktgenModule)
	if err == nil || errors.Is(err, ErrNotSupported) {
		pktgenProbe.done, pktgenProbe.err = true, err
	}
	return err
}

func probePktgen(fs pktgenFS, load func() error) error {
	ok, err := fs.exists("pgctrl")
	if err != nil {
		return fmt.Errorf("pktgen: %w", err)
	}
	if ok {
		return nil
	}
	if err := load(); err != nil {
		return err
	}
	ok, err = fs.exists("pgctrl")
	if err != nil {
		return fmt.Errorf("pktgen: %w", err)
	}
	if !ok {
		return fmt.Errorf("pktgen: module loaded but %s/pgctrl is missing: %w", pktgenRoot, ErrNotSupported)
	}
	return nil
}

// loadPktgenModule loads pktgen with modprobe, or with finit_module(2) from
// the module tree when modprobe is missing or fails.
func loadPktgenModule() error {
	var why []string
	if path, err := exec.LookPath("modprobe"); err == nil {
		out, err := exec.Command(path, "pktgen").CombinedOutput()
		if err == nil {
			return nil
		}
		why = append(why, fmt.Sprintf("modprobe pktgen: %s", strings.TrimSpace(firstLine(string(out)))))
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("pktgen: uname: %w", err)
	}
	rel := unix.ByteSliceToString(uts.Release[:])
	for _, dir := range []string{filepath.Join("/lib/modules", rel, "kernel/net/core"), filepath.Join("/lib/modules", rel)} {
		for _, name := range []string{"pktgen.ko", "pktgen.ko.xz", "pktgen.ko.zst", "pktgen.ko.gz"} {
			p := filepath.Join(dir, name)
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			flags := 0
			if name != "pktgen.ko" {
				flags = unix.MODULE_INIT_COMPRESSED_FILE
			}
			err = unix.FinitModule(int(f.Fd()), "", flags)
			f.Close()
			switch {
			case err == nil, errors.Is(err, unix.EEXIST):
				return nil
			case errors.Is(err, unix.EPERM):
				return fmt.Errorf("pktgen: load %s: %w (run as root)", p, os.ErrPermission)
			}
			return fmt.Errorf("pktgen: load %s: %w", p, err)
		}
	}
	why = append(why, "no pktgen.ko under /lib/modules/"+rel)
	return fmt.Errorf("pktgen: no %s and %s (kernel needs CONFIG_NET_PKTGEN): %w", pktgenRoot, strings.Join(why, "; "), ErrNotSupported)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// RunPktgen configures every device of c (checking each write by the
// Result line the kernel leaves in the file), starts them together, and
// stops them at the end of ctx unless they all reach their count first.
// A device that it stopped while its Result still read "Starting" gives a
// Partial result (its pkts-sofar and errors, no rates) rather than an
// error. It
// always removes its devices and resets pktgen before it returns. A device
// with Count 0 runs until stopped, so it needs a ctx with a deadline; with
// counts only and no deadline, the run is stopped after MaxUnboundedTime,
// since a stalled device may never let pktgen reach its count.
func RunPktgen(ctx context.Context, c PktgenConfig) (PktgenResult, error) {
	if err := c.Validate(); err != nil {
		return PktgenResult{}, err
	}
	if err := PktgenAvailable(); err != nil {
		return PktgenResult{}, err
	}
	return pktgenDriver{fs: procFS{pktgenRoot}, stopWait: 30 * time.Second}.run(ctx, c)
}

// pktgenDriver runs pktgen over a pktgenFS.
type pktgenDriver struct {
	fs pktgenFS
	// stopWait bounds the wait for "start" to return after "stop".
	stopWait time.Duration
}

// check writes cmd to the named file and checks the Result line.
func (p pktgenDriver) check(name, cmd string) error {
	werr := p.fs.write(name, cmd)
	content, rerr := p.fs.read(name)
	line, _, _ := resultLine(content)
	if werr != nil {
		return &PktgenError{File: name, Command: cmd, Result: line, Err: werr}
	}
	if rerr != nil {
		return &PktgenError{File: name, Command: cmd, Err: fmt.Errorf("read back: %w", rerr)}
	}
	if !strings.HasPrefix(line, "OK") {
		if line == "" {
			line = "no Result line"
		}
		return &PktgenError{File: name, Command: cmd, Result: line}
	}
	return nil
}

func (p pktgenDriver) run(ctx context.Context, c PktgenConfig) (res PktgenResult, err error) {
	if err := c.Validate(); err != nil {
		return res, err
	}
	if _, ok := ctx.Deadline(); !ok {
		if slices.ContainsFunc(c.Devices, func(d PktgenDevice) bool { return d.Count == 0 }) {
			return res, errors.New("pktgen: unbounded: a device has count 0 (until stopped) and the context has no deadline")
		}
		// A stalled device may never let pktgen reach its count.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, MaxUnboundedTime)
		defer cancel()
	}
	var threads []int
	for _, d := range c.Devices {
		if !slices.Contains(threads, d.Thread) {
			threads = append(threads, d.Thread)
		}
		ok, err := p.fs.exists(pktgenproc.ThreadFile(d.Thread))
		if err != nil {
			return res, fmt.Errorf("pktgen: %w", err)
		}
		if !ok {
			return res, fmt.Errorf("pktgen: no thread %d (%s/%s missing: fewer CPUs online)", d.Thread, pktgenRoot, pktgenproc.ThreadFile(d.Thread))
		}
	}
	// Start from a clean state: an earlier run may have crashed with
	// devices still attached.
	if err := p.fs.write("pgctrl", "reset"); err != nil {
		return res, &PktgenError{File: "pgctrl", Command: "reset", Err: err}
	}
	defer func() {
		var errs []error
		for _, t := range threads {
			if e := p.check(pktgenproc.ThreadFile(t), "rem_device_all"); e != nil {
				errs = append(errs, e)
			}
		}
		if e := p.fs.write("pgctrl", "reset"); e != nil {
			errs = append(errs, &PktgenError{File: "pgctrl", Command: "reset", Err: e})
		}
		if err == nil && len(errs) > 0 {
			err = fmt.Errorf("pktgen: cleanup: %w", errors.Join(errs...))
		}
	}()
	for _, d := range c.Devices {
		if err := p.check(pktgenproc.ThreadFile(d.Thread), "add_device "+d.name()); err != nil {
			return res, err
		}
		for _, cmd := range d.commands() {
			if err := p.check(d.name(), cmd); err != nil {
				return res, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("pktgen: not started: %w", err)
	}
	// Writing "start" blocks in the kernel until every device reaches its
	// count or "stop" is written.
	started := make(chan error, 1)
	go func() { started <- p.fs.write("pgctrl", "start") }()
	var startErr error
	stopped := false
	select {
	case startErr = <-started:
	case <-ctx.Done():
		stopped = true
		stopErr := p.fs.write("pgctrl", "stop")
		t := time.NewTimer(p.stopWait)
		defer t.Stop()
		select {
		case startErr = <-started:
		case <-t.C:
			return res, fmt.Errorf("pktgen: start still running %v after stop (stop: %v)", p.stopWait, stopErr)
		}
	}
	if startErr != nil {
		return res, &PktgenError{File: "pgctrl", Command: "start", Err: startErr}
	}
	for _, d := range c.Devices {
		content, err := p.fs.read(d.name())
		if err != nil {
			return res, fmt.Errorf("pktgen: read %s: %w", d.name(), err)
		}
		tr, err := ParsePktgenResult(content)
		// A device that was stopped before it could finish (its queue
		// frozen by the fault under test) still reads "Starting": its
		// counters so far are the result.
		if err != nil && !(stopped && errors.Is(err, errNotFinal)) {
			return res, fmt.Errorf("pktgen: %s: %w", d.name(), err)
		}
		tr.Thread, tr.Iface = d.Thread, d.Iface
		res.Threads = append(res.Threads, tr)
	}
	res.sum()
	return res, nil
}
