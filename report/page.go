package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"path/filepath"
	"sort"
	"strings"

	"txtimeout/harness"
	"txtimeout/kmsg"
)

// IndexHTML is the page's file name in a run or matrix directory.
const IndexHTML = "index.html"

// Anchor is the id of a scenario's section on its run's page
// ("TxTimeout/NapiStarve/ICMP" is "TxTimeout-NapiStarve-ICMP"): anything
// outside [A-Za-z0-9_-] becomes a hyphen.
func Anchor(scenario string) string {
	b := []byte(scenario)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "unnamed"
	}
	return string(b)
}

// field is one name and value of a JSON object, for the page's tables.
type field struct{ Name, Value string }

// fields returns v's JSON object members in the order its MarshalJSON or
// struct writes them, with strings unquoted and other values as JSON.
func fields(v any) ([]field, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("%T is not a JSON object", v)
	}
	var out []field
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw)
		}
		out = append(out, field{fmt.Sprint(t), s})
	}
	return out, nil
}

// eventRow is one line of a scenario's event table: a mark or a kernel
// event, at a time relative to the fault's injection.
type eventRow struct {
	At      string // "+5.739 s", or the kernel timestamp when the timeline has none
	Source  string // "mark", "kmsg", "tracepoint"
	Kind    string
	Iface   string
	Text    string
	Class   string // the row's CSS class: the kind
	sinceMS int64
}

func eventRows(s harness.ScenarioReport) []eventRow {
	t0, _ := FaultMS(s)
	rel := func(ms int64) string { return fmt.Sprintf("%+.3f s", float64(ms-t0)/1000) }
	var rows []eventRow
	for _, m := range s.Timeline.Marks {
		rows = append(rows, eventRow{At: rel(m.SinceMS), Source: "mark", Kind: m.Name, Text: m.Note, Class: "mark", sinceMS: m.SinceMS})
	}
	for _, e := range s.Timeline.Events {
		kind := string(e.Kind)
		switch {
		case e.Reset:
			kind += " (reset)"
		case e.Kind == kmsg.KindLink && e.LinkUp:
			kind += " up"
		case e.Kind == kmsg.KindLink:
			kind += " down"
		}
		rows = append(rows, eventRow{At: rel(e.SinceMS), Source: e.Source, Kind: kind, Iface: e.Iface, Text: e.Text,
			Class: string(e.Kind), sinceMS: e.SinceMS})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].sinceMS < rows[j].sinceMS })
	if len(s.Timeline.Events) == 0 {
		// A report without a timeline still lists its kernel events, at
		// the kernel's own clock.
		for _, e := range s.Events {
			rows = append(rows, eventRow{At: fmt.Sprintf("[%.6f]", float64(e.TSUsec)/1e6), Source: "kmsg", Kind: string(e.Kind),
				Iface: e.Iface, Text: e.Text, Class: string(e.Kind)})
		}
	}
	return rows
}

type scenarioView struct {
	Name, Anchor, Result, Reason string
	Figure                       template.HTML // an inline SVG made by Figure
	Events                       []eventRow
	Verdict                      []field
	Measurements                 []harness.Measurement
}

type runView struct {
	Title     string
	Count     string // "7 scenarios"
	Header    []field
	Config    []field
	Scenarios []scenarioView
	Counts    []count
}

type count struct {
	Result string
	N      int
}

// inlineSVG is a Figure's SVG without its XML prolog, for an HTML page.
// The SVG is this package's own output, whose text vgsvg escapes.
func inlineSVG(svg []byte) template.HTML {
	if i := bytes.Index(svg, []byte("<svg")); i > 0 {
		svg = svg[i:]
	}
	return template.HTML(svg)
}

// resultCounts counts results in the order pass, fail, inconclusive, skip.
func resultCounts(results []harness.Result) []count {
	n := map[harness.Result]int{}
	for _, r := range results {
		n[r]++
	}
	var out []count
	for _, r := range []harness.Result{harness.Pass, harness.Fail, harness.Inconclusive, harness.Skip} {
		if n[r] > 0 {
			out = append(out, count{string(r), n[r]})
		}
	}
	return out
}

// ResultCounts says how many of results ended how: "12 pass, 1 fail, 2
// skip" (pass, fail, inconclusive, skip, those that occur).
func ResultCounts(results []harness.Result) string {
	var parts []string
	for _, c := range resultCounts(results) {
		parts = append(parts, fmt.Sprintf("%d %s", c.N, c.Result))
	}
	return strings.Join(parts, ", ")
}

// RunPage renders a run's report as one self-contained HTML page: the
// kernel, NIC, driver and configuration, a table of the scenarios
// coloured by result with their reasons, and a section per scenario
// (its Anchor) with its timeline figure, its marks and kernel events at
// times relative to the fault's injection, its verdict fields and its
// measurements.
func RunPage(r *harness.Report) ([]byte, error) {
	cfg, err := fields(r.Config)
	if err != nil {
		return nil, fmt.Errorf("report: configuration: %w", err)
	}
	v := runView{
		Title: fmt.Sprintf("txtimeout: %s × %s", orDash(r.Kernel), orDash(nicOf(r))),
		Header: []field{{"kernel", orDash(r.Kernel)}, {"NIC", orDash(r.NIC)}, {"driver", orDash(r.Driver)},
			{"interface", orDash(r.Iface)}},
		Config: cfg,
	}
	var results []harness.Result
	for _, s := range r.Scenarios {
		results = append(results, s.Result)
		verdict, err := fields(s.Verdict)
		if err != nil {
			return nil, fmt.Errorf("report: %s: verdict: %w", s.Name, err)
		}
		sv := scenarioView{Name: s.Name, Anchor: Anchor(s.Name), Result: string(s.Result), Reason: s.Reason,
			Events: eventRows(s), Verdict: verdict, Measurements: s.Measurements}
		if HasFigure(s) {
			svg, err := Figure(s, SVG)
			if err != nil {
				return nil, err
			}
			sv.Figure = inlineSVG(svg)
		}
		v.Scenarios = append(v.Scenarios, sv)
	}
	v.Counts = resultCounts(results)
	v.Count = plural(len(r.Scenarios), "scenario", "scenarios")
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "run", v); err != nil {
		return nil, fmt.Errorf("report: rendering the page: %w", err)
	}
	return b.Bytes(), nil
}

// WriteRunPage reads dir/report.json and writes dir/index.html, its
// RunPage. It writes nothing when the report cannot be read.
func WriteRunPage(dir string) error {
	r, err := harness.ReadReport(filepath.Join(dir, harness.ReportJSON))
	if err != nil {
		return err
	}
	page, err := RunPage(r)
	if err != nil {
		return err
	}
	return harness.WriteFileAtomic(filepath.Join(dir, IndexHTML), page)
}

// nicOf is the NIC a run's report names: the NIC model, else the driver
// (a hardware DUT has no model), else "-".
func nicOf(r *harness.Report) string {
	switch {
	case r.NIC != "":
		return r.NIC
	case r.Config.NIC != "":
		return r.Config.NIC
	case r.Driver != "":
		return r.Driver
	}
	return "-"
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// oneLine folds text onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// plural is "1 scenario" or "2 scenarios".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
