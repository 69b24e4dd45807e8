//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"txtimeout/internal/nsexec"
	"txtimeout/rig/internal/guestproto"
)

// setupNetwork brings lo up, finds each of the rig's NICs by its MAC
// address, names it, gives it its address and brings it up; a NIC with a
// namespace (the loop topology's partner port) is moved into it first.
func setupNetwork(nics []guestproto.NIC) error {
	if len(nics) == 0 {
		return errors.New("the guest configuration names no NIC")
	}
	if err := linkUp(netlink.LinkByName, netlink.LinkSetUp, "lo"); err != nil {
		return err
	}
	links, err := findNICs(nics, 30*time.Second)
	if err != nil {
		return err
	}
	if err := renameNICs(nics, links); err != nil {
		return err
	}
	var wait []func() bool
	for i, n := range nics {
		up, err := configureNIC(n, links[i])
		if err != nil {
			return err
		}
		wait = append(wait, up)
	}
	// The first NIC's carrier before the tests start: it normally comes
	// at once on an emulated NIC, and the tests report it if it does not,
	// so this only waits, it does not fail. The other NICs' carrier is
	// waited for by the tests that use them (scenario.Preflight): an
	// e1000 reports its link only at its first watchdog run, about 2 s
	// after it came up, which would hold up every test of the boot.
	deadline := time.Now().Add(10 * time.Second)
	for !wait[0]() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !wait[0]() {
		logf("%s: no carrier after 10s (continuing)", nics[0].Iface)
	}
	return nil
}

// findNICs waits until a device with each NIC's MAC address has appeared
// (its driver has bound) and returns them in the NICs' order.
func findNICs(nics []guestproto.NIC, within time.Duration) ([]netlink.Link, error) {
	deadline := time.Now().Add(within)
	for {
		byMAC := map[string]netlink.Link{}
		all, err := netlink.LinkList()
		if err != nil {
			return nil, err
		}
		for _, l := range all {
			if a := l.Attrs(); len(a.HardwareAddr) == 6 && l.Type() == "device" {
				byMAC[a.HardwareAddr.String()] = l
			}
		}
		var found []netlink.Link
		var missing []string
		for _, n := range nics {
			if l, ok := byMAC[n.MAC]; ok {
				found = append(found, l)
			} else {
				missing = append(missing, n.Model+" "+n.MAC)
			}
		}
		if len(missing) == 0 {
			return found, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no Ethernet device for %q appeared within %v (NIC driver not bound?)", missing, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// renameNICs gives each device its NIC's name. Names may be swapped (the
// kernel numbers devices in the order their drivers bind), so every
// device that needs a new name first gets a temporary one.
func renameNICs(nics []guestproto.NIC, links []netlink.Link) error {
	var todo []int
	for i, n := range nics {
		if links[i].Attrs().Name != n.Iface {
			todo = append(todo, i)
		}
	}
	for _, i := range todo {
		if err := netlink.LinkSetDown(links[i]); err != nil {
			return err
		}
		if err := netlink.LinkSetName(links[i], fmt.Sprintf("rigtmp%d", i)); err != nil {
			return fmt.Errorf("renaming %s: %w", links[i].Attrs().Name, err)
		}
	}
	for _, i := range todo {
		if err := netlink.LinkSetName(links[i], nics[i].Iface); err != nil {
			return fmt.Errorf("renaming %s's device to %s: %w", nics[i].MAC, nics[i].Iface, err)
		}
	}
	return nil
}

// configureNIC gives the device its address and brings it up, in its
// namespace if it has one, and returns how to ask whether its carrier is
// up.
func configureNIC(n guestproto.NIC, l netlink.Link) (carrier func() bool, err error) {
	h := &netlink.Handle{}
	if n.NetNS != "" {
		ns, err := makeNetNS(n.NetNS)
		if err != nil {
			return nil, err
		}
		defer ns.Close()
		if err := netlink.LinkSetNsFd(l, int(ns)); err != nil {
			return nil, fmt.Errorf("moving %s into network namespace %s: %w", n.Iface, n.NetNS, err)
		}
		if h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
			return nil, fmt.Errorf("netlink in network namespace %s: %w", n.NetNS, err)
		}
		if err := linkUp(h.LinkByName, h.LinkSetUp, "lo"); err != nil {
			return nil, err
		}
		if err := quietPartnerPort(n); err != nil {
			return nil, err
		}
	}
	link, err := h.LinkByName(n.Iface)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Iface, err)
	}
	a, err := netlink.ParseAddr(n.Addr)
	if err != nil {
		return nil, err
	}
	if err := h.AddrAdd(link, a); err != nil {
		return nil, fmt.Errorf("%s: adding %s: %w", n.Iface, n.Addr, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("%s up: %w", n.Iface, err)
	}
	return func() bool {
		l, err := h.LinkByName(n.Iface)
		return err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
	}, nil
}

func linkUp(byName func(string) (netlink.Link, error), up func(netlink.Link) error, name string) error {
	l, err := byName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := up(l); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	return nil
}

// makeNetNS makes the named network namespace as ip netns add does: a
// file under /run/netns that a namespace is bind-mounted on, so that
// ip netns exec NAME and faultinject.Options.NetNS find it.
func makeNetNS(name string) (netns.NsHandle, error) {
	var h netns.NsHandle
	err := nsexec.DoHandle(netns.None(), name, func() error {
		var err error
		h, err = netns.NewNamed(name) // moves this thread, which DoHandle brings back
		return err
	})
	if err != nil {
		return netns.None(), fmt.Errorf("making network namespace %s: %w", name, err)
	}
	return h, nil
}

// quietPartnerPort keeps the partner port's kernel from answering ARP and
// ping for its address: the link partner does (over AF_PACKET), and a DUT
// that got every reply twice would count duplicates.
func quietPartnerPort(n guestproto.NIC) error {
	return nsexec.Do(netNSPath(n.NetNS), func() error {
		for _, w := range []struct{ path, v string }{
			{"/proc/sys/net/ipv4/icmp_echo_ignore_all", "1"},
			// 8: reply for no local address.
			{"/proc/sys/net/ipv4/conf/all/arp_ignore", "8"},
		} {
			if err := os.WriteFile(w.path, []byte(w.v), 0); err != nil {
				return fmt.Errorf("partner port %s: %w", n.Iface, err)
			}
		}
		return nil
	})
}

func netNSPath(name string) string { return path.Join(guestproto.NetNSDir, name) }

// partnerStartTimeout bounds the loop partner's start, partnerStopTimeout
// its stop after SIGTERM.
const (
	partnerStartTimeout = 30 * time.Second
	partnerStopTimeout  = 10 * time.Second
)

// startLoopPartners starts the link partner of each NIC in a namespace
// (the loop topology's partner port): the test binary re-executed in that
// namespace with guestproto.LoopPartnerEnv, which package rig serves. It
// returns once each says it serves; stop ends them (SIGTERM, then SIGKILL).
func startLoopPartners(nics []guestproto.NIC) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for _, n := range nics {
		if n.NetNS == "" {
			continue
		}
		s, err := startLoopPartner(n)
		if err != nil {
			stop()
			return func() {}, err
		}
		stops = append(stops, s)
	}
	return stop, nil
}

