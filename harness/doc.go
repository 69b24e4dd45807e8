// Package harness runs a tx-timeout scenario: configuration, preflight, observers, timeline, verdict and reports.
//
// A scenario resolves its Config (LoadConfig), checks what the machine can do
// (Preflight and Need), starts the Observers that put interface, queue, qdisc,
// kernel-log and tracepoint evidence on one Timeline, marks what it does
// (MarkFaultInjected, MarkFaultRemoved, ...), waits on the timeline for events
// or deadlines (WaitFor, never a fixed sleep), derives a Verdict from the
// timeline alone, and hands a ScenarioReport to Finish, which maps it to the
// test result and to report.json, report.ktap and LAVA lines.
//
// # Environment variables
//
// Every setting can come from the environment or from a flag registered by
// RegisterFlags; a flag that is set wins over the environment.
//
//	TXTIMEOUT_IFACE           -iface           DUT interface; empty means the virtual rig
//	TXTIMEOUT_PEER_IP         -peer-ip         IPv4 address of the link partner
//	TXTIMEOUT_PEER_MAC        -peer-mac        MAC address of the link partner
//	TXTIMEOUT_PARTNER_IFACE   -partner-iface   port that sends PAUSE floods (hardware rigs)
//	TXTIMEOUT_PARTNER_NETNS   -partner-netns   network namespace of the partner port (/run/netns/NAME); empty: the caller's
//	TXTIMEOUT_PARTNER         -partner         "inband", "pause" or empty
//	TXTIMEOUT_RIG             -rig             running inside the virtual rig's guest
//	TXTIMEOUT_NIC             -nic             the rig's NIC model (reported only)
//	TXTIMEOUT_NETEM_DELAY     -netem-delay     netem root delay (default 9s)
//	TXTIMEOUT_STALL_FOR       -stall-for       how long the partner stalls (default 20s)
//	TXTIMEOUT_FLOOD_FOR       -flood-for       how long a flood lasts at most (default 20s)
//	TXTIMEOUT_RECOVER_WITHIN  -recover-within  recovery deadline after the fault is removed (default 15s)
//	TXTIMEOUT_SIZE            -size            ICMP payload size in bytes (default 2048)
//	TXTIMEOUT_INTERVAL        -interval        interval between echo requests per sender (default 10ms)
//	TXTIMEOUT_SENDERS         -senders         parallel senders (default 6)
//	TXTIMEOUT_REPORT_DIR      -report          directory for report.json and report.ktap; empty: none
//	TXTIMEOUT_LAVA            -lava            print LAVA test-case signal lines on stdout
//
// # Namespaces
//
// StartObservers and Preflight open every file and socket in the calling
// thread's network and mount namespaces. To observe an interface in another
// network namespace, call them from a goroutine locked to an OS thread that
// has entered that namespace (and, for sysfs, mounted a sysfs of it).
package harness
