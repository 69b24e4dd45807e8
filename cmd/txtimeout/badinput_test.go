package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/internal/testnet"
)

// Bad input to every subcommand (issue 8, "Bad input"): each row must exit
// 1 (runtime) or 2 (usage) with exactly one line on stderr that begins
// "txtimeout:", never panic, and change nothing: the qdiscs and links of
// the test namespace, the state directory and /run/txtimeout are compared
// before and after. Interfaces are only ever those of a txto-* namespace
// made for the test, passed with -netns where the command takes it.

// badNS is the test namespace: a veth pair that is up (no tx-timeout
// handler, so refused unless -allow-no-handler), a veth that is down,
// loopback, and a veth carrying the namespace's default route.
type badNS struct {
	ns                    *testnet.NS
	path                  string
	up, down, defaultLink string
}

func makeBadNS(t *testing.T) badNS {
	t.Helper()
	ns := testnet.NewNS(t)
	up, down, def := ns.AddVeth(t, nil), ns.AddVeth(t, nil), ns.AddVeth(t, nil)
	n := badNS{ns: ns, path: ns.Path, up: up.A.Name, down: down.A.Name, defaultLink: def.A.Name}
	def.A.AddAddr(t, net.IPv4(198, 18, 77, 2), 24)
	h := ns.Netlink(t)
	defer h.Close()
	// Up, and operationally up (the kernel's linkwatch sets that
	// asynchronously): else a slow machine sees it change during the
	// first row, as if the row did it.
	up.Up(t)
	def.Up(t)
	if err := h.RouteAdd(&netlink.Route{LinkIndex: def.A.Index, Gw: net.IPv4(198, 18, 77, 1)}); err != nil {
		t.Fatalf("default route via %s: %v", n.defaultLink, err)
	}
	return n
}

