package harness

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Partner kinds: how the link partner is made to stop receiving.
const (
	// PartnerInband: the partner runs this project's partner program and
	// obeys in-band stall control frames (the virtual rig).
	PartnerInband = "inband"
	// PartnerPause: a partner port sends 802.3x PAUSE frames (hardware rigs).
	PartnerPause = "pause"
)

// Limits enforced by LoadConfig.
const (
	// MaxDuration bounds every configured duration, so that no stall or
	// flood can outlive a CI job by mistake. It equals the longest stall an
	// in-band control frame may request.
	MaxDuration = 10 * time.Minute
	// MaxSize is the largest ICMP payload over IPv4 (65535 - 20 - 8).
	MaxSize = 65507
	// MinSize is the smallest payload pro-bing accepts (it stores a
	// timestamp and a tracker in it).
	MinSize = 24
	// MaxSenders bounds the number of parallel senders.
	MaxSenders = 64
)

// Config is the resolved configuration of a run. Its zero Iface means the
// virtual rig.
type Config struct {
	Iface   string // DUT interface; empty: the virtual rig
	PeerIP  string // IPv4 address of the link partner
	PeerMAC string // MAC address of the link partner

	PartnerIface string // PAUSE flood source port (hardware rigs)
	// PartnerNetNS is the network namespace PartnerIface is in (a path
	// such as /run/netns/partner): a rig whose partner port is on the DUT
	// machine, in a namespace of its own. Empty: the caller's.
	PartnerNetNS string
	Partner      string // PartnerInband, PartnerPause or "" (none)
	Rig          bool   // running inside the virtual rig's guest (TXTIMEOUT_RIG=1)
	NIC          string // the rig's NIC model

	NetemDelay    time.Duration // netem root delay of the NetemDelay scenario
	StallFor      time.Duration // how long the partner stops receiving
	FloodFor      time.Duration // upper bound of a flood
	RecoverWithin time.Duration // recovery deadline after the fault is removed

	Size     int           // ICMP payload size in bytes
	Interval time.Duration // interval between echo requests per sender
	Senders  int           // parallel senders

	ReportDir string // where report.json and report.ktap go; empty: nowhere
	LAVA      bool   // print LAVA test-case signal lines on stdout
}

// DefaultConfig returns the defaults: the measured recipe that fires the
// watchdog on the virtual rig (six senders of 2048-byte echo requests every
// 10 ms, kernel-facts.md section 4) and the seed's 9 s netem delay.
func DefaultConfig() Config {
	return Config{
		NetemDelay:    9 * time.Second,
		StallFor:      20 * time.Second,
		FloodFor:      20 * time.Second,
		RecoverWithin: 15 * time.Second,
		Size:          2048,
		Interval:      10 * time.Millisecond,
		Senders:       6,
	}
}

// VirtualRig reports whether the configuration asks for the built-in
// virtual rig (no interface given and not already inside the rig).
func (c Config) VirtualRig() bool { return c.Iface == "" && !c.Rig }

// String returns the resolved configuration on one line, as printed at the
// start of every run.
// GuestEnv returns the scenario settings of c as the environment
// variables LoadConfig reads (TXTIMEOUT_STALL_FOR=20s, ...), for a process
// that must run with the same settings: the virtual rig's guest, which does
// not see the host's environment or flags. The DUT's own settings
// (interface, partner, report directory, rig) are left out: the rig sets
// those for its guest.
func (c Config) GuestEnv() []string {
	d := func(v time.Duration) string { return v.String() }
	env := []string{
		"TXTIMEOUT_NETEM_DELAY=" + d(c.NetemDelay),
		"TXTIMEOUT_STALL_FOR=" + d(c.StallFor),
		"TXTIMEOUT_FLOOD_FOR=" + d(c.FloodFor),
		"TXTIMEOUT_RECOVER_WITHIN=" + d(c.RecoverWithin),
		"TXTIMEOUT_SIZE=" + strconv.Itoa(c.Size),
		"TXTIMEOUT_INTERVAL=" + d(c.Interval),
		"TXTIMEOUT_SENDERS=" + strconv.Itoa(c.Senders),
		"TXTIMEOUT_LAVA=" + strconv.FormatBool(c.LAVA),
	}
	return env
}

