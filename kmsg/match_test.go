package kmsg

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ev builds the Event expected for a line; fields not given are the
// "line does not say" values.
func ev(kind Kind, iface, driver, bus string, queue, ms int) Event {
	return Event{Kind: kind, Iface: iface, Driver: driver, Bus: bus, Queue: queue, TimedOutMS: ms}
}

// reset marks an expected driver event as a reset.
func reset(e Event) Event { e.Reset = true; return e }

// link builds the expected link event.
func link(iface, driver, bus string, up bool) Event {
	return Event{Kind: KindLink, Iface: iface, Driver: driver, Bus: bus, Queue: -1, LinkUp: up}
}

// matchOne runs a fresh Matcher over one line.
func matchOne(line string) []Event {
	return NewMatcher().Match(Record{Message: line, Seq: 42, Time: 9164193 * time.Microsecond})
}

// checkMatchOne checks that a fresh Matcher finds exactly want in line;
// want's record fields (TSUsec, Seq, Text) are filled in from matchOne's
// record.
func checkMatchOne(t *testing.T, line string, want Event) {
	t.Helper()
	want.TSUsec, want.Seq, want.Text = 9164193, 42, line
	if diff := cmp.Diff([]Event{want}, matchOne(line)); diff != "" {
		t.Errorf("Match(%q) (-want +got):\n%s", line, diff)
	}
}

func TestMatchWatchdog(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Event
	}{
		{
			// Verbatim, Debian 6.1.176 and 6.12.117 under QEMU (kernel-facts.md 2).
			name: "netdev_crit 6.8+",
			line: "virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms",
			want: ev(KindWatchdog, "eth0", "virtio_net", "virtio0", 0, 5760),
		},
		{
			name: "netdev_crit on a PCI NIC",
			line: "e1000e 0000:00:19.0 enp0s25: NETDEV WATCHDOG: CPU: 3: transmit queue 2 timed out 10240 ms",
			want: ev(KindWatchdog, "enp0s25", "e1000e", "0000:00:19.0", 2, 10240),
		},
		{
			name: "netdev_crit on a device without parent",
			line: "eth7: NETDEV WATCHDOG: CPU: 1: transmit queue 0 timed out 5004 ms",
			want: ev(KindWatchdog, "eth7", "", "", 0, 5004),
		},
		{
			name: "netdev_crit on an unregistering device",
			line: "virtio_net virtio0 eth0 (unregistering): NETDEV WATCHDOG: CPU: 0: transmit queue 1 timed out 6000 ms",
			want: ev(KindWatchdog, "eth0", "virtio_net", "virtio0", 1, 6000),
		},
		{
			name: "netdev_crit with its prefix cut off",
			line: "NETDEV WATCHDOG: CPU: 0: transmit queue 4 timed out 5760 ms",
			want: ev(KindWatchdog, "", "", "", 4, 5760),
		},
		{
			name: "WARN_ONCE up to 6.3",
			line: "NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out",
			want: ev(KindWatchdog, "eth0", "e1000e", "", 0, 0),
		},
		{
			name: "WARN_ONCE 6.4 to 6.7",
			line: "NETDEV WATCHDOG: enp3s0 (r8169): transmit queue 3 timed out 5120 ms",
			want: ev(KindWatchdog, "enp3s0", "r8169", "", 3, 5120),
		},
		{
			name: "WARN_ONCE without a driver name",
			line: "NETDEV WATCHDOG: eth0 (): transmit queue 0 timed out",
			want: ev(KindWatchdog, "eth0", "", "", 0, 0),
		},
		{
			name: "2.6-era form",
			line: "NETDEV WATCHDOG: eth1: transmit timed out",
			want: ev(KindWatchdog, "eth1", "", "", -1, 0),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMatchOne(t, tt.line, tt.want)
		})
	}
}

