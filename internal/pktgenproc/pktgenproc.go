// Package pktgenproc reads the thread files of the kernel's packet
// generator, /proc/net/pktgen/kpktgend_N (Documentation/networking/pktgen.rst).
//
// It is the project's one parser of those files: traffic drives pktgen,
// faultinject removes the devices a killed run left, and the scenarios
// check that none is left. It has no dependencies, so each of them can
// import it.
package pktgenproc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Dir is /proc/net/pktgen as the process sees it: /proc/net follows the
// network namespace of the process's main thread.
const Dir = "/proc/net/pktgen"

// ThreadSelfDir is /proc/net/pktgen as the calling thread sees it, for
// code running on a thread moved into another network namespace.
const ThreadSelfDir = "/proc/thread-self/net/pktgen"

// maxThreadFile caps what ParseThread looks at: a thread file lists at
// most a few devices per line.
const maxThreadFile = 64 << 10

// Thread is one kernel thread's devices.
type Thread struct {
	Path             string   // the thread file, DIR/kpktgend_N
	Running, Stopped []string // devices, as IFACE or IFACE@TAG
}

// Name is the thread file's name, kpktgend_N.
func (t Thread) Name() string { return filepath.Base(t.Path) }

// Devices lists the thread's devices, the running ones first.
func (t Thread) Devices() []string {
	return append(append([]string(nil), t.Running...), t.Stopped...)
}

// ThreadFile names thread n's file.
func ThreadFile(n int) string { return fmt.Sprintf("kpktgend_%d", n) }

// ParseThread parses a thread file, pktgen_thread_show's format
// (net/core/pktgen.c):
//
//	Running: DEV ...
//	Stopped: DEV ...
//	Result: ...
func ParseThread(s string) (running, stopped []string) {
	if len(s) > maxThreadFile {
		s = s[:maxThreadFile]
	}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(name) {
		case "Running":
			running = append(running, strings.Fields(rest)...)
		case "Stopped":
			stopped = append(stopped, strings.Fields(rest)...)
		}
	}
	return running, stopped
}

// Threads reads every thread file under dir (Dir or ThreadSelfDir, or a
// fake one in tests), in thread order. A kernel without pktgen (no dir)
// has none: nil and no error.
func Threads(dir string) ([]Thread, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "kpktgend_*"))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(paths, threadCmp)
	var out []Thread
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the module went away meanwhile
		}
		if err != nil {
			return out, fmt.Errorf("pktgen: %w", err)
		}
		t := Thread{Path: p}
		t.Running, t.Stopped = ParseThread(string(b))
		out = append(out, t)
	}
	return out, nil
}

// threadCmp orders kpktgend_2 before kpktgend_10.
func threadCmp(a, b string) int {
	a, b = filepath.Base(a), filepath.Base(b)
	if c := len(a) - len(b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// Devices lists every device of every thread under dir as
// "kpktgend_N: DEV", sorted: what is left when nothing should be.
func Devices(dir string) ([]string, error) {
	ths, err := Threads(dir)
	var out []string
	for _, t := range ths {
		for _, d := range t.Devices() {
			out = append(out, t.Name()+": "+d)
		}
	}
	slices.Sort(out)
	return out, err
}

// On reports whether the device dev (IFACE or IFACE@TAG) sends on iface.
func On(dev, iface string) bool {
	return dev == iface || strings.HasPrefix(dev, iface+"@")
}

// Tagged reports whether dev has an @TAG, the form in which this project
// adds every device (IFACE@THREAD).
func Tagged(dev string) bool { return strings.Contains(dev, "@") }

// RunningOn reports whether a thread under dir is sending on iface.
func RunningOn(dir, iface string) (bool, error) {
	ths, err := Threads(dir)
	for _, t := range ths {
		for _, d := range t.Running {
			if On(d, iface) {
				return true, err
			}
		}
	}
	return false, err
}
