package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"txtimeout/internal/testnet"
)

func runTxt(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	t.Logf("txtimeout %s -> %d\nstdout: %sstderr: %s", strings.Join(args, " "), code, o.String(), e.String())
	return o.String(), e.String(), code
}

func TestInjectCleanupUsage(t *testing.T) {
	for _, args := range [][]string{
		{"inject"},
		{"inject", "bogus"},
		{"inject", "netem"},
		{"inject", "netem", "-iface", "x0"},
		{"inject", "netem", "-iface", "x0", "-for", "-1s"},
		{"inject", "netem", "-iface", "x0", "-for", "2h"},
		{"inject", "netem", "-iface", "x0", "-for", "1s", "-loss", "200"},
		{"inject", "netem", "-iface", "x0", "-for", "1s", "-limit", "0"},
		{"inject", "netem", "-iface", "x0", "-for", "1s", "-delay", "0"},
		{"inject", "netem", "-iface", "x0", "-for", "1s", "-nope"},
		{"inject", "netem", "-iface", "x0", "-for", "1s", "extra"},
		{"inject", "netem", "-iface", "a/b", "-for", "1s"},
		{"inject", "stall", "-iface", "x0", "-for", "1s", "-peer", "zz"},
		{"inject", "stall", "-iface", "x0", "-for", "11m"},
		{"inject", "pause", "-for", "1s"},
		{"inject", "pause", "-partner", "x0", "-for", "1s", "-quanta", "70000"},
		{"inject", "pause", "-partner", "x0", "-for", "1s", "-dut", "x0"},
		{"inject", "pause", "-partner", "x0", "-for", "1s", "-dut-netns", "/run/netns/x"},
		{"cleanup"},
		{"cleanup", "-iface", "x0", "-all"},
		{"cleanup", "-all", "extra"},
	} {
		_, stderr, code := runTxt(t, args...)
		if code != 2 || !strings.HasPrefix(stderr, "txtimeout: "+args[0]+": ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and exactly one 'txtimeout: %s:' line", args, code, stderr, args[0])
		}
	}
	for _, args := range [][]string{{"inject", "-h"}, {"inject", "netem", "-h"}, {"cleanup", "-h"}} {
		if _, _, code := runTxt(t, args...); code != 0 {
			t.Errorf("%q: exit %d, want 0", args, code)
		}
	}
}

type injectPair struct{ ns, a, b string }

// injectVeth makes a namespace with a veth pair, both up, and removes it
// at cleanup.
func injectVeth(t *testing.T) injectPair {
	t.Helper()
	p := testnet.NewPair(t)
	return injectPair{ns: p.A.NS.Path, a: p.A.Name, b: p.B.Name}
}

func TestIntegrationInjectCLI(t *testing.T) {
	p := injectVeth(t)
	sd := t.TempDir()
	// The pair is veth, which has no tx-timeout handler: without the
	// opt-in every injector refuses it as the DUT, with one line and
	// nothing changed (a PAUSE partner port needs no handler; the DUT
	// whose flow control it switches on does).
	for _, args := range [][]string{
		{"inject", "netem", "-iface", p.a, "-for", "1s"},
		{"inject", "stall", "-iface", p.a, "-for", "1s"},
		{"inject", "pause", "-partner", p.b, "-dut", p.a, "-for", "1s"},
	} {
		_, stderr, code := runTxt(t, append(args, "-netns", p.ns, "-state-dir", sd)...)
		if code != 1 || !strings.HasPrefix(stderr, "txtimeout: ") || !strings.Contains(stderr, "has no tx-timeout handler (veth)") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q without -allow-no-handler: exit %d, stderr %q; want 1 and one line naming the missing handler", args, code, stderr)
		}
	}
	if ents, err := os.ReadDir(sd); err != nil || len(ents) != 0 {
		t.Errorf("refusals left state in %s: %v %v", sd, ents, err)
	}
	common := []string{"-netns", p.ns, "-state-dir", sd, "-allow-no-handler"}

	stdout, _, code := runTxt(t, append([]string{"inject", "pause", "-partner", p.b, "-for", "300ms"}, common...)...)
	if code != 0 || !strings.Contains(stdout, "restored:") || !strings.Contains(stdout, "frames sent") {
		t.Errorf("inject pause: exit %d, stdout %q", code, stdout)
	}

	_, stderr, code := runTxt(t, append([]string{"inject", "stall", "-iface", p.a, "-for", "1s", "-ack-timeout", "300ms"}, common...)...)
	if code != 1 || !strings.Contains(stderr, "did not acknowledge") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("inject stall without partner: exit %d, stderr %q; want 1 and one line", code, stderr)
	}

	_, stderr, code = runTxt(t, append([]string{"inject", "netem", "-iface", p.a, "-for", "1s"}, common...)...)
	if code != 1 || !strings.HasSuffix(stderr, "netem qdisc not available in this kernel (CONFIG_NET_SCH_NETEM)\n") {
		// A kernel with netem would hold for 1 s and restore.
		if code != 0 {
			t.Errorf("inject netem: exit %d, stderr %q", code, stderr)
		}
	}

	_, _, code = runTxt(t, append([]string{"inject", "pause", "-partner", "txto-none", "-for", "1s"}, common...)...)
	if code != 1 {
		t.Errorf("inject on a missing interface: exit %d, want 1", code)
	}

	stdout, _, code = runTxt(t, "cleanup", "-iface", p.a, "-netns", p.ns, "-state-dir", sd)
	if code != 0 || !strings.Contains(stdout, "clean, nothing to do") {
		t.Errorf("cleanup of a clean interface: exit %d, stdout %q", code, stdout)
	}
}