func TestMatchDriver(t *testing.T) {
	tests := []struct {
		line string
		want Event
	}{
		// Verbatim, Debian 6.1.176 under QEMU (kernel-facts.md 2).
		{"virtio_net virtio0 eth0: TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 5764000 usecs ago",
			ev(KindDriver, "eth0", "virtio_net", "virtio0", 0, 5764)},
		// From the format strings of kernel-facts.md 3, with the prefix
		// netdev_err and friends print.
		{"mlx5_core 0000:08:00.0 enp8s0f0np0: TX timeout on queue: 5, SQ: 0x10f, CQ: 0x4a8, SQ Cons: 0x3a SQ Prod: 0x41, usecs since last trans: 10496000",
			ev(KindDriver, "enp8s0f0np0", "mlx5_core", "0000:08:00.0", 5, 10496)},
		{"mlx5_core 0000:08:00.0 enp8s0f0: TX timeout detected",
			ev(KindDriver, "enp8s0f0", "mlx5_core", "0000:08:00.0", -1, 0)},
		{"bnxt_en 0000:3b:00.0 eno1np0: TX timeout detected, starting reset task!",
			reset(ev(KindDriver, "eno1np0", "bnxt_en", "0000:3b:00.0", -1, 0))},
		{"e1000e 0000:00:19.0 eth0: Reset adapter unexpectedly",
			reset(ev(KindDriver, "eth0", "e1000e", "0000:00:19.0", -1, 0))},
		{"e1000e 0000:00:1f.6 eno1: Detected Hardware Unit Hang:\n  TDH                  <9c>\n  TDT                  <b4>",
			ev(KindDriver, "eno1", "e1000e", "0000:00:1f.6", -1, 0)},
		{"e1000 0000:00:03.0 eth0: Reset adapter",
			reset(ev(KindDriver, "eth0", "e1000", "0000:00:03.0", -1, 0))},
		{"e1000 0000:00:03.0 eth0: Detected Tx Unit Hang\n  Tx Queue             <0>\n  TDH                  <2a>",
			ev(KindDriver, "eth0", "e1000", "0000:00:03.0", 0, 0)},
		{"igb 0000:01:00.0 enp1s0: Reset adapter",
			reset(ev(KindDriver, "enp1s0", "igb", "0000:01:00.0", -1, 0))},
		{"igb 0000:01:00.1 enp1s0f1: Detected Tx Unit Hang\n  Tx Queue             <3>",
			ev(KindDriver, "enp1s0f1", "igb", "0000:01:00.1", 3, 0)},
		{"ixgbe 0000:03:00.0 eth2: initiating reset due to tx timeout",
			reset(ev(KindDriver, "eth2", "ixgbe", "0000:03:00.0", -1, 0))},
		{"ixgbe 0000:03:00.0 eth2: tx hang 1 detected on queue 7, resetting adapter",
			reset(ev(KindDriver, "eth2", "ixgbe", "0000:03:00.0", 7, 0))},
		{"ixgbe 0000:03:00.0 eth2: Detected Tx Unit Hang\n  Tx Queue             <7>\n  TDH, TDT             <0>, <1f>",
			ev(KindDriver, "eth2", "ixgbe", "0000:03:00.0", 7, 0)},
		{"ixgbe 0000:03:00.0 eth2: Reset adapter",
			reset(ev(KindDriver, "eth2", "ixgbe", "0000:03:00.0", -1, 0))},
		{"i40e 0000:3d:00.0 ens1f0: tx_timeout: VSI_seid: 390, Q 6, NTC: 0x1b2, HWB: 0x1b2, NTU: 0x1c4, TAIL: 0x1c4, INT: 0x1",
			ev(KindDriver, "ens1f0", "i40e", "0000:3d:00.0", 6, 0)},
		{"i40e 0000:3d:00.0 ens1f0: tx_timeout recovery level 1, txqueue 6",
			reset(ev(KindDriver, "ens1f0", "i40e", "0000:3d:00.0", 6, 0))},
		{"i40e 0000:3d:00.0 ens1f0: tx_timeout recovery unsuccessful",
			ev(KindDriver, "ens1f0", "i40e", "0000:3d:00.0", -1, 0)},
		{"ice 0000:3b:00.0 ens785f0: tx_timeout: VSI_num: 6, Q 12, NTC: 0x3c, HW_HEAD: 0x3c, NTU: 0x49, INT: 0x1",
			ev(KindDriver, "ens785f0", "ice", "0000:3b:00.0", 12, 0)},
		{"ice 0000:3b:00.0 ens785f0: tx_timeout recovery level 2, txqueue 12",
			reset(ev(KindDriver, "ens785f0", "ice", "0000:3b:00.0", 12, 0))},
		{"tg3 0000:02:00.0 eth0: transmit timed out, resetting",
			reset(ev(KindDriver, "eth0", "tg3", "0000:02:00.0", -1, 0))},
		{"8139too 0000:00:04.0 eth0: Transmit timeout, status 0d 0000 c07f media 10.",
			reset(ev(KindDriver, "eth0", "8139too", "0000:00:04.0", -1, 0))},
		// Verbatim, e1000 under QEMU, NAPI threads starved (kernel-facts.md 9).
		{"e1000 0000:00:02.0 eth0: Reset adapter",
			reset(ev(KindDriver, "eth0", "e1000", "0000:00:02.0", -1, 0))},
		// Without a prefix: a line only one driver prints is attributed
		// to it; one that several print is not.
		{"TX timeout on queue: 1, sq: output.1, vq: 0x3, name: output.1, 6000000 usecs ago",
			ev(KindDriver, "", "virtio_net", "", 1, 6000)},
		{"Reset adapter",
			reset(ev(KindDriver, "", "", "", -1, 0))},
		{"tx_timeout recovery level 1, txqueue 0",
			reset(ev(KindDriver, "", "", "", 0, 0))},
		// A driver not in the table printing a line from it keeps its name.
		{"igc 0000:05:00.0 enp5s0: Reset adapter",
			reset(ev(KindDriver, "enp5s0", "igc", "0000:05:00.0", -1, 0))},
	}
	for _, tt := range tests {
		name := tt.want.Driver + ":" + strings.SplitN(tt.line, "\n", 2)[0]
		t.Run(name, func(t *testing.T) {
			checkMatchOne(t, tt.line, tt.want)
		})
	}
}

func TestMatchLink(t *testing.T) {
	tests := []struct {
		line string
		want Event
	}{
		// Verbatim, e1000 under QEMU after the reset (kernel-facts.md 9):
		// pr_info with the module's pr_fmt, the interface in the text.
		{"e1000: eth0 NIC Link is Down", link("eth0", "e1000", "", false)},
		{"e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX", link("eth0", "e1000", "", true)},
		// e1000e before its link lines became netdev_info.
		{"e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx", link("eth0", "e1000e", "", true)},
		{"e1000e: enp0s25 NIC Link is Down", link("enp0s25", "e1000e", "", false)},
		// netdev_info forms, from the drivers' format strings.
		{"e1000e 0000:00:1f.6 eno1: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx", link("eno1", "e1000e", "0000:00:1f.6", true)},
		{"e1000e 0000:00:1f.6 eno1: NIC Link is Down", link("eno1", "e1000e", "0000:00:1f.6", false)},
		{"igb 0000:01:00.0 eth0: igb: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX/TX", link("eth0", "igb", "0000:01:00.0", true)},
		{"igb 0000:01:00.0 eth0: igb: eth0 NIC Link is Down", link("eth0", "igb", "0000:01:00.0", false)},
		{"igc 0000:05:00.0 enp5s0: NIC Link is Up 2500 Mbps Full Duplex, Flow Control: RX/TX", link("enp5s0", "igc", "0000:05:00.0", true)},
		{"ixgbe 0000:03:00.0 eth2: NIC Link is Up 10 Gbps, Flow Control: RX/TX", link("eth2", "ixgbe", "0000:03:00.0", true)},
		{"ixgbe 0000:03:00.0 eth2: NIC Link is Down", link("eth2", "ixgbe", "0000:03:00.0", false)},
		{"i40e 0000:3d:00.0 ens1f0: NIC Link is Up, Requested Speed: 25 Gbps, Negotiated FEC: None, Autoneg: False, Flow Control: None", link("ens1f0", "i40e", "0000:3d:00.0", true)},
		{"ice 0000:3b:00.0 ens785f0: NIC Link is up 100 Gbps Full Duplex, Requested FEC: RS-FEC, Negotiated FEC: RS-FEC, Autoneg Advertised: On, Autoneg Negotiated: True, Flow Control: None", link("ens785f0", "ice", "0000:3b:00.0", true)},
		{"bnxt_en 0000:3b:00.0 eno1np0: NIC Link is Up, 25000 Mbps full duplex, Flow control: ON - receive & transmit", link("eno1np0", "bnxt_en", "0000:3b:00.0", true)},
		{"bnxt_en 0000:3b:00.0 eno1np0: NIC Link is Down", link("eno1np0", "bnxt_en", "0000:3b:00.0", false)},
		{"tg3 0000:02:00.0 eth0: Link is up at 1000 Mbps, full duplex", link("eth0", "tg3", "0000:02:00.0", true)},
		{"tg3 0000:02:00.0 eth0: Link is down", link("eth0", "tg3", "0000:02:00.0", false)},
		{"mlx5_core 0000:08:00.0 enp8s0f0np0: Link up", link("enp8s0f0np0", "mlx5_core", "0000:08:00.0", true)},
		{"mlx5_core 0000:08:00.0 enp8s0f0np0: Link down", link("enp8s0f0np0", "mlx5_core", "0000:08:00.0", false)},
		// phylib and phylink.
		{"r8169 0000:02:00.0 enp2s0: Link is Up - 1Gbps/Full - flow control rx/tx", link("enp2s0", "r8169", "0000:02:00.0", true)},
		{"r8169 0000:02:00.0 enp2s0: Link is Down", link("enp2s0", "r8169", "0000:02:00.0", false)},
		{"mvneta f1034000.ethernet eth0: Link is Up - 1Gbps/Full - flow control off", link("eth0", "mvneta", "f1034000.ethernet", true)},
		{"stmmaceth 4a100000.ethernet end0: Link is Up - 100Mbps/Full (downshifted) - flow control off", link("end0", "stmmaceth", "4a100000.ethernet", true)},
		// The MII helper.
		{"8139cp 0000:00:03.0 eth0: link up, 100Mbps, full-duplex, lpa 0x05E1", link("eth0", "8139cp", "0000:00:03.0", true)},
		{"8139cp 0000:00:03.0 eth0: link down", link("eth0", "8139cp", "0000:00:03.0", false)},
		// A line that several drivers print, without its prefix.
		{"NIC Link is Down", link("", "", "", false)},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			checkMatchOne(t, tt.line, tt.want)
		})
	}
}

