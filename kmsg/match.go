package kmsg

import (
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"sync"

	"txtimeout/drivers"
)

// Kind says what an Event is.
type Kind string

// The kinds of Event.
const (
	// KindWatchdog is the kernel's own NETDEV WATCHDOG line
	// (net/sched/sch_generic.c, dev_watchdog).
	KindWatchdog Kind = "watchdog"
	// KindDriver is a driver's own tx-timeout, hang or reset line.
	KindDriver Kind = "driver"
	// KindSplat is a kernel warning or crash: WARNING, BUG, Oops,
	// general protection fault, lockups, hung tasks, RCU stalls, panic;
	// and the reports of debug kernels: lockdep, KASAN, UBSAN, KCSAN,
	// refcount_t, unregister_netdevice waits (Event.Iface set),
	// ref_tracker and kmemleak (including the objects that
	// /sys/kernel/debug/kmemleak lists). One report is one event.
	KindSplat Kind = "splat"
	// KindLink is a driver's link-state line ("NIC Link is Down",
	// "Link is Up - 1Gbps/Full - flow control off"); Event.LinkUp says
	// which way the link went.
	KindLink Kind = "link"
)

// LinkState is the state a link-state row of the driver table reports.
type LinkState int8

// Link states of DriverPattern.Link.
const (
	LinkNone LinkState = iota // not a link-state row
	LinkDown                  // the line says the link went down
	LinkUp                    // the line says the link came up
)

// Event is a record that matters to a tx-timeout test.
type Event struct {
	Kind   Kind   `json:"kind"`
	Iface  string `json:"iface"`
	Driver string `json:"driver"`
	Bus    string `json:"bus"`
	// Queue is the transmit queue, -1 when the line does not say.
	Queue int `json:"queue"`
	// TimedOutMS is how long the queue had been stuck, 0 when the line
	// does not say.
	TimedOutMS int    `json:"timed_out_ms"`
	TSUsec     int64  `json:"ts_usec"`
	Seq        uint64 `json:"seq"`
	Text       string `json:"text"`
	// Reset is set on driver events whose line says the driver is
	// resetting the device (DriverPattern.Reset).
	Reset bool `json:"reset,omitempty"`
	// LinkUp is set on link events that say the link came up; a link
	// event without it says the link went down.
	LinkUp bool `json:"link_up,omitempty"`
}

// DriverPattern is a line of the driver table (a drivers.Line), compiled,
// with the driver that prints it.
type DriverPattern struct {
	// Driver is the driver's name as the kernel prints it at the start
	// of the line (dev_driver_string: "mlx5_core", "bnxt_en"); empty for
	// a line that many drivers print alike (drivers.Common).
	Driver string
	// Re is drivers.Line.Re. Named groups fill the Event: "queue" its
	// Queue, "ms" or "usecs" its TimedOutMS, "iface" its Iface.
	Re *regexp.Regexp
	// Whole, Debug and Source are those of the drivers.Line.
	Whole  bool
	Debug  bool
	Source string
	// Reset marks a drivers.KindReset line; its events have Event.Reset.
	Reset bool
	// Link marks a link-state line (LinkDown or LinkUp); its events are
	// of KindLink rather than KindDriver.
	Link LinkState
}

// DriverPatterns is the driver table's log lines (drivers.Table, then
// drivers.Common), compiled: change those, not this. A line matches the
// first Whole row whose Re matches the message, else the first row whose
// Re matches and whose Driver is the one the line's prefix names, else the
// first row whose Re matches.
var DriverPatterns = compilePatterns(drivers.Table, drivers.Common)

// compilePatterns turns the driver table's lines into rows, in its order:
// each driver's lines, then the common ones (without a driver).
func compilePatterns(table []drivers.Driver, common []drivers.Line) []DriverPattern {
	var out []DriverPattern
	add := func(driver string, lines []drivers.Line) {
		for _, l := range lines {
			p := DriverPattern{Driver: driver, Re: regexp.MustCompile(l.Re), Whole: l.Whole,
				Reset: l.Kind == drivers.KindReset, Debug: l.Debug, Source: l.Source}
			switch l.Kind {
			case drivers.KindLinkUp:
				p.Link = LinkUp
			case drivers.KindLinkDown:
				p.Link = LinkDown
			}
			out = append(out, p)
		}
	}
	for _, d := range table {
		add(d.Name, d.Lines)
	}
	add("", common)
	return out
}

