// Package procstat is the project's one parser of /proc/PID/stat.
//
// The injector identifies its hogs and NAPI threads by pid and start
// time, benchreport walks the process tree for memory, the scenarios
// describe threads left with odd scheduling, and the guest init reads a
// test's CPU time: all through this package, which depends on the
// standard library alone so that each of them can import it.
package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Field numbers of proc(5) (Documentation/filesystems/proc.rst, table
// 1-4), counted from 1: field 1 is the pid, field 2 the command name.
const (
	FieldPID        = 1
	FieldComm       = 2
	FieldState      = 3
	FieldPPID       = 4
	FieldFlags      = 9
	FieldUTime      = 14
	FieldSTime      = 15
	FieldStartTime  = 22
	FieldRTPriority = 40
	FieldPolicy     = 41
)

// PFKthread is PF_KTHREAD (include/linux/sched.h), the flag of a kernel
// thread in field 9.
const PFKthread = 0x00200000

// userHZ is USER_HZ, the unit of utime and stime: 100 on every Linux
// architecture's user ABI.
const userHZ = 100

// Stat is one parsed /proc/PID/stat line.
type Stat struct {
	// Comm is the command name, without its parentheses.
	Comm string
	pid  string
	rest []string // field 3 onwards
}

// Parse parses a /proc/PID/stat line. The command name is in parentheses
// and may itself hold spaces and parentheses, so the fields after it are
// counted from the last ')'. Parse checks only what every stat line has,
// the name and a one-letter state; the typed accessors report a field
// that is missing or not a number.
func Parse(line string) (Stat, error) {
	open := strings.IndexByte(line, '(')
	closeAt := strings.LastIndexByte(line, ')')
	if open < 0 || closeAt < open {
		return Stat{}, fmt.Errorf("stat %q: no comm field", trunc(line))
	}
	st := Stat{
		Comm: line[open+1 : closeAt],
		pid:  strings.TrimSpace(line[:open]),
		rest: strings.Fields(line[closeAt+1:]),
	}
	if len(st.rest) == 0 || len(st.rest[0]) != 1 {
		return Stat{}, fmt.Errorf("stat %q: no one-letter state after comm", trunc(line))
	}
	return st, nil
}

// Read reads and parses proc's stat file of pid (proc is "/proc", or a
// fake one in tests). An error from reading wraps the os error, so that
// errors.Is(err, os.ErrNotExist) tells a process that is gone.
func Read(proc string, pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	return Parse(string(b))
}

// PIDs lists the process ids under proc, in order.
func PIDs(proc string) ([]int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", proc, err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// Field returns field n as proc(5) numbers it, and whether the line has
// it.
func (s Stat) Field(n int) (string, bool) {
	switch {
	case n == FieldPID:
		return s.pid, true
	case n == FieldComm:
		return s.Comm, true
	case n >= FieldState && n-FieldState < len(s.rest):
		return s.rest[n-FieldState], true
	}
	return "", false
}

// Uint returns field n as an unsigned number of at most bits bits.
func (s Stat) Uint(n, bits int) (uint64, error) {
	f, ok := s.Field(n)
	if !ok {
		return 0, fmt.Errorf("stat of %s: no field %d", s.Comm, n)
	}
	v, err := strconv.ParseUint(f, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("stat of %s: field %d %q is not a number", s.Comm, n, f)
	}
	return v, nil
}

// Int returns field n as a signed number.
func (s Stat) Int(n int) (int, error) {
	f, ok := s.Field(n)
	if !ok {
		return 0, fmt.Errorf("stat of %s: no field %d", s.Comm, n)
	}
	v, err := strconv.Atoi(f)
	if err != nil {
		return 0, fmt.Errorf("stat of %s: field %d %q is not a number", s.Comm, n, f)
	}
	return v, nil
}

// State is field 3, one letter: R running, S sleeping, Z zombie, X dead,
// ... (0 in the zero Stat).
func (s Stat) State() byte {
	if len(s.rest) == 0 {
		return 0
	}
	return s.rest[0][0]
}

// PPID is field 4, the parent's pid.
func (s Stat) PPID() (int, error) { return s.Int(FieldPPID) }

// Flags is field 9, the task's PF_* flags.
func (s Stat) Flags() (uint64, error) { return s.Uint(FieldFlags, 64) }

// Kthread reports whether Flags holds PF_KTHREAD (false when the field is
// missing).
func (s Stat) Kthread() bool {
	f, err := s.Flags()
	return err == nil && f&PFKthread != 0
}

// StartTime is field 22, in clock ticks after boot: with the pid, a
// process's identity (a reused pid has another start time).
func (s Stat) StartTime() (uint64, error) { return s.Uint(FieldStartTime, 64) }

// CPUTime is user plus system time, fields 14 and 15, of the process and
// all its threads.
func (s Stat) CPUTime() (time.Duration, error) {
	// 63 bits, so that the sum converts to a Duration.
	u, err := s.Uint(FieldUTime, 63)
	if err != nil {
		return 0, err
	}
	k, err := s.Uint(FieldSTime, 63)
	if err != nil {
		return 0, err
	}
	return time.Duration(u+k) * (time.Second / userHZ), nil
}

// RTPriority is field 40, the real-time priority (0 for a task that is
// not real-time).
func (s Stat) RTPriority() (int, error) { return s.Int(FieldRTPriority) }

// Policy is field 41, the scheduling policy (SCHED_OTHER is 0,
// SCHED_FIFO 1, include/uapi/linux/sched.h).
func (s Stat) Policy() (int, error) { return s.Int(FieldPolicy) }

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