func (c Config) String() string {
	var b strings.Builder
	iface := c.Iface
	switch {
	case c.VirtualRig():
		iface = "(virtual rig)"
	case c.Rig:
		iface += " (virtual rig guest)"
	}
	fmt.Fprintf(&b, "iface=%s", iface)
	opt := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	opt("nic", c.NIC)
	opt("peer-ip", c.PeerIP)
	opt("peer-mac", c.PeerMAC)
	partner := c.Partner
	if partner == "" {
		partner = "none"
	}
	fmt.Fprintf(&b, " partner=%s", partner)
	opt("partner-iface", c.PartnerIface)
	opt("partner-netns", c.PartnerNetNS)
	fmt.Fprintf(&b, " netem-delay=%v stall-for=%v flood-for=%v recover-within=%v size=%d interval=%v senders=%d",
		c.NetemDelay, c.StallFor, c.FloodFor, c.RecoverWithin, c.Size, c.Interval, c.Senders)
	report := c.ReportDir
	if report == "" {
		report = "(none)"
	}
	fmt.Fprintf(&b, " report=%s lava=%t", report, c.LAVA)
	return b.String()
}

// setting is one configuration knob: its flag name, its environment
// variable and how it is stored.
type setting struct {
	flag, env, usage string
	set              func(c *Config, v string) error
	isBool           bool
}

// parsedSetting is a setting whose value parse turns into a T; a value
// parse refuses is reported as notA with the value quoted.
func parsedSetting[T any](flagName, env, usage string, field func(*Config) *T, parse func(string) (T, error), notA string) setting {
	return setting{flagName, env, usage, func(c *Config, v string) error {
		x, err := parse(v)
		if err != nil {
			return fmt.Errorf("%s: %q", notA, v)
		}
		*field(c) = x
		return nil
	}, false}
}

func durationSetting(flagName, env, usage string, field func(*Config) *time.Duration) setting {
	return parsedSetting(flagName, env, usage, field, time.ParseDuration, "not a duration (e.g. 9s, 500ms)")
}

func intSetting(flagName, env, usage string, field func(*Config) *int) setting {
	return parsedSetting(flagName, env, usage, field, strconv.Atoi, "not an integer")
}

func stringSetting(flagName, env, usage string, field func(*Config) *string) setting {
	return parsedSetting(flagName, env, usage, field, func(v string) (string, error) { return strings.TrimSpace(v), nil }, "")
}

func boolSetting(flagName, env, usage string, field func(*Config) *bool) setting {
	s := parsedSetting(flagName, env, usage, field, strconv.ParseBool, "not a boolean (1, 0, true, false)")
	s.isBool = true
	return s
}