// world is what a bad command must not change.
func (n badNS) world(t *testing.T, stateDir string) string {
	t.Helper()
	h := n.ns.Netlink(t)
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, l := range links {
		a := l.Attrs()
		parts = append(parts, fmt.Sprintf("link %s %s %s", a.Name, a.Flags, a.OperState))
		qs, err := h.QdiscList(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			parts = append(parts, fmt.Sprintf("qdisc %s %s on %s", q.Type(), netlink.HandleStr(q.Attrs().Handle), a.Name))
		}
	}
	for _, dir := range []string{stateDir, faultinject.DefaultStateDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			parts = append(parts, "state "+filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "\n")
}

type badRow struct {
	name  string
	args  []string
	code  int    // 1 or 2
	want  string // a substring of the stderr line naming the problem
	stdin []byte // for scan -
	// skip, when it returns a reason, skips the row on this machine.
	skip func() string
	// hold, when set, is an interface whose lock (in the state directory
	// o names) this test process holds while the row runs: another owner.
	hold string
	o    faultinject.Options
}

func TestBadInput(t *testing.T) {
	n := makeBadNS(t)
	sd := t.TempDir()
	ns := []string{"-netns", n.path, "-state-dir", sd}
	with := func(args ...string) []string { return append(args, ns...) }
	tmp := t.TempDir()
	notKmsg := filepath.Join(tmp, "not-kmsg")
	garbage := make([]byte, 256<<10)
	rand.Read(garbage)
	if err := os.WriteFile(notKmsg, []byte("not a kernel log device\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbageFile := filepath.Join(tmp, "garbage.json")
	if err := os.WriteFile(garbageFile, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	netemPresent := func() string {
		if harness.ProbeNetem() == nil {
			return "this kernel has netem"
		}
		return ""
	}

	rows := []badRow{
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, want: "unknown command"},

		// inject: interfaces.
		{name: "inject netem/nonexistent", args: with("inject", "netem", "-iface", "txto-none", "-for", "1s"), code: 1, want: "no such interface"},
		{name: "inject netem/down", args: with("inject", "netem", "-iface", n.down, "-for", "1s"), code: 1, want: "down"},
		{name: "inject netem/loopback", args: with("inject", "netem", "-iface", "lo", "-for", "1s"), code: 1, want: "loopback"},
		{name: "inject netem/default route", args: with("inject", "netem", "-iface", n.defaultLink, "-for", "1s"), code: 1, want: "default route"},
		{name: "inject netem/no tx-timeout handler (veth)", args: with("inject", "netem", "-iface", n.up, "-for", "1s"), code: 1, want: "has no tx-timeout handler (veth)"},
		{name: "inject stall/no tx-timeout handler (veth)", args: with("inject", "stall", "-iface", n.up, "-for", "1s"), code: 1, want: "has no tx-timeout handler (veth)"},
		{name: "inject netem/kernel without netem (veth allowed)", args: with("inject", "netem", "-iface", n.up, "-allow-no-handler", "-for", "1s"), code: 1, want: "netem qdisc not available", skip: netemPresent},
		{name: "inject stall/veth allowed, without partner", args: with("inject", "stall", "-iface", n.up, "-allow-no-handler", "-for", "1s", "-ack-timeout", "300ms"), code: 1, want: "did not acknowledge"},
		{name: "inject stall/down", args: with("inject", "stall", "-iface", n.down, "-for", "1s"), code: 1, want: "down"},
		{name: "inject stall/default route", args: with("inject", "stall", "-iface", n.defaultLink, "-for", "1s"), code: 1, want: "default route"},
		{name: "inject pause/nonexistent partner", args: with("inject", "pause", "-partner", "txto-none", "-for", "1s"), code: 1, want: "no such interface"},
		{name: "inject/bad name", args: with("inject", "netem", "-iface", "../etc", "-for", "1s"), code: 2, want: "invalid character"},
		// inject: durations and sizes.
		{name: "inject netem/zero for", args: with("inject", "netem", "-iface", n.up, "-for", "0"), code: 2, want: "-for"},
		{name: "inject netem/negative for", args: with("inject", "netem", "-iface", n.up, "-for", "-1s"), code: 2, want: "-for"},
		{name: "inject netem/huge for", args: with("inject", "netem", "-iface", n.up, "-for", "1000h"), code: 2, want: "-for"},
		{name: "inject netem/negative delay", args: with("inject", "netem", "-iface", n.up, "-for", "1s", "-delay", "-1s"), code: 2, want: "delay"},
		{name: "inject netem/huge delay", args: with("inject", "netem", "-iface", n.up, "-for", "1s", "-delay", "1000h"), code: 2, want: "delay"},
		{name: "inject netem/loss over 100", args: with("inject", "netem", "-iface", n.up, "-for", "1s", "-loss", "150"), code: 2, want: "loss"},
		{name: "inject netem/loss not a number", args: with("inject", "netem", "-iface", n.up, "-for", "1s", "-loss", "abc"), code: 2, want: "-loss"},
		{name: "inject netem/duration not a duration", args: with("inject", "netem", "-iface", n.up, "-for", "soon"), code: 2, want: "-for"},
		{name: "inject stall/huge for", args: with("inject", "stall", "-iface", n.up, "-for", "11m"), code: 2, want: "stall duration"},
		{name: "inject stall/negative ack timeout", args: with("inject", "stall", "-iface", n.up, "-for", "1s", "-ack-timeout", "-1s"), code: 2, want: "-ack-timeout"},
		{name: "inject stall/malformed MAC", args: with("inject", "stall", "-iface", n.up, "-for", "1s", "-peer", "zz:zz"), code: 2, want: "MAC"},
		{name: "inject pause/quanta too big", args: with("inject", "pause", "-partner", n.up, "-for", "1s", "-quanta", "70000"), code: 2, want: "-quanta"},
		{name: "inject pause/zero quanta", args: with("inject", "pause", "-partner", n.up, "-for", "1s", "-quanta", "0"), code: 2, want: "-quanta"},

		// inject: every refusal names its opt-in flag.
		{name: "inject netem/veth refusal names -allow-no-handler", args: with("inject", "netem", "-iface", n.up, "-for", "1s"), code: 1, want: "-allow-no-handler"},
		{name: "inject netem/default route refusal names -allow-default-route", args: with("inject", "netem", "-iface", n.defaultLink, "-for", "1s"), code: 1, want: "-allow-default-route"},
		// inject, pktgen, flood: an interface another process owns.
		{name: "inject netem/interface in use", args: with("inject", "netem", "-iface", n.up, "-allow-no-handler", "-for", "1s"), code: 1,
			want: fmt.Sprintf("in use by pid %d (", os.Getpid()), hold: n.up, o: faultinject.Options{StateDir: sd}},
		{name: "inject stall/interface in use", args: with("inject", "stall", "-iface", n.up, "-allow-no-handler", "-for", "1s"), code: 1,
			want: fmt.Sprintf("in use by pid %d (", os.Getpid()), hold: n.up, o: faultinject.Options{StateDir: sd}},
		{name: "pktgen/interface in use", args: []string{"pktgen", "-iface", "txto-none", "-for", "1s"}, code: 1,
			want: fmt.Sprintf("in use by pid %d (", os.Getpid()), hold: "txto-none"},
		{name: "flood/interface in use", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "1", "-iface", n.up, "-netns", n.path}, code: 1,
			want: fmt.Sprintf("in use by pid %d (", os.Getpid()), hold: n.up},

		// cleanup.
		{name: "cleanup/no such interface, no state", args: with("cleanup", "-iface", "txto-none"), code: 1, want: "txto-none: no such interface and no state recorded for it"},
		{name: "cleanup/bad name", args: []string{"cleanup", "-iface", "../etc", "-state-dir", sd}, code: 1, want: "invalid character"},
		{name: "cleanup/both -iface and -all", args: []string{"cleanup", "-iface", "x", "-all", "-state-dir", sd}, code: 2, want: "exactly one"},
		{name: "cleanup/neither", args: []string{"cleanup", "-state-dir", sd}, code: 2, want: "exactly one"},

		// flood (bounded by -count so that an accepted row still ends).
		{name: "flood/payload over 65507", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "1", "-size", "65508", "-netns", n.path}, code: 2, want: "65507"},
		{name: "flood/zero payload", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "1", "-size", "0", "-netns", n.path}, code: 2, want: "size"},
		{name: "flood/negative payload", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "1", "-size", "-5", "-netns", n.path}, code: 2, want: "size"},
		{name: "flood/payload not a number", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "1", "-size", "99999999999999999999", "-netns", n.path}, code: 2, want: "-size"},
		{name: "flood/negative count", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "-1", "-netns", n.path}, code: 2, want: "count"},
		{name: "flood/negative for", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-for", "-1s", "-netns", n.path}, code: 2, want: "duration"},
		{name: "flood/zero for and count", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-for", "0", "-netns", n.path}, code: 2, want: "unbounded"},
		{name: "flood/huge for", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-for", "1000h", "-count", "3", "-interval", "1ms", "-netns", n.path}, code: 2, want: "-for"},
		{name: "flood/too many senders", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "1", "-senders", "100000", "-netns", n.path}, code: 2, want: "senders"},
		{name: "flood/malformed IP", args: []string{"flood", "icmp", "-dst", "198.18.300.1", "-count", "1", "-netns", n.path}, code: 2, want: "198.18.300.1"},
		{name: "flood/IPv6", args: []string{"flood", "icmp", "-dst", "2001:db8::1", "-count", "1", "-netns", n.path}, code: 2, want: "2001:db8::1"},
		{name: "flood/nonexistent iface", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "1", "-iface", "txto-none", "-netns", n.path}, code: 1, want: "txto-none"},
		{name: "flood/nonexistent netns", args: []string{"flood", "icmp", "-dst", "198.18.77.1", "-count", "1", "-netns", "/run/netns/txto-none"}, code: 1, want: "txto-none"},

		// pktgen (no -netns: only names that exist nowhere).
		{name: "pktgen/no iface", args: []string{"pktgen", "-for", "1s"}, code: 2, want: "-iface"},
		{name: "pktgen/zero for", args: []string{"pktgen", "-iface", "txto-none", "-for", "0"}, code: 2, want: "-for"},
		{name: "pktgen/negative for", args: []string{"pktgen", "-iface", "txto-none", "-for", "-1s"}, code: 2, want: "-for"},
		{name: "pktgen/huge for", args: []string{"pktgen", "-iface", "txto-none", "-for", "1000h"}, code: 2, want: "-for"},
		{name: "pktgen/huge size", args: []string{"pktgen", "-iface", "txto-none", "-for", "1s", "-size", "70000"}, code: 2, want: "size"},
		{name: "pktgen/zero threads", args: []string{"pktgen", "-iface", "txto-none", "-for", "1s", "-threads", "0"}, code: 2, want: "-threads"},
		{name: "pktgen/too many threads", args: []string{"pktgen", "-iface", "txto-none", "-for", "1s", "-threads", "100000"}, code: 2, want: "thread"},
		{name: "pktgen/malformed MAC", args: []string{"pktgen", "-iface", "txto-none", "-for", "1s", "-dst-mac", "zz"}, code: 2, want: "-dst-mac"},
		{name: "pktgen/malformed IP", args: []string{"pktgen", "-iface", "txto-none", "-for", "1s", "-dst-min", "300.1.1.1"}, code: 2, want: "-dst-min"},
		{name: "pktgen/nonexistent iface or no pktgen", args: []string{"pktgen", "-iface", "txto-none", "-for", "1s"}, code: 1, want: "pktgen"},

		// partner (no -netns: "ip netns exec" is its way; only names that
		// exist nowhere, and loopback, which it refuses before opening it).
		{name: "partner/no iface", args: []string{"partner"}, code: 2, want: "-iface"},
		{name: "partner/nonexistent iface", args: []string{"partner", "-iface", "txto-none"}, code: 1, want: "no such interface"},
		{name: "partner/loopback", args: []string{"partner", "-iface", "lo"}, code: 1, want: "loopback"},
		{name: "partner/malformed IP", args: []string{"partner", "-iface", "txto-none", "-ip", "198.18.300.1/24"}, code: 2, want: "198.18.300.1"},
		{name: "partner/IPv6", args: []string{"partner", "-iface", "txto-none", "-ip", "2001:db8::1"}, code: 2, want: "unicast IPv4"},
		{name: "partner/multicast IP", args: []string{"partner", "-iface", "txto-none", "-ip", "224.0.0.1"}, code: 2, want: "unicast IPv4"},
		{name: "partner/huge for-max", args: []string{"partner", "-iface", "txto-none", "-for-max", "11m"}, code: 2, want: "-for-max"},
		{name: "partner/zero for-max", args: []string{"partner", "-iface", "txto-none", "-for-max", "0"}, code: 2, want: "-for-max"},

		// scan.
		{name: "scan/nonexistent file", args: []string{"scan", filepath.Join(tmp, "none")}, code: 1, want: "no such file"},
		{name: "scan/directory", args: []string{"scan", tmp}, code: 1, want: "is a directory"},
		{name: "scan/two files", args: []string{"scan", "a", "b"}, code: 2, want: "at most one FILE"},
		{name: "scan/kmsg missing", args: []string{"scan", "-follow", "-kmsg", filepath.Join(tmp, "none")}, code: 1, want: "no such file"},
		{name: "scan/kmsg not a kmsg device", args: []string{"scan", "-follow", "-kmsg", notKmsg}, code: 1, want: notKmsg},

		// report.
		{name: "report/nonexistent", args: []string{"report", filepath.Join(tmp, "none.json")}, code: 1, want: "no such file"},
		{name: "report/binary garbage", args: []string{"report", garbageFile}, code: 1, want: "not valid JSON"},
		{name: "report/picture format", args: []string{"report", "-o", filepath.Join(tmp, "x.gif"), garbageFile}, code: 2, want: ".svg or .png"},

		// rig (rows that must be refused before anything boots).
		{name: "rig/zero vCPUs", args: []string{"rig", "-smp", "0"}, code: 2, want: "-smp"},
		{name: "rig/negative memory", args: []string{"rig", "-mem", "-1"}, code: 2, want: "-mem"},
		{name: "rig/unknown NIC", args: []string{"rig", "-nic", "bogus"}, code: 2, want: "bogus"},
		{name: "rig/negative timeout", args: []string{"rig", "-timeout", "-1s"}, code: 2, want: "-timeout"},
		{name: "rig/kernel without modules", args: []string{"rig", "-kernel", filepath.Join(tmp, "none")}, code: 2, want: "-modules"},
		{name: "rig/kernel package and kernel", args: []string{"rig", "-kernel-package", "6.12", "-kernel", garbageFile, "-modules", tmp}, code: 2, want: "not both"},
		{name: "matrix/unknown NIC", args: []string{"matrix", "-nics", "e1000,bogus", "-o", filepath.Join(tmp, "m")}, code: 2, want: "bogus"},
		{name: "matrix/kernel without modules", args: []string{"matrix", "-kernel", garbageFile, "-o", filepath.Join(tmp, "m")}, code: 2, want: "pairs"},
		{name: "matrix/missing user kernel", args: []string{"matrix", "-kernel", filepath.Join(tmp, "none"), "-modules", tmp, "-o", filepath.Join(tmp, "m")}, code: 2, want: "no such file"},
		{name: "matrix/bad run pattern", args: []string{"matrix", "-run", "(", "-o", filepath.Join(tmp, "m")}, code: 2, want: "-run"},
		{name: "matrix/no NIC", args: []string{"matrix", "-nics", ",", "-o", filepath.Join(tmp, "m")}, code: 2, want: "no NIC"},
		{name: "matrix/unreadable baseline", args: []string{"matrix", "-baseline", garbageFile, "-o", filepath.Join(tmp, "m")}, code: 2, want: "-baseline"},
		{name: "matrix/stray argument", args: []string{"matrix", "extra"}, code: 2, want: "unexpected argument"},
		{name: "matrix/bad kernel pattern", args: []string{"matrix", "-kernels", "linux-image-(", "-o", filepath.Join(tmp, "m")}, code: 2, want: "-kernels"},
		{name: "matrix/zero timeout", args: []string{"matrix", "-timeout", "0s", "-o", filepath.Join(tmp, "m")}, code: 2, want: "-timeout"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			if r.skip != nil {
				if why := r.skip(); why != "" {
					t.Skipf("skipping: %s", why)
				}
			}
			if r.hold != "" {
				release, err := faultinject.Lock(r.hold, r.o)
				if err != nil {
					t.Fatal(err)
				}
				defer release()
			}
			before := n.world(t, sd)
			code, stdout, stderr := runWithStdin(t, r.args, r.stdin)
			if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("%q panicked:\n%s", r.args, stderr)
			}
			for _, p := range badRowProblems(r, code, stdout, stderr) {
				t.Error(p)
			}
			if after := n.world(t, sd); after != before {
				t.Errorf("%q changed the system:\nbefore:\n%s\nafter:\n%s", r.args, before, after)
			}
		})
	}
}

