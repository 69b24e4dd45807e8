package scenarios

import (
	"testing"
	"txtimeout/faultinject"
	"txtimeout/harness"
	"txtimeout/scenario"
	"txtimeout/traffic"
)

// TestExampleSmallPackets stalls the link partner and floods 64-byte echo requests from two senders
// (a ring fills by descriptors, not bytes): the watchdog must fire and the device recover.
func TestExampleSmallPackets(t *testing.T) {
	scenario.Run(t, func(t *testing.T, cfg harness.Config) scenario.Spec {
		dst, mac := scenario.Peer(cfg)
		if mac == nil || cfg.Partner != harness.PartnerInband {
			scenario.Skip(t, "skipping: needs a partner that runs the partner program")
		}
		return scenario.Spec{
			Needs: []string{harness.CheckRoot, harness.CheckKmsg, harness.CheckIface},
			Fault: func() (faultinject.Injector, error) {
				return faultinject.NewStall(cfg.Iface, faultinject.StallConfig{For: cfg.StallFor, PeerMAC: mac, Resume: scenario.RigResume(cfg)}, faultinject.Options{})
			},
			Load:         scenario.ICMP(traffic.FloodConfig{Dst: dst, Iface: cfg.Iface, Size: 64, Senders: 2, For: cfg.StallFor}),
			UntilTimeout: true,
			Decide:       scenario.StallDecision(cfg, "the partner stopped receiving"),
		}
	})
}