var (
	// WARN_ONCE forms, up to 6.7: "NETDEV WATCHDOG: eth0 (e1000e):
	// transmit queue 0 timed out[ 5120 ms]", and the 2.6-era
	// "NETDEV WATCHDOG: eth0: transmit timed out".
	reWatchdogWarn = regexp.MustCompile(`^NETDEV WATCHDOG: (?P<iface>[^\s:/]+) \((?P<driver>[^)]*)\): transmit queue (?P<queue>\d+) timed out(?: (?P<ms>\d+) ms)?`)
	reWatchdogOld  = regexp.MustCompile(`^NETDEV WATCHDOG: (?P<iface>[^\s:/(]+): transmit timed out`)
	// netdev_crit form, 6.8+ and later stable releases (after the prefix).
	reWatchdogCrit = regexp.MustCompile(`^NETDEV WATCHDOG: CPU: \d+: transmit queue (?P<queue>\d+) timed out (?P<ms>\d+) ms`)

	// The watchdog's own WARNING line names dev_watchdog (or, without
	// kallsyms, at least sch_generic.c).
	reWatchdogWarning = regexp.MustCompile(`^WARNING: .*\bdev_watchdog\b`)
	reSchGeneric      = regexp.MustCompile(`^WARNING: .*net/sched/sch_generic\.c:`)

	// Splat openers. WARNING is only the WARN() form ("WARNING: CPU: N
	// PID: P at ...", the 6.19+ "WARNING: file:line at func, CPU#N: ..."
	// or the old "WARNING: at ...") and lockdep's reports, not boot-time
	// notices such as "WARNING: Spectre v2 mitigation ...". Lockdep
	// titles have been "WARNING: ..." since 4.11 and "[ INFO: ... ]" or
	// "[ BUG: ... ]" before (and "[ BUG: Invalid wait context ]" still).
	// BUG: covers KASAN, KCSAN, KFENCE and KMSAN, lockdep's "BUG: MAX_...
	// too low!" and "BUG: sleeping function called from invalid context".
	// Debug kernels' boot banners ("kasan: KernelAddressSanitizer
	// initialized", "Lock dependency validator: ...", "kmemleak: Kernel
	// memory leak detector initialized", "KCSAN: enabled early") match
	// none of these. Every kernel line that begins "UBSAN: " is a report
	// (lib/ubsan.c ubsan_prologue, or the trap decoder report_ubsan_failure).
	reSplat = regexp.MustCompile(`^(?:` +
		`WARNING: (?:CPU: \d+ PID: \d+ |at |\S+:\d+ at )` +
		`|(?:\[ )?(?:WARNING|INFO): (?:` + lockdepTitles + `)` +
		`|\[ BUG: ` +
		`|INFO: trying to register non-static key` +
		`|(?:(?:NMI )?watchdog: )?BUG: ` +
		`|kernel BUG at ` +
		`|Oops: ` +
		`|invalid opcode: [0-9a-f]+ \[#\d+\]` +
		`|Internal error: .*\[#\d+\]` +
		`|Unable to handle kernel ` +
		`|general protection fault` +
		`|(?:(?:NMI )?watchdog: )?(?:CPU\d+: )?Watchdog detected hard LOCKUP` +
		`|INFO: task \S.* blocked for more than \d+ seconds` +
		`|(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stalls?` +
		`|Kernel panic - not syncing` +
		`|UBSAN: ` +
		// lib/refcount.c REFCOUNT_WARN: a WARN_ONCE message.
		`|refcount_t: ` +
		// net/core/dev.c netdev_wait_allrefs_any, every 10 s by default.
		`|unregister_netdevice: waiting for \S+ to become free` +
		// lib/ref_tracker.c: leaked references, a double release.
		`|ref_tracker: .*@\S+ (?:has \d+/\d+ users at|skipped )` +
		`|ref_tracker: reference already released` +
		// mm/kmemleak.c: the scan's summary, and the objects as
		// /sys/kernel/debug/kmemleak lists them (or, with
		// kmemleak.verbose, the log does).
		`|kmemleak: \d+ new suspected memory leaks` +
		`|(?:kmemleak: )?unreferenced object 0x[0-9a-f]+ \(size \d+\):` +
		`)`)
	// splatFirst holds the first bytes of every reSplat alternative, a
	// cheap filter before the expression.
	splatFirst = "WBwNkOIUgrKi[u"
	// Lines that continue the report a BUG/kernel BUG/Unable to handle
	// opened: they are not new splats.
	reSplatFollow = regexp.MustCompile(`^(?:Oops: |Internal error: |invalid opcode: )`)
	// reWarnLine is the WARNING line __warn prints (kernel/panic.c).
	reWarnLine = regexp.MustCompile(`^WARNING: (?:CPU: \d+ PID: \d+ |at |\S+:\d+ at )`)
	// reNetdevWait names the interface unregister_netdevice waits for.
	reNetdevWait = regexp.MustCompile(`^unregister_netdevice: waiting for (\S+) to become free`)
)

