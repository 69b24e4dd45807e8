package drivers

// Lines that several Intel drivers print in the same words.
const (
	// The reset task's line: e1000, igb and ixgbe.
	reResetAdapter = `^Reset adapter$`
	// The TX hang check's line, with a register dump that names the
	// queue: e1000, igb and ixgbe.
	reTxUnitHang = `(?s)^Detected Tx Unit Hang(?:.*?Tx Queue\s+<(?P<queue>\d+)>)?`
	// i40e and ice: levels 1 to 3 request a PF, core or global reset.
	reRecoveryLevel = `^tx_timeout recovery level \d+, txqueue (?P<queue>\d+)`
)

// Table holds one row per driver (kernel-facts.md sections 1, 3 and 9).
// Rows are plain data: a new driver is a new row.
var Table = []Driver{
	{Name: "virtio_net", TxTimeout: true, Since: "5.16", Logs: "TX timeout on queue: N, sq: ..., usecs ago (no reset)",
		Lines: []Line{
			{Kind: KindTimeout, Source: "drivers/net/virtio_net.c virtnet_tx_timeout (5.16+; logs only, no reset)",
				Re: `^TX timeout on queue: (?P<queue>\d+), sq: \S+, vq: 0x[0-9a-fA-F]+, name: \S+, (?P<usecs>\d+) usecs ago`},
		},
		XmitReclaim: "virtio_net frees sent buffers in start_xmit itself (free_old_xmit)",
		// virtio_net does not depend on the PCI transport, so
		// virtio_pci is named explicitly.
		QEMU: []QEMUModel{{Device: "virtio-net-pci", Modules: []string{"virtio_pci", "virtio_net"},
			// virtio_net also reclaims in start_xmit, which only
			// pktgen's full ring defeats.
			NapiStalls: []string{"pktgen"}}}},

	{Name: "e1000", TxTimeout: true, Logs: "reset task: Reset adapter",
		Lines: []Line{
			{Kind: KindReset, Source: "drivers/net/ethernet/intel/e1000/e1000_main.c e1000_reset_task",
				Re: reResetAdapter},
			{Kind: KindTimeout, Source: "e1000_clean_tx_irq",
				Re: reTxUnitHang},
			// Link state, printed with pr_info and the module's
			// pr_fmt: "e1000: eth0 NIC Link is Up ...".
			{Kind: KindLinkUp, Whole: true, Source: "drivers/net/ethernet/intel/e1000/e1000_main.c e1000_watchdog (pr_info)",
				Re: `^e1000: (?P<iface>[^\s:/]+) NIC Link is Up `},
			{Kind: KindLinkDown, Whole: true, Source: "e1000_watchdog (pr_info)",
				Re: `^e1000: (?P<iface>[^\s:/]+) NIC Link is Down$`},
		},
		QEMU: []QEMUModel{{Device: "e1000", Modules: []string{"e1000"},
			Note:       "QEMU's e1000 always completes TX descriptors, so a partner stall cannot stop its queue; NapiStarve does (its driver cleans TX in NAPI poll and resets on a timeout)",
			NapiStalls: []string{"icmp", "pktgen"}}}},

	{Name: "e1000e", TxTimeout: true, Logs: "Reset adapter unexpectedly",
		Lines: []Line{
			{Kind: KindReset, Source: "drivers/net/ethernet/intel/e1000e/netdev.c e1000_reset_task",
				Re: `^Reset adapter unexpectedly`},
			{Kind: KindTimeout, Source: "e1000_print_hw_hang",
				Re: `^Detected Hardware Unit Hang:`},
			// Before netdev_info, e1000e printed its link state with
			// pr_info and its pr_fmt, like e1000.
			{Kind: KindLinkUp, Whole: true, Source: "drivers/net/ethernet/intel/e1000e/netdev.c e1000_print_link_info (pr_info, older kernels)",
				Re: `^e1000e: (?P<iface>[^\s:/]+) NIC Link is Up `},
			{Kind: KindLinkDown, Whole: true, Source: "e1000_watchdog_task, e1000e_down (pr_info)",
				Re: `^e1000e: (?P<iface>[^\s:/]+) NIC Link is Down$`},
		},
		QEMU: []QEMUModel{{Device: "e1000e", Modules: []string{"e1000e"}}}},

	{Name: "igb", TxTimeout: true, Logs: "Reset adapter",
		Lines: []Line{
			{Kind: KindReset, Source: "drivers/net/ethernet/intel/igb/igb_main.c igb_reset_task",
				Re: reResetAdapter},
			{Kind: KindTimeout, Source: "igb_clean_tx_irq",
				Re: reTxUnitHang},
			// igb repeats its name and the interface after the netdev
			// prefix.
			{Kind: KindLinkUp, Source: "drivers/net/ethernet/intel/igb/igb_main.c igb_watchdog_task",
				Re: `^igb: (?P<iface>[^\s:/]+) NIC Link is Up `},
			{Kind: KindLinkDown, Source: "igb_watchdog_task",
				Re: `^igb: (?P<iface>[^\s:/]+) NIC Link is Down$`},
		},
		QEMU: []QEMUModel{{Device: "igb", Modules: []string{"igb"}, Note: "QEMU has the igb model since 8.0",
			NapiStalls: []string{"icmp", "pktgen"}}}}, // measured with QEMU 10.0.2

	{Name: "ixgbe", TxTimeout: true, Logs: "initiating reset due to tx timeout",
		Lines: []Line{
			{Kind: KindReset, Source: "drivers/net/ethernet/intel/ixgbe/ixgbe_main.c ixgbe_tx_timeout_reset",
				Re: `^initiating reset due to tx timeout`},
			{Kind: KindReset, Source: "ixgbe_clean_tx_irq",
				Re: `^tx hang \d+ detected on queue (?P<queue>\d+), resetting adapter`},
			{Kind: KindTimeout, Source: "ixgbe_clean_tx_irq",
				Re: reTxUnitHang},
			{Kind: KindReset, Source: "ixgbe_reset_subtask",
				Re: reResetAdapter},
		}},

	{Name: "i40e", TxTimeout: true, Logs: "tx_timeout recovery level N, txqueue N",
		Lines: []Line{
			{Kind: KindTimeout, Source: "drivers/net/ethernet/intel/i40e/i40e_main.c i40e_tx_timeout",
				Re: `^tx_timeout: VSI_seid: \d+, Q (?P<queue>\d+),`},
			{Kind: KindReset, Source: "i40e_tx_timeout",
				Re: reRecoveryLevel},
			// Past level 3 the driver gives up and takes the device
			// down.
			{Kind: KindTimeout, Source: "i40e_tx_timeout",
				Re: `^tx_timeout recovery unsuccessful`},
		}},

	{Name: "ice", TxTimeout: true, Logs: "tx_timeout recovery level N, txqueue N",
		Lines: []Line{
			{Kind: KindTimeout, Source: "drivers/net/ethernet/intel/ice/ice_main.c ice_tx_timeout",
				Re: `^tx_timeout: VSI_num: \d+, Q (?P<queue>\d+),`},
			{Kind: KindReset, Source: "ice_tx_timeout (levels 1 to 3: PF, core, global reset)",
				Re: reRecoveryLevel},
		}},

	{Name: "mlx5_core", TxTimeout: true, Logs: "TX timeout on queue: N, SQ: ...",
		Lines: []Line{
			// mlx5 reports the timeout here; the recovery that may
			// follow (its devlink health reporter) prints lines of its
			// own.
			{Kind: KindTimeout, Source: "drivers/net/ethernet/mellanox/mlx5/core/en_main.c mlx5e_tx_timeout_work",
				Re: `^TX timeout on queue: (?P<queue>\d+), SQ: 0x[0-9a-fA-F]+, CQ: 0x[0-9a-fA-F]+, SQ Cons: 0x[0-9a-fA-F]+ SQ Prod: 0x[0-9a-fA-F]+, usecs since last trans: (?P<usecs>\d+)`},
			{Kind: KindTimeout, Source: "mlx5e_tx_timeout, older kernels",
				Re: `^TX timeout detected$`},
			{Kind: KindLinkUp, Source: "drivers/net/ethernet/mellanox/mlx5/core/en_main.c mlx5e_update_carrier",
				Re: `^Link up$`},
			{Kind: KindLinkDown, Source: "mlx5e_update_carrier",
				Re: `^Link down$`},
		}},

	{Name: "bnxt_en", TxTimeout: true, Logs: "TX timeout detected, starting reset task!",
		Lines: []Line{
			{Kind: KindReset, Source: "drivers/net/ethernet/broadcom/bnxt/bnxt.c bnxt_tx_timeout",
				Re: `^TX timeout detected, starting reset task!`},
		}},

	{Name: "tg3", TxTimeout: true, Logs: "transmit timed out, resetting",
		Lines: []Line{
			{Kind: KindReset, Source: "drivers/net/ethernet/broadcom/tg3.c tg3_tx_timeout (then tg3_reset_task_schedule)",
				Re: `^transmit timed out, resetting`},
			{Kind: KindLinkUp, Source: "tg3.c tg3_link_report",
				Re: `^Link is up at \d+ Mbps`},
			{Kind: KindLinkDown, Source: "tg3_link_report",
				Re: `^Link is down$`},
		}},

	{Name: "r8169", TxTimeout: true, Logs: "(no line of its own; resets)"},

	{Name: "8139too", TxTimeout: true, Logs: "Transmit timeout (debug level only)",
		Lines: []Line{
			// The first line of the task that clears the TX ring and
			// restarts the chip.
			{Kind: KindReset, Debug: true, Source: "drivers/net/ethernet/realtek/8139too.c rtl8139_tx_timeout_task (debug level)",
				Re: `^Transmit timeout, status `},
		},
		NapiBypass: "8139too cleans its TX ring in its interrupt handler (rtl8139_tx_interrupt), not in NAPI poll"},

	// ndo_tx_timeout = cp_tx_timeout (drivers/net/ethernet/realtek/8139cp.c).
	{Name: "8139cp", TxTimeout: true,
		NapiBypass: "8139cp cleans its TX ring in its interrupt handler (cp_interrupt -> cp_tx), not in NAPI poll",
		// QEMU's rtl8139 reports PCI revision 0x20 (an RTL8139C+),
		// which 8139too refuses ("use 8139cp") and 8139cp drives.
		QEMU: []QEMUModel{{Device: "rtl8139", Modules: []string{"8139cp"}}}},

	// Virtual devices without ndo_tx_timeout: the kernel never arms the TX
	// watchdog for them, so a stalled injection there can never fire it.
	{Name: "veth", Kinds: []string{"veth"}},
	{Name: "dummy", Kinds: []string{"dummy"}},
	{Name: "loopback"},
	{Name: "bridge", Kinds: []string{"bridge"}},
	{Name: "macvlan", Kinds: []string{"macvlan"}},
	{Name: "ipvlan", Kinds: []string{"ipvlan"}},
	{Name: "vxlan", Kinds: []string{"vxlan"}},
	{Name: "tun", Kinds: []string{"tun", "tuntap"}},
	{Name: "wireguard", Kinds: []string{"wireguard"}},
	// Known by their link kind only.
	{Name: "bond", Kinds: []string{"bond"}},
	{Name: "team", Kinds: []string{"team"}},
	{Name: "macvtap", Kinds: []string{"macvtap"}},
	{Name: "ipvtap", Kinds: []string{"ipvtap"}},
	{Name: "vlan", Kinds: []string{"vlan"}},
	{Name: "geneve", Kinds: []string{"geneve"}},
	{Name: "bareudp", Kinds: []string{"bareudp"}},
	{Name: "gtp", Kinds: []string{"gtp"}},
	{Name: "vrf", Kinds: []string{"vrf"}},
	{Name: "ifb", Kinds: []string{"ifb"}},
	{Name: "netkit", Kinds: []string{"netkit"}},
	{Name: "nlmon", Kinds: []string{"nlmon"}},
	{Name: "xfrm", Kinds: []string{"xfrm"}},
	{Name: "macsec", Kinds: []string{"macsec"}},
	{Name: "hsr", Kinds: []string{"hsr"}},
	{Name: "gre", Kinds: []string{"gre"}},
	{Name: "gretap", Kinds: []string{"gretap"}},
	{Name: "ip6gre", Kinds: []string{"ip6gre"}},
	{Name: "ip6gretap", Kinds: []string{"ip6gretap"}},
	{Name: "erspan", Kinds: []string{"erspan"}},
	{Name: "ip6erspan", Kinds: []string{"ip6erspan"}},
	{Name: "ipip", Kinds: []string{"ipip"}},
	{Name: "ip6tnl", Kinds: []string{"ip6tnl"}},
	{Name: "sit", Kinds: []string{"sit"}},
	{Name: "vti", Kinds: []string{"vti"}},
	{Name: "vti6", Kinds: []string{"vti6"}},
}

