package rig

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"txtimeout/rig/internal/guestproto"
)

func TestConfigFromEnvNICsAndTopology(t *testing.T) {
	t.Setenv("TXTIMEOUT_RIG_MORE_NICS", "e1000, rtl8139")
	t.Setenv("TXTIMEOUT_RIG_TOPOLOGY", "loop")
	c := ConfigFromEnv()
	assert.Equal(t, []string{"e1000", "rtl8139"}, c.MoreNICs)
	assert.Equal(t, "loop", c.Topology)
}

// The addressing scheme: NIC i is ethI, 198.18.i.2/24, MAC
// 52:54:00:12:(34+i):56; its partner 198.18.i.1, 02:74:78:00:0i:01. eth0's
// are the rig's long-standing addresses.
func TestLinksHost(t *testing.T) {
	c, err := Config{NIC: "virtio-net-pci", MoreNICs: []string{"e1000", "e1000e"}}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, TopologyHost, c.Topology)
	ls := c.links()
	require.Equal(t, 3, len(ls))
	assert.Equal(t, Link{Model: "virtio-net-pci", Iface: "eth0", MAC: DUTMAC, IP: DUTIP, PeerMAC: PeerMAC, PeerIP: PeerIP}, ls[0])
	assert.Equal(t, guestproto.NIC{Model: "e1000", Iface: "eth1", MAC: "52:54:00:12:35:56", Addr: "198.18.1.2/24",
		PeerIP: "198.18.1.1", PeerMAC: "02:74:78:00:01:01"}, ls[1].guestNIC())
	assert.Equal(t, guestproto.NIC{Model: "e1000e", Iface: "eth2", MAC: "52:54:00:12:36:56", Addr: "198.18.2.2/24",
		PeerIP: "198.18.2.1", PeerMAC: "02:74:78:00:02:01"}, ls[2].guestNIC())
	var names []string
	for _, m := range c.nicModels() {
		names = append(names, m.Name)
	}
	assert.Equal(t, []string{"virtio-net-pci", "e1000", "e1000e"}, names)

	b := &boot{c: c, links: ls, work: "/w", accel: "tcg", image: "/k/vmlinuz"}
	assert.Equal(t, []string{"net", "net1", "net2", "console", "out", "ctl"}, b.socketNames())
	assert.Equal(t, "virtio-net-pci eth0, e1000 eth1, e1000e eth2", b.describeLinks())
	args, err := b.qemuArgs("/w/initramfs.cpio")
	require.NoError(t, err)
	line := strings.Join(args, " ")
	for _, w := range []string{
		"-netdev stream,id=n0,server=off,addr.type=unix,addr.path=/w/net.sock -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
		"-netdev stream,id=n1,server=off,addr.type=unix,addr.path=/w/net1.sock -device e1000,netdev=n1,mac=52:54:00:12:35:56",
		"-netdev stream,id=n2,server=off,addr.type=unix,addr.path=/w/net2.sock -device e1000e,netdev=n2,mac=52:54:00:12:36:56",
	} {
		assert.Contains(t, line, w)
	}
	ps, err := b.partners()
	require.NoError(t, err)
	require.Equal(t, 3, len(ps), "one host partner per NIC")

	// Models shared by several NICs are loaded once.
	c2, err := Config{NIC: "e1000", MoreNICs: []string{"e1000", "e1000e"}}.withDefaults()
	require.NoError(t, err)
	want, reasons := wantedModules(c2.nicModels(), nil)
	assert.Equal(t, []string{"e1000", "e1000e", "sch_netem", "pktgen"}, want)
	assert.Equal(t, "the e1000e NIC", reasons["e1000e"])
}