var settings = []setting{
	stringSetting("iface", "TXTIMEOUT_IFACE", "DUT interface; empty means the virtual rig", func(c *Config) *string { return &c.Iface }),
	stringSetting("peer-ip", "TXTIMEOUT_PEER_IP", "IPv4 address of the link partner", func(c *Config) *string { return &c.PeerIP }),
	stringSetting("peer-mac", "TXTIMEOUT_PEER_MAC", "MAC address of the link partner", func(c *Config) *string { return &c.PeerMAC }),
	stringSetting("partner-iface", "TXTIMEOUT_PARTNER_IFACE", "partner port that sends PAUSE floods (hardware rigs)", func(c *Config) *string { return &c.PartnerIface }),
	stringSetting("partner-netns", "TXTIMEOUT_PARTNER_NETNS", "network namespace of the partner port, a path such as /run/netns/partner", func(c *Config) *string { return &c.PartnerNetNS }),
	stringSetting("partner", "TXTIMEOUT_PARTNER", `how the partner is stalled: "inband", "pause" or empty`, func(c *Config) *string { return &c.Partner }),
	boolSetting("rig", "TXTIMEOUT_RIG", "running inside the virtual rig's guest", func(c *Config) *bool { return &c.Rig }),
	stringSetting("nic", "TXTIMEOUT_NIC", "the rig's NIC model", func(c *Config) *string { return &c.NIC }),
	durationSetting("netem-delay", "TXTIMEOUT_NETEM_DELAY", "netem root delay (NetemDelay scenario)", func(c *Config) *time.Duration { return &c.NetemDelay }),
	durationSetting("stall-for", "TXTIMEOUT_STALL_FOR", "how long the partner stops receiving", func(c *Config) *time.Duration { return &c.StallFor }),
	durationSetting("flood-for", "TXTIMEOUT_FLOOD_FOR", "upper bound of a flood", func(c *Config) *time.Duration { return &c.FloodFor }),
	durationSetting("recover-within", "TXTIMEOUT_RECOVER_WITHIN", "recovery deadline after the fault is removed", func(c *Config) *time.Duration { return &c.RecoverWithin }),
	intSetting("size", "TXTIMEOUT_SIZE", "ICMP payload size in bytes", func(c *Config) *int { return &c.Size }),
	durationSetting("interval", "TXTIMEOUT_INTERVAL", "interval between echo requests per sender", func(c *Config) *time.Duration { return &c.Interval }),
	intSetting("senders", "TXTIMEOUT_SENDERS", "number of parallel senders", func(c *Config) *int { return &c.Senders }),
	stringSetting("report", "TXTIMEOUT_REPORT_DIR", "directory for report.json and report.ktap", func(c *Config) *string { return &c.ReportDir }),
	boolSetting("lava", "TXTIMEOUT_LAVA", "print LAVA test-case signal lines on stdout", func(c *Config) *bool { return &c.LAVA }),
}

// flagValue holds a flag's raw text until LoadConfig applies it, so that
// parsing and validation happen in one place with one kind of error.
type flagValue struct {
	s   string
	set bool
	b   bool // boolean flag (accepts -lava without a value)
}

func (f *flagValue) String() string {
	if f == nil {
		return ""
	}
	return f.s
}
func (f *flagValue) Set(v string) error { f.s, f.set = v, true; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.b }

var (
	flagsMu sync.Mutex
	flagVal map[string]*flagValue
)

// RegisterFlags registers the configuration flags on fs (flag.CommandLine
// when nil). A scenario's TestMain calls it before flag.Parse; LoadConfig
// then applies the flags that were set on top of the environment.
func RegisterFlags(fs *flag.FlagSet) {
	if fs == nil {
		fs = flag.CommandLine
	}
	flagsMu.Lock()
	defer flagsMu.Unlock()
	vals := make(map[string]*flagValue, len(settings))
	for _, s := range settings {
		v := &flagValue{b: s.isBool}
		vals[s.flag] = v
		fs.Var(v, s.flag, s.usage+" (env "+s.env+")")
	}
	flagVal = vals
}

// LoadConfig resolves the configuration from the defaults, the environment
// and the flags registered by RegisterFlags (flags win), and validates it.
// Its errors are one line and name the flag or variable at fault.
func LoadConfig() (Config, error) {
	flagsMu.Lock()
	vals := flagVal
	flagsMu.Unlock()
	flags := map[string]string{}
	for name, v := range vals {
		if v.set {
			flags[name] = v.s
		}
	}
	return loadConfig(os.LookupEnv, flags)
}

