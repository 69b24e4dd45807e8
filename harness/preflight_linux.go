package harness

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"txtimeout/drivers"
	"txtimeout/internal/nsexec"
)

// Preflight checks what the scenarios need and returns one Check per
// item: root or CAP_NET_ADMIN, /dev/kmsg, the interface (when c.Iface is
// set: it exists, is up, has carrier) and its driver, netem, pktgen and
// the tx-timeout tracepoint. Inside the virtual rig (c.Rig), every check
// but the driver's is Required: a failure is a failure of the rig.
func Preflight(c Config) []Check {
	checks := []Check{checkRoot(), checkKmsg()}
	if c.Iface != "" {
		checks = append(checks, checkIface(c.Iface), checkDriver(c.Iface))
	}
	netem := probeResult(CheckNetem, "netem qdisc available", ProbeNetem(),
		"enable CONFIG_NET_SCH_NETEM (=m) and install the kernel's modules (Debian: linux-image-*, Ubuntu: linux-modules-extra-$(uname -r))")
	pktgen := probeResult(CheckPktgen, "pktgen available (/proc/net/pktgen/pgctrl)", ProbePktgen(),
		"modprobe pktgen (kernel option CONFIG_NET_PKTGEN=m)")
	tp := probeResult(CheckTracepoint, "tracepoint net:net_dev_xmit_timeout available", ProbeTracepoint(),
		"mount -t tracefs nodev /sys/kernel/tracing (kernel 5.2+ with CONFIG_TRACEPOINTS)")
	checks = append(checks, netem, pktgen, tp)
	if c.Rig {
		// The virtual rig's guest is built to have all of it: a failed
		// check there is a broken rig, never a reason to skip. But for
		// the driver's: a driver without a tx-timeout handler on the
		// kernel the rig boots (virtio_net before 5.16) is a DUT that
		// cannot be tested, which the scenario says with a skip.
		for i := range checks {
			checks[i].Required = checks[i].Name != CheckDriver
		}
	}
	return checks
}

func probeResult(name, okReason string, err error, fix string) Check {
	if err == nil {
		return Check{Name: name, OK: true, Reason: okReason}
	}
	c := Check{Name: name, Reason: err.Error(), Fix: fix}
	if !errors.Is(err, ErrNotSupported) {
		c.Reason = "cannot tell: " + c.Reason
	}
	return c
}

func checkRoot() Check {
	c := Check{Name: CheckRoot}
	if os.Geteuid() == 0 {
		c.OK, c.Reason = true, "running as root"
		return c
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err == nil && data[0].Effective&(1<<unix.CAP_NET_ADMIN) != 0 {
		c.OK, c.Reason = true, "CAP_NET_ADMIN is effective"
		return c
	}
	c.Reason = "not root and CAP_NET_ADMIN is not effective: qdiscs, pktgen and the kernel log are out of reach"
	c.Fix = "run as root (sudo -E go test ...) or grant CAP_NET_ADMIN"
	return c
}

func checkKmsg() Check {
	c := Check{Name: CheckKmsg}
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|unix.O_NONBLOCK, 0)
	switch {
	case err == nil:
		f.Close()
		c.OK, c.Reason = true, "/dev/kmsg readable"
	case errors.Is(err, os.ErrPermission):
		c.Reason = "/dev/kmsg not readable: permission denied"
		c.Fix = "run as root, or sysctl kernel.dmesg_restrict=0"
	case errors.Is(err, os.ErrNotExist):
		c.Reason = "/dev/kmsg does not exist"
		c.Fix = "mount devtmpfs on /dev (kernel with CONFIG_PRINTK)"
	default:
		c.Reason = "/dev/kmsg: " + err.Error()
	}
	return c
}

func checkIface(iface string) Check {
	c := Check{Name: CheckIface}
	link, err := netlink.LinkByName(iface)
	if err != nil {
		c.Reason = fmt.Sprintf("interface %s not found: %v", iface, err)
		c.Fix = "check -iface / TXTIMEOUT_IFACE (ip -br link lists the interfaces)"
		return c
	}
	a := link.Attrs()
	if a.Flags&net.FlagUp == 0 {
		c.Reason = fmt.Sprintf("interface %s is down", iface)
		c.Fix = "ip link set " + iface + " up"
		return c
	}
	if a.RawFlags&unix.IFF_LOWER_UP == 0 {
		c.Reason = fmt.Sprintf("interface %s has no carrier (operstate %s): the TX watchdog is off without carrier", iface, a.OperState)
		c.Fix = "connect the link partner and check the cable and the partner port"
		return c
	}
	c.OK = true
	c.Reason = fmt.Sprintf("interface %s is up with carrier (mtu %d, %d tx queues)", iface, a.MTU, a.NumTxQueues)
	return c
}

