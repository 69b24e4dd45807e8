package faultinject

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A run killed while pktgen drove an interface leaves its pktgen devices
// configured (Documentation/networking/pktgen.rst). pktgen can only remove
// all devices of a kernel thread at once (rem_device_all), so Cleanup
// empties every kpktgend_N thread that drives the interface, after
// stopping pktgen if one of them is still running.

// pktgenDir is /proc/net/pktgen as the calling thread sees it: /proc/net
// follows the network namespace of the thread that reads it.
const pktgenDir = "/proc/thread-self/net/pktgen"

// pktgenThreads returns the devices each thread file lists, as "Running:"
// and "Stopped:" lines name them (IFACE or IFACE@TAG).
func parsePktgenThread(s string) (running, stopped []string) {
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(name) {
		case "Running":
			running = append(running, strings.Fields(rest)...)
		case "Stopped":
			stopped = append(stopped, strings.Fields(rest)...)
		}
	}
	return running, stopped
}

func pktgenDevMatches(dev, iface string) bool {
	return dev == iface || strings.HasPrefix(dev, iface+"@")
}

// cleanupPktgen removes the pktgen devices on iface under dir (a
// /proc/net/pktgen). It returns what it did; a kernel without pktgen is
// clean.
func cleanupPktgen(dir, iface string) ([]string, error) {
	threads, err := filepath.Glob(filepath.Join(dir, "kpktgend_*"))
	if err != nil {
		return nil, err
	}
	var actions []string
	stopped := false
	for _, th := range threads {
		b, err := os.ReadFile(th)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return actions, fmt.Errorf("pktgen: %w", err)
		}
		run, stop := parsePktgenThread(string(b))
		var mine []string
		running := false
		for _, d := range run {
			if pktgenDevMatches(d, iface) {
				mine, running = append(mine, d), true
			}
		}
		for _, d := range stop {
			if pktgenDevMatches(d, iface) {
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
		if err := os.WriteFile(th, []byte("rem_device_all"), 0); err != nil {
			return actions, fmt.Errorf("pktgen: rem_device_all on %s: %w", filepath.Base(th), err)
		}
		actions = append(actions, fmt.Sprintf("%s: removed pktgen devices %s from %s (rem_device_all: %s)",
			iface, strings.Join(mine, " "), filepath.Base(th), strings.Join(append(run, stop...), " ")))
	}
	return actions, nil
}

// removeLeftoverPktgen runs cleanupPktgen in o's namespace.
func removeLeftoverPktgen(o Options, iface string) ([]string, error) {
	var acts []string
	err := inNetNS(o, func() error {
		var err error
		acts, err = cleanupPktgen(pktgenDir, iface)
		return err
	})
	if err != nil {
		return acts, fmt.Errorf("%s: %w", iface, err)
	}
	return acts, nil
}