// TestDriverPatternsCovered checks that every row of the driver table is
// exercised by a line of TestMatchDriver, so a new row comes with a test.
func TestDriverPatternsCovered(t *testing.T) {
	lines := []string{
		"TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 5764000 usecs ago",
		"TX timeout on queue: 5, SQ: 0x10f, CQ: 0x4a8, SQ Cons: 0x3a SQ Prod: 0x41, usecs since last trans: 10496000",
		"TX timeout detected",
		"TX timeout detected, starting reset task!",
		"Reset adapter unexpectedly",
		"Detected Hardware Unit Hang:",
		"Reset adapter",
		"Detected Tx Unit Hang",
		"initiating reset due to tx timeout",
		"tx hang 1 detected on queue 7, resetting adapter",
		"tx_timeout: VSI_seid: 390, Q 6, NTC: 0x1b2",
		"tx_timeout recovery level 1, txqueue 6",
		"tx_timeout recovery unsuccessful",
		"tx_timeout: VSI_num: 6, Q 12, NTC: 0x3c",
		"transmit timed out, resetting",
		"Transmit timeout, status 0d 0000 c07f media 10.",
		"e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX",
		"e1000: eth0 NIC Link is Down",
		"e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
		"e1000e: eth0 NIC Link is Down",
		"igb: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: RX/TX",
		"igb: eth0 NIC Link is Down",
		"NIC Link is Up 10 Gbps, Flow Control: RX/TX",
		"NIC Link is Down",
		"Link is Up - 1Gbps/Full - flow control rx/tx",
		"Link is Down",
		"Link is up at 1000 Mbps, full duplex",
		"Link is down",
		"Link up",
		"Link down",
		"link up, 100Mbps, full-duplex, lpa 0x05E1",
		"link down",
	}
	for _, row := range DriverPatterns {
		hit := false
		for _, l := range lines {
			if row.Re.MatchString(l) {
				hit = true
			}
		}
		if !hit {
			t.Errorf("row %s %q has no test line", row.Driver, row.Re)
		}
		if row.Source == "" {
			t.Errorf("row %s %q has no Source", row.Driver, row.Re)
		}
	}
}

