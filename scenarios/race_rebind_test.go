package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"txtimeout/harness"
	"txtimeout/rig/guest"
	"txtimeout/scenario"
)

// The races that take the DUT's netdev away: a driver unbind and rebind,
// and a module reload. Both end with a new netdev for the same device,
// which must come back with the old one's name, MTU and addresses: the
// race action puts them back (netdevConfig.restore) before it returns.

// netdevConfig is what a rebind must put back on the DUT's new netdev.
type netdevConfig struct {
	name      string
	devPath   string // the device's sysfs directory (/sys/devices/...)
	busID     string // its name on its bus (0000:00:02.0, virtio0)
	driverDir string // /sys/bus/BUS/drivers/DRIVER
	module    string // the driver's module ("" when built in)
	mtu       int
	up        bool
	addrs     []netlink.Addr
}

// saveNetdev reads iface's device, driver and configuration.
func saveNetdev(iface string) (netdevConfig, error) {
	c := netdevConfig{name: iface}
	dev, err := filepath.EvalSymlinks(filepath.Join("/sys/class/net", iface, "device"))
	if err != nil {
		return c, fmt.Errorf("%s has no device in sysfs (a virtual interface?): %w", iface, err)
	}
	c.devPath, c.busID = dev, filepath.Base(dev)
	if c.driverDir, err = filepath.EvalSymlinks(filepath.Join(dev, "driver")); err != nil {
		return c, fmt.Errorf("%s's device %s has no driver: %w", iface, c.busID, err)
	}
	if m, err := filepath.EvalSymlinks(filepath.Join(c.driverDir, "module")); err == nil {
		c.module = filepath.Base(m)
	}
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return c, err
	}
	c.mtu, c.up = link.Attrs().MTU, link.Attrs().Flags&net.FlagUp != 0
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return c, fmt.Errorf("listing %s's addresses: %w", iface, err)
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue // the kernel makes those itself
		}
		a.LinkIndex = 0
		c.addrs = append(c.addrs, a)
	}
	return c, nil
}

// netdevOf returns the name of the netdev of the device at devPath, "" when
// it has none (yet).
func netdevOf(devPath string) string {
	ents, err := os.ReadDir(filepath.Join(devPath, "net"))
	if err != nil || len(ents) == 0 {
		return ""
	}
	return ents[0].Name()
}

// restore waits (until ctx ends) for the device to have a netdev again,
// then gives it the old name, MTU and addresses and brings it up as it
// was. It returns what it did.
func (c netdevConfig) restore(ctx context.Context) (string, error) {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		return "", fmt.Errorf("watching for the new netdev: %w", err)
	}
	t0 := time.Now()
	name := netdevOf(c.devPath)
	for name == "" {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no netdev for %s within the race's deadline: %w", c.busID, ctx.Err())
		case <-updates:
		}
		name = netdevOf(c.devPath)
	}
	appeared := time.Since(t0)
	link, err := netlink.LinkByName(name)
	if err != nil {
		return "", err
	}
	var did []string
	if name != c.name {
		if link.Attrs().Flags&net.FlagUp != 0 {
			if err := netlink.LinkSetDown(link); err != nil {
				return "", err
			}
		}
		if err := netlink.LinkSetName(link, c.name); err != nil {
			return "", fmt.Errorf("renaming %s back to %s: %w", name, c.name, err)
		}
		did = append(did, fmt.Sprintf("renamed %s to %s", name, c.name))
		if link, err = netlink.LinkByName(c.name); err != nil {
			return "", err
		}
	}
	if link.Attrs().MTU != c.mtu {
		if err := netlink.LinkSetMTU(link, c.mtu); err != nil {
			return "", fmt.Errorf("MTU back to %d: %w", c.mtu, err)
		}
	}
	for _, a := range c.addrs {
		a := a
		if err := netlink.AddrReplace(link, &a); err != nil {
			return "", fmt.Errorf("address %s back on %s: %w", a.IPNet, c.name, err)
		}
	}
	if len(c.addrs) > 0 {
		did = append(did, fmt.Sprintf("%d addresses back", len(c.addrs)))
	}
	if c.up {
		if err := netlink.LinkSetUp(link); err != nil {
			return "", fmt.Errorf("ip link set %s up: %w", c.name, err)
		}
	}
	return fmt.Sprintf("the new netdev %s appeared %v later; %s", name, appeared.Round(time.Millisecond), strings.Join(did, ", ")), nil
}

// rebindDeadline bounds a rebind's wait for the new netdev.
const rebindDeadline = 30 * time.Second

