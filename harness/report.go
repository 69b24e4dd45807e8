package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"txtimeout/kmsg"
)

// Result is a scenario's outcome.
type Result string

// Results. In go test terms, inconclusive is a skip whose message begins
// "inconclusive:".
const (
	Pass         Result = "pass"
	Fail         Result = "fail"
	Skip         Result = "skip"
	Inconclusive Result = "inconclusive"
)

// Valid reports whether r is one of the four results.
func (r Result) Valid() bool {
	switch r {
	case Pass, Fail, Skip, Inconclusive:
		return true
	}
	return false
}

// Measurement is a number a scenario reports (pps, Mb/sec, ms ...). LAVA
// receives each as a measurement of its scenario's test case.
type Measurement struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Units string  `json:"units"`
}

// MarshalJSON writes a value that is not finite (a rate over no time) as
// null, which JSON can hold, instead of failing the whole report.
func (m Measurement) MarshalJSON() ([]byte, error) {
	type plain struct {
		Name  string   `json:"name"`
		Value *float64 `json:"value"`
		Units string   `json:"units"`
	}
	p := plain{Name: m.Name, Units: m.Units}
	if finite(m.Value) {
		p.Value = &m.Value
	}
	return json.Marshal(p)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// ScenarioReport is one scenario's outcome, with the evidence behind it.
// The verdict fields are flattened into its JSON object.
type ScenarioReport struct {
	Name   string `json:"name"` // e.g. "TxTimeout/PartnerStall/ICMP"
	Result Result `json:"result"`
	Reason string `json:"reason"`
	// Iface and NIC are the scenario's DUT when it is not the run's (a
	// rig guest with several NICs runs each scenario on its model).
	Iface string `json:"iface,omitempty"`
	NIC   string `json:"nic,omitempty"`
	Verdict
	Measurements []Measurement `json:"measurements,omitempty"`
	Events       []kmsg.Event  `json:"events"`
	Timeline     Snapshot      `json:"timeline"`
}

// Skipped is the report of a scenario that could not run here: a skip
// with its reason and nothing measured. Every skip is made by it.
func Skipped(reason string) ScenarioReport {
	return ScenarioReport{Result: Skip, Reason: reason, Verdict: Unmeasured()}
}

// Report is a run's report: what report.json holds.
type Report struct {
	Kernel    string           `json:"kernel"`
	Driver    string           `json:"driver"`
	Iface     string           `json:"iface"`
	NIC       string           `json:"nic,omitempty"`
	Config    Config           `json:"config"`
	Scenarios []ScenarioReport `json:"scenarios"`

	mu     sync.Mutex
	stdout io.Writer // LAVA lines; os.Stdout when nil (test seam)
}

// Add appends a scenario's report. It is safe for concurrent use.
func (r *Report) Add(s ScenarioReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Scenarios = append(r.Scenarios, s)
}

// snapshot copies the report under its lock.
func (r *Report) snapshot() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Report{Kernel: r.Kernel, Driver: r.Driver, Iface: r.Iface, NIC: r.NIC, Config: r.Config,
		Scenarios: append([]ScenarioReport{}, r.Scenarios...)}
}

// MarshalJSON writes a snapshot of the report taken under its lock.
func (r *Report) MarshalJSON() ([]byte, error) {
	// plain has Report's fields and tags but not this method, so that the
	// encoder does not call it again; the lock and the seam, unexported,
	// are not written.
	type plain Report
	s := r.snapshot()
	return json.Marshal((*plain)(&s))
}

// Report file names inside the report directory.
const (
	ReportJSON = "report.json"
	ReportKTAP = "report.ktap"
)

// WriteFiles writes report.json and report.ktap into dir, creating it. Each
// file is written to a temporary name and renamed, so a reader never sees
// half a report.
func (r *Report) WriteFiles(dir string) error {
	if dir == "" {
		return errors.New("harness: no report directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("harness: report directory: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("harness: encoding report: %w", err)
	}
	js = append(js, '\n')
	var kt bytes.Buffer
	if err := r.WriteKTAP(&kt); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ReportJSON, js}, {ReportKTAP, kt.Bytes()}} {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

// WriteFileAtomic writes data to path through a temporary file in the
// same directory and a rename, so that a reader never sees half a file
// and a failure leaves the old file alone.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("harness: writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("harness: writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("harness: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("harness: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("harness: writing %s: %w", path, err)
	}
	return nil
}