// Common are the lines that many drivers print alike, through a common
// helper or in the same words: a matched line takes its driver from the
// kernel's prefix.
var Common = []Line{
	// netdev_info forms: e1000e (newer), igc, ixgbe, i40e, bnxt_en, and
	// ice, which writes "up" in lower case.
	{Kind: KindLinkUp, Source: "e1000e e1000_print_link_info, igc/ixgbe watchdog, i40e_print_link_message, ice_print_link_msg, bnxt_report_link",
		Re: `^NIC Link is [Uu]p\b`},
	{Kind: KindLinkDown, Source: "the same drivers' link-down paths",
		Re: `^NIC Link is Down$`},
	// phylib and phylink (r8169, stmmac, mvneta, lan78xx, DSA ports ...).
	{Kind: KindLinkUp, Source: "drivers/net/phy/phy.c phy_print_status, drivers/net/phy/phylink.c phylink_link_up",
		Re: `^Link is Up - `},
	{Kind: KindLinkDown, Source: "phy_print_status, phylink_link_down",
		Re: `^Link is Down$`},
	// The generic MII helper (8139too, 8139cp, via-rhine, sis900 ...).
	{Kind: KindLinkUp, Source: "drivers/net/mii.c mii_check_media",
		Re: `^link up, \d+Mbps, `},
	{Kind: KindLinkDown, Source: "mii_check_media",
		Re: `^link down$`},
}