// unbindBind is Race/Unbind's action: the driver is unbound from the
// device through sysfs and bound again.
func unbindBind(c netdevConfig) scenario.RaceAction {
	return func(ctx context.Context, started func()) (string, error) {
		started()
		t0 := time.Now()
		if err := os.WriteFile(filepath.Join(c.driverDir, "unbind"), []byte(c.busID), 0); err != nil {
			return "", fmt.Errorf("unbinding %s from %s: %w", c.busID, filepath.Base(c.driverDir), err)
		}
		unbound := time.Since(t0)
		if err := os.WriteFile(filepath.Join(c.driverDir, "bind"), []byte(c.busID), 0); err != nil {
			return "", fmt.Errorf("binding %s to %s again: %w", c.busID, filepath.Base(c.driverDir), err)
		}
		rctx, cancel := context.WithTimeout(ctx, rebindDeadline)
		defer cancel()
		did, err := c.restore(rctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("unbind of %s from %s took %v, then bind; %s", c.busID, filepath.Base(c.driverDir), unbound.Round(time.Millisecond), did), nil
	}
}

// raceUnbind is TxTimeout/Race/Unbind.
func raceUnbind(t *testing.T, cfg harness.Config) scenario.Spec {
	scenario.Need(t, cfg, harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver)
	c, err := saveNetdev(cfg.Iface)
	if err != nil {
		scenario.Skipf(t, "skipping: %v", err)
	}
	t.Cleanup(func() { checkNetdevBack(t, c) })
	return raceScenario(t, cfg, "a driver unbind and bind", unbindBind(c))
}

// checkNetdevBack fails t when the DUT is not back as it was after a
// rebind race.
func checkNetdevBack(t *testing.T, c netdevConfig) {
	t.Helper()
	link, err := netlink.LinkByName(c.name)
	if err != nil {
		t.Errorf("after the race, %s is gone: %v (device %s has netdev %q)", c.name, err, c.busID, netdevOf(c.devPath))
		return
	}
	if up := link.Attrs().Flags&net.FlagUp != 0; up != c.up {
		t.Errorf("after the race, %s is up=%t, was up=%t", c.name, up, c.up)
	}
}

// moduleReload is Race/ModuleReload's action: the driver's module is
// removed and loaded again, in the rig's guest from the file the init
// loaded it from (with its parameters), on a hardware DUT with modprobe.
func moduleReload(c netdevConfig, inGuest bool) scenario.RaceAction {
	return func(ctx context.Context, started func()) (string, error) {
		var gm guest.Module
		if inGuest {
			var err error
			if gm, err = guest.ModuleFile(c.module); err != nil {
				return "", err
			}
		}
		started()
		t0 := time.Now()
		if inGuest {
			if err := unix.DeleteModule(c.module, unix.O_NONBLOCK); err != nil {
				return "", fmt.Errorf("removing module %s: %w", c.module, err)
			}
		} else if out, err := exec.CommandContext(ctx, "modprobe", "-r", c.module).CombinedOutput(); err != nil {
			return "", fmt.Errorf("modprobe -r %s: %w: %s", c.module, err, strings.TrimSpace(string(out)))
		}
		removed := time.Since(t0)
		if inGuest {
			if err := gm.Load(); err != nil {
				return "", fmt.Errorf("loading module %s again: %w", c.module, err)
			}
		} else if out, err := exec.CommandContext(ctx, "modprobe", c.module).CombinedOutput(); err != nil {
			return "", fmt.Errorf("modprobe %s: %w: %s", c.module, err, strings.TrimSpace(string(out)))
		}
		rctx, cancel := context.WithTimeout(ctx, rebindDeadline)
		defer cancel()
		did, err := c.restore(rctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("module %s removed in %v and loaded again; %s", c.module, removed.Round(time.Millisecond), did), nil
	}
}

// allowModuleReload is how a hardware DUT's owner asks for
// Race/ModuleReload: removing the driver's module takes down every port it
// drives, the management link's too if they share a driver.
const allowModuleReload = "TXTIMEOUT_ALLOW_MODULE_RELOAD"

// raceModuleReload is TxTimeout/Race/ModuleReload.
func raceModuleReload(t *testing.T, cfg harness.Config) scenario.Spec {
	scenario.Need(t, cfg, harness.CheckRoot, harness.CheckKmsg, harness.CheckIface, harness.CheckDriver)
	if !cfg.Rig && os.Getenv(allowModuleReload) != "1" {
		scenario.Skipf(t, "skipping: Race/ModuleReload removes %s's driver module, which takes down every port it drives; on a hardware DUT set %s=1 to ask for it", cfg.Iface, allowModuleReload)
	}
	c, err := saveNetdev(cfg.Iface)
	if err != nil {
		scenario.Skipf(t, "skipping: %v", err)
	}
	if c.module == "" {
		scenario.Skipf(t, "skipping: %s's driver %s is built into the kernel: there is no module to reload", cfg.Iface, filepath.Base(c.driverDir))
	}
	if cfg.Rig {
		if _, err := guest.ModuleFile(c.module); errors.Is(err, os.ErrNotExist) {
			scenario.Skipf(t, "skipping: %v", err)
		}
	}
	t.Cleanup(func() { checkNetdevBack(t, c) })
	return raceScenario(t, cfg, "a reload of module "+c.module, moduleReload(c, cfg.Rig))
}