// lockdepTitles are the titles of lockdep's reports (kernel/locking/lockdep.c,
// and lockdep_rcu_suspicious), after "WARNING: " or the old "[ INFO: ".
const lockdepTitles = `possible (?:circular|recursive|irq lock inversion)` +
	`|suspicious RCU usage|inconsistent lock state|bad unlock balance|bad contention` +
	`|held lock freed|lock held (?:when returning|at task exit)|Nested lock was not taken` +
	`|.*lock order detected|.* still has locks held`

// splatClass says how the lines after a splat's opener may continue it.
type splatClass uint8

const (
	splatOther     splatClass = iota
	splatWarn                 // a WARN() line; its message may follow
	splatWarnMsg              // a WARN message printed before its WARNING line (refcount_t)
	splatSanitizer            // KASAN, KCSAN, KFENCE, KMSAN, UBSAN: between "=====" lines
	splatRefs                 // unregister_netdevice waits and ref_tracker reports
	splatLeak                 // kmemleak
)

// classify returns the splatClass of an opener line.
func classify(msg string) splatClass {
	switch {
	case strings.HasPrefix(msg, "WARNING: ") && reWarnLine.MatchString(msg):
		return splatWarn
	case strings.HasPrefix(msg, "refcount_t: "):
		return splatWarnMsg
	case strings.HasPrefix(msg, "BUG: K"), strings.HasPrefix(msg, "UBSAN: "):
		return splatSanitizer
	case strings.HasPrefix(msg, "unregister_netdevice: "), strings.HasPrefix(msg, "ref_tracker: "):
		return splatRefs
	case strings.HasPrefix(msg, "kmemleak: "), strings.HasPrefix(msg, "unreferenced object "):
		return splatLeak
	}
	return splatOther
}

// isSeparator reports whether msg is the "=====" line that opens and
// closes sanitizer reports (and stands above lockdep's titles).
func isSeparator(msg string) bool {
	return len(msg) >= 20 && strings.Trim(msg, "=") == ""
}

// Windows (in records) during which follow-on lines belong to the event
// before them. Traces are a few dozen records; the openers' own follow-on
// lines come within a handful.
const (
	watchdogWindow = 64
	splatWindow    = 32
	// The two halves of a WARN (its message and its WARNING line) come
	// one right after the other, in either order: the message first
	// where the architecture prints it before trapping (x86 up to 6.18,
	// arm64), the WARNING line first through warn_slowpath_fmt and x86's
	// WARN with arguments in the bug table.
	pairWindow = 3
)

