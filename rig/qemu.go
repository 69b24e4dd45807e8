package rig

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// qemuSpec is everything the QEMU command line depends on.
type qemuSpec struct {
	Binary string // qemu-system-x86_64
	Accel  string // "tcg" or "kvm"
	SMP    int
	MemMB  int
	Kernel string
	Initrd string
	Append string
	// NICs are the guest's NICs, in PCI order (eth0 first).
	NICs []qemuNIC
	// Serials are the unix sockets of ttyS0, ttyS1, ttyS2, in order;
	// the host listens on each and QEMU connects.
	Serials []string
	// Monitor, if set, is a unix socket QEMU serves its human monitor
	// on; the host connects only to report a hung guest's state.
	Monitor string
}

// qemuNIC is one guest NIC on the QEMU command line: a stream netdev to
// the host partner listening on NetSock, or, with Hub set, a port of
// QEMU's internal hub 0, which cables it to the hub's other ports (the
// loop topology's two NICs).
type qemuNIC struct {
	Model, MAC, NetSock string
	Hub                 bool
}

// kernelCmdline is the guest kernel's command line:
//   - console=ttyS0,115200: the console is the first serial port, kept as console.log;
//   - panic=-1: reboot at once on a panic, and -no-reboot turns that into
//     QEMU exiting; oops are left alone, since the suite must observe a splat;
//   - loglevel=5: the console shows warnings and worse (the watchdog line
//     is KERN_CRIT); every record still reaches /dev/kmsg;
//   - printk.devkmsg=on: tests may write records to /dev/kmsg unthrottled;
//   - cryptomgr.notests: the crypto manager does not self-test every
//     algorithm the kernel registers at boot (crypto_algapi_init took
//     0.29 s under TCG, initcall_debug; the kernel's start to /init took
//     1.4-1.5 s with it, 1.8-2.5 s without, medians of two rounds of 4-5
//     interleaved boots); the suite uses no kernel crypto, and module
//     signatures still verify (the kernel is not tainted);
//   - rdinit=/init: the Go init of the initramfs.
func kernelCmdline() string {
	return "console=ttyS0,115200 panic=-1 loglevel=5 printk.devkmsg=on cryptomgr.notests rdinit=/init"
}

// qemuArgs builds the QEMU command line (without the binary). It is pure
// but for qemuFirmware: no QEMU is needed to test it.
func qemuArgs(s qemuSpec) ([]string, error) {
	if s.Accel != "tcg" && s.Accel != "kvm" {
		return nil, fmt.Errorf("accelerator %q: want tcg or kvm", s.Accel)
	}
	if s.SMP < 1 || s.MemMB < 1 {
		return nil, fmt.Errorf("smp %d, memory %d MiB: both must be positive", s.SMP, s.MemMB)
	}
	if len(s.Serials) != 3 {
		return nil, fmt.Errorf("want 3 serial ports (console, output, control), got %d", len(s.Serials))
	}
	if strings.ContainsAny(s.Monitor, ",\n") {
		return nil, fmt.Errorf("QEMU monitor socket %q holds a comma", s.Monitor)
	}
	if len(s.NICs) == 0 {
		return nil, fmt.Errorf("want at least one NIC")
	}
	words := append([]string{s.Kernel, s.Initrd}, s.Serials...)
	for _, n := range s.NICs {
		words = append(words, n.Model, n.MAC)
		if n.Hub != (n.NetSock == "") {
			return nil, fmt.Errorf("NIC %s %s: want a partner socket or the hub, one of them", n.Model, n.MAC)
		}
		if !n.Hub {
			words = append(words, n.NetSock)
		}
	}
	for _, p := range words {
		// QEMU's option syntax uses commas as separators.
		if p == "" || strings.ContainsAny(p, ",\n") {
			return nil, fmt.Errorf("QEMU argument %q is empty or holds a comma", p)
		}
	}
	args := []string{
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-no-reboot",
		"-accel", s.Accel,
	}
	if s.Accel == "kvm" {
		args = append(args, "-cpu", "host")
	} else {
		args = append(args, "-cpu", "qemu64")
	}
	if fw := qemuFirmware(s.Binary); fw != "" {
		args = append(args, "-bios", fw)
	}
	args = append(args,
		"-m", strconv.Itoa(s.MemMB),
		"-smp", strconv.Itoa(s.SMP),
		"-kernel", s.Kernel,
		"-initrd", s.Initrd,
		"-append", s.Append,
	)
	for i, n := range s.NICs {
		id := "n" + strconv.Itoa(i)
		// The stream netdev (QEMU 7.2+) frames each packet with a 4-byte
		// big-endian length; server=off: QEMU connects to the partner.
		netdev := "stream,id=" + id + ",server=off,addr.type=unix,addr.path=" + n.NetSock
		if n.Hub {
			// A hub forwards each frame to its other ports, and a port
			// takes frames only while another one can receive
			// (net/hub.c): the two NICs are cabled to each other.
			netdev = "hubport,id=" + id + ",hubid=0"
		}
		args = append(args, "-netdev", netdev, "-device", n.Model+",netdev="+id+",mac="+n.MAC)
	}
	for _, p := range s.Serials {
		args = append(args, "-serial", "unix:"+p)
	}
	if s.Monitor != "" {
		// wait=off: QEMU does not wait for a client before it runs.
		args = append(args, "-monitor", "unix:"+s.Monitor+",server=on,wait=off")
	}
	return args, nil
}

// qemuFirmware returns the firmware for -bios, or "" for QEMU's default
// (SeaBIOS). A variable: tests replace it.
var qemuFirmware = findQboot

var qboots sync.Map // QEMU binary -> qboot.rom path or ""

// findQboot finds qboot.rom, the minimal firmware QEMU ships (Debian:
// qemu-system-data, which qemu-system-x86 depends on), in the data
// directories the QEMU binary lists with -L help; "" if it has none. qboot
// does what a -kernel boot needs (PCI, e820, ACPI tables from QEMU, the
// kernel's entry) and no POST, option ROMs or boot menu. Measured under
// TCG from QEMU's start to the kernel's clock starting, with the unpacked
// kernel (unpackKernel): 0.19 s against SeaBIOS's 0.25 s (medians of 3,
// idle machine), shorter in 6 of 9 interleaved pairs at load 5-13, with
// the same QEMU CPU time (3.45 s and 3.46 s to the first test): what
// qboot saves is SeaBIOS's waiting, not its work. With a bzImage the
// guest's decompression dwarfs the difference.
func findQboot(binary string) string {
	if binary == "" {
		return ""
	}
	if p, ok := qboots.Load(binary); ok {
		return p.(string)
	}
	found := ""
	out, _ := exec.Command(binary, "-L", "help").Output()
	for _, d := range strings.Split(string(out), "\n") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		p := filepath.Clean(filepath.Join(d, "qboot.rom"))
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && !strings.ContainsAny(p, ",\n") {
			found = p
			break
		}
	}
	qboots.Store(binary, found)
	return found
}