func TestMatchSplat(t *testing.T) {
	lines := []string{
		"WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:4400 __alloc_pages+0x2c5/0x330",
		"WARNING: at fs/sysfs/dir.c:512 sysfs_add_one+0x99/0xb0()",
		"WARNING: CPU: 2 PID: 0 at net/sched/sch_generic.c:1234 dev_deactivate_queue+0x10/0x20",
		"WARNING: possible circular locking dependency detected",
		"WARNING: suspicious RCU usage",
		"WARNING: inconsistent lock state",
		"BUG: kernel NULL pointer dereference, address: 0000000000000008",
		"BUG: unable to handle page fault for address: ffffc90000a3c000",
		"BUG: scheduling while atomic: swapper/0/0/0x00000002",
		"BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
		"BUG: KASAN: slab-use-after-free in virtnet_poll+0x1a/0x40",
		"watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kworker/1:2:123]",
		"NMI watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [swapper/0:0]",
		"kernel BUG at mm/slub.c:379!",
		"Oops: 0000 [#1] PREEMPT SMP NOPTI",
		"Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP PTI",
		"general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP PTI",
		"general protection fault: 0000 [#1] SMP",
		"Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP",
		"Unable to handle kernel NULL pointer dereference at virtual address 0000000000000010",
		"watchdog: Watchdog detected hard LOCKUP on cpu 3",
		"NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
		"watchdog: CPU3: Watchdog detected hard LOCKUP on cpu 2",
		"invalid opcode: 0000 [#1] SMP PTI",
		"INFO: task kworker/u8:2:345 blocked for more than 120 seconds.",
		"INFO: task ip:1234 blocked for more than 122 seconds.",
		"rcu: INFO: rcu_sched self-detected stall on CPU",
		"rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
		"INFO: rcu_sched detected stalls on CPUs/tasks: { 1} (detected by 0, t=21002 jiffies)",
		"rcu: INFO: rcu_sched detected expedited stalls on CPUs/tasks: { 1-... } 21002 jiffies s: 377 root: 0x2/.",
		"Kernel panic - not syncing: Fatal exception in interrupt",
		"UBSAN: array-index-out-of-bounds in drivers/net/foo.c:12:3",
		// Debug kernels' reports. The format strings are those of
		// kernel/locking/lockdep.c, mm/kasan/report.c, lib/ubsan.c,
		// kernel/kcsan/report.c, lib/refcount.c, lib/ref_tracker.c and
		// mm/kmemleak.c; the rest of each report is in testdata/reports.
		"WARNING: possible recursive locking detected",
		"WARNING: possible irq lock inversion dependency detected",
		"WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
		"WARNING: lock held when returning to user space!",
		"WARNING: bad unlock balance detected!",
		"WARNING: held lock freed!",
		"WARNING: Nested lock was not taken",
		"WARNING: kworker/0:1/123 still has locks held!",
		"BUG: MAX_LOCKDEP_KEYS too low!",
		"BUG: MAX_LOCKDEP_CHAIN_HLOCKS too low!",
		"BUG: key ffff888012345678 has not been registered!",
		"INFO: trying to register non-static key.",
		"[ BUG: Invalid wait context ]",
		// Lockdep before 4.11.
		"[ INFO: possible recursive locking detected ]",
		"[ INFO: possible circular locking dependency detected ]",
		"[ INFO: inconsistent lock state ]",
		"[ INFO: suspicious RCU usage. ]",
		"[ BUG: bad unlock balance detected! ]",
		"[ BUG: lock held when returning to user space! ]",
		"INFO: possible recursive locking detected",
		"BUG: KASAN: use-after-free in skb_release_head_state+0x223/0x250 net/core/skbuff.c:653",
		"BUG: KASAN: slab-out-of-bounds in e1000_xmit_frame+0x1a/0x40",
		"BUG: KASAN: null-ptr-deref in virtnet_poll+0x1a/0x40",
		"BUG: KASAN: double-free in kfree+0x10/0x20",
		"BUG: KASAN: invalid-access",
		"BUG: KFENCE: use-after-free read in test_use_after_free_read+0xb3/0x143",
		"UBSAN: shift-out-of-bounds in net/sched/sch_generic.c:123:45",
		"UBSAN: Undefined behaviour in drivers/net/foo.c:12:3",
		"UBSAN: array index out of bounds at e1000_clean_tx_irq+0x1a/0x40",
		"Internal error: UBSAN: array index out of bounds: 00000000f2005512 [#1] PREEMPT SMP",
		"Internal error: Oops - BUG: 00000000f2000800 [#1] PREEMPT SMP",
		"BUG: KCSAN: data-race in tick_nohz_next_event / tick_sched_do_timer",
		"BUG: KCSAN: assert: race in dev_watchdog+0x1a/0x40",
		"refcount_t: underflow; use-after-free.",
		"refcount_t: addition on 0; use-after-free.",
		"refcount_t: saturated; leaking memory.",
		"refcount_t: decrement hit 0; leaking memory.",
		"ref_tracker: netdev@ffff888104c2a5e8 has 2/2 users at\n     pktgen_add_device+0x1c2/0x4f0 [pktgen]",
		"ref_tracker: eth%d@ffff888012345678 has 1/2 users at",
		"ref_tracker: net notrefcnt@00000000a1b2c3d4 has 1/1 users at",
		"ref_tracker: netdev@ffff888104c2a5e8 skipped reports about 3/10 users.",
		"ref_tracker: reference already released.",
		"kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
		"kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
		"unreferenced object 0xffff888100a3c000 (size 64):",
		"unreferenced object 0xc3a34e00 (size 64):",
		"kmemleak: unreferenced object 0xffff888100a3c000 (size 64):",
		// The WARN() line since 6.19 (28ea295f941e).
		"WARNING: lib/refcount.c:28 at refcount_warn_saturate+0xd4/0x1a0, CPU#1: napi/eth0-8193/377",
		"WARNING: at refcount_warn_saturate+0xd4/0x1a0, CPU#1: napi/eth0-8193/377",
	}
	for _, line := range lines {
		t.Run(line, func(t *testing.T) {
			checkMatchOne(t, line, Event{Kind: KindSplat, Queue: -1})
		})
	}
}

