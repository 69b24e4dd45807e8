package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPartnerHelperProcess is not a test: it runs txtimeout with the
// arguments in TXTIMEOUT_HELPER_ARGS, so that the tests below can run it
// in a namespace of theirs ("ip netns exec NS <test binary>").
func TestPartnerHelperProcess(t *testing.T) {
	args := os.Getenv("TXTIMEOUT_HELPER_ARGS")
	if args == "" {
		t.Skip("skipping: a helper process for TestPartnerCommand, not a test")
	}
	os.Exit(run(strings.Fields(args), os.Stdout, os.Stderr))
}

// txtimeoutIn starts txtimeout args in namespace ns and returns it with its
// output, one line a receive.
func txtimeoutIn(t *testing.T, ns string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestPartnerHelperProcess$")
	cmd.Env = append(os.Environ(), "TXTIMEOUT_HELPER_ARGS="+strings.Join(args, " "))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Log(sc.Text())
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// waitLine reads lines until one contains want.
func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a line with %q", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no line with %q within 20 s", want)
		}
	}
}

// waitExit waits for cmd's exit status.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s later")
	}
	return -1
}

func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-ec", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
	return string(out)
}

// TestPartnerCommand runs "txtimeout partner" in a namespace of its own on
// one end of a veth, the DUT's kernel in another: ping (ARP, then a
// fragmented echo both ways) gets its replies, "txtimeout inject stall"
// is acknowledged and the flood ends at -for-max, SIGTERM stops the
// partner with exit 0, and deleting its interface stops it with exit 1.
func TestPartnerCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for network namespaces and AF_PACKET (run as root)")
	}
	var b [3]byte
	rand.Read(b[:])
	sfx := hex.EncodeToString(b[:])
	dut, part := "txto-cd-"+sfx, "txto-cp-"+sfx
	t.Cleanup(func() { exec.Command("ip", "netns", "del", dut).Run(); exec.Command("ip", "netns", "del", part).Run() })
	sh(t, `
ip netns add `+dut+`
ip netns add `+part+`
for ns in `+dut+` `+part+`; do ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
ip -n `+dut+` link add txd0 type veth peer name txp0 netns `+part+`
ip -n `+dut+` addr add 198.18.9.2/24 dev txd0
ip -n `+dut+` link set txd0 up
ip -n `+part+` link set txp0 up`)
	link := strings.Fields(sh(t, "ip -n "+part+" -o link show txp0"))
	partnerMAC := "none"
	for i, f := range link[:len(link)-1] {
		if f == "link/ether" {
			partnerMAC = link[i+1]
		}
	}
	stateDir := t.TempDir()

	cmd, lines := txtimeoutIn(t, part, "partner", "-iface", "txp0", "-ip", "198.18.9.1/24", "-for-max", "300ms", "-state-dir", stateDir)
	waitLine(t, lines, "answering ARP and ping for 198.18.9.1")

	// The DUT's own kernel: ARP, then an echo of 3000 bytes (3 fragments
	// each way on a 1500-byte MTU).
	sh(t, "ip netns exec "+dut+" ping -q -c 2 -W 5 -s 3000 198.18.9.1")
	neigh := sh(t, "ip -n "+dut+" neigh show 198.18.9.1")
	if !strings.Contains(neigh, "lladdr "+partnerMAC) {
		t.Errorf("DUT's neighbour entry %q does not name the partner's MAC %s", neigh, partnerMAC)
	}

	// A stall of 2 s asked, capped to -for-max (300 ms) by the partner.
	stall := exec.Command("ip", "netns", "exec", dut, os.Args[0], "-test.run=^TestPartnerHelperProcess$")
	stall.Env = append(os.Environ(), "TXTIMEOUT_HELPER_ARGS=inject stall -iface txd0 -allow-no-handler -for 2s -state-dir "+t.TempDir())
	if out, err := stall.CombinedOutput(); err != nil {
		t.Fatalf("inject stall against the partner: %v: %s", err, out)
	}
	waitLine(t, lines, "obeyed for 300ms")
	waitLine(t, lines, "flood stopped after")

	cmd.Process.Signal(syscall.SIGTERM)
	waitLine(t, lines, "partner stopped")
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("partner exited %d after SIGTERM, want 0", code)
	}

	// The interface going away ends it too, as an error.
	cmd, lines = txtimeoutIn(t, part, "partner", "-iface", "txp0", "-ip", "198.18.9.1/24", "-state-dir", stateDir)
	waitLine(t, lines, "answering ARP and ping")
	sh(t, "ip -n "+part+" link del txp0")
	waitLine(t, lines, "txp0 went away")
	if code := waitExit(t, cmd); code != 1 {
		t.Errorf("partner exited %d after its interface went away, want 1", code)
	}
}
