package scenarios

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"txtimeout/harness"
	"txtimeout/rig"
	"txtimeout/rig/guest"
	"txtimeout/scenario"
)

// settingsFile is where the guest half of TestSettingsReachGuest writes
// the configuration it resolved.
const settingsFile = "settings.json"

// settingsProbe is set in the guest of TestSettingsReachGuest's own boot.
const settingsProbe = "TXTIMEOUT_SETTINGS_PROBE"

// TestSettingsReachGuest proves that settings made on the host reach the
// virtual rig's guest: the host boots the rig with a run's settings
// (stall-for 7s, 3 senders, LAVA lines on, as TXTIMEOUT_STALL_FOR=7s
// TXTIMEOUT_SENDERS=3 or -args -lava would make them) through the same
// path the scenarios take (scenario.GuestEnv), and the guest writes back the
// configuration it resolved from its own environment.
func TestSettingsReachGuest(t *testing.T) {
	cfg, err := harness.LoadConfig()
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	if guest.Inside() {
		if os.Getenv(settingsProbe) != "1" {
			t.Skip("skipping: the host's TestSettingsReachGuest runs this in a boot of its own, with settings of its own")
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.ReportDir, settingsFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("txtimeout: configuration in the guest: %s", cfg)
		return
	}
	if !cfg.VirtualRig() {
		t.Skip("skipping: this checks the virtual rig's guest; this run drives a hardware DUT (TXTIMEOUT_IFACE is set)")
	}
	want := cfg
	want.StallFor, want.Senders, want.LAVA = 7*time.Second, 3, true
	rc := rig.ConfigFromEnv()
	rc.ReportDir = t.TempDir()
	rc.GuestEnv = append(scenario.GuestEnv(want), settingsProbe+"=1")
	rig.RunTest(t, "txtimeout/scenarios", "^TestSettingsReachGuest$", rc)
	b, err := os.ReadFile(filepath.Join(rc.ReportDir, settingsFile))
	if err != nil {
		t.Fatalf("the guest wrote no %s: %v", settingsFile, err)
	}
	var got harness.Config
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", settingsFile, err)
	}
	if got.StallFor != want.StallFor || got.Senders != want.Senders || got.LAVA != want.LAVA {
		t.Errorf("the guest resolved stall-for=%v senders=%d lava=%t, the host set stall-for=%v senders=%d lava=%t",
			got.StallFor, got.Senders, got.LAVA, want.StallFor, want.Senders, want.LAVA)
	}
	if got.NetemDelay != want.NetemDelay || got.RecoverWithin != want.RecoverWithin || got.Interval != want.Interval || got.Size != want.Size {
		t.Errorf("the guest's other settings differ from the host's: guest %s, host %s", got, want)
	}
	if !got.Rig || got.Iface != rig.DUTIface {
		t.Errorf("the guest's DUT settings are not the rig's own: %s", got)
	}
}