// notEvents are real-world lines that mention timeouts, watchdogs, resets or
// warnings but are no tx timeout and no splat.
var notEvents = []string{
	// NMI and hardware watchdogs.
	"NMI watchdog: Perf NMI watchdog permanently disabled",
	"NMI watchdog: Enabled. Permanently consumes one hw-PMU counter.",
	"NMI watchdog: disabled (cpu0): hardware events not enabled",
	"watchdog: Disabling watchdog on nohz_full cores by default",
	"watchdog: watchdog0: watchdog did not stop!",
	"iTCO_wdt iTCO_wdt: Found a Intel PCH TCO device (Version=6, TCOBASE=0x0400)",
	"iTCO_wdt iTCO_wdt: initialized. heartbeat=30 sec (nowayout=0)",
	"iTCO_vendor_support: vendor-support=0",
	"softdog: initialized. soft_noboot=0 soft_margin=60 sec soft_panic=0 (nowayout=0)",
	"softdog: Triggered - Reboot ignored",
	"sp5100_tco: SP5100/SB800 TCO WatchDog Timer Driver",
	"systemd[1]: Using hardware watchdog 'iTCO_wdt', version 0, device /dev/watchdog0",
	"clocksource: timekeeping watchdog on CPU1: Marking clocksource 'tsc' as unstable because the skew is too large:",
	"tsc: Marking TSC unstable due to clocksource watchdog",
	// USB, storage, NVMe, firmware, Bluetooth, Wi-Fi timeouts.
	"usb 1-1: device descriptor read/64, error -110",
	"usb 1-1: device not accepting address 2, error -62",
	"usb 2-1: reset high-speed USB device number 2 using ehci-pci",
	"xhci_hcd 0000:00:14.0: Timeout while waiting for setup device command",
	"xhci_hcd 0000:00:14.0: xHCI host not responding to stop endpoint command",
	"ata1: SATA link down (SStatus 0 SControl 300)",
	"ata3.00: qc timeout after 5000 msecs (cmd 0xec)",
	"ata1.00: exception Emask 0x0 SAct 0x0 SErr 0x0 action 0x6 frozen",
	"ata1: hard resetting link",
	"sd 0:0:0:0: [sda] tag#0 timing out command, waited 180s",
	"scsi host2: uas_eh_device_reset_handler start",
	"nvme nvme0: I/O 12 QID 1 timeout, aborting",
	"nvme nvme0: I/O 12 QID 1 timeout, reset controller",
	"nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff",
	"nvme nvme0: Shutdown timeout set to 10 seconds",
	"mmc0: Timeout waiting for hardware interrupt.",
	"firmware_class: See https://wiki.debian.org/Firmware for information about missing firmware",
	"i915 0000:00:02.0: [drm] *ERROR* Timed out waiting for forcewake ack to clear.",
	"amdgpu 0000:03:00.0: amdgpu: ring gfx timeout, signaled seq=123, emitted seq=125",
	"iwlwifi 0000:00:14.3: Microcode SW error detected. Restarting 0x0.",
	"iwlwifi 0000:02:00.0: Error sending REPLY_ADD_STA: time out after 2000ms.",
	"ath10k_pci 0000:02:00.0: firmware crashed! (guid 4c1b0ba5-67f5-4b0e-9d0e-8e3a5f1c3a33)",
	"wlan0: authentication with 00:11:22:33:44:55 timed out",
	"Bluetooth: hci0: command 0x0c03 tx timeout",
	"Bluetooth: hci0: command tx timeout",
	"Bluetooth: hci0: Reading supported features failed (-110)",
	"tpm tpm0: tpm_try_transmit: send(): error -62",
	"i2c_designware i2c_designware.0: controller timed out",
	"ACPI Error: Aborting method \\_SB.PCI0.LPCB.EC0._Q66 due to previous error (AE_TIME) (20230628/psparse-529)",
	"ipmi_si IPI0001:00: There appears to be no BMC at this location",
	"ftdi_sio ttyUSB0: usb_serial_generic_read_bulk_callback - urb stopped: -32",
	// Link lines of things that are no network interface, or that name
	// none: SATA and PCIe links, a DSA switch port printed by the switch
	// device, USB network links (usbnet's own wording), Wi-Fi and
	// Bluetooth. A NIC's link (phylib on a USB NIC included) counts, and
	// the verdict keeps the DUT's by interface name.
	"ata1: SATA link up 6.0 Gbps (SStatus 133 SControl 300)",
	"ata2: SATA link down (SStatus 0 SControl 300)",
	"pcieport 0000:00:1c.0: pciehp: Slot(1): Link Up",
	"pcieport 0000:00:1c.0: pciehp: Slot(1): Link Down",
	"pcieport 0000:00:1d.0: Link Up (Gen 3 x4)",
	"mt7530-mdio mdio-bus:1f: Port 1 Link is Up - 1Gbps/Full",
	"cdc_ncm 2-1:1.0 usb0: network connection: connected",
	"cdc_ether 2-1:2.0 usb0: kevent 12 may have been dropped",
	"usb 1-1: USB disconnect, device number 2",
	"wlan0: associated",
	"wlp2s0: Connection to AP 11:22:33:44:55:66 lost",
	"Bluetooth: hci0: link tx timeout",
	"Bluetooth: hci0: killing stalled connection 11:22:33:44:55:66",
	"bond0: (slave eth0): link status definitely down, disabling slave",
	"br0: port 1(eth0) entered disabled state",
	"e1000e: Intel(R) PRO/1000 Network Driver",
	"e1000: eth0 NIC Link is Sideways",
	// NIC lines that are no timeout, reset or link change.
	"igb 0000:01:00.0: added PHC on eth0",
	"ixgbe 0000:03:00.0: Multiqueue Enabled: Rx Queue count = 8, Tx Queue count = 8 XDP Queue count = 0",
	"r8169 0000:02:00.0 eth0: rtl_chipcmd_cond == 1 (loop: 100, delay: 100).",
	"virtio_net virtio0 enp0s3: renamed from eth0",
	"mlx5_core 0000:08:00.0: E-Switch: Total vports 2, per vport: max uc(128) max mc(2048)",
	"i40e 0000:3d:00.0: TX driver issue detected, PF reset issued",
	"Bluetooth: hci0: Resetting usb device.",
	"8139too: 8139too Fast Ethernet driver 0.9.28",
	"IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready",
	"NETDEV WATCHDOG is documented in net/sched/sch_generic.c",
	// Warnings and infos that are no splat.
	"RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!",
	"Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via Spectre v2 BHB attacks!",
	"WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!",
	"x86/split lock detection: #DB: warning on user-space bus_locks",
	"PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug",
	"[Firmware Bug]: TSC_DEADLINE disabled due to Errata; please update microcode to version: 0x52 (or later)",
	"ACPI BIOS Error (bug): Could not resolve symbol [\\_SB.PCI0.XHC.RHUB.HS11], AE_NOT_FOUND (20230628/dswload2-162)",
	"INFO: lockdep is turned off.",
	"INFO: NMI handler (perf_event_nmi_handler) took too long to run: 1.234 msecs",
	"perf: interrupt took too long (2505 > 2500), lowering kernel.perf_event_max_sample_rate to 79750",
	"rcu: Adjusting geometry for rcu_fanout_leaf=16, nr_cpu_ids=2",
	"rcu: \tRCU CPU stall warnings timeout set to 100 (rcu_task_stall_timeout).",
	"hung_task: blocked tasks",
	"Kernel command line: console=ttyS0 panic=1",
	"Oops, the driver did something silly",
	"------------[ cut here ]------------",
	"Modules linked in: virtio_net net_failover failover",
	"Call Trace:",
	" <IRQ>",
	"RIP: 0010:dev_watchdog+0x21f/0x230",
	"CPU: 1 PID: 0 Comm: swapper/1 Not tainted 6.1.0 #1",
	"---[ end trace 0000000000000000 ]---",
	"process_api (1): drop_caches: 10",
	"",
	// Debug kernels' boot banners and the lines inside their reports.
	"kasan: KernelAddressSanitizer initialized",
	"KernelAddressSanitizer initialized (generic)",
	"KernelAddressSanitizer initialized (sw-tags, stacktrace=on)",
	"KernelAddressSanitizer initialized (hw-tags, mode=sync, vmalloc=on, stacktrace=on)",
	"Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar",
	"... MAX_LOCKDEP_SUBCLASSES:  8",
	"... MAX_LOCK_DEPTH:          48",
	"... MAX_LOCKDEP_KEYS:        8192",
	" memory used by lock dependency info: 6365 kB",
	"kmemleak: Kernel memory leak detector initialized (mem pool available: 15728)",
	"kmemleak: Kernel memory leak detector initialized",
	"kmemleak: Automatic memory scanning thread started",
	// Captured from our own debug build of Debian's 6.1.192 (its whole boot
	// log is testdata/boot/captured-boot-debug-6.1.txt, the reports
	// testdata/reports/captured-*-6.1.txt): banners, and lines inside the
	// reports and around lkdtm's triggers that must not open a splat.
	"... CLASSHASH_SIZE:          4096",
	"... MAX_LOCKDEP_ENTRIES:     32768",
	"... MAX_LOCKDEP_CHAINS:      65536",
	"... CHAINHASH_SIZE:          32768",
	" memory used by lock dependency info: 6493 kB",
	" memory used for stack traces: 4224 kB",
	" per task-struct memory footprint: 1920 bytes",
	"kmemleak: Kernel memory leak detector initialized (mem pool available: 14693)",
	"Kernel command line: pci=noacpi kasan_multi_shot console=ttyS0,115200 panic=-1 loglevel=5 printk.devkmsg=on rdinit=/init",
	"lkdtm: No crash points registered, enable through debugfs",
	"lkdtm: Performing direct entry REFCOUNT_INC_OVERFLOW",
	"lkdtm: Overflow detected: saturated",
	"lkdtm: FAIL: survived array bounds overflow!",
	"lkdtm: This is probably expected, since this kernel (6.1.192-txtimeout-debug x86_64) was built *without* CONFIG_UBSAN_TRAP=y",
	"lkdtm: FAIL: Memory was not poisoned!",
	"6.1.192-txtimeout-debug #2 Tainted: G           O      ",
	"leaked reference.",
	"irq event stamp: 0",
	"hardirqs last  enabled at (0): [<0000000000000000>] 0x0",
	"page:(____ptrval____) refcount:1 mapcount:0 mapping:0000000000000000 index:0x0 pfn:0x3fa50",
	"index 8 is out of range for type 'char [8]'",
	"The buggy address belongs to the object at ffff88803fa55000\n which belongs to the cache kmalloc-1k of size 1024",
	"\nbut task is already holding lock:",
	"\n *** DEADLOCK ***\n",
	// The 6.1 debug kernel without pci=noacpi under TCG: ACPI's _PRT
	// loop times out, so the NIC gets no interrupt (no event, but the
	// reason the captured kernel has pci=noacpi built in).
	"ACPI Error: Aborting method \\_SB.PCI0._PRT due to previous error (AE_AML_LOOP_TIMEOUT) (20220331/psparse-543)",
	"e1000 0000:00:02.0: PCI INT A: no GSI",
	"KCSAN: enabled early",
	"KCSAN: strict mode configured",
	"kcsan: enabled early",
	"kcsan: strict mode configured",
	"==================================================================",
	"======================================================",
	"KASAN: null-ptr-deref in range [0x0000000000000010-0x0000000000000017]",
	"page dumped because: kasan: bad access detected",
	"Reported by Kernel Concurrency Sanitizer on:",
	"turning off the locking correctness validator.",
	"ref_tracker: memory allocation failure, unreliable refcount tracker.",
	"ref_tracker: allocated in:",
	"  comm \"txtimeout.test\", pid 412, jiffies 4294901377",
	"  backtrace (crc 1b2c3d4e):",
	"INFO: task kworker/0:1:123 is blocked on a mutex likely owned by task ip:456.",
	"Showing all locks held in the system:",
}