// Matcher turns records into events. It is stateful — the WARNING and call
// trace that follow a watchdog line belong to it, and the lines of an oops
// report belong to the splat that opened it — but it returns each event as
// soon as its opening line is seen. It is not safe for concurrent use.
type Matcher struct {
	// KernelOnly ignores records written from user space (Facility > 0).
	// The kernel never lets user space log at facility 0, so this makes
	// the Matcher immune to lines injected through /dev/kmsg — which is
	// also how end-to-end tests feed it, hence off by default. Records
	// whose facility is unknown (-1, plain dmesg text) are kept. Beware:
	// util-linux dmesg -r prints "<fac|level>" (e.g. <3> for a user record
	// at level 2), so its user records look like kernel ones.
	KernelOnly bool

	watchdogLeft int // records left in which a sch_generic.c WARNING is the watchdog's
	splatLeft    int // records left in which follow-on lines belong to the last splat
	pairLeft     int // records left in which the other half of a WARN belongs to it
	splatOpen    splatClass
	splatTitle   string // a sanitizer report's title up to " in ", which symbolizers repeat
}

// NewMatcher returns a Matcher.
func NewMatcher() *Matcher { return &Matcher{} }

// Match returns the events record r opens: none, or one.
func (m *Matcher) Match(r Record) []Event {
	if m.watchdogLeft > 0 {
		m.watchdogLeft--
	}
	if m.splatLeft > 0 {
		m.splatLeft--
	}
	if m.pairLeft > 0 {
		m.pairLeft--
	}
	if m.KernelOnly && r.Facility > 0 {
		return nil
	}
	msg := r.Message
	if strings.HasPrefix(msg, "---[ end trace") {
		m.watchdogLeft, m.splatLeft, m.pairLeft = 0, 0, 0
		return nil
	}
	if m.splatLeft > 0 && m.splatOpen == splatSanitizer && len(msg) > 0 && msg[0] == '=' && isSeparator(msg) {
		// The sanitizer report's closing line.
		m.splatLeft = 0
		return nil
	}
	ev := Event{Queue: -1, TSUsec: r.Time.Microseconds(), Seq: r.Seq, Text: msg}

	// The WARN_ONCE forms of the watchdog line. (The HasPrefix calls
	// only spare most records the expressions.)
	wd := strings.HasPrefix(msg, "NETDEV WATCHDOG: ")
	if g := submatchIf(wd, reWatchdogWarn, msg); g != nil {
		ev.Kind = KindWatchdog
		ev.Iface, ev.Driver = g["iface"], g["driver"]
		ev.Queue = atoi(g["queue"], -1)
		ev.TimedOutMS = atoi(g["ms"], 0)
		m.watchdogLeft, m.splatLeft = watchdogWindow, 0
		return []Event{ev}
	}
	if g := submatchIf(wd, reWatchdogOld, msg); g != nil {
		ev.Kind, ev.Iface = KindWatchdog, g["iface"]
		m.watchdogLeft, m.splatLeft = watchdogWindow, 0
		return []Event{ev}
	}
	// The watchdog's WARNING is part of its event; old kernels print it
	// before the NETDEV WATCHDOG line, newer ones after.
	warning := strings.HasPrefix(msg, "WARNING: ")
	if warning && (reWatchdogWarning.MatchString(msg) || (m.watchdogLeft > 0 && reSchGeneric.MatchString(msg))) {
		m.watchdogLeft, m.splatLeft = watchdogWindow, 0
		return nil
	}

	p := splitPrefix(msg)
	if strings.HasPrefix(msg, "NETDEV WATCHDOG: CPU: ") {
		// The netdev_crit form with its prefix cut off by some tool.
		p = prefix{body: msg}
	}
	ev.Driver, ev.Bus, ev.Iface = p.driver, p.bus, p.iface

	// The netdev_crit form.
	if g := submatchIf(strings.HasPrefix(p.body, "NETDEV WATCHDOG: CPU: "), reWatchdogCrit, p.body); g != nil {
		ev.Kind = KindWatchdog
		ev.Queue = atoi(g["queue"], -1)
		ev.TimedOutMS = atoi(g["ms"], 0)
		return []Event{ev}
	}

	// Drivers' own lines.
	if row, g := matchDriver(p, msg); row != nil {
		ev.Kind, ev.Reset = KindDriver, row.Reset
		if row.Link != LinkNone {
			ev.Kind, ev.LinkUp = KindLink, row.Link == LinkUp
		}
		if row.Whole {
			// What splitPrefix took for an interface is the module name.
			ev.Bus, ev.Iface = "", ""
		}
		if p.driver == "" || row.Whole {
			ev.Driver = row.Driver
		}
		if ev.Iface == "" {
			ev.Iface = g["iface"]
		}
		ev.Queue = atoi(g["queue"], -1)
		if ms := atoi(g["ms"], 0); ms > 0 {
			ev.TimedOutMS = ms
		} else if us := atoi(g["usecs"], 0); us > 0 {
			ev.TimedOutMS = us / 1000
		}
		return []Event{ev}
	}

	if len(msg) > 0 && strings.IndexByte(splatFirst, msg[0]) >= 0 && reSplat.MatchString(msg) {
		return m.splat(msg, ev)
	}
	return nil
}