// WaitCarrier waits until iface has carrier (IFF_LOWER_UP), at most d: an
// emulated e1000 reports its link only at its first watchdog run, about 2 s
// after it was brought up. It returns nil once the carrier is there, else
// why not; it changes nothing.
func WaitCarrier(ctx context.Context, iface string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		return fmt.Errorf("waiting for %s's carrier: %w", iface, err)
	}
	defer func() {
		close(done)
		// The library's reader sends without watching done and closes
		// the channel when it ends: drain it so that it can.
		go func() {
			for range updates {
			}
		}()
	}()
	// After subscribing, so that a carrier that comes in between is seen.
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("waiting for %s's carrier: %w", iface, err)
	}
	if link.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
		return nil
	}
	for {
		select {
		case u := <-updates:
			if u.Attrs().Name == iface && u.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("%s has no carrier after %v", iface, d)
		}
	}
}

// DriverName returns the driver of iface: the sysfs device link, or for
// devices without one (veth, dummy, ...) what ethtool's driver info says.
func DriverName(iface string) (string, error) {
	if target, err := os.Readlink(filepath.Join("/sys/class/net", iface, "device", "driver")); err == nil {
		return filepath.Base(target), nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("driver of %s: %w", iface, err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, iface)
	if err != nil {
		if link, lerr := netlink.LinkByName(iface); lerr == nil && link.Attrs().Flags&net.FlagLoopback != 0 {
			return "loopback", nil
		}
		return "", fmt.Errorf("driver of %s: %w", iface, err)
	}
	return unix.ByteSliceToString(info.Driver[:]), nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func checkDriver(iface string) Check {
	driver, err := DriverName(iface)
	if err != nil {
		driver = ""
	}
	hit := ""
	if _, known := drivers.Lookup(driver); !known && driver != "" {
		if b, err := os.ReadFile("/proc/kallsyms"); err == nil {
			hit = kallsymsTxTimeout(string(b), driver)
		}
	}
	return driverCheck(iface, driver, kernelRelease(), hit)
}

// kernelConfig returns the value of a kernel config option ("y", "m",
// "n" for "is not set") from /proc/config.gz or /boot/config-RELEASE, and
// "" when no config is readable.
func kernelConfig(option string) string {
	var text []byte
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			text, _ = io.ReadAll(io.LimitReader(zr, 16<<20))
		}
	}
	if text == nil {
		text, _ = os.ReadFile("/boot/config-" + kernelRelease())
	}
	if text == nil {
		return ""
	}
	for _, line := range bytes.Split(text, []byte("\n")) {
		s := string(line)
		if strings.HasPrefix(s, option+"=") {
			return strings.Trim(strings.TrimPrefix(s, option+"="), `"`)
		}
		if s == "# "+option+" is not set" {
			return "n"
		}
	}
	return "n"
}

// moduleFile reports whether a module file for name exists under
// /lib/modules/RELEASE (any compression).
func moduleFile(dir, name string) bool {
	base := filepath.Join("/lib/modules", kernelRelease(), "kernel", dir, name+".ko")
	for _, ext := range []string{"", ".xz", ".zst", ".gz"} {
		if _, err := os.Stat(base + ext); err == nil {
			return true
		}
	}
	return false
}

var cachedNetem = sync.OnceValue(probeNetem)

// ProbeNetem reports whether a netem qdisc can be created (kernel option
// CONFIG_NET_SCH_NETEM, module sch_netem, loaded on demand by the kernel).
// The result is cached. It has three outcomes: nil, an error wrapping
// ErrNotSupported, or another error when it cannot tell.
//
// As root it tries for real: it adds a netem root qdisc to the loopback
// device of a throwaway network namespace, which leaves the machine's own
// namespaces untouched. Otherwise, or if that namespace cannot be made, it
// reads the kernel config and the modules directory.
func ProbeNetem() error {
	return cachedNetem()
}

