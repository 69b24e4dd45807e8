package guest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"txtimeout/rig/internal/guestproto"
)

func TestInsideOnHost(t *testing.T) {
	t.Setenv("TXTIMEOUT_RIG", "1")
	// The test binary's parent is the go command (or a shell), not the
	// guest init: the variable alone must not make the host a guest.
	if os.Getppid() != 1 && Inside() {
		t.Error("Inside() with TXTIMEOUT_RIG=1 but a parent other than PID 1")
	}
	t.Setenv("TXTIMEOUT_RIG", "")
	if Inside() {
		t.Error("Inside() without TXTIMEOUT_RIG")
	}
}

func TestOutsideGuest(t *testing.T) {
	t.Setenv("TXTIMEOUT_RIG", "")
	if err := ResumePartner(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ResumePartner outside the guest = %v, want an error matching os.ErrNotExist", err)
	}
	if _, err := ModuleFile("e1000e"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ModuleFile outside the guest = %v, want an error matching os.ErrNotExist", err)
	}
}

// moduleIn reads what the host packed for the init (the same JSON) and
// converts its entry, every field kept.
func TestModuleIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rig.json")
	want := guestproto.ModuleFile{Name: "e1000e", Path: "/lib/modules/rig/e1000e.ko", Compressed: true, Params: "IntMode=1"}
	b, err := json.Marshal(guestproto.Config{Modules: []guestproto.ModuleFile{{Name: "ptp", Path: "/p.ko"}, want}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := moduleIn(path, "e1000e")
	if err != nil {
		t.Fatal(err)
	}
	if got := guestproto.ModuleFile(m); got != want {
		t.Errorf("moduleIn = %+v, want %+v", got, want)
	}
	if _, err := moduleIn(path, "igb"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("moduleIn(igb) = %v, want an error matching os.ErrNotExist", err)
	}
}
