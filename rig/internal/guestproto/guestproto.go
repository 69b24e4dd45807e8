// Package guestproto is the contract between the virtual rig's host side
// and its guest init: the configuration file the host packs into the
// initramfs and the line protocol the init speaks on the control serial port.
//
// # Serial ports
//
// ttyS0 is the kernel console, ttyS1 carries the test binary's stdout and
// stderr byte for byte, and ttyS2 carries control lines, each beginning with
// Prefix:
//
//	TXTO HELLO                     init started
//	TXTO MODULE name               module loaded (or built in)
//	TXTO READY iface               network up, test binary about to start
//	TXTO RESUME nonce              the test binary asks the host to end the
//	                               link partner's stall now (see below)
//	TXTO FILE name size            a report file follows as base64 lines,
//	...                            ended by
//	TXTO ENDFILE
//	TXTO ERROR message             init failed; EXIT follows
//	TXTO EXIT code                 the test binary's exit status; power-off follows
//
// Every line but RESUME comes from the init, which writes nothing between
// READY and the test binary's exit. RESUME is the one line the test binary
// itself writes, while it runs, as a single write(2) of the whole line (so
// it cannot interleave with anything): a stalled partner does not read the
// DUT link, so the in-band control frame cannot end a stall, but the host,
// which owns the partner, can. The nonce (any token without spaces) only
// names the request in the host's log. The host answers nothing: the guest
// sees the effect, its TX queue draining again.
package guestproto

// Paths inside the guest.
const (
	ConfigPath = "/rig.json"
	TestPath   = "/txtimeout.test"
	ModuleDir  = "/lib/modules/rig"
	ReportDir  = "/report"
)

// Serial devices inside the guest.
const (
	ConsoleTTY = "ttyS0"
	OutputTTY  = "/dev/ttyS1"
	ControlTTY = "/dev/ttyS2"
)

// Prefix begins every control line.
const Prefix = "TXTO "

// Control line verbs.
const (
	Hello   = "HELLO"
	Module  = "MODULE"
	Ready   = "READY"
	Resume  = "RESUME"
	File    = "FILE"
	EndFile = "ENDFILE"
	Error   = "ERROR"
	Exit    = "EXIT"
)

// ExitInitFailed is the exit status the init reports when it could not run
// the test binary at all.
const ExitInitFailed = 125

// Config is what the init reads from ConfigPath.
type Config struct {
	// Modules in load order (dependencies first).
	Modules []ModuleFile `json:"modules"`
	// Iface is the name the DUT interface gets (eth0).
	Iface string `json:"iface"`
	// Addr is the DUT address in CIDR form.
	Addr string `json:"addr"`
	// Env is added to the test binary's environment.
	Env []string `json:"env"`
	// Args are the test binary's arguments.
	Args []string `json:"args"`
	// Probe makes the init report HELLO and READY and power off without
	// running anything (the KVM probe boot).
	Probe bool `json:"probe,omitempty"`
	// CrashForTest makes the init crash the kernel (sysrq c) right after
	// HELLO: the rig's test of its panic report.
	CrashForTest bool `json:"crash_for_test,omitempty"`
}

// ModuleFile is one kernel module to load.
type ModuleFile struct {
	Name string `json:"name"`
	// Path inside the guest.
	Path string `json:"path"`
	// Compressed asks the kernel to decompress the file itself
	// (finit_module with MODULE_INIT_COMPRESSED_FILE, CONFIG_MODULE_DECOMPRESS).
	Compressed bool `json:"compressed,omitempty"`
}