// loadConfig is LoadConfig with its inputs made explicit for tests.
func loadConfig(lookupEnv func(string) (string, bool), flags map[string]string) (Config, error) {
	c := DefaultConfig()
	for _, s := range settings {
		if v, ok := lookupEnv(s.env); ok && v != "" {
			if err := s.set(&c, v); err != nil {
				return Config{}, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, s.env, err)
			}
		}
	}
	for _, s := range settings {
		if v, ok := flags[s.flag]; ok {
			if err := s.set(&c, v); err != nil {
				return Config{}, fmt.Errorf("%w: -%s: %v", ErrInvalidConfig, s.flag, err)
			}
		}
	}
	if c.Rig && c.Partner == "" {
		// The rig's partner program obeys in-band stall frames.
		c.Partner = PartnerInband
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ErrInvalidConfig is wrapped by every validation error.
var ErrInvalidConfig = errors.New("invalid configuration")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
}

// Validate checks the configuration; the error is one line.
func (c Config) Validate() error {
	for _, f := range []struct{ name, v string }{{"iface", c.Iface}, {"partner-iface", c.PartnerIface}} {
		if err := checkIfaceName(f.v); err != nil {
			return invalid("%s %q: %v", f.name, f.v, err)
		}
	}
	if c.PeerIP != "" {
		ip := net.ParseIP(c.PeerIP)
		if ip == nil || ip.To4() == nil {
			return invalid("peer-ip %q is not an IPv4 address", c.PeerIP)
		}
		if ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.IPv4bcast) {
			return invalid("peer-ip %q is not a unicast address", c.PeerIP)
		}
	}
	if c.PeerMAC != "" {
		mac, err := net.ParseMAC(c.PeerMAC)
		if err != nil || len(mac) != 6 {
			return invalid("peer-mac %q is not an Ethernet MAC address (like 52:54:00:12:34:56)", c.PeerMAC)
		}
		if mac[0]&1 == 1 {
			return invalid("peer-mac %q is a multicast address", c.PeerMAC)
		}
	}
	switch c.Partner {
	case "", PartnerInband:
	case PartnerPause:
		if c.PartnerIface == "" {
			return invalid("partner %q needs -partner-iface (the port that sends PAUSE frames)", c.Partner)
		}
	default:
		return invalid("partner %q: want %q, %q or empty", c.Partner, PartnerInband, PartnerPause)
	}
	if c.PartnerNetNS != "" {
		if !strings.HasPrefix(c.PartnerNetNS, "/") || strings.ContainsAny(c.PartnerNetNS, "\n\x00") {
			return invalid("partner-netns %q: want the path of a network namespace file, such as /run/netns/partner", c.PartnerNetNS)
		}
		if c.PartnerIface == "" {
			return invalid("partner-netns %q needs -partner-iface (the port in that namespace)", c.PartnerNetNS)
		}
	}
	if c.PartnerIface != "" && c.PartnerIface == c.Iface && c.PartnerNetNS == "" {
		return invalid("partner-iface %q is the DUT interface itself", c.PartnerIface)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"netem-delay", c.NetemDelay}, {"stall-for", c.StallFor}, {"flood-for", c.FloodFor}, {"recover-within", c.RecoverWithin}} {
		if d.v <= 0 {
			return invalid("%s %v must be positive", d.name, d.v)
		}
		if d.v > MaxDuration {
			return invalid("%s %v is longer than %v", d.name, d.v, MaxDuration)
		}
	}
	if c.Interval < time.Millisecond || c.Interval > 10*time.Second {
		return invalid("interval %v: want between 1ms and 10s", c.Interval)
	}
	if c.Size < MinSize || c.Size > MaxSize {
		return invalid("size %d: want between %d and %d bytes", c.Size, MinSize, MaxSize)
	}
	if c.Senders < 1 || c.Senders > MaxSenders {
		return invalid("senders %d: want between 1 and %d", c.Senders, MaxSenders)
	}
	return nil
}

// checkIfaceName applies the kernel's rules (dev_valid_name) to a name;
// the empty name is allowed (it means "not given").
func checkIfaceName(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > 15 {
		return errors.New("longer than 15 bytes")
	}
	if s == "." || s == ".." {
		return errors.New("not a valid name")
	}
	for _, r := range s {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("contains %q", r)
		}
	}
	return nil
}