func TestMatchNothing(t *testing.T) {
	for _, line := range notEvents {
		t.Run(line, func(t *testing.T) {
			if got := matchOne(line); len(got) != 0 {
				t.Errorf("Match(%q) = %+v, want no event", line, got)
			}
		})
	}
}

// matchAll runs one Matcher over lines in order.
func matchAll(lines []string) []Event {
	m := NewMatcher()
	var evs []Event
	for i, l := range lines {
		evs = append(evs, m.Match(Record{Message: l, Seq: uint64(i)})...)
	}
	return evs
}

func kinds(evs []Event) []string {
	var k []string
	for _, e := range evs {
		k = append(k, fmt.Sprintf("%s@%d", e.Kind, e.Seq))
	}
	return k
}

func TestMatchWatchdogWarnTrace(t *testing.T) {
	// The WARN_ONCE report of a 6.1-era kernel before the stable change:
	// one watchdog event, the WARNING and trace are part of it.
	lines := []string{
		"------------[ cut here ]------------",
		"NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out",
		"WARNING: CPU: 1 PID: 0 at net/sched/sch_generic.c:525 dev_watchdog+0x21f/0x230",
		"Modules linked in: e1000e",
		"CPU: 1 PID: 0 Comm: swapper/1 Not tainted 6.1.0 #1",
		"RIP: 0010:dev_watchdog+0x21f/0x230",
		"Call Trace:",
		" <IRQ>",
		" ? pfifo_fast_reset+0x140/0x140",
		" call_timer_fn+0x27/0x130",
		" </IRQ>",
		"---[ end trace 0000000000000000 ]---",
		"e1000e 0000:00:19.0 eth0: Reset adapter unexpectedly",
		// A later, unrelated WARNING is a splat.
		"WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:4400 __alloc_pages+0x2c5/0x330",
	}
	checkKinds(t, []string{"watchdog@1", "driver@12", "splat@13"}, lines)
}

func TestMatchWatchdogOldOrder(t *testing.T) {
	// 2.6/3.x kernels print the WARNING before the message, and without
	// kallsyms the WARNING names only the file.
	lines := []string{
		"WARNING: at net/sched/sch_generic.c:261 dev_watchdog+0x25e/0x270()",
		"Hardware name: PowerEdge R610",
		"NETDEV WATCHDOG: eth0 (bnx2): transmit queue 0 timed out",
		"Modules linked in: bnx2",
		"Pid: 0, comm: swapper Not tainted 2.6.32-431.el6.x86_64 #1",
		"Call Trace:",
		"---[ end trace a7919e7f17c0a725 ]---",
		"NETDEV WATCHDOG: eth0 (e1000e): transmit queue 1 timed out 5120 ms",
		"WARNING: CPU: 1 PID: 0 at net/sched/sch_generic.c:525 0xffffffff81234567",
	}
	checkKinds(t, []string{"watchdog@2", "watchdog@7"}, lines)
}

