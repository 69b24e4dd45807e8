package rig

import (
	"encoding/json"
	"fmt"
	"os"

	"txtimeout/rig/internal/guestproto"
)

// GuestModule is a kernel module the rig's init loaded in the guest: what
// a test needs to load it again after removing it (the guest has no
// modprobe).
type GuestModule struct {
	Name string
	// Path is the module file inside the guest.
	Path string
	// Params are finit_module's parameters ("IntMode=1"), as the init
	// passed them.
	Params string
	// Compressed asks the kernel to decompress the file
	// (MODULE_INIT_COMPRESSED_FILE).
	Compressed bool
}

// GuestModuleFile returns how the init loaded the module name. It works
// only inside the rig's guest (InGuest); elsewhere the error matches
// os.ErrNotExist.
func GuestModuleFile(name string) (GuestModule, error) {
	if !InGuest() {
		return GuestModule{}, fmt.Errorf("rig: module files are known only inside the virtual rig's guest: %w", os.ErrNotExist)
	}
	b, err := os.ReadFile(guestproto.ConfigPath)
	if err != nil {
		return GuestModule{}, fmt.Errorf("rig: %w", err)
	}
	var c guestproto.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return GuestModule{}, fmt.Errorf("rig: %s: %w", guestproto.ConfigPath, err)
	}
	for _, m := range c.Modules {
		if m.Name == name {
			return GuestModule{Name: m.Name, Path: m.Path, Params: m.Params, Compressed: m.Compressed}, nil
		}
	}
	return GuestModule{}, fmt.Errorf("rig: the guest init loaded no module %s: %w", name, os.ErrNotExist)
}

// Load loads the module again as the init did, in the guest.
func (m GuestModule) Load() error {
	return loadGuestModule(guestproto.ModuleFile{Name: m.Name, Path: m.Path, Params: m.Params, Compressed: m.Compressed})
}