func startLoopPartner(n guestproto.NIC) (stop func(), err error) {
	ip, _, err := net.ParseCIDR(n.Addr)
	if err != nil {
		return nil, fmt.Errorf("partner port %s: %w", n.Iface, err)
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	cmd := exec.Command(guestproto.TestPath, "-test.run=^$", "-test.count=1")
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	cmd.Env = []string{"PATH=/", "HOME=/", "TMPDIR=/tmp", guestproto.LoopPartnerEnv + "=" + n.Iface, guestproto.LoopPartnerIPEnv + "=" + ip.String()}
	cmd.ExtraFiles = []*os.File{wr}
	// Forked from a thread inside the namespace, the partner and all its
	// threads live there.
	err = nsexec.Do(netNSPath(n.NetNS), cmd.Start)
	wr.Close()
	if err != nil {
		return nil, fmt.Errorf("starting the loop partner on %s: %w", n.Iface, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(rd).ReadString('\n')
		ready <- line
	}()
	fail := func(why string) error {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("the loop partner on %s (%s with %s, in network namespace %s) %s: the test binary must link txtimeout/rig, which serves it", n.Iface, guestproto.TestPath, guestproto.LoopPartnerEnv, n.NetNS, why)
	}
	select {
	case line := <-ready:
		if line == "" {
			return nil, fail("exited before serving")
		}
	case err := <-exited:
		exited <- err
		return nil, fail(fmt.Sprintf("exited before serving (%v)", err))
	case <-time.After(partnerStartTimeout):
		return nil, fail(fmt.Sprintf("did not serve within %v", partnerStartTimeout))
	}
	logf("link partner serving on %s in network namespace %s (pid %d)", n.Iface, n.NetNS, cmd.Process.Pid)
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(partnerStopTimeout):
			logf("the link partner on %s did not stop within %v of SIGTERM: killed", n.Iface, partnerStopTimeout)
			cmd.Process.Kill()
			<-exited
		}
	}, nil
}