// splat handles a line that matches reSplat: it opens a splat event, or
// continues the report the last one opened.
func (m *Matcher) splat(msg string, ev Event) []Event {
	cls := classify(msg)
	if m.splatLeft > 0 && m.follows(msg, cls) {
		// A long report (ref_tracker's stacks, kmemleak's objects)
		// stays open while its lines keep coming.
		m.splatLeft = splatWindow
		return nil
	}
	m.splatLeft, m.watchdogLeft, m.pairLeft = splatWindow, 0, 0
	m.splatOpen, m.splatTitle = cls, ""
	out := Event{Kind: KindSplat, Queue: -1, TSUsec: ev.TSUsec, Seq: ev.Seq, Text: msg}
	switch cls {
	case splatWarn, splatWarnMsg:
		m.pairLeft = pairWindow
	case splatSanitizer:
		if i := strings.Index(msg, " in "); i > 0 {
			m.splatTitle = msg[:i+len(" in ")]
		}
	case splatRefs:
		if g := reNetdevWait.FindStringSubmatch(msg); g != nil {
			out.Iface = g[1]
		}
	}
	return []Event{out}
}

// follows reports whether msg, a splat line of class cls, continues the
// open report rather than opening one.
func (m *Matcher) follows(msg string, cls splatClass) bool {
	if reSplatFollow.MatchString(msg) {
		return true
	}
	switch cls {
	case splatWarn:
		// A refcount_t message and then its WARNING, or ref_tracker's
		// report and then the WARN_ON_ONCE of ref_tracker_dir_exit or
		// ref_tracker_free.
		return (m.splatOpen == splatWarnMsg && m.pairLeft > 0) ||
			(m.splatOpen == splatRefs && strings.Contains(msg, "ref_tracker"))
	case splatWarnMsg:
		return m.splatOpen == splatWarn && m.pairLeft > 0
	case splatSanitizer:
		// syzbot's symbolizer repeats the title once per inlined frame.
		return m.splatOpen == splatSanitizer && m.splatTitle != "" && strings.HasPrefix(msg, m.splatTitle)
	case splatRefs:
		// The ref_tracker stacks after unregister_netdevice's line, or
		// after the first of them.
		return m.splatOpen == splatRefs && strings.HasPrefix(msg, "ref_tracker: ")
	case splatLeak:
		// With kmemleak.verbose the objects come first, then the summary.
		return m.splatOpen == splatLeak && strings.HasPrefix(msg, "kmemleak: ") && strings.Contains(msg, " new suspected memory leaks")
	}
	return false
}

// prefix is a message split into the kernel's device prefix and the rest.
type prefix struct {
	driver, bus, iface string
	body               string
}

