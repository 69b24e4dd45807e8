package guestproto

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// moduleInitCompressedFile is MODULE_INIT_COMPRESSED_FILE from
// include/uapi/linux/module.h (Linux 5.17+, CONFIG_MODULE_DECOMPRESS).
const moduleInitCompressedFile = 4

// LoadModule loads m with finit_module, with its parameters; a module that
// is already loaded is no error. The kernel parses the parameters itself
// (kernel/params.c): a bad value fails the load with EINVAL and a line on
// the console.
func LoadModule(m ModuleFile) error {
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
