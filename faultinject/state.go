package faultinject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stateVersion is the version of the state file format. Version 2 records
// the namespace of the interface whose flow control a PAUSE flood changed
// (savedPause.NetNS); in version 1 that interface was in the partner
// port's namespace (state.NetNS), and parseState reads it so. A version-1
// reader refuses a version-2 file rather than restore flow control in the
// wrong namespace.
const stateVersion = 2

// state is what an injector is about to change, written before it changes
// it. It is everything Cleanup needs to restore the interface in another
// process after a crash.
type state struct {
	Version  int       `json:"version"`
	Injector string    `json:"injector"` // netem, stall, pause
	Iface    string    `json:"iface"`
	Ifindex  int       `json:"ifindex"`
	NetNS    string    `json:"netns,omitempty"`
	PID      int       `json:"pid"`
	Created  time.Time `json:"created"`

	// Netem: the root qdisc found before (nil: the device's default,
	// which comes back by itself) and the handle installed.
	Saved       *savedQdisc `json:"saved_qdisc,omitempty"`
	QdiscHandle uint32      `json:"qdisc_handle,omitempty"`

	// Stall: when the partner resumes by itself.
	StallUntil time.Time `json:"stall_until,omitzero"`

	// Pause: the DUT's flow control found before, when it is changed.
	FlowControl *savedPause `json:"flow_control,omitempty"`
	PauseUntil  time.Time   `json:"pause_until,omitzero"`

	// Napi: what a NAPI starvation changed, each part recorded before
	// it is changed.
	Napi *savedNapi `json:"napi,omitempty"`
}

// startInject is the check every Inject begins with, under the
// injector's mutex: a second Inject is refused (what names the fault,
// "netem on eth0"), and so is a ctx that has already ended.
func startInject(ctx context.Context, st *state, what string) error {
	if st != nil {
		return fmt.Errorf("%s already injected", what)
	}
	return ctx.Err()
}

// savedNapi is what NapiStarve changes and Cleanup puts back, in the
// order Cleanup follows: the hog is killed first, then the RT throttling
// sysctl, the threads' policies and affinities, and threaded last (it
// takes rtnl, which a pending driver reset may hold while the hog runs).
type savedNapi struct {
	CPU int `json:"cpu"`
	// Threaded is the interface's /sys/class/net/IFACE/threaded as found
	// ("0" or "1"); "" when it was not read yet.
	Threaded string `json:"threaded,omitempty"`
	// RTRuntime is /proc/sys/kernel/sched_rt_runtime_us as found; ""
	// until it is about to be changed.
	RTRuntime string `json:"rt_runtime_us,omitempty"`
	// Threads are the NAPI kthreads and the hogged CPU's ksoftirqd, as
	// found.
	Threads []savedThread `json:"threads,omitempty"`
	// Hog identifies the hog process: its pid and start time (so that a
	// reused pid is never killed).
	HogPID   int    `json:"hog_pid,omitempty"`
	HogStart uint64 `json:"hog_start,omitempty"`
	// Until is when the hog ends by itself at the latest.
	Until time.Time `json:"until,omitzero"`
}

// savedThread is a kernel thread's scheduling as found.
type savedThread struct {
	PID   int    `json:"pid"`
	Name  string `json:"name"`
	Start uint64 `json:"start"` // /proc/PID/stat starttime, the thread's identity with PID
	CPUs  string `json:"cpus"`  // affinity, as a CPU list
	// Policy, Priority and Nice are sched_getattr's.
	Policy   uint32 `json:"policy"`
	Priority uint32 `json:"priority"`
	Nice     int32  `json:"nice"`
}

// savedQdisc is an explicitly configured root qdisc, kept as the kernel
// dumped it so that it can be re-created as it was.
type savedQdisc struct {
	Kind    string `json:"kind"`
	Handle  uint32 `json:"handle"`
	Options []byte `json:"options,omitempty"` // TCA_OPTIONS as dumped
}

func (s *savedQdisc) String() string {
	if s == nil {
		return "the default qdisc"
	}
	return fmt.Sprintf("%s %s", s.Kind, fmtHandle(s.Handle))
}

// savedPause is an interface's pause (flow control) setting.
type savedPause struct {
	Iface   string `json:"iface"`
	Ifindex int    `json:"ifindex"`
	// NetNS is the path of Iface's namespace; "" is the namespace of
	// the process that restores it (the one that recorded it, or
	// Cleanup's caller), whatever Options.NetNS says.
	NetNS   string `json:"netns,omitempty"`
	Autoneg bool   `json:"autoneg"`
	RX      bool   `json:"rx"`
	TX      bool   `json:"tx"`
}

