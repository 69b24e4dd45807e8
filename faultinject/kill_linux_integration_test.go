//go:build linux

package faultinject

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary double as a process that injects and then
// hangs, to be killed with SIGKILL by TestIntegrationKillThenCleanup.
func TestMain(m *testing.M) {
	if os.Getenv("TXTO_FI_HELPER") == "netem" {
		os.Exit(helperInjectAndHang())
	}
	os.Exit(m.Run())
}

func helperInjectAndHang() int {
	netemKind = "pfifo" // this host has no netem; see usePfifoSeam
	// The interface is a veth, which has no tx-timeout handler.
	o := Options{NetNS: os.Getenv("TXTO_FI_NETNS"), StateDir: os.Getenv("TXTO_FI_STATE"), AllowNoTxTimeout: true}
	n, err := NewNetem(os.Getenv("TXTO_FI_IFACE"), NetemConfig{}, o)
	if err == nil {
		err = n.Inject(context.Background())
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("injected")
	// Bounded: if the test dies before killing us, we still go away
	// (leaving the state for a cleanup, as a crash would).
	time.Sleep(60 * time.Second)
	return 0
}

// buildCLI builds cmd/txtimeout into a temporary directory.
func buildCLI(tb testing.TB) string {
	tb.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
		if _, serr := os.Stat(goBin); serr != nil {
			tb.Fatalf("no go toolchain to build the CLI: %v", err)
		}
	}
	bin := filepath.Join(tb.TempDir(), "txtimeout")
	out, err := exec.Command(goBin, "build", "-o", bin, "txtimeout/cmd/txtimeout").CombinedOutput()
	if err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runCLI(tb testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		tb.Fatalf("%s %q: %v", bin, args, err)
	}
	tb.Logf("txtimeout %s -> %d\nstdout: %sstderr: %s", strings.Join(args, " "), code, o.String(), e.String())
	return o.String(), e.String(), code
}

// A process killed with SIGKILL mid-injection leaves its qdisc and its
// state file; "txtimeout cleanup" must put back the TBF root qdisc found
// before, byte for byte, and a new run must refuse until then.
func TestIntegrationKillThenCleanup(t *testing.T) {
	v := testVeth(t)
	addTBF(t, v, v.AIdx)
	before := v.root(t, v.AIdx)
	stateDir := t.TempDir()
	bin := buildCLI(t)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	helper := exec.CommandContext(ctx, exe)
	helper.Env = append(os.Environ(), "TXTO_FI_HELPER=netem", "TXTO_FI_NETNS="+v.NS, "TXTO_FI_STATE="+stateDir, "TXTO_FI_IFACE="+v.A)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "injected" {
		helper.Process.Kill()
		helper.Wait()
		t.Fatalf("helper: %q", line)
	}
	during := v.root(t, v.AIdx)
	if during.Handle != ProjectQdiscHandle {
		t.Fatalf("during injection root is %s %s", during.Kind, fmtHandle(during.Handle))
	}
	if err := helper.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	helper.Wait()
	if got := v.root(t, v.AIdx); got.Handle != ProjectQdiscHandle {
		t.Fatalf("after SIGKILL root is %s %s; the kill did not leave the fault behind", got.Kind, fmtHandle(got.Handle))
	}

	// A new run refuses while the stale state is there.
	_, stderr, code := runCLI(t, bin, "inject", "netem", "-iface", v.A, "-netns", v.NS, "-state-dir", stateDir, "-allow-no-handler", "-for", "1s")
	if code != 1 || !strings.HasPrefix(stderr, "txtimeout: ") || !strings.Contains(stderr, "stale state") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("inject over stale state: exit %d, stderr %q; want 1 and one 'stale state' line", code, stderr)
	}

	// cleanup finds the namespace in the state file.
	stdout, _, code := runCLI(t, bin, "cleanup", "-iface", v.A, "-state-dir", stateDir)
	if code != 0 || !strings.Contains(stdout, "re-created tbf 1:") {
		t.Fatalf("cleanup: exit %d, stdout %q", code, stdout)
	}
	sameQdisc(t, "after cleanup", v.root(t, v.AIdx), before)
	if stale, _ := StaleState(Options{StateDir: stateDir}); len(stale) != 0 {
		t.Errorf("state left after cleanup: %v", stale)
	}
	stdout, _, code = runCLI(t, bin, "cleanup", "-all", "-netns", v.NS, "-state-dir", stateDir)
	if code != 0 || !strings.Contains(stdout, "clean, nothing to do") {
		t.Errorf("second cleanup -all: exit %d, stdout %q", code, stdout)
	}
}
