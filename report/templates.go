package report

import "html/template"

// pages holds the run and matrix page templates and the CSS they share.
// html/template escapes every value; only Figure's SVG goes in as HTML.
var pages = template.Must(template.New("pages").Parse(`
{{define "style"}}<style>
:root{--pass:#2e9d4f;--pass-bg:#d9f2df;--fail:#c62828;--fail-bg:#fbd9d6;--skip:#6d6d6d;--skip-bg:#e6e6e6;--inc:#b26a00;--inc-bg:#fde9c4;--none-bg:#fafafa}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",Arial,sans-serif;margin:1.5em 2em;color:#1d1d1d;line-height:1.4}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin:1.6em 0 .4em;padding-top:.4em;border-top:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .6em;text-align:left;vertical-align:top}
table.list td,table.list th{border-bottom:1px solid #e4e4e4}
table.kv td:first-child{color:#555;font-family:ui-monospace,"Liberation Mono",monospace;font-size:.9em}
.res{display:inline-block;min-width:6.5em;padding:.1em .5em;border-radius:3px;font-weight:600;text-align:center}
.pass{background:var(--pass-bg);color:#145c2a}.fail{background:var(--fail-bg);color:#8e1010}
.skip{background:var(--skip-bg);color:#3d3d3d}.inconclusive{background:var(--inc-bg);color:#6b4000}
.none{background:var(--none-bg);color:#aaa}
.figure svg{max-width:100%;height:auto;border:1px solid #e4e4e4}
.events td{font-size:.9em}.events td.at{white-space:nowrap}.events td.text{font-family:ui-monospace,"Liberation Mono",monospace;white-space:pre-wrap;word-break:break-all}
tr.watchdog td{background:#fff4e0}tr.driver td{background:#f1e8fb}tr.splat td{background:#fbd9d6}tr.link td{background:#e2f3f3}tr.mark td{color:#444}
.cols{display:flex;flex-wrap:wrap;gap:2.5em}.meta{color:#555}
.grid{border-collapse:separate;border-spacing:3px}.grid th,.grid td{vertical-align:middle}.grid th{font-weight:600;text-align:center;background:#f0f0f0}
.grid th.scen{text-align:left;background:none;font-weight:normal;font-family:ui-monospace,"Liberation Mono",monospace;font-size:.9em}
.grid td{text-align:center;padding:0;min-width:7.5em}.grid td a{display:block;padding:.35em .5em;color:inherit;text-decoration:none;font-weight:600}
.grid td a:hover{outline:2px solid #333}
.chg{display:block;font-size:.75em;font-weight:700;text-transform:uppercase;letter-spacing:.03em}
.regression{box-shadow:inset 0 0 0 3px var(--fail)}.fix{box-shadow:inset 0 0 0 3px var(--pass)}.changed{box-shadow:inset 0 0 0 3px #555}.new{box-shadow:inset 0 0 0 2px #1c5fb8}
.summary{font-size:1.05em;margin:.6em 0}
</style>{{end}}

{{define "counts"}}{{range .}}<span class="res {{.Result}}">{{.N}} {{.Result}}</span> {{end}}{{end}}

{{define "run"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>{{template "style"}}</head><body>
<h1>{{.Title}}</h1>
<p class="summary">{{.Count}}: {{template "counts" .Counts}}</p>
<div class="cols">
<table class="kv" id="run">{{range .Header}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</table>
<details><summary>configuration</summary><table class="kv" id="config">{{range .Config}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</table></details>
</div>
<table class="list" id="scenarios"><tr><th>scenario</th><th>result</th><th>reason</th></tr>
{{range .Scenarios}}<tr><td><a href="#{{.Anchor}}">{{.Name}}</a></td><td><span class="res {{.Result}}">{{.Result}}</span></td><td>{{.Reason}}</td></tr>
{{end}}</table>
{{range .Scenarios}}<section class="scenario" id="{{.Anchor}}">
<h2>{{.Name}} <span class="res {{.Result}}">{{.Result}}</span></h2>
<p>{{.Reason}}</p>
{{if .Figure}}<div class="figure">{{.Figure}}</div>{{else}}<p class="meta">No timeline samples to draw.</p>{{end}}
{{if .Events}}<h3>Events, relative to the fault's injection</h3>
<table class="list events"><tr><th>time</th><th>source</th><th>kind</th><th>iface</th><th>text</th></tr>
{{range .Events}}<tr class="{{.Class}}"><td class="at">{{.At}}</td><td>{{.Source}}</td><td>{{.Kind}}</td><td>{{.Iface}}</td><td class="text">{{.Text}}</td></tr>
{{end}}</table>{{end}}
<div class="cols">
<div><h3>Verdict</h3><table class="kv verdict">{{range .Verdict}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</table></div>
{{if .Measurements}}<div><h3>Measurements</h3><table class="kv measurements">{{range .Measurements}}<tr><td>{{.Name}}</td><td>{{.Value}} {{.Units}}</td></tr>{{end}}</table></div>{{end}}
</div>
</section>
{{end}}</body></html>
{{end}}
{{define "matrix"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>{{template "style"}}</head><body>
<h1>{{.Title}}</h1>
<p class="summary" id="summary">{{.Summary}}</p>
<p>{{template "counts" .Counts}}</p>
<table class="grid" id="grid">
<tr><th rowspan="2" class="scen">scenario</th>{{range .Kernels}}<th colspan="{{len $.NICs}}">{{.}}</th>{{end}}</tr>
<tr>{{range .Kernels}}{{range $.NICs}}<th>{{.}}</th>{{end}}{{end}}</tr>
{{range .Rows}}<tr><th class="scen">{{.Scenario}}</th>{{range .Cells}}<td class="cell {{.Class}}" title="{{.Title}}">{{if .Link}}<a href="{{.Link}}">{{.Text}}{{if .Change}}<span class="chg">{{.Change}}</span>{{end}}</a>{{else}}{{.Text}}{{end}}</td>{{end}}</tr>
{{end}}</table>
<p class="meta">Hover over a cell for its reason; click it for the scenario's timeline, kernel events and verdict.
{{if .Compared}}A thick red frame is a regression (was pass), a green one a fix (was fail), a grey one another change, a blue one a cell new since the baseline.{{end}}</p>
{{if .Compared}}<h2>Against {{.Compared.Baseline}}</h2>
{{if .Changes}}<table class="list" id="changes"><tr><th>cell</th><th>change</th><th>was</th><th>now</th><th>reason</th></tr>
{{range .Changes}}<tr><td><a href="{{.Link}}">{{.Key}}</a></td><td>{{.Change}}</td><td><span class="res {{.Was}}">{{.Was}}</span></td><td><span class="res {{.Now}}">{{.Now}}</span></td><td>{{.Reason}}</td></tr>
{{end}}</table>{{else}}<p>No cell changed its result.</p>{{end}}
{{if .Compared.Gone}}<p>In the baseline but not in this matrix:</p><ul>{{range .Compared.Gone}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{end}}</body></html>
{{end}}
`))