// options is o acting in p's namespace, where its interface is.
func (p savedPause) options(o Options) Options {
	o.NetNS = p.NetNS
	return o
}

func statePath(o Options, iface string) string {
	return filepath.Join(o.stateDir(), iface+".json")
}

// writeState writes s atomically (temporary file, fsync, rename) so that a
// crash leaves either no file or a whole one.
func writeState(o Options, s *state) error {
	if err := validIfaceName(s.Iface); err != nil {
		return err
	}
	s.Version = stateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	dir := o.stateDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+s.Iface+".*.tmp")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, statePath(o, s.Iface))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing state file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// readState returns the state file of iface, or nil when there is none.
func readState(o Options, iface string) (*state, error) {
	b, err := os.ReadFile(statePath(o, iface))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file: %w", err)
	}
	return parseState(b)
}

// parseState decodes a state file; it is the one parser of outside input
// in this package's restore path, so it is strict.
func parseState(b []byte) (*state, error) {
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("state file too large (%d bytes)", len(b))
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("corrupt state file: %w", err)
	}
	switch s.Version {
	case stateVersion:
	case 1:
		if s.FlowControl != nil {
			s.FlowControl.NetNS = s.NetNS
		}
	default:
		return nil, fmt.Errorf("state file version %d, want %d", s.Version, stateVersion)
	}
	switch s.Injector {
	case "netem", "stall", "pause", "napi":
	default:
		return nil, fmt.Errorf("state file names unknown injector %q", s.Injector)
	}
	if err := validIfaceName(s.Iface); err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	if s.FlowControl != nil {
		if err := validIfaceName(s.FlowControl.Iface); err != nil {
			return nil, fmt.Errorf("state file: %w", err)
		}
	}
	return &s, nil
}

func removeState(o Options, iface string) error {
	err := os.Remove(statePath(o, iface))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing state file: %w", err)
	}
	return nil
}

// StaleState lists the interfaces that have a state file left by an
// earlier run. A new injection on any of them refuses to start until
// Cleanup has run.
func StaleState(o Options) ([]string, error) {
	ents, err := os.ReadDir(o.stateDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state directory: %w", err)
	}
	var ifaces []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") {
			continue
		}
		ifaces = append(ifaces, strings.TrimSuffix(n, ".json"))
	}
	sort.Strings(ifaces)
	return ifaces, nil
}

// owner is a process that holds or recorded an interface.
type owner struct {
	PID     int
	Command string
}

func (w owner) String() string {
	if w.PID == 0 {
		return "another process (not yet recorded in its lock file)"
	}
	if w.Command == "" {
		return "pid " + strconv.Itoa(w.PID)
	}
	return fmt.Sprintf("pid %d (%s)", w.PID, w.Command)
}

// checkNoStale refuses to start on an interface with a state file. The
// file of a process that still runs is no stale state: the interface is
// in use (ErrBusy), and only a dead owner's file calls for a cleanup.
func checkNoStale(o Options, iface string) error {
	s, err := readState(o, iface)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (run 'txtimeout cleanup -iface %s')", ErrStaleState, iface, err, iface)
	}
	if s != nil {
		if w, alive := liveOwner(s.PID); alive {
			return fmt.Errorf("%w: %s has a %s injection in progress, in use by %s", ErrBusy, iface, s.Injector, w)
		}
		return fmt.Errorf("%w: %s has a %s injection recorded by pid %d at %s (run 'txtimeout cleanup -iface %s')",
			ErrStaleState, iface, s.Injector, s.PID, s.Created.Format(time.RFC3339), iface)
	}
	// A PAUSE flood records the DUT's flow control in the partner's file.
	others, err := StaleState(o)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrStaleState, err)
	}
	for _, other := range others {
		st, err := readState(o, other)
		if err != nil || st == nil || st.FlowControl == nil || st.FlowControl.Iface != iface {
			continue
		}
		if w, alive := liveOwner(st.PID); alive {
			return fmt.Errorf("%w: %s's flow control is changed by a pause injection on %s, in use by %s", ErrBusy, iface, other, w)
		}
		return fmt.Errorf("%w: %s's flow control was changed by a pause injection recorded in %s by pid %d (run 'txtimeout cleanup -iface %s')",
			ErrStaleState, iface, other, st.PID, other)
	}
	return nil
}
