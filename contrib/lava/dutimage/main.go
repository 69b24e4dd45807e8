// Command dutimage builds the DUT image of the LAVA qemu job
// (contrib/lava/job-qemu.yaml): the rig's pinned Debian kernel and an
// initramfs with busybox (a POSIX shell and coreutils for LAVA's test
// shell), the kernel modules the scenarios and the loop topology need, the
// static scenarios test binary, the txtimeout command (a multinode job's
// partner role runs `txtimeout partner`) and dut-init.sh as /init.
//
//	go run ./contrib/lava/dutimage -out DIR
//
// writes DIR/vmlinuz and DIR/ramdisk.cpio, and DIR/kernel.env, shell
// assignments of the kernel's cached image, module tree and release
// (KERNEL_IMAGE, KERNEL_MODULES, KERNEL_RELEASE) for scripts/lava. It runs from the repository
// root (the scenarios are built from ./scenarios) and needs apt-get the
// first time (rig.FetchKernel) and a static busybox (Debian's
// busybox-static).
package main

import (
	"bufio"
	"context"
	"debug/elf"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"txtimeout/rig"
)

// dutInit is the image's /init.
//
//go:embed dut-init.sh
var dutInit []byte

// overlayModules are what the DUT needs besides the rig's set: macvlan
// carries the peer address on the partner port (dut-init.sh), and LAVA
// brings its test overlay on a virtio disk with an ext2 file system
// (guestfs_interface: virtio in the job), which ext4 mounts; ext4's jbd2
// wants the crc32c hash, a soft dependency that .modinfo does not list.
var overlayModules = []string{"macvlan", "virtio_pci", "virtio_blk", "crc32c_generic", "ext4"}

// TestBinPath is where the scenarios test binary lies in the image; the job
// passes it as TXTIMEOUT_TEST_BIN.
const testBinPath = "usr/local/bin/txtimeout-scenarios.test"

func main() {
	out := flag.String("out", "", "directory for vmlinuz and ramdisk.cpio (required)")
	nic := flag.String("nic", "e1000e", "QEMU NIC model of the job (its driver goes into the image)")
	modParams := flag.String("modparams", "e1000e.IntMode=1", "module parameters, MODULE.PARAM=VALUE items (as TXTIMEOUT_MODPARAMS)")
	busybox := flag.String("busybox", "/bin/busybox", "a statically linked busybox (Debian: busybox-static)")
	testBin := flag.String("test-bin", "", "a prebuilt static scenarios test binary; empty: build ./scenarios")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if *out == "" {
		fail(errors.New("-out DIR is required"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := build(ctx, *out, *nic, *modParams, *busybox, *testBin); err != nil {
		stop()
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dutimage:", err)
	os.Exit(2)
}

func progressf(format string, a ...any) { fmt.Fprintf(os.Stderr, "dutimage: "+format+"\n", a...) }

func build(ctx context.Context, out, nic, modParams, busybox, testBin string) error {
	if err := checkStatic(busybox); err != nil {
		return err
	}
	k, err := rig.FetchKernel(ctx, progressf)
	if err != nil {
		return err
	}
	mods, err := rig.GuestModules(k.Modules, nic, overlayModules, modParams)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if testBin == "" {
		testBin = filepath.Join(out, "txtimeout-scenarios.test")
		progressf("building ./scenarios (CGO_ENABLED=0 go test -c)")
		if err := rig.BuildTest(ctx, "./scenarios", testBin); err != nil {
			return err
		}
	} else if err := checkStatic(testBin); err != nil {
		return err
	}
	cmdBin := filepath.Join(out, "txtimeout")
	progressf("building ./cmd/txtimeout (CGO_ENABLED=0 go build)")
	if err := goBuild(ctx, "./cmd/txtimeout", cmdBin); err != nil {
		return err
	}
	files := []rig.InitramfsFile{
		{Name: "init", Data: dutInit, Mode: 0o755},
		{Name: "bin/busybox", Path: busybox, Mode: 0o755},
		{Name: testBinPath, Path: testBin, Mode: 0o755},
		{Name: "usr/local/bin/txtimeout", Path: cmdBin, Mode: 0o755},
	}
	// load-order: one "NAME PARAMS" line per module, dependencies first.
	var order strings.Builder
	for _, m := range mods {
		files = append(files, rig.InitramfsFile{Name: "lib/modules/" + m.Name + ".ko", Data: m.Data, Mode: 0o644})
		fmt.Fprintf(&order, "%s %s\n", m.Name, m.Params)
	}
	files = append(files, rig.InitramfsFile{Name: "lib/modules/load-order", Data: []byte(order.String()), Mode: 0o644})
	if err := copyFile(k.Image, filepath.Join(out, "vmlinuz")); err != nil {
		return err
	}
	ramdisk := filepath.Join(out, "ramdisk.cpio")
	if err := writeRamdisk(ramdisk, files); err != nil {
		return err
	}
	env := fmt.Sprintf("KERNEL_IMAGE='%s'\nKERNEL_MODULES='%s'\nKERNEL_RELEASE='%s'\n", k.Image, k.Modules, k.Release)
	if strings.Contains(k.Image+k.Modules+k.Release, "'") {
		return fmt.Errorf("kernel path %s holds a quote", k.Image)
	}
	if err := os.WriteFile(filepath.Join(out, "kernel.env"), []byte(env), 0o644); err != nil {
		return err
	}
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.Name
	}
	progressf("%s: kernel %s (%s), %d modules (%s)", out, k.Release, k.Package, len(mods), strings.Join(names, " "))
	return nil
}

// goBuild builds the command pkg statically for the DUT.
func goBuild(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// checkStatic refuses a binary that needs a dynamic loader: the image has
// no libc.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the DUT image has no libc (for busybox install Debian's busybox-static)", path)
		}
	}
	return nil
}

func writeRamdisk(path string, files []rig.InitramfsFile) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := rig.WriteInitramfs(bw, files); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
