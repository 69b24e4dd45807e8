package report

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"slices"
	"testing"
)

func TestMarkersOfAResetAndAFlap(t *testing.T) {
	s := fixtureScenario(t, "6.12-e1000", "TxTimeout/NapiStarve/ICMP")
	got := map[string]int64{}
	var order []string
	for _, m := range Markers(s) {
		got[m.Name] = m.SinceMS
		order = append(order, m.Name)
	}
	for _, want := range []string{"fault injected", "first watchdog", "handler line", "driver reset", "link down", "link up", "fault removed", "recovered"} {
		if _, ok := got[want]; !ok {
			t.Errorf("no %q marker; markers %v", want, order)
		}
	}
	fault := got["fault injected"]
	if d := got["first watchdog"] - fault; d != s.FirstTimeoutMS {
		t.Errorf("first watchdog %d ms after the fault, report says %d", d, s.FirstTimeoutMS)
	}
	if !(got["link down"] < got["link up"]) {
		t.Errorf("link down at %d, up at %d: want down first", got["link down"], got["link up"])
	}
	// The verdict timed the same flap from the same events.
	if d := got["link up"] - got["link down"]; d != s.LinkDownMS {
		t.Errorf("link down for %d ms by the markers, %d by the verdict", d, s.LinkDownMS)
	}
}

func TestMarkersWithoutResetOrFlap(t *testing.T) {
	s := fixtureScenario(t, "6.12-virtio", "TxTimeout/PartnerStall/ICMP")
	for _, m := range Markers(s) {
		switch m.Name {
		case "driver reset", "link down", "link up", "link flapped":
			t.Errorf("virtio_net's PartnerStall has no reset or flap, got a %q marker", m.Name)
		}
	}
}

func TestFigureSVGAndPNG(t *testing.T) {
	s := fixtureScenario(t, "6.12-e1000", "TxTimeout/NapiStarve/ICMP")
	svg, err := Figure(s, SVG)
	if err != nil {
		t.Fatal(err)
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(svg, &root); err != nil || root.XMLName.Local != "svg" {
		t.Fatalf("not an SVG document (root %q): %v", root.XMLName.Local, err)
	}
	for _, want := range []string{s.Name + ": pass", "driver reset (+", "link down (+", "link up (+", "tx_packets rate", "qdisc backlog", "tx_timeout", "seconds since the fault was injected"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("figure lacks the text %q", want)
		}
	}
	p, err := Figure(s, PNG)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(p))
	if err != nil {
		t.Fatalf("PNG does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() < b.Dy() || b.Dx() < 900 {
		t.Errorf("figure is %v: want one wide figure, not a tall stack", b)
	}
}

func TestFigureErrors(t *testing.T) {
	s := fixtureScenario(t, "6.12-e1000", "TxTimeout/Repeat")
	if _, err := Figure(s, SVG); err == nil {
		t.Error("a scenario without samples drew a figure")
	}
	s = fixtureScenario(t, "6.12-e1000", "TxTimeout/NapiStarve/ICMP")
	if _, err := Figure(s, "pdf"); err == nil {
		t.Error("format pdf accepted")
	}
}

func TestMarkersOfAFlapOnlyTheCounterSaw(t *testing.T) {
	s := fixtureScenario(t, "6.12-virtio", "TxTimeout/Race/Unbind")
	if !s.LinkFlap || s.LinkDownMS != 0 {
		t.Fatalf("fixture: link_flap %v, link_down_ms %d: want a flap only the counter saw", s.LinkFlap, s.LinkDownMS)
	}
	var names []string
	for _, m := range Markers(s) {
		names = append(names, m.Name)
	}
	if !slices.Contains(names, "link flapped") || slices.Contains(names, "link down") {
		t.Errorf("markers %v: want link flapped and no link down", names)
	}
}
