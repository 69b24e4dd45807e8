package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"txtimeout/harness"
	"txtimeout/kmsg"
)

// Figure formats.
const (
	SVG = "svg"
	PNG = "png"
)

// Marker is a moment of a scenario drawn as a vertical line across every
// panel of its figure.
type Marker struct {
	Name string
	// SinceMS is milliseconds since the timeline's start.
	SinceMS int64
	color   color.Color
	dash    []vg.Length
}

// The markers, in legend order.
var markerStyles = []struct {
	name  string
	color color.Color
	dash  []vg.Length
}{
	{"fault injected", color.RGBA{R: 200, A: 255}, nil},
	{"first watchdog", color.RGBA{R: 230, G: 120, A: 255}, []vg.Length{vg.Points(5), vg.Points(2)}},
	{"handler line", color.RGBA{R: 140, B: 200, A: 255}, []vg.Length{vg.Points(1.5), vg.Points(2)}},
	{"driver reset", color.RGBA{R: 200, B: 160, A: 255}, []vg.Length{vg.Points(6), vg.Points(2), vg.Points(1.5), vg.Points(2)}},
	{"link down", color.RGBA{R: 90, G: 90, B: 90, A: 255}, []vg.Length{vg.Points(3), vg.Points(3)}},
	{"link up", color.RGBA{R: 20, G: 130, B: 130, A: 255}, []vg.Length{vg.Points(3), vg.Points(3)}},
	{"link flapped", color.RGBA{R: 90, G: 90, B: 90, A: 255}, []vg.Length{vg.Points(6), vg.Points(2), vg.Points(1.5), vg.Points(2)}},
	{"fault removed", color.RGBA{G: 100, B: 210, A: 255}, nil},
	{"recovered", color.RGBA{G: 150, A: 255}, []vg.Length{vg.Points(5), vg.Points(2)}},
}

// Markers returns the moments of a scenario that its figure marks, in
// legend order: the fault's injection and removal (its marks), the first
// timeout signal (the report's first_timeout_ms, else the verdict derived
// again from the timeline), the driver's first tx-timeout line and first
// reset line, the link going down and up again (the driver's link lines,
// else the carrier samples; else, when only the carrier_changes counter
// saw a flap, the sample where it rose by two), and the recovery
// (recover_ms after the removal).
func Markers(s harness.ScenarioReport) []Marker {
	tl := s.Timeline
	at := map[string]int64{}
	fault := int64(0)
	if mk, ok := tl.FindMark(harness.MarkFaultInjected); ok {
		fault = mk.SinceMS
		at["fault injected"] = mk.SinceMS
	}
	first := s.FirstTimeoutMS
	if first < 0 {
		first = tl.Verdict(harness.VerdictOptions{}).FirstTimeoutMS
	}
	if first >= 0 {
		at["first watchdog"] = fault + first
	}
	for _, e := range tl.Events {
		if e.Source != harness.SourceKmsg || e.SinceMS < fault {
			continue
		}
		switch e.Kind {
		case kmsg.KindDriver:
			setOnce(at, "handler line", e.SinceMS)
			if e.Reset {
				setOnce(at, "driver reset", e.SinceMS)
			}
		case kmsg.KindLink:
			if !e.LinkUp {
				setOnce(at, "link down", e.SinceMS)
			} else if _, down := at["link down"]; down {
				setOnce(at, "link up", e.SinceMS)
			}
		}
	}
	if _, ok := at["link down"]; !ok {
		for _, smp := range tl.Samples {
			if !smp.HaveCarrier || smp.SinceMS < fault {
				continue
			}
			if !smp.Carrier {
				setOnce(at, "link down", smp.SinceMS)
			} else if _, down := at["link down"]; down {
				setOnce(at, "link up", smp.SinceMS)
				break
			}
		}
	}
	if _, ok := at["link down"]; !ok {
		if ms, ok := carrierFlap(tl.Samples, fault); ok {
			at["link flapped"] = ms
		}
	}
	if mk, ok := tl.FindMark(harness.MarkFaultRemoved); ok {
		at["fault removed"] = mk.SinceMS
		if s.Recovered && s.RecoverMS >= 0 {
			at["recovered"] = mk.SinceMS + s.RecoverMS
		}
	}
	var out []Marker
	for _, st := range markerStyles {
		if ms, ok := at[st.name]; ok {
			out = append(out, Marker{Name: st.name, SinceMS: ms, color: st.color, dash: st.dash})
		}
	}
	return out
}