func TestMatchOopsReport(t *testing.T) {
	// An x86 oops: one splat for the BUG line (the Oops line belongs to
	// it), then the panic that follows the trace.
	lines := []string{
		"BUG: kernel NULL pointer dereference, address: 0000000000000008",
		"#PF: supervisor read access in kernel mode",
		"#PF: error_code(0x0000) - not-present page",
		"PGD 0 P4D 0 ",
		"Oops: 0000 [#1] PREEMPT SMP NOPTI",
		"CPU: 0 PID: 42 Comm: kworker/0:1 Not tainted 6.12.0 #1",
		"RIP: 0010:virtnet_poll+0x1a/0x40 [virtio_net]",
		"Call Trace:",
		" <TASK>",
		" ? __die+0x23/0x70",
		" </TASK>",
		"---[ end trace 0000000000000000 ]---",
		"RIP: 0010:virtnet_poll+0x1a/0x40 [virtio_net]",
		"Kernel panic - not syncing: Fatal exception",
		"Kernel Offset: disabled",
		"---[ end Kernel panic - not syncing: Fatal exception ]---",
	}
	checkKinds(t, []string{"splat@0", "splat@13"}, lines)

	// kernel BUG at ... then its invalid opcode line.
	lines = []string{
		"------------[ cut here ]------------",
		"kernel BUG at net/core/skbuff.c:4567!",
		"invalid opcode: 0000 [#1] SMP PTI",
		"CPU: 1 PID: 0 Comm: swapper/1 Not tainted 6.1.0 #1",
		"Call Trace:",
		"---[ end trace 0000000000000000 ]---",
		// An unrelated Oops much later is a new splat.
		"Oops: 0002 [#2] SMP PTI",
	}
	checkKinds(t, []string{"splat@1", "splat@6"}, lines)
}

func TestMatchSplatAfterWatchdog(t *testing.T) {
	// A splat inside the watchdog's window is still a splat, and a
	// sch_generic.c WARNING long after the watchdog is too.
	lines := []string{"NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out"}
	lines = append(lines, "BUG: scheduling while atomic: swapper/0/0/0x00000002")
	for range watchdogWindow {
		lines = append(lines, "filler")
	}
	lines = append(lines, "WARNING: CPU: 2 PID: 0 at net/sched/sch_generic.c:1234 dev_deactivate_queue+0x10/0x20")
	checkKinds(t, []string{"watchdog@0", "splat@1", fmt.Sprintf("splat@%d", len(lines)-1)}, lines)
}