// buildTxt builds this command into a temporary directory.
func buildTxt(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "txtimeout")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startHeld starts "txtimeout inject pause" and waits for "injected:".
func startHeld(t *testing.T, bin string, p injectPair, sd string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, "inject", "pause", "-partner", p.b, "-for", "30s", "-netns", p.ns, "-state-dir", sd, "-allow-no-handler")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var rest bytes.Buffer
	r := bufio.NewReader(out)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for {
		line, err := r.ReadString('\n')
		rest.WriteString(line)
		if strings.HasPrefix(line, "injected:") {
			go func() { rest.ReadFrom(r) }()
			return cmd, &rest
		}
		if err != nil {
			t.Fatalf("inject ended before injecting: %v\nstdout %s\nstderr %s", err, rest.String(), stderr.String())
		}
	}
}

// Ctrl-C restores and exits 0; SIGKILL leaves state that cleanup removes.
func TestIntegrationInjectSignals(t *testing.T) {
	p := injectVeth(t)
	sd := t.TempDir()
	bin := buildTxt(t)

	cmd, _ := startHeld(t, bin, p, sd)
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGINT: %v, want exit 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("inject did not stop after SIGINT")
	}
	if ents, _ := os.ReadDir(sd); len(ents) != 0 {
		t.Errorf("state left after SIGINT: %v", ents)
	}

	cmd, _ = startHeld(t, bin, p, sd)
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(sd, p.b+".json")); err != nil {
		t.Fatalf("no state file after SIGKILL: %v", err)
	}
	c := exec.Command(bin, "cleanup", "-all", "-netns", p.ns, "-state-dir", sd)
	out, err := c.CombinedOutput()
	t.Logf("cleanup -all: %s", out)
	if err != nil || !strings.Contains(string(out), "PAUSE flood died") {
		t.Fatalf("cleanup after SIGKILL: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(sd); len(ents) != 0 {
		t.Errorf("state left after cleanup: %v", ents)
	}
}

// The case: while one "inject pause" holds the partner port, a
// second is refused as in use by the first (its pid and command), not as
// stale state to clean up; once the first ends, the port is free.
func TestIntegrationInjectBusy(t *testing.T) {
	p := injectVeth(t)
	sd := t.TempDir()
	bin := buildTxt(t)
	first, _ := startHeld(t, bin, p, sd)
	c := exec.Command(bin, "inject", "pause", "-partner", p.b, "-for", "1s", "-netns", p.ns, "-state-dir", sd, "-allow-no-handler")
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	t.Logf("second inject: %v\nstdout %q\nstderr %q", err, stdout.String(), stderr.String())
	want := fmt.Sprintf("in use by pid %d (%s inject pause", first.Process.Pid, bin)
	if c.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("second inject: exit %d, stderr %q; want 1 and one line with %q", c.ProcessState.ExitCode(), stderr.String(), want)
	}
	if s := stderr.String(); strings.Contains(s, "stale") || strings.Contains(s, "cleanup") {
		t.Errorf("second inject calls a live owner's state stale: %q", s)
	}
	if stdout.Len() != 0 {
		t.Errorf("a refused inject printed %q", stdout.String())
	}
	first.Process.Signal(syscall.SIGINT)
	if err := first.Wait(); err != nil {
		t.Fatalf("first inject after SIGINT: %v", err)
	}
	stdoutS, _, code := runTxt(t, "inject", "pause", "-partner", p.b, "-for", "1s", "-netns", p.ns, "-state-dir", sd, "-allow-no-handler")
	if code != 0 || !strings.Contains(stdoutS, "restored:") {
		t.Errorf("inject after the first ended: exit %d, stdout %q", code, stdoutS)
	}
}

// TestIntegrationInjectPauseDUTNetNS: -dut-netns names the DUT's namespace
// apart from -netns, the partner port's; without it the DUT is looked up
// in -netns's.
func TestIntegrationInjectPauseDUTNetNS(t *testing.T) {
	p := testnet.NewLinked(t) // A (the DUT) and B (the partner port) in two namespaces
	sd := t.TempDir()
	pause := []string{"inject", "pause", "-partner", p.B.Name, "-dut", p.A.Name, "-for", "1s", "-netns", p.B.NS.Path, "-state-dir", sd}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no such interface"},
		{[]string{"-dut-netns", ""}, "no such interface"},
		{[]string{"-dut-netns", p.A.NS.Path}, "has no tx-timeout handler (veth)"},
		// Found and accepted, then veth has no pause parameters.
		{[]string{"-dut-netns", p.A.NS.Path, "-allow-no-handler"}, "the driver has no pause parameters"},
	} {
		_, stderr, code := runTxt(t, append(pause, c.args...)...)
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want 1 and one line with %q", c.args, code, stderr, c.want)
		}
	}
	if ents, err := os.ReadDir(sd); err != nil || len(ents) != 0 {
		t.Errorf("refusals left state in %s: %v %v", sd, ents, err)
	}
}
