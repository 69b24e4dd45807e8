package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"

	"txtimeout/harness"
)

// JUnit XML, as CI dashboards read it.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Skipped  int          `xml:"skipped,attr"`
		Errors   int          `xml:"errors,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name       string          `xml:"name,attr"`
		Tests      int             `xml:"tests,attr"`
		Failures   int             `xml:"failures,attr"`
		Skipped    int             `xml:"skipped,attr"`
		Errors     int             `xml:"errors,attr"`
		Properties []junitProperty `xml:"properties>property"`
		Cases      []junitCase     `xml:"testcase"`
	}
	junitProperty struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr,omitempty"`
		Failure   *junitMessage `xml:"failure"`
		Skipped   *junitMessage `xml:"skipped"`
		SystemOut string        `xml:"system-out,omitempty"`
	}
	junitMessage struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr,omitempty"`
		Text    string `xml:",chardata"`
	}
)

// duration is how long a scenario's timeline ran, in seconds, or "".
func duration(s harness.ScenarioReport) string {
	var last int64
	for _, x := range s.Timeline.Samples {
		last = max(last, x.SinceMS)
	}
	for _, x := range s.Timeline.Marks {
		last = max(last, x.SinceMS)
	}
	if last <= 0 {
		return ""
	}
	return fmt.Sprintf("%.3f", float64(last)/1000)
}

// WriteJUnit writes the matrix as JUnit XML: a testsuite per kernel and
// NIC, named and classed "kernel.nic", a testcase per scenario with a
// failure element for a fail and a skipped element for a skip or an
// inconclusive ("inconclusive: reason"); a cell's change against the
// baseline is in its system-out.
func (m *Matrix) WriteJUnit(w io.Writer) error {
	all := junitSuites{Name: "txtimeout matrix"}
	m.groups(func(kernel string, nics []string, cells map[string][]Cell) {
		for _, nic := range nics {
			class := kernel + "." + nic
			s := junitSuite{Name: class, Properties: []junitProperty{{"kernel", kernel}, {"nic", nic}, {"driver", cells[nic][0].Driver}}}
			for _, c := range cells[nic] {
				tc := junitCase{Name: c.Scenario, Classname: class, Time: duration(c.Report), SystemOut: c.Reason}
				switch c.Result {
				case harness.Fail:
					tc.Failure = &junitMessage{Message: c.Reason, Type: "fail", Text: c.Reason}
					s.Failures++
				case harness.Skip:
					tc.Skipped = &junitMessage{Message: c.Reason}
					s.Skipped++
				case harness.Inconclusive:
					tc.Skipped = &junitMessage{Message: "inconclusive: " + c.Reason}
					s.Skipped++
				}
				if c.Change != "" {
					tc.SystemOut += fmt.Sprintf("\nagainst the baseline: %s (was %s)", c.Change, orDash(string(c.Was)))
				}
				s.Cases = append(s.Cases, tc)
				s.Tests++
			}
			all.Suites = append(all.Suites, s)
			all.Tests += s.Tests
			all.Failures += s.Failures
			all.Skipped += s.Skipped
		}
	})
	out, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encoding JUnit XML: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.Write(out)
	b.WriteString("\n")
	_, err = w.Write(b.Bytes())
	return err
}
