package report

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"txtimeout/harness"
)

// parsePage parses an HTML page, failing the test when it does not parse.
func parsePage(tb testing.TB, page []byte) *html.Node {
	tb.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		tb.Fatalf("the page does not parse: %v", err)
	}
	return doc
}

// findAll returns the elements under n for which match is true.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func tag(name string) func(*html.Node) bool { return func(n *html.Node) bool { return n.Data == name } }

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

// text is the text content of n.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// checkSelfContained fails when the page would reach the network when
// viewed: an external script, style sheet, font, image or frame.
func checkSelfContained(tb testing.TB, doc *html.Node) {
	tb.Helper()
	for _, n := range findAll(doc, func(*html.Node) bool { return true }) {
		switch n.Data {
		case "script", "link", "iframe", "img", "object", "embed":
			tb.Errorf("the page has a <%s> element", n.Data)
		}
		for _, a := range n.Attr {
			if a.Key == "xmlns" || a.Namespace == "xmlns" || strings.HasPrefix(a.Key, "xmlns:") {
				continue // a namespace name, never fetched
			}
			if v := strings.ToLower(a.Val); strings.Contains(v, "http:") || strings.Contains(v, "https:") || strings.HasPrefix(v, "//") {
				tb.Errorf("<%s %s=%q> points outside the page", n.Data, a.Key, a.Val)
			}
		}
	}
	for _, st := range findAll(doc, tag("style")) {
		if s := text(st); strings.Contains(s, "url(") || strings.Contains(s, "@import") {
			tb.Errorf("the style sheet loads something: %q", s)
		}
	}
}

func TestRunPage(t *testing.T) {
	r := fixtureReport(t, "6.12-e1000")
	page, err := RunPage(r)
	if err != nil {
		t.Fatal(err)
	}
	doc := parsePage(t, page)
	checkSelfContained(t, doc)
	sections := findAll(doc, func(n *html.Node) bool { return n.Data == "section" && hasClass(n, "scenario") })
	if len(sections) != len(r.Scenarios) {
		t.Fatalf("%d scenario sections, want %d", len(sections), len(r.Scenarios))
	}
	for i, sec := range sections {
		s := r.Scenarios[i]
		if id := attr(sec, "id"); id != Anchor(s.Name) {
			t.Errorf("section %d has id %q, want %q", i, id, Anchor(s.Name))
		}
		if svgs := findAll(sec, tag("svg")); (len(svgs) == 1) != HasFigure(s) {
			t.Errorf("%s: %d figures, has samples: %v", s.Name, len(svgs), HasFigure(s))
		}
		if !strings.Contains(text(sec), s.Reason) {
			t.Errorf("%s: the section lacks its reason", s.Name)
		}
	}
	// The run's header and the summary table.
	if got := text(findAll(doc, func(n *html.Node) bool { return attr(n, "id") == "run" })[0]); !strings.Contains(got, r.Kernel) || !strings.Contains(got, "e1000") {
		t.Errorf("the run table %q lacks the kernel or NIC", got)
	}
	passes := findAll(findAll(doc, func(n *html.Node) bool { return attr(n, "id") == "scenarios" })[0],
		func(n *html.Node) bool { return n.Data == "span" && hasClass(n, "pass") })
	if len(passes) != len(r.Scenarios) {
		t.Errorf("%d scenarios coloured pass, want %d", len(passes), len(r.Scenarios))
	}
	// The first section's events: the driver's reset line at its time
	// after the fault, and the verdict's reset field.
	first := sections[0]
	var reset *html.Node
	for _, tr := range findAll(first, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "driver") }) {
		if strings.Contains(text(tr), "(reset)") {
			reset = tr
		}
	}
	if reset == nil {
		t.Fatalf("no driver reset row in %s's events", r.Scenarios[0].Name)
	}
	if got := text(reset); !strings.Contains(got, "+5.7") || !strings.Contains(got, "Reset adapter") {
		t.Errorf("reset row %q: want its time after the fault (+5.7 s) and its text", got)
	}
	v := text(findAll(first, func(n *html.Node) bool { return hasClass(n, "verdict") })[0])
	if !strings.Contains(v, "reset_seen") || !strings.Contains(v, "link_down_ms") {
		t.Errorf("verdict table lacks reset_seen or link_down_ms: %q", v)
	}
}

func TestRunPageEscapes(t *testing.T) {
	s := fixtureScenario(t, "6.12-virtio", "TxTimeout/PartnerStall/ICMP")
	evil := `<script>alert("x")</script><img src=http://example.invalid/x>`
	s.Name = "TxTimeout/" + evil
	s.Reason = "reason " + evil
	s.Timeline.Events[0].Text = evil
	s.Measurements = []harness.Measurement{{Name: evil, Value: 1, Units: evil}}
	r := &harness.Report{Kernel: evil, Driver: evil, NIC: evil, Config: harness.DefaultConfig()}
	r.Add(s)
	page, err := RunPage(r)
	if err != nil {
		t.Fatal(err)
	}
	doc := parsePage(t, page)
	checkSelfContained(t, doc)
	if n := strings.Count(text(doc), `<script>alert("x")</script>`); n < 5 {
		t.Errorf("the hostile text shows %d times as text, want it in the title, header, table, section, event and measurement", n)
	}
}