// ReadReport reads a report.json. Its errors are one line.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	return ParseReport(data)
}

// ParseReport decodes a report.json document.
func ParseReport(data []byte) (*Report, error) {
	var r Report
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("harness: report is empty")
	}
	if err := json.Unmarshal(data, &r); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("harness: report is not valid JSON (at byte %d): %w", se.Offset, err)
		}
		return nil, fmt.Errorf("harness: report is not a txtimeout report: %w", err)
	}
	if r.Scenarios == nil {
		return nil, errors.New("harness: report has no \"scenarios\" list")
	}
	for i, s := range r.Scenarios {
		if s.Name == "" {
			return nil, fmt.Errorf("harness: scenario %d has no name", i+1)
		}
		if !s.Result.Valid() {
			return nil, fmt.Errorf("harness: scenario %q has result %q (want pass, fail, skip or inconclusive)", s.Name, s.Result)
		}
	}
	return &r, nil
}

// oneLine folds text onto one line for KTAP and LAVA.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return s
}

// WriteKTAP writes the report in KTAP version 1: a plan, one test line per
// scenario in the order they were added, "# SKIP reason" on skipped and
// inconclusive ones, and the reason as a diagnostic line before a failure.
// A scenario whose verdict saw a driver reset or a link flap gets
// diagnostic lines for them ("# reset_seen: true", "# reset_lines: 1",
// "# link_flap: true", "# link_down_ms: 2000") before its reason.
func (r *Report) WriteKTAP(w io.Writer) error {
	s := r.snapshot()
	var b bytes.Buffer
	b.WriteString("KTAP version 1\n")
	fmt.Fprintf(&b, "# txtimeout kernel=%s driver=%s iface=%s", orDash(s.Kernel), orDash(s.Driver), orDash(s.Iface))
	if s.NIC != "" {
		fmt.Fprintf(&b, " nic=%s", s.NIC)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "1..%d\n", len(s.Scenarios))
	for i, sc := range s.Scenarios {
		for _, l := range sc.KTAPLines(i + 1) {
			b.WriteString(l + "\n")
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// KTAPLines are the KTAP lines of scenario number n, as WriteKTAP writes
// them: its diagnostic lines, then its test line. A writer of nested KTAP
// indents them.
func (sc ScenarioReport) KTAPLines(n int) []string {
	var out []string
	name := ktapName(sc.Name)
	for _, d := range verdictDiagnostics(sc.Verdict) {
		out = append(out, "# "+d)
	}
	switch sc.Result {
	case Pass:
		if sc.Reason != "" {
			out = append(out, "# "+oneLine(sc.Reason))
		}
		out = append(out, fmt.Sprintf("ok %d %s", n, name))
	case Skip:
		out = append(out, fmt.Sprintf("ok %d %s # SKIP %s", n, name, oneLine(sc.Reason)))
	case Inconclusive:
		out = append(out, fmt.Sprintf("ok %d %s # SKIP inconclusive: %s", n, name, oneLine(sc.Reason)))
	default:
		if sc.Reason != "" {
			out = append(out, "# "+oneLine(sc.Reason))
		}
		out = append(out, fmt.Sprintf("not ok %d %s", n, name))
	}
	return out
}

// verdictDiagnostics are the KTAP diagnostic lines of a verdict's
// recovery evidence, as "json_name: value".
func verdictDiagnostics(v Verdict) []string {
	var d []string
	if v.ResetSeen {
		d = append(d, "reset_seen: true", fmt.Sprintf("reset_lines: %d", v.ResetLines))
	}
	if v.LinkFlap {
		d = append(d, "link_flap: true")
		if v.LinkDownMS > 0 {
			d = append(d, fmt.Sprintf("link_down_ms: %d", v.LinkDownMS))
		}
	}
	return d
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ktapName keeps a test name on one line and free of the directive
// separator.
func ktapName(s string) string {
	s = strings.ReplaceAll(oneLine(s), "#", "_")
	if s == "" {
		return "unnamed"
	}
	return s
}

// lavaID turns a scenario name into a LAVA test case id: LAVA ids may not
// contain spaces or slashes, so anything outside [A-Za-z0-9._-] becomes
// an underscore ("TxTimeout/PartnerStall/ICMP" is
// "TxTimeout_PartnerStall_ICMP").
func lavaID(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "unnamed"
	}
	return string(b)
}

func lavaResult(r Result) string {
	switch r {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	case Skip:
		return "skip"
	}
	return "unknown"
}

// formatValue prints a measurement without exponent or trailing zeros.
func formatValue(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// LAVALine returns the LAVA test-case signal for a scenario, as
// lava-test-case prints it. Inconclusive maps to "unknown". The
// measurement is the first timeout in ms after the fault when one was
// seen (what a tx-timeout scenario is about), or else the scenario's first
// Measurement.
func LAVALine(s ScenarioReport) string {
	line := fmt.Sprintf("<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=%s RESULT=%s", lavaID(s.Name), lavaResult(s.Result))
	switch {
	case s.TimeoutFired && s.FirstTimeoutMS >= 0:
		line += fmt.Sprintf(" MEASUREMENT=%d UNITS=ms", s.FirstTimeoutMS)
	case len(s.Measurements) > 0 && finite(s.Measurements[0].Value):
		m := s.Measurements[0]
		line += fmt.Sprintf(" MEASUREMENT=%s UNITS=%s", formatValue(m.Value), lavaID(m.Units))
	}
	return line + ">"
}

// LAVALines returns LAVALine and one more test case per measurement that
// LAVALine did not carry, named SCENARIO_MEASUREMENT, so that LAVA keeps
// every number; then, the same way, the verdict's numbers that exist:
// recover_ms when the device recovered, reset_lines when the driver reset
// it, link_down_ms when a link flap was timed (verdictMeasurements).
func LAVALines(s ScenarioReport) []string {
	lines := []string{LAVALine(s)}
	rest := s.Measurements
	if !(s.TimeoutFired && s.FirstTimeoutMS >= 0) && len(rest) > 0 {
		rest = rest[1:]
	}
	for _, m := range append(append([]Measurement{}, rest...), verdictMeasurements(s)...) {
		if !finite(m.Value) {
			continue
		}
		lines = append(lines, fmt.Sprintf("<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=%s_%s RESULT=%s MEASUREMENT=%s UNITS=%s>",
			lavaID(s.Name), lavaID(m.Name), lavaResult(s.Result), formatValue(m.Value), lavaID(m.Units)))
	}
	return lines
}

// verdictMeasurements are the verdict's numbers that LAVA should keep,
// those that exist for this scenario and that it does not report itself.
func verdictMeasurements(s ScenarioReport) []Measurement {
	var out []Measurement
	add := func(ok bool, name string, v int64, units string) {
		if !ok {
			return
		}
		for _, m := range s.Measurements {
			if m.Name == name {
				return
			}
		}
		out = append(out, Measurement{Name: name, Value: float64(v), Units: units})
	}
	add(s.Recovered && s.RecoverMS >= 0, "recover_ms", s.RecoverMS, "ms")
	add(s.ResetSeen, "reset_lines", int64(s.ResetLines), "lines")
	add(s.LinkFlap && s.LinkDownMS > 0, "link_down_ms", s.LinkDownMS, "ms")
	return out
}

// ScenarioName is the scenario name of a test: its name without the
// leading "Test" ("TestTxTimeout/NetemDelay" is "TxTimeout/NetemDelay").
func ScenarioName(tb testing.TB) string { return strings.TrimPrefix(tb.Name(), "Test") }

// Finish records a scenario's outcome: it fills in the name when empty,
// adds s to r, logs a plain-words summary, prints the LAVA lines when the
// configuration asks for them, rewrites the report files when a report
// directory is configured (so that a run cut short still leaves its
// report), and maps the result to the test: fail is tb.Error,
// skip is tb.Skip(reason), inconclusive is tb.Skip("inconclusive: "+reason).
func Finish(tb testing.TB, r *Report, s ScenarioReport) {
	tb.Helper()
	if s.Name == "" {
		s.Name = ScenarioName(tb)
	}
	if s.Events == nil {
		s.Events = s.Timeline.KmsgEvents()
	}
	if !s.Result.Valid() {
		reason := fmt.Sprintf("harness: scenario %q has result %q (want pass, fail, skip or inconclusive)", s.Name, s.Result)
		s.Result, s.Reason = Fail, strings.TrimSpace(reason+"; "+s.Reason)
	}
	r.Add(s)

	tb.Logf("%s: %s: %s", s.Name, s.Result, oneLine(s.Reason))
	if s.Result != Skip && len(s.Timeline.Samples)+len(s.Timeline.Events)+len(s.Timeline.Marks) > 0 {
		tb.Logf("%s: %s", s.Name, s.Verdict.Summary())
	}
	for _, m := range s.Measurements {
		tb.Logf("%s: %s = %s %s", s.Name, m.Name, formatValue(m.Value), m.Units)
	}

	cfg := r.snapshot().Config
	if cfg.LAVA {
		out := r.stdout
		if out == nil {
			out = os.Stdout
		}
		for _, l := range LAVALines(s) {
			fmt.Fprintln(out, l)
		}
	}
	if cfg.ReportDir != "" {
		if err := r.WriteFiles(cfg.ReportDir); err != nil {
			tb.Errorf("%v", err)
		}
	}

	switch s.Result {
	case Fail:
		tb.Errorf("%s failed: %s", s.Name, oneLine(s.Reason))
	case Skip:
		tb.Skip(oneLine(s.Reason))
	case Inconclusive:
		tb.Skip("inconclusive: " + oneLine(s.Reason))
	}
}

// configJSON is Config as report.json stores it: durations as Go duration
// strings ("9s"), which people can read.
type configJSON struct {
	Iface         string `json:"iface"`
	PeerIP        string `json:"peer_ip"`
	PeerMAC       string `json:"peer_mac"`
	PartnerIface  string `json:"partner_iface"`
	Partner       string `json:"partner"`
	Rig           bool   `json:"rig"`
	NIC           string `json:"nic"`
	NetemDelay    string `json:"netem_delay"`
	StallFor      string `json:"stall_for"`
	FloodFor      string `json:"flood_for"`
	RecoverWithin string `json:"recover_within"`
	Size          int    `json:"size"`
	Interval      string `json:"interval"`
	Senders       int    `json:"senders"`
	ReportDir     string `json:"report_dir"`
	LAVA          bool   `json:"lava"`
}

// MarshalJSON writes durations as strings.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(configJSON{c.Iface, c.PeerIP, c.PeerMAC, c.PartnerIface, c.Partner, c.Rig, c.NIC,
		c.NetemDelay.String(), c.StallFor.String(), c.FloodFor.String(), c.RecoverWithin.String(),
		c.Size, c.Interval.String(), c.Senders, c.ReportDir, c.LAVA})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Config) UnmarshalJSON(data []byte) error {
	var j configJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	d := func(name, s string) (time.Duration, error) {
		if s == "" {
			return 0, nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("config %s: not a duration: %q", name, s)
		}
		return v, nil
	}
	var err error
	out := Config{Iface: j.Iface, PeerIP: j.PeerIP, PeerMAC: j.PeerMAC, PartnerIface: j.PartnerIface,
		Partner: j.Partner, Rig: j.Rig, NIC: j.NIC, Size: j.Size, Senders: j.Senders, ReportDir: j.ReportDir, LAVA: j.LAVA}
	for _, f := range []struct {
		name, s string
		dst     *time.Duration
	}{{"netem_delay", j.NetemDelay, &out.NetemDelay}, {"stall_for", j.StallFor, &out.StallFor},
		{"flood_for", j.FloodFor, &out.FloodFor}, {"recover_within", j.RecoverWithin, &out.RecoverWithin},
		{"interval", j.Interval, &out.Interval}} {
		if *f.dst, err = d(f.name, f.s); err != nil {
			return err
		}
	}
	*c = out
	return nil
}
