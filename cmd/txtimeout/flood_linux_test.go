package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// floodTestNS creates a txto- network namespace without entering it.
func floodTestNS(tb testing.TB) (string, netns.NsHandle) {
	tb.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "txto-" + hex.EncodeToString(b[:])
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		tb.Fatalf("back to original netns: %v", serr)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("delete netns %s: %v", name, err)
		}
	})
	return "/var/run/netns/" + name, h
}

// TestFloodJSON floods across a veth between two namespaces the test
// creates and checks the JSON summary.
func TestFloodJSON(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (run as root)")
	}
	pathA, hA := floodTestNS(t)
	_, hB := floodTestNS(t)
	nlA, err := netlink.NewHandleAt(hA)
	if err != nil {
		t.Fatal(err)
	}
	defer nlA.Close()
	nlB, err := netlink.NewHandleAt(hB)
	if err != nil {
		t.Fatal(err)
	}
	defer nlB.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "txto-a"
	if err := nlA.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "txto-b", PeerNamespace: netlink.NsFd(int(hB))}); err != nil {
		t.Fatal(err)
	}
	addrA, addrB := net.IPv4(198, 19, 77, 1).To4(), net.IPv4(198, 19, 77, 2).To4()
	for _, e := range []struct {
		h    *netlink.Handle
		name string
		ip   net.IP
	}{{nlA, "txto-a", addrA}, {nlB, "txto-b", addrB}} {
		l, err := e.h.LinkByName(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: e.ip, Mask: net.CIDRMask(30, 32)}}); err != nil {
			t.Fatal(err)
		}
		if err := e.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Until both ends are up, the qdisc is noop and silently drops.
		a, errA := nlA.LinkByName("txto-a")
		b, errB := nlB.LinkByName("txto-b")
		if errA == nil && errB == nil && a.Attrs().OperState == netlink.OperUp && b.Attrs().OperState == netlink.OperUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("veth not up after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc, out, errb := trafficCLI("flood", "icmp", "-dst", addrB.String(), "-netns", pathA, "-iface", "txto-a",
		"-count", "6", "-senders", "2", "-interval", "2ms", "-json")
	if rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	for _, k := range []string{"sent", "received", "errors", "seconds", "pps"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, out)
		}
	}
	if got["sent"] != 6.0 || got["received"] != 6.0 {
		t.Fatalf("sent %v received %v, want 6 and 6", got["sent"], got["received"])
	}
}
