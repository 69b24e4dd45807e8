// Package guest is what code running inside the virtual rig's guest uses:
// whether it runs there, the link partner's early resume, and the kernel
// modules the guest init loaded. It holds nothing of the host side (QEMU,
// the partner, the initramfs), so the guest init and the guest's tests
// link without the launcher of package txtimeout/rig.
package guest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"txtimeout/rig/internal/guestproto"
)

// Inside reports whether this process runs inside the rig's guest: the
// guest init sets TXTIMEOUT_RIG=1 and is PID 1, the test binary's parent.
func Inside() bool {
	return os.Getenv("TXTIMEOUT_RIG") == "1" && os.Getppid() == 1
}

// ResumePartner ends the link partner's current stall now. It works only
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
func ResumePartner() error {
	if !Inside() {
		return fmt.Errorf("rig: no link partner to resume: not inside the virtual rig's guest (TXTIMEOUT_RIG=1, child of the rig's init): %w", os.ErrNotExist)
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	return writeControlLine(guestproto.ControlTTY, guestproto.Resume+" "+hex.EncodeToString(nb[:]))
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

// moduleIn finds the module name in the guest configuration file at path.
func moduleIn(path, name string) (Module, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Module{}, fmt.Errorf("rig: %w", err)
	}
	var c guestproto.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Module{}, fmt.Errorf("rig: %s: %w", path, err)
	}
	for _, m := range c.Modules {
		if m.Name == name {
			return Module(m), nil
		}
	}
	return Module{}, fmt.Errorf("rig: the guest init loaded no module %s: %w", name, os.ErrNotExist)
}
