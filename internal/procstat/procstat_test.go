package procstat

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A kthread's stat line as Debian 6.1.0-56 shows it in the rig
// (cat /proc/PID/stat of napi/eth0-8193), and a user process whose comm
// holds spaces and parentheses.
const (
	napiLine = "157 (napi/eth0-8193) S 2 0 0 0 -1 2129984 0 0 0 0 0 12 0 0 20 0 1 0 512 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0"
	oddLine  = "4242 (a (b) c) R 1 4242 4242 0 -1 4194560 0 0 0 0 5 1 0 0 20 0 3 0 98765 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
	// A SCHED_FIFO 99 migration thread (rt_priority 99, policy 1) of a
	// 6.18 host kernel (cat /proc/PID/stat of migration/0).
	fifoLine = "18 (migration/0) S 2 0 0 0 -1 69238848 0 0 0 0 0 21 0 0 -100 0 1 0 24 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 0 99 1 0 0 0 0 0 0 0 0 0 0 0"
)

func TestParse(t *testing.T) {
	st, err := Parse(napiLine)
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "napi/eth0-8193" || st.State() != 'S' {
		t.Errorf("comm %q state %c, want napi/eth0-8193 S", st.Comm, st.State())
	}
	if ppid, err := st.PPID(); err != nil || ppid != 2 {
		t.Errorf("PPID = %d, %v; want 2", ppid, err)
	}
	if !st.Kthread() {
		t.Error("PF_KTHREAD not set")
	}
	if start, err := st.StartTime(); err != nil || start != 512 {
		t.Errorf("StartTime = %d, %v; want 512", start, err)
	}
	if f, ok := st.Field(FieldPID); !ok || f != "157" {
		t.Errorf("Field(1) = %q, %v", f, ok)
	}

	st, err = Parse(oddLine)
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "a (b) c" || st.State() != 'R' {
		t.Errorf("comm %q state %c, want \"a (b) c\" R", st.Comm, st.State())
	}
	if st.Kthread() {
		t.Error("PF_KTHREAD set on a user process")
	}
	if start, err := st.StartTime(); err != nil || start != 98765 {
		t.Errorf("StartTime = %d, %v; want 98765", start, err)
	}
	if cpu, err := st.CPUTime(); err != nil || cpu != 60*time.Millisecond {
		t.Errorf("CPUTime = %v, %v; want 60ms (5+1 ticks)", cpu, err)
	}

	for _, bad := range []string{"", "12 noparen S 1", "1 (x)", "1 (x) SS 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", "garbage"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted it", bad)
		}
	}
}

// A line cut short parses, but its missing fields are errors.
func TestMissingFields(t *testing.T) {
	st, err := Parse("1 (x) S 1 2 3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.StartTime(); err == nil {
		t.Error("StartTime of a short line")
	}
	if _, err := st.Flags(); err == nil {
		t.Error("Flags of a short line")
	}
	if st.Kthread() {
		t.Error("Kthread of a short line")
	}
	if _, err := st.CPUTime(); err == nil {
		t.Error("CPUTime of a short line")
	}
	if _, err := st.Policy(); err == nil {
		t.Error("Policy of a short line")
	}
	if _, ok := st.Field(0); ok {
		t.Error("Field(0)")
	}
	if (Stat{}).State() != 0 || (Stat{}).Kthread() {
		t.Error("the zero Stat has a state or flags")
	}
	st, _ = Parse("1 (x) S notanumber")
	if _, err := st.PPID(); err == nil {
		t.Error("PPID not a number")
	}
}

func TestPPID(t *testing.T) {
	for stat, want := range map[string]int{
		"1234 (go) S 77 1234 1234 0":         77,
		"99 (a) b (c)) R 1 99 99 0 -1":       1,
		"5 (qemu-system-x86) S 4321 5 5 0 0": 4321,
	} {
		st, err := Parse(stat)
		if err != nil {
			t.Errorf("Parse(%q): %v", stat, err)
			continue
		}
		if got, err := st.PPID(); err != nil || got != want {
			t.Errorf("PPID of %q = %d, %v; want %d", stat, got, err, want)
		}
	}
}

func TestScheduling(t *testing.T) {
	for _, tc := range []struct {
		line         string
		prio, policy int
	}{{napiLine, 0, 0}, {fifoLine, 99, 1}} {
		st, err := Parse(tc.line)
		if err != nil {
			t.Fatal(err)
		}
		prio, err1 := st.RTPriority()
		policy, err2 := st.Policy()
		if err1 != nil || err2 != nil || prio != tc.prio || policy != tc.policy {
			t.Errorf("%s: rt_priority %d (%v) policy %d (%v), want %d %d", st.Comm, prio, err1, policy, err2, tc.prio, tc.policy)
		}
	}
}

func TestReadAndPIDs(t *testing.T) {
	proc := t.TempDir()
	for name, line := range map[string]string{"157": napiLine, "4242": oddLine, "self": oddLine, "0": oddLine} {
		if err := os.MkdirAll(filepath.Join(proc, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, name, "stat"), []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(proc, "12"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pids, err := PIDs(proc)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{12, 157, 4242}; !slices.Equal(pids, want) {
		t.Errorf("PIDs = %v, want %v", pids, want)
	}
	st, err := Read(proc, 4242)
	if err != nil || st.Comm != "a (b) c" {
		t.Errorf("Read(4242) = %q, %v", st.Comm, err)
	}
	if _, err := Read(proc, 99); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a missing pid: %v, want os.ErrNotExist", err)
	}
	if _, err := PIDs(filepath.Join(proc, "none")); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("PIDs of a missing dir: %v", err)
	}
}

// The real /proc: this process is in the list and its stat parses to
// its own parent.
func TestSelf(t *testing.T) {
	pids, err := PIDs("/proc")
	if err != nil {
		t.Skipf("skipping: %v (not Linux?)", err)
	}
	if !slices.Contains(pids, os.Getpid()) {
		t.Fatalf("PIDs(/proc) lacks this process %d", os.Getpid())
	}
	st, err := Read("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ppid, err := st.PPID(); err != nil || ppid != os.Getppid() {
		t.Errorf("PPID = %d, %v; want %d", ppid, err, os.Getppid())
	}
	if _, err := st.Policy(); err != nil {
		t.Error(err)
	}
}

// maxFuzzInput caps fuzz inputs; a stat line is a few hundred bytes.
const maxFuzzInput = 4 << 10

func FuzzParse(f *testing.F) {
	for _, s := range []string{napiLine, oddLine, fifoLine, "1 (x) S 1 2 3", "1 ())) R", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzInput {
			return
		}
		st, err := Parse(s)
		if err != nil {
			return
		}
		if !strings.Contains(s, "("+st.Comm+")") {
			t.Fatalf("comm %q not in parentheses in %q", st.Comm, s)
		}
		if strings.Contains(s[strings.LastIndexByte(s, ')')+1:], ")") {
			t.Fatalf("comm %q does not run to the last ')' of %q", st.Comm, s)
		}
		state, ok := st.Field(FieldState)
		if !ok || len(state) != 1 || state[0] != st.State() {
			t.Fatalf("state field %q, %v; State %c", state, ok, st.State())
		}
		for n := FieldState; ; n++ {
			v, ok := st.Field(n)
			if !ok {
				break
			}
			if v == "" || strings.ContainsAny(v, " \t\n") {
				t.Fatalf("field %d %q", n, v)
			}
		}
		// The typed accessors must not panic on whatever parsed.
		st.Kthread()
		st.CPUTime()
		st.StartTime()
		st.Policy()
	})
}