// splitPrefix parses the prefix by hand: it is on every record's path, and
// regular expressions made it most of Match's cost. No prefix token holds a
// space, so the prefix ends at the first ": ".
func splitPrefix(msg string) prefix {
	end := strings.Index(msg, ": ")
	if end <= 0 {
		return prefix{body: msg}
	}
	head, body := msg[:end], msg[end+2:]
	state := false
	for _, st := range regStates {
		if h, ok := strings.CutSuffix(head, st); ok {
			head, state = h, true
			break
		}
	}
	f := strings.Split(head, " ")
	for _, tok := range f {
		if tok == "" || strings.ContainsAny(tok, "\t\n\v\f\r") {
			return prefix{body: msg}
		}
	}
	switch {
	case len(f) == 3 && !strings.Contains(f[0], ":") && isIfname(f[2]):
		return prefix{driver: f[0], bus: f[1], iface: f[2], body: body}
	case len(f) == 2 && !state && !strings.Contains(f[0], ":"):
		return prefix{driver: f[0], bus: f[1], body: body}
	case len(f) == 1 && isIfname(f[0]):
		return prefix{iface: f[0], body: body}
	}
	return prefix{body: msg}
}

// regStates are the suffixes netdev_reg_state adds to an interface name.
var regStates = []string{" (unregistered)", " (unregistering)", " (uninitialized)", " (unknown)"}

// isIfname reports whether s can be an interface name (dev_valid_name).
func isIfname(s string) bool {
	return s != "" && !strings.ContainsAny(s, ":/")
}

// matchDriver finds the DriverPatterns row for msg, split as p: the first
// Whole row matching msg, else the first row matching p's body of the
// driver p names, else the first row matching the body. Without a prefix,
// a line that several drivers print ("Reset adapter") is attributed to
// none.
func matchDriver(p prefix, msg string) (*DriverPattern, map[string]string) {
	var first *DriverPattern
	var firstG map[string]string
	ambiguous := false
	for i := range DriverPatterns {
		row := &DriverPatterns[i]
		if row.Whole {
			if strings.HasPrefix(msg, literalPrefix(row.Re)) {
				if g := submatch(row.Re, msg); g != nil {
					return row, g
				}
			}
			continue
		}
		if !strings.HasPrefix(p.body, literalPrefix(row.Re)) {
			continue
		}
		g := submatch(row.Re, p.body)
		if g == nil {
			continue
		}
		if p.driver != "" && row.Driver == p.driver {
			return row, g
		}
		if first == nil {
			first, firstG = row, g
		} else if row.Driver != first.Driver {
			ambiguous = true
		}
	}
	if first != nil && ambiguous && p.driver == "" {
		anon := *first
		anon.Driver = ""
		return &anon, firstG
	}
	return first, firstG
}

// literals caches literalPrefix per expression.
var literals sync.Map // *regexp.Regexp -> string

// literalPrefix returns the literal text an anchored row expression
// begins with ("" when it has none), a cheap filter before the expression.
func literalPrefix(re *regexp.Regexp) string {
	if v, ok := literals.Load(re); ok {
		return v.(string)
	}
	lit := ""
	if t, err := syntax.Parse(re.String(), syntax.Perl); err == nil {
		t = t.Simplify()
		if t.Op == syntax.OpConcat && len(t.Sub) >= 2 && t.Sub[0].Op == syntax.OpBeginText &&
			t.Sub[1].Op == syntax.OpLiteral && t.Sub[1].Flags&syntax.FoldCase == 0 {
			lit = string(t.Sub[1].Rune)
		}
	}
	literals.Store(re, lit)
	return lit
}

// submatchIf is submatch when cond holds, else nil.
func submatchIf(cond bool, re *regexp.Regexp, s string) map[string]string {
	if !cond {
		return nil
	}
	return submatch(re, s)
}

// submatch returns re's named groups in s, or nil when re does not match.
func submatch(re *regexp.Regexp, s string) map[string]string {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return nil
	}
	g := make(map[string]string, len(m))
	for i, name := range re.SubexpNames() {
		if name != "" {
			g[name] = m[i]
		}
	}
	return g
}

// atoi parses a non-negative decimal, or returns def.
func atoi(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return def
	}
	return n
}
