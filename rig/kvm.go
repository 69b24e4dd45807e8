package rig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"txtimeout/rig/internal/guestproto"
)

// probeLinks are the KVM probe boot's NICs: eth0 of the default model.
var probeLinks = []Link{hostLink(0, DefaultNIC)}

// kvmProbe boots the kernel with KVM and an init that only says HELLO and
// powers off. KVM hangs in the firmware on some machines, so /dev/kvm alone
// proves nothing. The verdict is cached in the cache directory per kernel
// image (path, size and modification time) and per QEMU binary.
func kvmProbe(ctx context.Context, c Config, qemu, image, work string) (bool, error) {
	key := ""
	if st, err := os.Stat(image); err == nil {
		key = fmt.Sprintf("%s %d %d %s", image, st.Size(), st.ModTime().Unix(), qemu)
	}
	cacheFile := ""
	if dir, err := CacheDir(); err == nil && key != "" {
		cacheFile = filepath.Join(dir, "kvm-probe")
		if b, err := os.ReadFile(cacheFile); err == nil {
			k, v, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			if k == key {
				return v == "ok", nil
			}
		}
	}
	c.progressf("probing KVM with a short boot")
	pc := c
	pc.Progress = nil
	pc.ReportDir = ""
	pc.Topology, pc.MoreNICs = TopologyHost, nil
	pc.BootTimeout = 20 * time.Second
	dir, err := os.MkdirTemp(work, "kvm-probe-")
	if err != nil {
		return false, err
	}
	initBin := filepath.Join(work, "init")
	if err := buildGuestInit(ctx, initBin); err != nil {
		return false, err
	}
	b := &boot{
		c: pc, qemu: qemu, image: image, accel: "kvm", links: probeLinks, work: dir,
		gc:    guestproto.Config{Probe: true, NICs: []guestproto.NIC{probeLinks[0].guestNIC()}},
		files: []initramfsFile{{Name: "init", Path: initBin, Mode: 0o755}},
		start: time.Now(),
	}
	pctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	var r Result
	err = b.run(pctx, &r)
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	ok := err == nil && r.ExitCode == 0
	if cacheFile != "" {
		v := "fail"
		if ok {
			v = "ok"
		}
		os.MkdirAll(filepath.Dir(cacheFile), 0o755)
		os.WriteFile(cacheFile, []byte(key+"\n"+v+"\n"), 0o644)
	}
	return ok, nil
}
