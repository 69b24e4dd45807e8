// Package guest is what code running inside the virtual rig's guest uses:
// whether it runs there, its NICs, the link partners' early resume, and
// the kernel modules the guest init loaded. It holds nothing of the host side (QEMU,
// the partner, the initramfs), so the guest init and the guest's tests
// link without the launcher of package txtimeout/rig.
package guest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"txtimeout/rig/internal/guestproto"
)

// Inside reports whether this process runs inside the rig's guest: the
// guest init sets TXTIMEOUT_RIG=1 and is PID 1, the test binary's parent.
func Inside() bool {
	return os.Getenv("TXTIMEOUT_RIG") == "1" && os.Getppid() == 1
}

// ResumePartner ends the current stall of eth0's link partner now: it is
// ResumePartnerOn("eth0"), in the form older hosts understand too. It works only
// inside the rig's guest (Inside): a stalled partner does not read the DUT
// link, so the in-band resume frame cannot reach it, but the host owns the
// partner and listens on the guest's control serial port, where
// ResumePartner writes one "TXTO RESUME nonce" line. The host answers
// nothing and does nothing when no stall is in progress; the caller sees
// the effect on the link (TX draining again, the partner acknowledging a
// control frame). Outside the guest the error matches os.ErrNotExist.
//
// faultinject.StallConfig.Resume takes it as
//
//	func(context.Context) error { return guest.ResumePartner() }
func ResumePartner() error { return resume("") }

// ResumePartnerOn ends the current stall of the link partner of the
// guest's interface iface (one of NICs) now, as ResumePartner does for
// eth0: the host ends the stall of that NIC's partner and no other's.
func ResumePartnerOn(iface string) error {
	if iface == "" || strings.ContainsAny(iface, " \t\n") {
		return fmt.Errorf("rig: resuming the partner of interface %q: want an interface name such as eth1", iface)
	}
	return resume(iface)
}

// resume sends the RESUME line, naming iface unless it is "".
func resume(iface string) error {
	if !Inside() {
		return fmt.Errorf("rig: no link partner to resume: not inside the virtual rig's guest (TXTIMEOUT_RIG=1, child of the rig's init): %w", os.ErrNotExist)
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	line := guestproto.Resume + " " + hex.EncodeToString(nb[:])
	if iface != "" {
		line += " " + iface
	}
	return writeControlLine(guestproto.ControlTTY, line)
}

// NIC is one of the guest's NICs and its link partner, as the rig cabled
// them: eth0 (the DUT, what TXTIMEOUT_IFACE, TXTIMEOUT_PEER_IP and
// TXTIMEOUT_PEER_MAC say) first, then rig.Config.MoreNICs as eth1, eth2,
// ..., each with a host partner of its own on its own subnet
// (198.18.N.2/24, partner 198.18.N.1).
type NIC struct {
	// Model is the QEMU NIC model (e1000e), Iface the interface (eth1).
	Model, Iface string
	// MAC is the NIC's address, IP its IPv4 address (a /24).
	MAC net.HardwareAddr
	IP  net.IP
	// PeerIP and PeerMAC are the link partner's addresses.
	PeerIP  net.IP
	PeerMAC net.HardwareAddr
}

// NICs returns the guest's NICs, eth0 first. It works only inside the
// rig's guest (Inside); elsewhere (the loop topology's guest too, which
// runs in hardware mode) the error matches os.ErrNotExist.
func NICs() ([]NIC, error) {
	if !Inside() {
		return nil, fmt.Errorf("rig: the rig's NICs are known only inside the virtual rig's guest: %w", os.ErrNotExist)
	}
	return nicsIn(guestproto.ConfigPath)
}

// nicsIn reads the NICs of the guest configuration file at path, leaving
// out a partner port moved into a namespace.
func nicsIn(path string) ([]NIC, error) {
	c, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	var out []NIC
	for _, n := range c.NICs {
		if n.NetNS != "" {
			continue
		}
		mac, err1 := net.ParseMAC(n.MAC)
		peerMAC, err2 := net.ParseMAC(n.PeerMAC)
		ip, _, err3 := net.ParseCIDR(n.Addr)
		peerIP := net.ParseIP(n.PeerIP)
		if err := errors.Join(err1, err2, err3); err != nil || peerIP == nil {
			return nil, fmt.Errorf("rig: %s: NIC %s: malformed addresses: %v", path, n.Iface, err)
		}
		out = append(out, NIC{Model: n.Model, Iface: n.Iface, MAC: mac, IP: ip.To4(), PeerIP: peerIP.To4(), PeerMAC: peerMAC})
	}
	return out, nil
}

// Module is a kernel module the rig's init loaded in the guest: what a
// test needs to load it again after removing it (the guest has no
// modprobe). Its fields are guestproto.ModuleFile's, in the same order,
// so that the init converts one into the other.
type Module struct {
	Name string
	// Path is the module file inside the guest.
	Path string
	// Compressed asks the kernel to decompress the file
	// (MODULE_INIT_COMPRESSED_FILE).
	Compressed bool
	// Params are finit_module's parameters ("IntMode=1"), as the init
	// passed them.
	Params string
}

// ModuleFile returns how the init loaded the module name. It works only
// inside the rig's guest (Inside); elsewhere the error matches
// os.ErrNotExist.
func ModuleFile(name string) (Module, error) {
	if !Inside() {
		return Module{}, fmt.Errorf("rig: module files are known only inside the virtual rig's guest: %w", os.ErrNotExist)
	}
	return moduleIn(guestproto.ConfigPath, name)
}

// readConfig reads the guest configuration file at path.
func readConfig(path string) (guestproto.Config, error) {
	var c guestproto.Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("rig: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("rig: %s: %w", path, err)
	}
	return c, nil
}

// moduleIn finds the module name in the guest configuration file at path.
func moduleIn(path, name string) (Module, error) {
	c, err := readConfig(path)
	if err != nil {
		return Module{}, err
	}
	for _, m := range c.Modules {
		if m.Name == name {
			return Module(m), nil
		}
	}
	return Module{}, fmt.Errorf("rig: the guest init loaded no module %s: %w", name, os.ErrNotExist)
}
