package report

import (
	"bytes"
	"encoding/xml"
	"testing"

	"txtimeout/harness"
)

func TestMatrixJUnit(t *testing.T) {
	m, _ := fixtureMatrix(t)
	const failed = "6.1.0-56-amd64 × e1000 × TxTimeout/NapiStarve/ICMP"
	for i := range m.Cells {
		if m.Cells[i].Key() == failed {
			m.Cells[i].Result, m.Cells[i].Reason = harness.Fail, "no timeout signal <within> 20s & more"
		}
	}
	var b bytes.Buffer
	if err := m.WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Skipped  int      `xml:"skipped,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Tests int    `xml:"tests,attr"`
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("the JUnit XML does not parse: %v", err)
	}
	var fails, skips, cases int
	for _, s := range doc.Suites {
		if len(s.Cases) != s.Tests {
			t.Errorf("suite %s: tests=%d, %d testcases", s.Name, s.Tests, len(s.Cases))
		}
		for _, tc := range s.Cases {
			cases++
			if tc.Classname != s.Name {
				t.Errorf("%s: classname %q, suite %q", tc.Name, tc.Classname, s.Name)
			}
			if tc.Failure != nil {
				fails++
				if tc.Classname != "6.1.0-56-amd64.e1000" || tc.Name != "TxTimeout/NapiStarve/ICMP" || tc.Failure.Message != "no timeout signal <within> 20s & more" {
					t.Errorf("failure in %s %s: %q", tc.Classname, tc.Name, tc.Failure.Message)
				}
			}
			if tc.Skipped != nil {
				skips++
			}
		}
	}
	var wantSkips int
	for _, c := range m.Cells {
		if c.Result == harness.Skip || c.Result == harness.Inconclusive {
			wantSkips++
		}
	}
	if cases != len(m.Cells) || doc.Tests != cases || fails != 1 || doc.Failures != 1 || skips != wantSkips || doc.Skipped != wantSkips {
		t.Errorf("%d cases (tests=%d), %d failures (failures=%d), %d skipped (skipped=%d); want %d cases, 1 failure, %d skipped",
			cases, doc.Tests, fails, doc.Failures, skips, doc.Skipped, len(m.Cells), wantSkips)
	}
}
