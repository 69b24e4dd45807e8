package faultinject

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Lock makes this process the one owner of iface until release is called
// or the process ends: an exclusive flock(2) on StateDir/IFACE.lock, with
// the owner's pid and command line written in it. The kernel drops the
// lock when the process dies, however it dies, so a lock is never stale;
// the file a killed owner leaves is unlocked, and the next Lock or Cleanup
// takes it over. Another owner's lock, in this process or another, makes
// Lock fail with an error wrapping ErrBusy that names the owner.
//
// Every injector takes the lock of the interfaces it changes in Inject and
// releases it in Restore; the CLI's pktgen and flood commands take it for
// their whole run. Locks are by interface name, as state files are, so
// interfaces of the same name in two namespaces share one.
func Lock(iface string, o Options) (release func(), err error) {
	release, w, err := tryLock(iface, o)
	if w != nil {
		return nil, busyError(iface, *w)
	}
	return release, err
}

// tryLock is Lock, with the owner when another holds the lock.
func tryLock(iface string, o Options) (release func(), busy *owner, err error) {
	if err := validIfaceName(iface); err != nil {
		return nil, nil, err
	}
	dir := o.stateDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	p := lockPath(o, iface)
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("lock file: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			b, _ := os.ReadFile(p)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				w := parseOwner(b)
				return nil, &w, nil
			}
			return nil, nil, fmt.Errorf("locking %s: %w", p, os.NewSyscallError("flock", err))
		}
		// An owner that released the lock removed the file between our
		// open and flock: ours is then an orphan, and locks nothing.
		if !samePath(f, p) {
			f.Close()
			continue
		}
		if err := writeOwner(f); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("lock file %s: %w", p, err)
		}
		return sync.OnceFunc(func() {
			// Removed while still locked, so that nobody takes over a
			// file that is about to go.
			os.Remove(p)
			f.Close()
		}), nil, nil
	}
}

func lockPath(o Options, iface string) string {
	return filepath.Join(o.stateDir(), iface+".lock")
}

// samePath reports whether f is still the file at p.
func samePath(f *os.File, p string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Stat(p)
	return err == nil && os.SameFile(fi, pi)
}

func writeOwner(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(fmt.Sprintf("%d\n%s\n", os.Getpid(), procCommand(os.Getpid()))), 0)
	return err
}

// parseOwner reads a lock file: the pid on the first line, the command
// line on the second.
func parseOwner(b []byte) owner {
	pid, cmd, _ := strings.Cut(string(b), "\n")
	n, err := strconv.Atoi(strings.TrimSpace(pid))
	if err != nil || n <= 0 {
		return owner{}
	}
	return owner{PID: n, Command: strings.TrimSpace(cmd)}
}

func busyError(iface string, w owner) error {
	return fmt.Errorf("%w: %s is in use by %s", ErrBusy, iface, w)
}

// liveOwner returns pid's owner record when pid is a running process.
func liveOwner(pid int) (owner, bool) {
	if !processAlive(pid) {
		return owner{}, false
	}
	return owner{PID: pid, Command: procCommand(pid)}, true
}

// procCommand is pid's command line, arguments separated by spaces, or ""
// when it cannot be read. It is capped, since it goes into one-line
// errors.
func procCommand(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// heldLocks are the locks an injector took in Inject, kept until nothing
// it changed is left (Restore done, or Inject failed without a trace).
type heldLocks struct{ release []func() }

// take locks each of ifaces, all or none.
func (h *heldLocks) take(o Options, ifaces ...string) error {
	for _, iface := range ifaces {
		r, err := Lock(iface, o)
		if err != nil {
			h.releaseIf(true)
			return err
		}
		h.release = append(h.release, r)
	}
	return nil
}

// releaseIf releases every lock held when done is true.
func (h *heldLocks) releaseIf(done bool) {
	if !done {
		return
	}
	for _, r := range h.release {
		r()
	}
	h.release = nil
}
