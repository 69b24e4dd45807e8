package tracefs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Instance is a tracefs instance (ROOT/instances/NAME) made by NewInstance.
// It is removed through an open descriptor of the instances directory, so
// that Remove works from any thread, whatever mount namespace it is in.
type Instance struct {
	dir  *os.File // ROOT/instances
	name string
	path string
}

// NewInstance makes an instance named prefix followed by random hex digits
// under root (where tracefs is mounted), and turns its options/record-cmd
// off before any event is enabled in it (see the package doc). It reads the
// option back, so that an instance that does not honour it is an error
// rather than a guest that may lock up later.
func NewInstance(root, prefix string) (_ *Instance, err error) {
	dir, err := os.Open(filepath.Join(root, "instances"))
	if err != nil {
		return nil, fmt.Errorf("tracefs instances: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := prefix + hex.EncodeToString(rnd[:])
	if err := unix.Mkdirat(int(dir.Fd()), name, 0o700); err != nil {
		dir.Close()
		return nil, fmt.Errorf("tracefs instance: %w", os.NewSyscallError("mkdir", err))
	}
	in := &Instance{dir: dir, name: name, path: filepath.Join(root, "instances", name)}
	defer func() {
		if err != nil {
			err = errors.Join(err, in.Remove())
		}
	}()
	if err := in.SetOption("record-cmd", false); err != nil {
		return nil, err
	}
	return in, nil
}

// Path is the instance's directory.
func (in *Instance) Path() string { return in.path }

// Name is the instance's name under ROOT/instances.
func (in *Instance) Name() string { return in.name }

// SetOption writes the instance's options/NAME and reads it back.
func (in *Instance) SetOption(name string, on bool) error {
	p := filepath.Join(in.path, "options", name)
	want := "0"
	if on {
		want = "1"
	}
	if err := os.WriteFile(p, []byte(want), 0); err != nil {
		return fmt.Errorf("tracefs: %w", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("tracefs: %w", err)
	}
	if got := strings.TrimSpace(string(b)); got != want {
		return fmt.Errorf("tracefs: %s reads %q after writing %q", p, got, want)
	}
	return nil
}

// Remove removes the instance (the kernel disables its events) and
// releases its descriptor. It is safe to call more than once.
func (in *Instance) Remove() error {
	if in.dir == nil {
		return nil
	}
	err := unix.Unlinkat(int(in.dir.Fd()), in.name, unix.AT_REMOVEDIR)
	in.dir.Close()
	in.dir = nil
	if err != nil {
		return fmt.Errorf("removing tracefs instance %s: %w", in.name, os.NewSyscallError("rmdir", err))
	}
	return nil
}
