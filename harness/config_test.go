package harness

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadConfigDefaultsMeanVirtualRig(t *testing.T) {
	c, err := loadConfig(envOf(nil), nil)
	mustNoErr(t, err)
	if d := cmp.Diff(DefaultConfig(), c); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}
	wantEq(t, c.VirtualRig(), true, "VirtualRig")
	wantContains(t, c.String(), "iface=(virtual rig)")
	wantContains(t, c.String(), "senders=6")
}

func TestLoadConfigEnvAndFlags(t *testing.T) {
	env := map[string]string{
		"TXTIMEOUT_IFACE":          "eth1",
		"TXTIMEOUT_PEER_IP":        "198.18.0.2",
		"TXTIMEOUT_PEER_MAC":       "52:54:00:12:34:56",
		"TXTIMEOUT_PARTNER_IFACE":  "eth2",
		"TXTIMEOUT_PARTNER":        "pause",
		"TXTIMEOUT_NETEM_DELAY":    "3s",
		"TXTIMEOUT_STALL_FOR":      "12s",
		"TXTIMEOUT_FLOOD_FOR":      "11s",
		"TXTIMEOUT_RECOVER_WITHIN": "7s",
		"TXTIMEOUT_SIZE":           "1400",
		"TXTIMEOUT_INTERVAL":       "5ms",
		"TXTIMEOUT_SENDERS":        "3",
		"TXTIMEOUT_REPORT_DIR":     "/tmp/r",
		"TXTIMEOUT_LAVA":           "1",
		"TXTIMEOUT_NIC":            "virtio-net-pci",
	}
	// Flags win over the environment.
	flags := map[string]string{"iface": "eth3", "size": "60000", "lava": "false"}
	c, err := loadConfig(envOf(env), flags)
	mustNoErr(t, err)
	want := Config{
		Iface: "eth3", PeerIP: "198.18.0.2", PeerMAC: "52:54:00:12:34:56", PartnerIface: "eth2", Partner: PartnerPause,
		NIC: "virtio-net-pci", NetemDelay: 3 * time.Second, StallFor: 12 * time.Second, FloodFor: 11 * time.Second,
		RecoverWithin: 7 * time.Second, Size: 60000, Interval: 5 * time.Millisecond, Senders: 3, ReportDir: "/tmp/r", LAVA: false,
	}
	if d := cmp.Diff(want, c); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}
	wantEq(t, c.VirtualRig(), false, "VirtualRig")
	wantEq(t, c.String(), "iface=eth3 nic=virtio-net-pci peer-ip=198.18.0.2 peer-mac=52:54:00:12:34:56 partner=pause partner-iface=eth2 "+
		"netem-delay=3s stall-for=12s flood-for=11s recover-within=7s size=60000 interval=5ms senders=3 report=/tmp/r lava=false", "String()")
}

func TestLoadConfigRigDefaultsToInbandPartner(t *testing.T) {
	c, err := loadConfig(envOf(map[string]string{"TXTIMEOUT_RIG": "1", "TXTIMEOUT_IFACE": "eth0"}), nil)
	mustNoErr(t, err)
	wantEq(t, c.Partner, PartnerInband, "Partner")
	wantEq(t, c.Rig, true, "Rig")
	wantEq(t, c.VirtualRig(), false, "VirtualRig")
	wantContains(t, c.String(), "iface=eth0 (virtual rig guest)")
}

func TestLoadConfigRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags map[string]string
		want  string
	}{
		{"bad ip", nil, map[string]string{"peer-ip": "198.18.0"}, `peer-ip "198.18.0" is not an IPv4 address`},
		{"ipv6", nil, map[string]string{"peer-ip": "2001:db8::1"}, "not an IPv4 address"},
		{"broadcast", nil, map[string]string{"peer-ip": "255.255.255.255"}, "not a unicast address"},
		{"bad mac", nil, map[string]string{"peer-mac": "52:54:00:12:34"}, "not an Ethernet MAC address"},
		{"long mac", nil, map[string]string{"peer-mac": "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}, "not an Ethernet MAC address"},
		{"multicast mac", nil, map[string]string{"peer-mac": "01:80:c2:00:00:01"}, "multicast"},
		{"negative duration", nil, map[string]string{"stall-for": "-1s"}, "stall-for -1s must be positive"},
		{"zero duration", map[string]string{"TXTIMEOUT_FLOOD_FOR": "0s"}, nil, "flood-for 0s must be positive"},
		{"huge duration", nil, map[string]string{"netem-delay": "1h"}, "netem-delay 1h0m0s is longer than 10m0s"},
		{"not a duration", map[string]string{"TXTIMEOUT_RECOVER_WITHIN": "soon"}, nil, `TXTIMEOUT_RECOVER_WITHIN: not a duration (e.g. 9s, 500ms): "soon"`},
		{"size too big", nil, map[string]string{"size": "65508"}, "size 65508: want between 24 and 65507 bytes"},
		{"size too small", nil, map[string]string{"size": "8"}, "size 8"},
		{"size not a number", map[string]string{"TXTIMEOUT_SIZE": "big"}, nil, `TXTIMEOUT_SIZE: not an integer: "big"`},
		{"interval zero", nil, map[string]string{"interval": "0s"}, "interval 0s"},
		{"senders zero", nil, map[string]string{"senders": "0"}, "senders 0"},
		{"senders many", nil, map[string]string{"senders": "1000"}, "senders 1000"},
		{"partner unknown", nil, map[string]string{"partner": "carrier-pigeon"}, `partner "carrier-pigeon"`},
		{"pause without port", nil, map[string]string{"partner": "pause"}, "needs -partner-iface"},
		{"partner is dut", nil, map[string]string{"iface": "eth1", "partner-iface": "eth1"}, "is the DUT interface itself"},
		{"netns not a path", nil, map[string]string{"partner-iface": "eth1", "partner-netns": "partner"}, `partner-netns "partner": want the path`},
		{"netns without port", map[string]string{"TXTIMEOUT_PARTNER_NETNS": "/run/netns/partner"}, nil, "needs -partner-iface"},
		{"iface slash", nil, map[string]string{"iface": "eth/1"}, `iface "eth/1"`},
		{"iface long", nil, map[string]string{"iface": "abcdefghijklmnop"}, "longer than 15 bytes"},
		{"bool env", map[string]string{"TXTIMEOUT_LAVA": "yes please"}, nil, "TXTIMEOUT_LAVA: not a boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(envOf(tc.env), tc.flags)
			wantErrContains(t, err, tc.want)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			wantIs(t, err, ErrInvalidConfig)
		})
	}
}

func TestRegisterFlagsFlagsWin(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	RegisterFlags(fs)
	t.Cleanup(func() {
		flagsMu.Lock()
		flagVal = nil
		flagsMu.Unlock()
	})
	mustNoErr(t, fs.Parse([]string{"-iface", "eth9", "-lava", "-senders=2"}))
	t.Setenv("TXTIMEOUT_IFACE", "eth1")
	t.Setenv("TXTIMEOUT_SENDERS", "4")
	t.Setenv("TXTIMEOUT_SIZE", "1000")
	c, err := LoadConfig()
	mustNoErr(t, err)
	wantEq(t, c.Iface, "eth9", "Iface")
	wantEq(t, c.LAVA, true, "LAVA")
	wantEq(t, c.Senders, 2, "Senders")
	wantEq(t, c.Size, 1000, "Size (the environment applies where no flag is set)")
}

// GuestEnv read back by LoadConfig gives the same scenario settings.
func TestGuestEnvRoundTrip(t *testing.T) {
	want := Config{NetemDelay: 3 * time.Second, StallFor: 7 * time.Second, FloodFor: 11 * time.Second, RecoverWithin: 9 * time.Second,
		Size: 1400, Interval: 20 * time.Millisecond, Senders: 3, LAVA: true}
	for _, kv := range want.GuestEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	got, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got.NetemDelay != want.NetemDelay || got.StallFor != want.StallFor || got.FloodFor != want.FloodFor || got.RecoverWithin != want.RecoverWithin ||
		got.Size != want.Size || got.Interval != want.Interval || got.Senders != want.Senders || got.LAVA != want.LAVA {
		t.Errorf("LoadConfig from GuestEnv = %s, want %s", got, want)
	}
	for _, kv := range want.GuestEnv() {
		for _, own := range []string{"TXTIMEOUT_IFACE=", "TXTIMEOUT_RIG=", "TXTIMEOUT_REPORT_DIR=", "TXTIMEOUT_PEER_IP="} {
			if strings.HasPrefix(kv, own) {
				t.Errorf("GuestEnv carries the DUT's own setting %s", kv)
			}
		}
	}
}

// A partner port in a namespace of its own (the rig's loop topology, a
// two-port machine): the setting comes from the environment or the flag,
// and the port may then share the DUT's name.
func TestPartnerNetNS(t *testing.T) {
	c, err := loadConfig(envOf(map[string]string{"TXTIMEOUT_IFACE": "eth0", "TXTIMEOUT_PARTNER_IFACE": "eth1", "TXTIMEOUT_PARTNER_NETNS": "/run/netns/partner"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, c.PartnerNetNS, "/run/netns/partner", "PartnerNetNS")
	if !strings.Contains(c.String(), " partner-netns=/run/netns/partner ") {
		t.Errorf("String() = %q lacks the namespace", c.String())
	}
	c, err = loadConfig(envOf(nil), map[string]string{"iface": "eth1", "partner-iface": "eth1", "partner-netns": "/run/netns/p"})
	if err != nil {
		t.Fatalf("a partner port of the DUT's name in another namespace: %v", err)
	}
	wantEq(t, c.PartnerNetNS, "/run/netns/p", "PartnerNetNS")
}