// BenchmarkMatch measures records matched per second over a mix of
// ordinary boot lines and events.
func BenchmarkMatch(b *testing.B) {
	var recs []Record
	for i, l := range notEvents {
		recs = append(recs, Record{Message: l, Seq: uint64(i)})
	}
	recs = append(recs,
		Record{Message: "virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms"},
		Record{Message: "virtio_net virtio0 eth0: TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 5764000 usecs ago"},
		Record{Message: "WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:4400 __alloc_pages+0x2c5/0x330"},
	)
	m := NewMatcher()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		m.Match(recs[n%len(recs)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

func checkKinds(t *testing.T, want []string, lines []string) {
	t.Helper()
	if diff := cmp.Diff(want, kinds(matchAll(lines))); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestLiteralPrefix(t *testing.T) {
	for expr, want := range map[string]string{
		`^Reset adapter$`:                       "Reset adapter",
		`(?s)^Detected Tx Unit Hang(?:.*?x)?`:   "Detected Tx Unit Hang",
		`^TX timeout on queue: (?P<q>\d+), sq:`: "TX timeout on queue: ",
		`^abc|^def`:                             "",
		`^ab*c`:                                 "a",
		`^(?i)reset`:                            "",
		`Reset adapter`:                         "",
		`^[Rr]eset`:                             "",
	} {
		if got := literalPrefix(regexp.MustCompile(expr)); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", expr, got, want)
		}
	}
}

func TestMatchKernelOnly(t *testing.T) {
	line := "virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms"
	for _, tt := range []struct {
		kernelOnly bool
		facility   int
		want       int
	}{
		{false, 1, 1},
		{true, 1, 0},
		{true, 0, 1},
		{true, -1, 1},
	} {
		m := NewMatcher()
		m.KernelOnly = tt.kernelOnly
		if got := len(m.Match(Record{Facility: tt.facility, Message: line})); got != tt.want {
			t.Errorf("KernelOnly=%v, facility %d: %d events, want %d", tt.kernelOnly, tt.facility, got, tt.want)
		}
	}
}

// TestMatchReportFixtures feeds each whole report of testdata/reports, one
// message a record, through one Matcher and expects one splat: the
// report's opening line ("# want: splat TEXT", and "# iface: NAME" where
// the event names an interface), and no watchdog or driver event. A file
// with several "# want:" lines expects that many splats, in order (a
// kmemleak listing of several objects). A file with "# format: kmsg"
// holds raw /dev/kmsg records (PRIO,SEQ,TS_USEC,FLAGS;MESSAGE with the
// kernel's \xNN escapes, and " KEY=value" continuation lines), as the
// captured-* fixtures do, and is read with a LogReader.
func TestMatchReportFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/reports/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, recs := readFixture(t, file)
			if len(want) == 0 {
				t.Fatal("fixture has no '# want: splat' line")
			}
			m := NewMatcher()
			var got []Event
			for _, r := range recs {
				got = append(got, m.Match(r)...)
			}
			for i := range got {
				got[i].Seq, got[i].TSUsec = 0, 0
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// readFixture returns a fixture's wanted events ("# want: splat TEXT",
// "# iface: NAME" for the one before it) and its records.
func readFixture(t *testing.T, file string) ([]Event, []Record) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var want []Event
	var body []string
	raw := false
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if c, ok := strings.CutPrefix(line, "# "); ok {
			if w, ok := strings.CutPrefix(c, "want: splat "); ok {
				want = append(want, Event{Kind: KindSplat, Text: w, Queue: -1})
			}
			if w, ok := strings.CutPrefix(c, "iface: "); ok && len(want) > 0 {
				want[len(want)-1].Iface = w
			}
			if c == "format: kmsg" {
				raw = true
			}
			continue
		}
		body = append(body, line)
	}
	var recs []Record
	if !raw {
		for i, line := range body {
			recs = append(recs, Record{Message: line, Seq: uint64(i)})
		}
		return want, recs
	}
	lr := NewLogReader(strings.NewReader(strings.Join(body, "\n") + "\n"))
	for {
		r, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if n := lr.Skipped(); n > 0 {
		t.Fatalf("%d lines of the kmsg fixture were not records", n)
	}
	return want, recs
}

// TestMatchCapturedBoot feeds whole boot logs of debug kernels, captured
// from /dev/kmsg (testdata/boot; see each file's header), through one
// Matcher: their banners (KASAN, lockdep, kmemleak, UBSAN, debug objects)
// and everything else a clean boot prints are no splat, watchdog or
// driver event; only the link coming up is an event.
func TestMatchCapturedBoot(t *testing.T) {
	files, err := filepath.Glob("testdata/boot/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no boot logs: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, recs := readFixture(t, file)
			if len(recs) < 100 {
				t.Fatalf("%d records: not a whole boot", len(recs))
			}
			m := NewMatcher()
			for _, r := range recs {
				for _, ev := range m.Match(r) {
					if ev.Kind != KindLink {
						t.Errorf("record %d %q: %s event, want none", r.Seq, r.Message, ev.Kind)
					}
				}
			}
		})
	}
}

func TestMatchNetdevWaitIface(t *testing.T) {
	line := "unregister_netdevice: waiting for eth0 to become free. Usage count = 2"
	checkMatchOne(t, line, Event{Kind: KindSplat, Iface: "eth0", Queue: -1})
}

func TestMatchDebugReports(t *testing.T) {
	// x86 since 6.19 and warn_slowpath_fmt print the WARNING line first,
	// then the refcount_t message: still one event.
	checkKinds(t, []string{"splat@1", "splat@6"}, []string{
		"------------[ cut here ]------------",
		"WARNING: lib/refcount.c:28 at refcount_warn_saturate+0xd4/0x1a0, CPU#0: kworker/0:1/58",
		"refcount_t: underflow; use-after-free.",
		"Modules linked in:",
		"---[ end trace 0000000000000000 ]---",
		// A later refcount_t warning is another event.
		"------------[ cut here ]------------",
		"refcount_t: addition on 0; use-after-free.",
	})
	checkKinds(t, []string{"splat@1", "splat@6"}, []string{
		"------------[ cut here ]------------",
		"refcount_t: saturated; leaking memory.",
		"WARNING: CPU: 0 PID: 1 at lib/refcount.c:22 refcount_warn_saturate+0x9c/0x110",
		"Call Trace:",
		"---[ end trace 0000000000000000 ]---",
		"------------[ cut here ]------------",
		// An unrelated WARNING right after is its own event.
		"WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:4400 __alloc_pages+0x2c5/0x330",
	})
	// ref_tracker_dir_exit: the leaked stacks, then its WARN_ON_ONCE.
	checkKinds(t, []string{"splat@0"}, []string{
		"ref_tracker: eth0@ffff888012345678 has 1/2 users at\n     netdev_hold+0x1a/0x40",
		"ref_tracker: eth0@ffff888012345678 has 1/2 users at\n     e1000_open+0x1a/0x40",
		"------------[ cut here ]------------",
		"WARNING: CPU: 0 PID: 1 at lib/ref_tracker.c:45 ref_tracker_dir_exit+0x1a/0x40",
		"---[ end trace 0000000000000000 ]---",
	})
	// Two devices waited for: two events, each with its ref_tracker lines.
	evs := matchAll([]string{
		"unregister_netdevice: waiting for eth0 to become free. Usage count = 2",
		"ref_tracker: netdev@ffff888012345678 has 1/1 users at",
		"unregister_netdevice: waiting for eth1 to become free. Usage count = 3",
		"ref_tracker: netdev@ffff888087654321 has 2/2 users at",
	})
	if len(evs) != 2 || evs[0].Iface != "eth0" || evs[1].Iface != "eth1" {
		t.Errorf("two waits = %+v, want events for eth0 and eth1", evs)
	}
	// kmemleak.verbose: each object is an event, the summary after them
	// is not another; without verbose the summary is the event.
	checkKinds(t, []string{"splat@0", "splat@3"}, []string{
		"kmemleak: unreferenced object 0xffff888100a3c000 (size 64):",
		"kmemleak:   comm \"swapper/0\", pid 1, jiffies 4294892310",
		"kmemleak:   backtrace (crc 0):",
		"kmemleak: unreferenced object 0xffff888100a3c040 (size 64):",
		"kmemleak:   comm \"swapper/0\", pid 1, jiffies 4294892310",
		"kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
	})
	// syzbot's symbolizer repeats a KASAN title per inlined frame; the
	// closing separator ends the report, so a second one is an event.
	checkKinds(t, []string{"splat@1", "splat@7"}, []string{
		"==================================================================",
		"BUG: KASAN: slab-use-after-free in dev_get_drvdata include/linux/device.h:927 [inline]",
		"BUG: KASAN: slab-use-after-free in video_get_drvdata include/media/v4l2-dev.h:491 [inline]",
		"BUG: KASAN: slab-use-after-free in v4l2_fh_open+0x1a/0x40 drivers/media/v4l2-core/v4l2-fh.c:60",
		"Read of size 8 at addr ffff8880554640b0 by task v4l_id/5295",
		"==================================================================",
		"==================================================================",
		"BUG: KASAN: slab-use-after-free in v4l2_fh_open+0x1a/0x40 drivers/media/v4l2-core/v4l2-fh.c:60",
		"==================================================================",
	})
	// A KASAN null-ptr-deref through the shadow: the fault is the event.
	checkKinds(t, []string{"splat@0"}, []string{
		"Oops: general protection fault, probably for non-canonical address 0xdffffc0000000002: 0000 [#1] PREEMPT SMP KASAN NOPTI",
		"KASAN: null-ptr-deref in range [0x0000000000000010-0x0000000000000017]",
		"CPU: 0 UID: 0 PID: 1 Comm: ip Not tainted 6.12.0 #1",
		"RIP: 0010:virtnet_poll+0x1a/0x40",
	})
}
