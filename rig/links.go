package rig

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"txtimeout/rig/internal/guestproto"
	"txtimeout/rig/partner"
)

// Topologies (Config.Topology).
const (
	// TopologyHost: every guest NIC is cabled to a link partner on the
	// host (package rig/partner, over QEMU's stream netdev). The default.
	TopologyHost = "host"
	// TopologyLoop: two guest NICs of the same model cabled to each other
	// (a QEMU hub of two ports), the second one the partner port in its
	// own network namespace: the typical hardware rig, one machine with
	// two ports wired together, in a VM.
	TopologyLoop = "loop"
)

// MaxMoreNICs bounds Config.MoreNICs: eth0 to eth7, on the subnets
// 198.18.0.0/24 to 198.18.7.0/24.
const MaxMoreNICs = 7

// The loop topology's partner port: its interface and the network
// namespace the guest init moves it into (LoopNetNSPath, as ip netns add
// makes it, so that ip netns exec partner ... works).
const (
	LoopPartnerIface = "eth1"
	LoopNetNS        = "partner"
)

// LoopNetNSPath is the partner port's namespace file in the loop guest,
// the value of TXTIMEOUT_PARTNER_NETNS there.
var LoopNetNSPath = path.Join(guestproto.NetNSDir, LoopNetNS)

// Link is one of the guest's NICs and its link partner. The addressing
// scheme: NIC i (0 for eth0, the DUT, then Config.MoreNICs in order) is
// ethI with MAC 52:54:00:12:(0x34+i):56 and 198.18.i.2/24; its host
// partner is 198.18.i.1 with MAC 02:74:78:00:i:01. eth0's are DUTMAC,
// DUTIP, PeerIP and PeerMAC. On the loop topology eth0's partner is the
// partner port eth1, whose MAC is PeerMAC and address PeerIP/24, in
// LoopNetNS.
type Link struct {
	// Model is the QEMU NIC model, Iface the guest's interface name.
	Model, Iface string
	// MAC and IP are the guest NIC's (IP/24 is its address).
	MAC net.HardwareAddr
	IP  net.IP
	// PeerMAC and PeerIP are its link partner's.
	PeerMAC net.HardwareAddr
	PeerIP  net.IP
	// NetNS names the guest network namespace the NIC is moved into:
	// the loop topology's partner port ("" elsewhere).
	NetNS string
}

// LinkResult is a Link and what its host partner counted.
type LinkResult struct {
	Link
	// PartnerStats are the host partner's counters at the end of the run
	// (zero on the loop topology, which has no host partner).
	PartnerStats partner.Stats
}

// hostLink is NIC i's Link on the host topology.
func hostLink(i int, model string) Link {
	return Link{
		Model:   model,
		Iface:   "eth" + strconv.Itoa(i),
		MAC:     net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34 + byte(i), 0x56},
		IP:      net.IPv4(198, 18, byte(i), 2).To4(),
		PeerMAC: net.HardwareAddr{0x02, 0x74, 0x78, 0x00, byte(i), 0x01},
		PeerIP:  net.IPv4(198, 18, byte(i), 1).To4(),
	}
}

// links are the guest's NICs of a checked Config (withDefaults), eth0
// first.
func (c Config) links() []Link {
	if c.Topology == TopologyLoop {
		dut := hostLink(0, c.NIC)
		port := Link{Model: c.NIC, Iface: LoopPartnerIface, MAC: dut.PeerMAC, IP: dut.PeerIP,
			PeerMAC: dut.MAC, PeerIP: dut.IP, NetNS: LoopNetNS}
		return []Link{dut, port}
	}
	ls := []Link{hostLink(0, c.NIC)}
	for i, m := range c.MoreNICs {
		ls = append(ls, hostLink(i+1, m))
	}
	return ls
}

// guestNIC is the link as the guest init reads it.
func (l Link) guestNIC() guestproto.NIC {
	return guestproto.NIC{
		Model: l.Model, Iface: l.Iface, MAC: l.MAC.String(), Addr: l.IP.String() + "/24",
		PeerIP: l.PeerIP.String(), PeerMAC: l.PeerMAC.String(), NetNS: l.NetNS,
	}
}

// checkTopology checks the NIC models and the topology (Config.NIC,
// MoreNICs, Topology) and normalises the topology's name.
func (c *Config) checkTopology() error {
	if _, err := LookupNIC(c.NIC); err != nil {
		return err
	}
	switch c.Topology {
	case "", TopologyHost:
		c.Topology = TopologyHost
	case TopologyLoop:
		if len(c.MoreNICs) > 0 {
			return fmt.Errorf("rig: the loop topology has its two NICs of model -nic; more NICs (%s) need the host topology", strings.Join(c.MoreNICs, ", "))
		}
	default:
		return fmt.Errorf("rig: topology %q: want %s or %s", c.Topology, TopologyHost, TopologyLoop)
	}
	if len(c.MoreNICs) > MaxMoreNICs {
		return fmt.Errorf("rig: %d more NICs: at most %d (eth1 to eth%d)", len(c.MoreNICs), MaxMoreNICs, MaxMoreNICs)
	}
	for _, m := range c.MoreNICs {
		if _, err := LookupNIC(m); err != nil {
			return fmt.Errorf("more NICs: %w", err)
		}
	}
	return nil
}

// nicModels are the distinct NIC models of a checked Config, eth0's
// first.
func (c Config) nicModels() []NICModel {
	var ms []NICModel
	for _, l := range c.links() {
		if !slices.ContainsFunc(ms, func(m NICModel) bool { return m.Name == l.Model }) {
			m, _ := LookupNIC(l.Model)
			ms = append(ms, m)
		}
	}
	return ms
}

// LoopEnv is the environment the loop topology's guest runs its tests
// with: hardware mode, as on a two-port machine whose partner port is in
// its own namespace. TXTIMEOUT_RIG=0 keeps a rig setting out of it.
func LoopEnv() []string {
	return []string{
		"TXTIMEOUT_RIG=0",
		"TXTIMEOUT_IFACE=" + DUTIface,
		"TXTIMEOUT_PEER_IP=" + PeerIP.String(),
		"TXTIMEOUT_PEER_MAC=" + PeerMAC.String(),
		"TXTIMEOUT_PARTNER=inband",
		"TXTIMEOUT_PARTNER_IFACE=" + LoopPartnerIface,
		"TXTIMEOUT_PARTNER_NETNS=" + LoopNetNSPath,
	}
}
