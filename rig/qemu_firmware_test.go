package rig

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestQEMUArgsFirmware(t *testing.T) {
	spec := qemuSpec{
		Binary: "/q/qemu-system-x86_64", Accel: "tcg", SMP: 2, MemMB: 512, Kernel: "/k/vmlinux", Initrd: "/w/i.cpio",
		Append: kernelCmdline(), NICs: []qemuNIC{{Model: "e1000", MAC: "52:54:00:12:34:56", NetSock: "/w/net.sock"}},
		Serials: []string{"/w/c.sock", "/w/o.sock", "/w/x.sock"},
	}
	defer func(f func(string) string) { qemuFirmware = f }(qemuFirmware)
	for _, fw := range []string{"/q/share/qboot.rom", ""} {
		var asked string
		qemuFirmware = func(bin string) string { asked = bin; return fw }
		args, err := qemuArgs(spec)
		require.NoError(t, err)
		assert.Equal(t, spec.Binary, asked, "the firmware is looked up for the QEMU that runs")
		i := slices.Index(args, "-bios")
		if fw == "" {
			assert.Equal(t, -1, i, "no firmware found: QEMU's default, no -bios")
			continue
		}
		require.True(t, i >= 0 && i+1 < len(args), "-bios in", args)
		assert.Equal(t, fw, args[i+1])
	}
}

func TestFindQboot(t *testing.T) {
	assert.Equal(t, "", findQboot(""), "no binary, no lookup")
	assert.Equal(t, "", findQboot(filepath.Join(t.TempDir(), "no-qemu")), "a binary that does not run has no qboot")
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("no qemu-system-x86_64 to ask for its data directories")
	}
	out, err := exec.Command(qemu, "-L", "help").Output()
	require.NoError(t, err)
	p := findQboot(qemu)
	if p == "" {
		t.Logf("this QEMU ships no qboot.rom in %q: the rig boots with its default firmware", strings.TrimSpace(string(out)))
		return
	}
	assert.Equal(t, "qboot.rom", filepath.Base(p))
	var dirs []string
	for _, d := range strings.Fields(string(out)) {
		dirs = append(dirs, filepath.Clean(d))
	}
	assert.True(t, slices.Contains(dirs, filepath.Dir(p)), p, "is in a directory QEMU lists:", dirs)
	assert.Equal(t, p, findQboot(qemu), "cached")
}