func TestLinksLoop(t *testing.T) {
	c, err := Config{NIC: "e1000e", Topology: "loop"}.withDefaults()
	require.NoError(t, err)
	ls := c.links()
	require.Equal(t, 2, len(ls))
	assert.Equal(t, guestproto.NIC{Model: "e1000e", Iface: "eth0", MAC: DUTMAC.String(), Addr: "198.18.0.2/24",
		PeerIP: "198.18.0.1", PeerMAC: PeerMAC.String()}, ls[0].guestNIC())
	assert.Equal(t, guestproto.NIC{Model: "e1000e", Iface: "eth1", MAC: PeerMAC.String(), Addr: "198.18.0.1/24",
		PeerIP: "198.18.0.2", PeerMAC: DUTMAC.String(), NetNS: "partner"}, ls[1].guestNIC(),
		"the partner port has the partner's addresses, in its namespace")
	assert.Equal(t, 1, len(c.nicModels()))

	b := &boot{c: c, links: ls, work: "/w", accel: "tcg", image: "/k/vmlinuz"}
	assert.Equal(t, serialSockets, b.socketNames(), "no host partner, no link socket")
	ps, err := b.partners()
	require.NoError(t, err)
	assert.Equal(t, 0, len(ps))
	args, err := b.qemuArgs("/w/initramfs.cpio")
	require.NoError(t, err)
	line := strings.Join(args, " ")
	assert.Contains(t, line, "-netdev hubport,id=n0,hubid=0 -device e1000e,netdev=n0,mac=52:54:00:12:34:56 -netdev hubport,id=n1,hubid=0 -device e1000e,netdev=n1,mac=02:74:78:00:00:01")
	assert.NotContains(t, line, "stream")

	// Hardware mode: the partner port and its namespace, no rig.
	env := guestOwnEnv(c, "6.1.0")
	for _, w := range []string{"TXTIMEOUT_RIG=0", "TXTIMEOUT_IFACE=eth0", "TXTIMEOUT_PEER_IP=198.18.0.1", "TXTIMEOUT_PEER_MAC=02:74:78:00:00:01",
		"TXTIMEOUT_PARTNER=inband", "TXTIMEOUT_PARTNER_IFACE=eth1", "TXTIMEOUT_PARTNER_NETNS=/run/netns/partner", "TXTIMEOUT_NIC=e1000e"} {
		assert.True(t, slices.Contains(env, w), "loop guest environment lacks", w, env)
	}
	assert.False(t, slices.Contains(env, "TXTIMEOUT_RIG=1"))
	_, err = guestEnv(env, []string{"TXTIMEOUT_PARTNER_NETNS=/x"})
	assert.Error(t, err, "the caller cannot move the partner port's namespace")
	host, err := Config{}.withDefaults()
	require.NoError(t, err)
	assert.True(t, slices.Contains(guestOwnEnv(host, "6.1.0"), "TXTIMEOUT_RIG=1"))
	assert.False(t, slices.ContainsFunc(guestOwnEnv(host, "6.1.0"), func(s string) bool { return strings.HasPrefix(s, "TXTIMEOUT_PARTNER_IFACE=") }))
}

func TestTopologyRefused(t *testing.T) {
	for _, bad := range []Config{
		{Topology: "ring"},
		{Topology: "loop", MoreNICs: []string{"e1000"}},
		{MoreNICs: []string{"ne2k_pci"}},
		{MoreNICs: []string{"e1000", "e1000", "e1000", "e1000", "e1000", "e1000", "e1000", "e1000"}},
	} {
		_, err := bad.withDefaults()
		assert.Error(t, err, "%+v", bad)
		if err != nil {
			assert.False(t, strings.Contains(err.Error(), "\n"), "one line:", err)
		}
	}
	_, err := Config{MoreNICs: []string{"e1000", "e1000", "e1000", "e1000", "e1000", "e1000", "e1000"}}.withDefaults()
	assert.NoError(t, err, "eth0 to eth7")
}

// The guest configuration carries every NIC to the init, which finds
// them by MAC address.
func TestGuestConfigNICs(t *testing.T) {
	c, err := Config{MoreNICs: []string{"e1000"}}.withDefaults()
	require.NoError(t, err)
	var gc guestproto.Config
	for _, l := range c.links() {
		gc.NICs = append(gc.NICs, l.guestNIC())
	}
	b, err := json.Marshal(gc)
	require.NoError(t, err)
	var back guestproto.Config
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, gc.NICs, back.NICs)
	assert.Contains(t, string(b), `"iface":"eth1","mac":"52:54:00:12:35:56","addr":"198.18.1.2/24","peer_ip":"198.18.1.1","peer_mac":"02:74:78:00:01:01"`)
	assert.NotContains(t, string(b), "netns", "no namespace on the host topology")
}
