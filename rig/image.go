package rig

import "io"

// This file is what a guest image built outside the rig needs from it
// (contrib/lava/dutimage, the DUT of the LAVA job): the same module set,
// resolved the same way, and the same initramfs writer.

// Module is a kernel module to load in a guest: its normalised name, its
// uncompressed ELF image (busybox insmod and finit_module load it as it
// is) and the parameters to load it with ("IntMode=1", or "").
type Module struct {
	Name   string
	Data   []byte
	Params string
}

// GuestModules returns the modules a guest with the NIC model nic needs
// from the module tree dir, in load order (dependencies first, each once,
// built-in ones left out): the NIC's driver, the scenarios' modules
// (sch_netem, pktgen) and extra, as Run resolves them. modParams has the
// syntax of TXTIMEOUT_MODPARAMS (ParseModParams) and is checked as
// Config.ModParams is.
func GuestModules(dir, nic string, extra []string, modParams string) ([]Module, error) {
	m, err := LookupNIC(nic)
	if err != nil {
		return nil, err
	}
	ix, err := loadModuleIndex(dir)
	if err != nil {
		return nil, err
	}
	items, err := ParseModParams(modParams)
	if err != nil {
		return nil, err
	}
	if extra, err = normalizeExtraModules(extra); err != nil {
		return nil, err
	}
	want, reasons := wantedModules([]NICModel{m}, extra)
	mods, err := ix.resolve(want, reasons)
	if err != nil {
		return nil, err
	}
	params, err := moduleParams(items, mods, ix)
	if err != nil {
		return nil, err
	}
	out := make([]Module, len(mods))
	for i, k := range mods {
		out[i] = Module{Name: k.Name, Data: k.Data, Params: params[k.Name]}
	}
	return out, nil
}

// InitramfsFile is one regular file of an initramfs: Data, or the host
// file Path when Data is nil; Name has no leading slash, Mode holds the
// permission bits.
type InitramfsFile = initramfsFile

// WriteInitramfs writes an uncompressed newc cpio archive holding files
// and the directories and device nodes the rig's guest has (/dev with
// /dev/console, /proc, /sys, /tmp).
func WriteInitramfs(w io.Writer, files []InitramfsFile) error { return writeInitramfs(w, files) }
