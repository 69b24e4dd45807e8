package guest

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"txtimeout/rig/internal/guestproto"
)

// writeControlLine writes Prefix+line and a newline to the control port at
// path in one write(2), so that the line cannot interleave with another
// writer's, and waits until the port has sent it (tcdrain).
func writeControlLine(path, line string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("rig: opening the control port: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	b := []byte(guestproto.Prefix + line + "\n")
	n, err := unix.Write(fd, b)
	if err != nil {
		return fmt.Errorf("rig: writing to the control port %s: %w", path, err)
	}
	if n != len(b) {
		return fmt.Errorf("rig: short write to the control port %s (%d of %d bytes)", path, n, len(b))
	}
	// TCSBRK with a non-zero argument is tcdrain. A file standing in for
	// the port in tests is no terminal.
	if err := unix.IoctlSetInt(fd, unix.TCSBRK, 1); err != nil && !errors.Is(err, unix.ENOTTY) {
		return fmt.Errorf("rig: draining the control port %s: %w", path, err)
	}
	return nil
}

// moduleInitCompressedFile is MODULE_INIT_COMPRESSED_FILE from
// include/uapi/linux/module.h (Linux 5.17+, CONFIG_MODULE_DECOMPRESS).
const moduleInitCompressedFile = 4

// Load loads the module with finit_module, with its parameters, as the
// init did; a module that is already loaded is no error. The kernel parses
// the parameters itself (kernel/params.c): a bad value fails the load with
// EINVAL and a line on the console.
func (m Module) Load() error {
	f, err := os.Open(m.Path)
	if err != nil {
		return fmt.Errorf("module %s: %w", m.Name, err)
	}
	defer f.Close()
	flags := 0
	if m.Compressed {
		flags = moduleInitCompressedFile
	}
	err = unix.FinitModule(int(f.Fd()), m.Params, flags)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		if m.Params != "" {
			return fmt.Errorf("loading module %s with %q: %w", m.Name, m.Params, err)
		}
		return fmt.Errorf("loading module %s: %w", m.Name, err)
	}
	return nil
}
