package guest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"txtimeout/rig/internal/guestproto"
)

// ResumePartner's writer puts one whole control line on the port (the
// host's reader of such lines is tested in package rig). A file stands in
// for the guest's serial port: Inside also wants the init (PID 1) as
// parent, which a host test cannot have, so the test calls the writer
// ResumePartner uses after that check.
func TestWriteControlLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ttyS2")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeControlLine(path, guestproto.Resume+" 0a1b2c3d"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), guestproto.Prefix+"RESUME 0a1b2c3d\n"; got != want {
		t.Errorf("control port holds %q, want %q", got, want)
	}
	err = writeControlLine(filepath.Join(t.TempDir(), "missing"), "RESUME x")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "rig: opening the control port: open ") {
		t.Errorf("writing to a missing port: %v, want the open error", err)
	}
}

// A missing module file fails Load with the module's name, before any
// system call that needs root.
func TestLoadMissingFile(t *testing.T) {
	err := Module{Name: "nosuch", Path: filepath.Join(t.TempDir(), "nosuch.ko")}.Load()
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "module nosuch") {
		t.Errorf("Load of a missing file: %v", err)
	}
}
