package faultinject

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"txtimeout/internal/pktgenproc"
)

// A run killed while pktgen drove an interface leaves its pktgen devices
// configured (Documentation/networking/pktgen.rst). pktgen can only remove
// all devices of a kernel thread at once (rem_device_all), so Cleanup
// empties every kpktgend_N thread that drives the interface, after
// stopping pktgen if one of them is still running.

// cleanupPktgen removes the pktgen devices on iface under dir (a
// /proc/net/pktgen). It returns what it did; a kernel without pktgen is
// clean.
func cleanupPktgen(dir, iface string) ([]string, error) {
	threads, err := pktgenproc.Threads(dir)
	if err != nil {
		return nil, err
	}
	var actions []string
	stopped := false
	for _, th := range threads {
		var mine []string
		running := false
		for _, d := range th.Running {
			if pktgenproc.On(d, iface) {
				mine, running = append(mine, d), true
			}
		}
		for _, d := range th.Stopped {
			if pktgenproc.On(d, iface) {
				mine = append(mine, d)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if running && !stopped {
			if err := os.WriteFile(filepath.Join(dir, "pgctrl"), []byte("stop"), 0); err != nil {
				return actions, fmt.Errorf("pktgen: stopping: %w", err)
			}
			stopped = true
			actions = append(actions, iface+": stopped pktgen, which was still sending")
		}
		if err := os.WriteFile(th.Path, []byte("rem_device_all"), 0); err != nil {
			return actions, fmt.Errorf("pktgen: rem_device_all on %s: %w", th.Name(), err)
		}
		actions = append(actions, fmt.Sprintf("%s: removed pktgen devices %s from %s (rem_device_all: %s)",
			iface, strings.Join(mine, " "), th.Name(), strings.Join(th.Devices(), " ")))
	}
	return actions, nil
}

// removeLeftoverPktgen runs cleanupPktgen in o's namespace.
func removeLeftoverPktgen(o Options, iface string) ([]string, error) {
	var acts []string
	err := inNetNS(o, func() error {
		var err error
		acts, err = cleanupPktgen(pktgenproc.ThreadSelfDir, iface)
		return err
	})
	if err != nil {
		return acts, fmt.Errorf("%s: %w", iface, err)
	}
	return acts, nil
}