// carrierFlap finds a link flap that no sample caught down: the first
// sample at or after fault whose carrier_changes is 2 or more above the
// last sample before it (the kernel counts the down and the up).
func carrierFlap(samples []harness.Sample, fault int64) (int64, bool) {
	var base uint64
	haveBase := false
	for _, s := range samples {
		if !s.HaveCarrier {
			continue
		}
		if s.SinceMS <= fault || !haveBase {
			base, haveBase = s.CarrierChanges, true
			continue
		}
		if s.CarrierChanges >= base+2 {
			return s.SinceMS, true
		}
	}
	return 0, false
}

func setOnce(m map[string]int64, k string, v int64) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// FaultMS is when the fault was injected, in milliseconds since the
// timeline's start; 0 when the timeline has no such mark. The page and the
// figure give times relative to it.
func FaultMS(s harness.ScenarioReport) (int64, bool) {
	mk, ok := s.Timeline.FindMark(harness.MarkFaultInjected)
	return mk.SinceMS, ok
}

// series returns the three panels' points, x in seconds relative to t0
// (ms): tx_packets rate (pps), qdisc backlog (packets) and the tx_timeout
// counter.
func series(samples []harness.Sample, t0 int64) (rate, backlog, timeouts plotter.XYs) {
	for i, s := range samples {
		x := float64(s.SinceMS-t0) / 1000
		backlog = append(backlog, plotter.XY{X: x, Y: float64(s.QdiscBacklog)})
		timeouts = append(timeouts, plotter.XY{X: x, Y: float64(s.TxTimeout)})
		if i == 0 {
			continue
		}
		p := samples[i-1]
		dt := float64(s.SinceMS-p.SinceMS) / 1000
		if dt <= 0 || s.TxPackets < p.TxPackets {
			continue
		}
		rate = append(rate, plotter.XY{X: x, Y: float64(s.TxPackets-p.TxPackets) / dt})
	}
	return rate, backlog, timeouts
}

// Figure geometry.
const (
	figureWidth  = 24 * vg.Centimeter
	panelHeight  = 4.8 * vg.Centimeter
	titleHeight  = 0.9 * vg.Centimeter
	legendRow    = 0.55 * vg.Centimeter
	legendCols   = 4
	figureMargin = 3 * vg.Millimeter
)

func sans(size float64) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(size)}
}

// newPanel is a plot in the figure's sans-serif type.
func newPanel() *plot.Plot {
	p := plot.New()
	for _, t := range []*draw.TextStyle{&p.Title.TextStyle, &p.X.Label.TextStyle, &p.Y.Label.TextStyle,
		&p.X.Tick.Label, &p.Y.Tick.Label} {
		t.Font = sans(t.Font.Size.Points())
	}
	p.Y.Label.TextStyle.Font.Size = vg.Points(9)
	return p
}

// HasFigure reports whether a scenario has samples to draw.
func HasFigure(s harness.ScenarioReport) bool { return len(s.Timeline.Samples) > 0 }

// Figure draws one scenario's timeline as an SVG or PNG picture: a title
// with the result, a legend strip of the markers above the data (never on
// it), and three panels over a shared time axis in seconds relative to the
// fault's injection: the tx_packets rate, the root qdisc's backlog and the
// tx_timeout counter, each crossed by the markers. A link-down interval is
// shaded. It fails for a scenario without samples.
func Figure(s harness.ScenarioReport, format string) ([]byte, error) {
	if !HasFigure(s) {
		return nil, fmt.Errorf("report: scenario %s has no timeline samples to draw", s.Name)
	}
	marks := Markers(s)
	legendRows := (len(marks) + legendCols - 1) / legendCols
	if legendRows == 0 {
		legendRows = 1
	}
	const panels = 3
	h := titleHeight + vg.Length(legendRows)*legendRow + panels*panelHeight + 1.2*vg.Centimeter + 2*figureMargin

	var c vg.CanvasWriterTo
	switch format {
	case SVG:
		c = vgsvg.New(figureWidth, h)
	case PNG:
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(figureWidth, h), vgimg.UseDPI(110))}
	default:
		return nil, fmt.Errorf("report: unknown picture format %q (want svg or png)", format)
	}
	dc := draw.New(c)
	dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: figureWidth, Y: 0}, {X: figureWidth, Y: h}, {X: 0, Y: h}})
	dc = draw.Crop(dc, figureMargin, -figureMargin, figureMargin, -figureMargin)

	top := dc.Max.Y
	title := draw.TextStyle{Color: color.Black, Font: sans(13), Handler: plot.DefaultTextHandler, YAlign: draw.YTop}
	dc.FillText(title, vg.Point{X: dc.Min.X, Y: top}, fmt.Sprintf("%s: %s", s.Name, s.Result))
	drawLegend(dc, marks, s, top-titleHeight)

	plots, err := panelPlots(s, marks)
	if err != nil {
		return nil, err
	}
	area := dc
	area.Max.Y = top - titleHeight - vg.Length(legendRows)*legendRow
	rows := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		rows[i] = []*plot.Plot{p}
	}
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadY: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align(rows, tiles, area)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("report: writing the picture: %w", err)
	}
	if format == SVG {
		// vgsvg names the font alone; a viewer without it would fall back
		// to its default (often a serif). Arial and Helvetica have the
		// same metrics as Liberation Sans, so the text still fits.
		return bytes.ReplaceAll(b.Bytes(), []byte("font-family:Liberation Sans;"),
			[]byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")), nil
	}
	return b.Bytes(), nil
}