// badRowProblems lists how a row's outcome breaks the rules.
func badRowProblems(r badRow, code int, stdout, stderr string) []string {
	var p []string
	if r.code == 2 && stdout != "" {
		p = append(p, fmt.Sprintf("%q: a usage error printed %q on stdout", r.args, firstN(stdout, 300)))
	}
	// A refusal is announced by nothing but its line on stderr.
	if strings.Contains(stdout, "injecting") || strings.Contains(stdout, "injected") {
		p = append(p, fmt.Sprintf("%q: stdout %q announces an injection that was refused", r.args, firstN(stdout, 300)))
	}
	if code != r.code {
		p = append(p, fmt.Sprintf("%q: exit %d, want %d (stderr %q)", r.args, code, r.code, firstN(stderr, 300)))
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	switch {
	case stderr == "":
		p = append(p, fmt.Sprintf("%q: nothing on stderr, want one line beginning \"txtimeout:\"", r.args))
	case len(lines) != 1:
		p = append(p, fmt.Sprintf("%q: %d lines on stderr, want exactly one beginning \"txtimeout:\" (first: %q, last: %q)", r.args, len(lines), lines[0], lines[len(lines)-1]))
	case !strings.HasPrefix(lines[0], "txtimeout: "):
		p = append(p, fmt.Sprintf("%q: stderr %q does not begin \"txtimeout: \"", r.args, lines[0]))
	}
	if !strings.Contains(stderr, r.want) {
		p = append(p, fmt.Sprintf("%q: stderr %q does not name the problem (want %q in it)", r.args, firstN(stderr, 300), r.want))
	}
	return p
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// runWithStdin calls run in-process, with stdin as standard input when
// given.
func runWithStdin(t *testing.T, args []string, stdin []byte) (int, string, string) {
	t.Helper()
	if stdin != nil {
		f, err := os.CreateTemp(t.TempDir(), "stdin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(stdin); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		old := os.Stdin
		os.Stdin = f
		defer func() { os.Stdin = old; f.Close() }()
	}
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Binary garbage and corrupt kernel-log lines given to scan are counted
// and skipped: exit 0, one stderr line with the count, no events.
func TestBadInputScanGarbage(t *testing.T) {
	garbage := make([]byte, 256<<10)
	rand.Read(garbage)
	corrupt := []byte("6,1,2,-;\n\x00\x01\x02\n<9999999999999999999>[ 1.0] x\n4,18446744073709551616,0,-;too big seq\n,,,;\n[    abc] NETDEV WATCHDOG\n")
	for name, in := range map[string][]byte{"random": garbage, "corrupt lines": corrupt, "empty": {}} {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runWithStdin(t, []string{"scan", "-"}, in)
			if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("scan panicked:\n%s", stderr)
			}
			if code != 0 {
				t.Errorf("scan of %s: exit %d, want 0 (garbage is skipped, not an error); stderr %q", name, code, stderr)
			}
			if name == "empty" {
				return
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "txtimeout: ") || !strings.Contains(stderr, "skipped") {
				t.Errorf("scan of %s: stderr %q, want one 'txtimeout: ... skipped' line with the count", name, stderr)
			}
			if strings.Contains(stdout, `"kind":"watchdog"`) {
				t.Errorf("scan of %s reported a watchdog event from garbage: %s", name, stdout)
			}
		})
	}
}

// A bad flag value is one line (no usage dump), and -h or -help still
// prints the command's flags, once, and exits 0.
func TestParseFlagsHelpAndErrors(t *testing.T) {
	for _, args := range [][]string{{"scan", "-h"}, {"pktgen", "-help"}, {"flood", "icmp", "-h"}, {"rig", "-h"}, {"cleanup", "-h"}} {
		code, stdout, stderr := runWithStdin(t, args, nil)
		if code != 0 || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q; want 0 and nothing", args, code, stdout)
		}
		if !strings.Contains(stderr, "  -") {
			t.Errorf("%q: stderr %q does not list the flags", args, firstN(stderr, 300))
		}
		if first, _, _ := strings.Cut(stderr, "\n"); strings.Count(stderr, first+"\n") != 1 {
			t.Errorf("%q: usage printed more than once:\n%s", args, stderr)
		}
	}
	for _, args := range [][]string{{"pktgen", "-iface", "x", "-size", "big"}, {"rig", "-bogus"}, {"scan", "-follow=maybe"}} {
		code, _, stderr := runWithStdin(t, args, nil)
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "txtimeout: ") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one 'txtimeout:' line", args, code, stderr)
		}
	}
}