func probeNetem() error {
	if os.Geteuid() == 0 {
		err := tryNetem()
		if err == nil || errors.Is(err, ErrNotSupported) {
			return err
		}
	}
	if _, err := os.Stat("/sys/module/sch_netem"); err == nil {
		return nil
	}
	switch kernelConfig("CONFIG_NET_SCH_NETEM") {
	case "y":
		return nil
	case "m":
		if moduleFile("net/sched", "sch_netem") {
			return nil
		}
		return fmt.Errorf("sch_netem is a module (CONFIG_NET_SCH_NETEM=m) but its file is not installed: %w", ErrNotSupported)
	case "n":
		return fmt.Errorf("the kernel is built without netem (CONFIG_NET_SCH_NETEM is not set): %w", ErrNotSupported)
	}
	if moduleFile("net/sched", "sch_netem") {
		return nil
	}
	return errors.New("no kernel config and no sch_netem module file found")
}

// tryNetem adds a netem qdisc in a new network namespace, so nothing
// outside that namespace changes. It runs on a thread of its own that
// nsexec brings back to its namespace before it unlocks it, and answers
// only then. Relying on the thread ending alone is not enough: when the
// goroutine happens to run on the main thread, Go wedges that thread
// instead of ending it, and /proc/net (which follows the main thread)
// would show the probe's empty namespace to the whole process from then on
// (pktgen's add_device then fails with ENODEV).
func tryNetem() error {
	return nsexec.DoHandle(netns.None(), "of the netem probe", netemInNewNamespace)
}

// netemInNewNamespace moves the calling thread into a new namespace and
// adds a netem qdisc to its loopback.
func netemInNewNamespace() error {
	ns, err := netns.New()
	if err != nil {
		return fmt.Errorf("new network namespace: %w", err)
	}
	defer ns.Close()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback of the probe namespace: %w", err)
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: lo.Attrs().Index, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(1, 0)},
		netlink.NetemQdiscAttrs{Latency: 1000, Limit: 1000})
	err = netlink.QdiscAdd(q)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP):
		reason := "the kernel does not know the netem qdisc"
		switch kernelConfig("CONFIG_NET_SCH_NETEM") {
		case "n":
			reason += " (CONFIG_NET_SCH_NETEM is not set)"
		case "m":
			reason += " (sch_netem is a module that did not load)"
		}
		return fmt.Errorf("%s: %w", reason, ErrNotSupported)
	default:
		return fmt.Errorf("adding a netem qdisc: %w", err)
	}
}

var cachedPktgen = sync.OnceValue(probePktgen)

// ProbePktgen reports whether pktgen is ready (/proc/net/pktgen/pgctrl;
// kernel option CONFIG_NET_PKTGEN, module pktgen). It does not load the
// module: a missing pgctrl is ErrNotSupported, with a reason that says
// whether modprobe would help. The result is cached.
func ProbePktgen() error {
	return cachedPktgen()
}

func probePktgen() error {
	_, err := os.Stat("/proc/net/pktgen/pgctrl")
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("/proc/net/pktgen/pgctrl: %w", err)
	}
	switch cfg := kernelConfig("CONFIG_NET_PKTGEN"); {
	case cfg == "n":
		return fmt.Errorf("the kernel is built without pktgen (CONFIG_NET_PKTGEN is not set): %w", ErrNotSupported)
	case moduleFile("net/core", "pktgen"):
		return fmt.Errorf("the pktgen module is installed but not loaded: %w", ErrNotSupported)
	case cfg == "m":
		return fmt.Errorf("pktgen is a module (CONFIG_NET_PKTGEN=m) but its file is not installed: %w", ErrNotSupported)
	}
	return fmt.Errorf("no /proc/net/pktgen: %w", ErrNotSupported)
}

// tracefsRoot returns where tracefs is mounted, or "".
func tracefsRoot() string {
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[2] == "tracefs" {
				return f[1]
			}
		}
	}
	for _, d := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(d, "events")); err == nil {
			return d
		}
	}
	return ""
}

// ProbeTracepoint reports whether net:net_dev_xmit_timeout can be traced
// (tracefs mounted, kernel 5.2+ with CONFIG_TRACEPOINTS). It is not
// cached: tracefs may be mounted later.
func ProbeTracepoint() error {
	root := tracefsRoot()
	if root == "" {
		return fmt.Errorf("tracefs is not mounted: %w", ErrNotSupported)
	}
	_, err := os.Stat(filepath.Join(root, "events/net/net_dev_xmit_timeout/enable"))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no net:net_dev_xmit_timeout tracepoint under %s (kernel before 5.2?): %w", root, ErrNotSupported)
	}
	return err
}