// drawLegend writes the markers in rows of legendCols columns below y:
// a line sample in the marker's style and "name (+5.7 s)".
func drawLegend(dc draw.Canvas, marks []Marker, s harness.ScenarioReport, y vg.Length) {
	t0, _ := FaultMS(s)
	col := (dc.Max.X - dc.Min.X) / vg.Length(legendCols)
	label := draw.TextStyle{Color: color.Black, Font: sans(9.5), Handler: plot.DefaultTextHandler, YAlign: draw.YCenter}
	for i, m := range marks {
		x := dc.Min.X + vg.Length(i%legendCols)*col
		yy := y - vg.Length(i/legendCols)*legendRow - legendRow/2
		dc.StrokeLine2(draw.LineStyle{Color: m.color, Width: vg.Points(2), Dashes: m.dash}, x, yy, x+vg.Points(22), yy)
		dc.FillText(label, vg.Point{X: x + vg.Points(26), Y: yy}, fmt.Sprintf("%s (%+.2f s)", m.Name, float64(m.SinceMS-t0)/1000))
	}
}

// panelPlots builds the three panels of a figure.
func panelPlots(s harness.ScenarioReport, marks []Marker) ([]*plot.Plot, error) {
	t0, haveFault := FaultMS(s)
	rate, backlog, timeouts := series(s.Timeline.Samples, t0)
	samples := s.Timeline.Samples
	xmin := float64(samples[0].SinceMS-t0) / 1000
	xmax := float64(samples[len(samples)-1].SinceMS-t0) / 1000
	for _, m := range marks {
		x := float64(m.SinceMS-t0) / 1000
		xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
	}
	if xmax <= xmin {
		xmax = xmin + 0.001
	}
	down, up := math.NaN(), math.NaN()
	for _, m := range marks {
		switch m.Name {
		case "link down":
			down = float64(m.SinceMS-t0) / 1000
		case "link up":
			up = float64(m.SinceMS-t0) / 1000
		}
	}
	xlabel := "seconds since the fault was injected"
	if !haveFault {
		xlabel = "seconds since the scenario started"
	}
	panels := []struct {
		ylabel string
		data   plotter.XYs
		color  color.Color
	}{
		{"tx_packets rate (pps)", rate, color.RGBA{B: 180, A: 255}},
		{"qdisc backlog (packets)", backlog, color.RGBA{R: 120, G: 80, B: 20, A: 255}},
		{"tx_timeout (count)", timeouts, color.Black},
	}
	var out []*plot.Plot
	for i, pn := range panels {
		p := newPanel()
		p.Y.Label.Text = pn.ylabel
		if i == len(panels)-1 {
			p.X.Label.Text = xlabel
		}
		p.Add(plotter.NewGrid())
		ymax := 1.0
		for _, xy := range pn.data {
			ymax = math.Max(ymax, xy.Y)
		}
		p.Y.Min, p.Y.Max = 0, ymax*1.1
		p.X.Min, p.X.Max = xmin, xmax
		if !math.IsNaN(down) {
			end := xmax
			if !math.IsNaN(up) {
				end = up
			}
			shade, err := plotter.NewPolygon(plotter.XYs{{X: down, Y: 0}, {X: end, Y: 0}, {X: end, Y: p.Y.Max}, {X: down, Y: p.Y.Max}})
			if err != nil {
				return nil, fmt.Errorf("report: drawing %s: %w", s.Name, err)
			}
			shade.Color, shade.LineStyle.Width = color.RGBA{R: 225, G: 225, B: 225, A: 255}, 0
			p.Add(shade)
		}
		if len(pn.data) > 0 {
			l, err := plotter.NewLine(pn.data)
			if err != nil {
				return nil, fmt.Errorf("report: drawing %s: %w", s.Name, err)
			}
			l.Color, l.Width = pn.color, vg.Points(1.3)
			p.Add(l)
		}
		for _, m := range marks {
			x := float64(m.SinceMS-t0) / 1000
			l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: p.Y.Max}})
			if err != nil {
				return nil, fmt.Errorf("report: drawing %s: %w", s.Name, err)
			}
			l.Color, l.Dashes, l.Width = m.color, m.dash, vg.Points(1.5)
			p.Add(l)
		}
		out = append(out, p)
	}
	return out, nil
}
