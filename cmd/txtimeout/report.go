package main

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"txtimeout/harness"
)

func init() {
	register(command{
		name:    "report",
		summary: "summarise a report.json and draw its timeline (-o timeline.svg|.png)",
		run:     runReport,
	})
}

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", stderr)
	out := fs.String("o", "", "draw the timeline into this file (.svg or .png)")
	only := fs.String("scenario", "", "draw only this scenario (default: every scenario with samples)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: txtimeout report [-o timeline.svg|.png] [-scenario NAME] DIR/report.json")
		fmt.Fprintln(stderr, "\nPrints one line per scenario and, with -o, draws the tx_packets rate, the qdisc")
		fmt.Fprintln(stderr, "backlog and the tx_timeout counter over time, with the scenario's markers.")
		fs.PrintDefaults()
	}
	// Flags may follow the report path, as in "report DIR/report.json -o x.svg".
	var paths []string
	rest := args
	for {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(paths) != 1 {
		return usagef("want exactly one report.json, got %d (usage: txtimeout report DIR/report.json -o timeline.svg)", len(paths))
	}
	var format string
	if *out != "" {
		switch strings.ToLower(filepath.Ext(*out)) {
		case ".svg":
			format = "svg"
		case ".png":
			format = "png"
		default:
			return usagef("-o %s: the picture is .svg or .png", *out)
		}
	}
	r, err := harness.ReadReport(paths[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kernel %s, driver %s, iface %s", orNone(r.Kernel), orNone(r.Driver), orNone(r.Iface))
	if r.NIC != "" {
		fmt.Fprintf(stdout, ", nic %s", r.NIC)
	}
	fmt.Fprintln(stdout)
	for _, s := range r.Scenarios {
		fmt.Fprintf(stdout, "%-32s %-12s %s\n", s.Name, s.Result, strings.Join(strings.Fields(s.Reason), " "))
	}
	if *out == "" {
		return nil
	}

	var draws []harness.ScenarioReport
	for _, s := range r.Scenarios {
		if *only != "" && s.Name != *only {
			continue
		}
		if len(s.Timeline.Samples) > 0 {
			draws = append(draws, s)
		}
	}
	if len(draws) == 0 {
		if *only != "" {
			return fmt.Errorf("%s: no scenario %q with timeline samples (scenarios: %s)", paths[0], *only, scenarioNames(r))
		}
		return fmt.Errorf("%s: no scenario has timeline samples to draw", paths[0])
	}
	// Render in memory first, so that a failure leaves no half-written file.
	img, err := renderTimeline(draws, format)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, img, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d scenarios)\n", *out, len(draws))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func scenarioNames(r *harness.Report) string {
	var n []string
	for _, s := range r.Scenarios {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}

// marker is a vertical line on every panel of a scenario.
type marker struct {
	name  string
	color color.Color
	dash  []vg.Length
}

var (
	markerFault     = marker{"fault injected", color.RGBA{R: 200, A: 255}, nil}
	markerWatchdog  = marker{"first watchdog", color.RGBA{R: 230, G: 120, A: 255}, []vg.Length{vg.Points(4), vg.Points(2)}}
	markerHandler   = marker{"handler line", color.RGBA{R: 140, B: 200, A: 255}, []vg.Length{vg.Points(1), vg.Points(2)}}
	markerRemoved   = marker{"fault removed", color.RGBA{G: 120, B: 200, A: 255}, nil}
	markerRecovered = marker{"recovered", color.RGBA{G: 160, A: 255}, []vg.Length{vg.Points(4), vg.Points(2)}}
)

// scenarioMarkers returns the marker times, in seconds since the timeline
// start, of one scenario: from its marks, its first timeout, its first
// driver event and its recovery.
func scenarioMarkers(s harness.ScenarioReport) map[string]float64 {
	tl := s.Timeline
	m := map[string]float64{}
	sec := func(ms int64) float64 { return float64(ms) / 1000 }
	faultMS := int64(0)
	if mk, ok := tl.FindMark(harness.MarkFaultInjected); ok {
		faultMS = mk.SinceMS
		m[markerFault.name] = sec(mk.SinceMS)
	}
	v := tl.Verdict(harness.VerdictOptions{})
	if s.FirstTimeoutMS >= 0 {
		m[markerWatchdog.name] = sec(faultMS + s.FirstTimeoutMS)
	} else if v.FirstTimeoutMS >= 0 {
		m[markerWatchdog.name] = sec(faultMS + v.FirstTimeoutMS)
	}
	for _, e := range tl.Events {
		if e.Kind == "driver" {
			m[markerHandler.name] = sec(e.SinceMS)
			break
		}
	}
	if mk, ok := tl.FindMark(harness.MarkFaultRemoved); ok {
		m[markerRemoved.name] = sec(mk.SinceMS)
		if s.Recovered && s.RecoverMS >= 0 {
			m[markerRecovered.name] = sec(mk.SinceMS + s.RecoverMS)
		}
	}
	return m
}

// series returns the three panels' points: tx_packets rate (pps), qdisc
// backlog (packets) and the tx_timeout counter.
func series(samples []harness.Sample) (rate, backlog, timeouts plotter.XYs) {
	for i, s := range samples {
		x := float64(s.SinceMS) / 1000
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

func renderTimeline(scenarios []harness.ScenarioReport, format string) ([]byte, error) {
	const panels = 3
	var rows [][]*plot.Plot
	for _, s := range scenarios {
		rate, backlog, timeouts := series(s.Timeline.Samples)
		marks := scenarioMarkers(s)
		titles := []string{
			fmt.Sprintf("%s: %s", s.Name, s.Result),
			"", "",
		}
		ylabels := []string{"tx_packets rate (pps)", "qdisc backlog (packets)", "tx_timeout (count)"}
		data := []plotter.XYs{rate, backlog, timeouts}
		colors := []color.Color{color.RGBA{B: 180, A: 255}, color.RGBA{R: 120, G: 80, B: 20, A: 255}, color.Black}
		xmax := float64(s.Timeline.Samples[len(s.Timeline.Samples)-1].SinceMS) / 1000
		for i := 0; i < panels; i++ {
			p := plot.New()
			p.Title.Text = titles[i]
			p.Y.Label.Text = ylabels[i]
			if i == panels-1 {
				p.X.Label.Text = "seconds since the scenario started"
			}
			p.Add(plotter.NewGrid())
			ymax := 1.0
			for _, xy := range data[i] {
				ymax = math.Max(ymax, xy.Y)
			}
			p.Y.Min, p.Y.Max = 0, ymax*1.1
			p.X.Min, p.X.Max = 0, math.Max(xmax, 0.001)
			if len(data[i]) > 0 {
				l, err := plotter.NewLine(data[i])
				if err != nil {
					return nil, fmt.Errorf("drawing %s: %w", s.Name, err)
				}
				l.Color = colors[i]
				l.Width = vg.Points(1.2)
				p.Add(l)
			}
			for _, mk := range []marker{markerFault, markerWatchdog, markerHandler, markerRemoved, markerRecovered} {
				x, ok := marks[mk.name]
				if !ok {
					continue
				}
				l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: p.Y.Max}})
				if err != nil {
					return nil, fmt.Errorf("drawing %s: %w", s.Name, err)
				}
				l.Color, l.Dashes, l.Width = mk.color, mk.dash, vg.Points(1.5)
				p.Add(l)
				if i == 0 {
					p.Legend.Add(fmt.Sprintf("%s (%.1f s)", mk.name, x), l)
				}
			}
			p.Legend.Top = true
			rows = append(rows, []*plot.Plot{p})
		}
	}

	w := 26 * vg.Centimeter
	h := vg.Length(len(rows)) * 6 * vg.Centimeter
	var c vg.CanvasWriterTo
	switch format {
	case "svg":
		c = vgsvg.New(w, h)
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96))}
	default:
		return nil, fmt.Errorf("unknown picture format %q", format)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("writing the picture: %w", err)
	}
	return b.Bytes(), nil
}
