//go:build linux

package faultinject

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"txtimeout/internal/procstat"
)

// TestIntegrationLeftovers: on a veth in a namespace of its own, a clean
// interface has no leftovers; a qdisc with the project's handle and a
// state file, as a killed run leaves them, are each reported once; a
// qdisc of someone else is not.
func TestIntegrationLeftovers(t *testing.T) {
	v := testVeth(t)
	var o = v.opts(t)
	want := func(lines ...string) {
		t.Helper()
		got, err := Leftovers(v.A, o)
		if err != nil {
			t.Fatalf("Leftovers: %v", err)
		}
		if strings.Join(got, "\n") != strings.Join(lines, "\n") {
			t.Fatalf("Leftovers = %q, want %q", got, lines)
		}
	}
	want()

	tbf := func(major uint16) *netlink.Tbf {
		return &netlink.Tbf{
			QdiscAttrs: netlink.QdiscAttrs{LinkIndex: v.AIdx, Handle: netlink.MakeHandle(major, 0), Parent: netlink.HANDLE_ROOT},
			Rate:       125000, Limit: 1 << 20, Buffer: netlink.Xmittime(125000, 3200),
		}
	}
	if err := v.handle.QdiscReplace(tbf(1)); err != nil {
		t.Fatalf("tbf 1: on %s: %v", v.A, err)
	}
	want() // not the project's

	if err := v.handle.QdiscReplace(tbf(ProjectQdiscMajor)); err != nil {
		t.Fatalf("tbf 7478: on %s: %v", v.A, err)
	}
	qdiscLine := "tbf qdisc 7478: left on " + v.A
	want(qdiscLine)

	// A stall whose process was killed (the stall itself is over).
	st := &state{Injector: "stall", Iface: v.A, Ifindex: v.AIdx, NetNS: v.NS, PID: 1 << 22, Created: time.Now(),
		StallUntil: time.Now().Add(-time.Second)}
	if err := writeState(o, st); err != nil {
		t.Fatal(err)
	}
	want("state file left for "+v.A+" (stall injection by pid 4194304)", qdiscLine)

	// Leftovers changed nothing; Cleanup then leaves nothing.
	if _, err := Cleanup(t.Context(), v.A, o); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	want()

	if _, err := Leftovers("bad name", o); err == nil {
		t.Error("Leftovers accepted a bad interface name")
	}
}

// fakeProc writes /proc/PID entries: stat copied from a real process,
// and the given status and environ.
func fakeProc(t *testing.T, dir string, pid, realPID int, status, environ string) {
	t.Helper()
	d := filepath.Join(dir, strconv.Itoa(pid))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(realPID), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"stat": string(stat), "status": status, "environ": environ} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLeftoverHogs: a hog is left when its parent is dead or is this
// process, not while another live process owns it.
func TestLeftoverHogs(t *testing.T) {
	dir := t.TempDir()
	self := os.Getpid()
	env := func(parent int) string {
		return "PATH=/bin\x00" + hogEnv + "=1 50 " + strconv.Itoa(parent) + " 12\x00GODEBUG=asyncpreemptoff=1\x00"
	}
	fakeProc(t, dir, 100, self, "", env(1<<22)) // parent gone
	fakeProc(t, dir, 101, self, "", env(self))  // this process's
	fakeProc(t, dir, 102, self, "", env(1))     // init's: alive
	fakeProc(t, dir, 103, self, "", "PATH=/bin\x00")
	got, err := leftoverHogs(dir, self)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.Contains(got[0], "process 100 ") || !strings.Contains(got[1], "process 101 ") {
		t.Errorf("leftoverHogs = %q, want processes 100 and 101", got)
	}
}

// TestLeftoverNapiThreads: an interface's NAPI thread at SCHED_FIFO is
// reported, one at SCHED_OTHER or of another interface is not. The fake
// /proc entries carry the pids of real kernel threads, whose scheduling
// the check reads: a migration thread (SCHED_FIFO 99) and kthreadd
// (SCHED_OTHER).
func TestLeftoverNapiThreads(t *testing.T) {
	migration := -1
	pids, err := procstat.PIDs("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); err == nil && strings.HasPrefix(string(b), "migration/") {
			migration = pid
			break
		}
	}
	if migration < 0 {
		t.Skip("skipping: no migration/N kernel thread (a uniprocessor kernel?) to stand for a SCHED_FIFO NAPI thread")
	}
	dir := t.TempDir()
	fakeProc(t, dir, migration, migration, "Name:\tnapi/eth7-8193\n", "")
	fakeProc(t, dir, 2, 2, "Name:\tnapi/eth7-8194\n", "")
	fakeProc(t, dir, migration+1<<20, migration, "Name:\tnapi/eth70-8195\n", "")
	got, err := leftoverNapiThreads(dir, "eth7")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "napi/eth7-8193 (pid "+strconv.Itoa(migration)+") left at SCHED_FIFO") {
		t.Errorf("leftoverNapiThreads = %q, want napi/eth7-8193 only", got)
	}
}

// TestStateDetail: a state file's line names what is still to set back.
func TestStateDetail(t *testing.T) {
	st := &state{Injector: "napi", Napi: &savedNapi{Threaded: "0", RTRuntime: "950000", HogPID: 1 << 22, HogStart: 1,
		Threads: []savedThread{{PID: 12}, {PID: 13}}}}
	if got, want := stateDetail(st), "sched_rt_runtime_us to set back to 950000; scheduling of 2 threads to set back; threaded to set back to 0"; got != want {
		t.Errorf("napi: %q, want %q", got, want)
	}
	st = &state{Injector: "pause", FlowControl: &savedPause{Iface: "eth1", RX: true}}
	if got := stateDetail(st); !strings.HasPrefix(got, "flow control of eth1 to set back to ") {
		t.Errorf("pause: %q", got)
	}
	st = &state{Injector: "netem", QdiscHandle: ProjectQdiscHandle}
	if got, want := stateDetail(st), "root qdisc to put back: the default qdisc"; got != want {
		t.Errorf("netem: %q, want %q", got, want)
	}
	if got := stateDetail(&state{Injector: "stall"}); got != "" {
		t.Errorf("stall: %q, want nothing", got)
	}
}
