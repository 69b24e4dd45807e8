package report

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"

	"txtimeout/harness"
)

var screenshots = flag.String("screenshots", "", "copy the browser test's screenshots into this directory (docs/ keeps two)")

// chromium runs Debian's headless Chromium on a page with args (--dump-dom,
// --screenshot=FILE) and returns its standard output. It runs in its own
// process group, which is killed when the deadline passes, and each of its
// processes dies with the test (Pdeathsig); the flags keep it off the
// network (go.md: its background connections are refused here).
func chromium(tb testing.TB, bin, page string, args ...string) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + tb.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, page)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("chromium %s: %v; stderr:\n%s", strings.Join(args, " "), err, lastLines(stderr.String(), 10))
	}
	return stdout.Bytes()
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// screenshot takes a screenshot of page at width×height, checks that it is
// a picture of that size with the result colours in it, and copies it to
// -screenshots when asked.
func screenshot(tb testing.TB, bin, page, name string, width, height int, colours ...color.RGBA) {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), name)
	chromium(tb, bin, page, "--screenshot="+out, fmt.Sprintf("--window-size=%d,%d", width, height))
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("%s does not decode: %v", name, err)
	}
	if got := img.Bounds().Size(); got != (image.Point{X: width, Y: height}) {
		tb.Errorf("%s is %v, want %dx%d", name, got, width, height)
	}
	for _, c := range colours {
		if n := countColour(img, c); n < 200 {
			tb.Errorf("%s has %d pixels of %v: the page did not render its colours", name, n, c)
		}
	}
	if *screenshots != "" {
		if err := os.WriteFile(filepath.Join(*screenshots, name), b, 0o644); err != nil {
			tb.Error(err)
		}
	}
}

func countColour(img image.Image, want color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(bl>>8) == want.B {
				n++
			}
		}
	}
	return n
}

// The result colours of the pages' style sheet.
var (
	passBG = color.RGBA{R: 0xd9, G: 0xf2, B: 0xdf}
	incBG  = color.RGBA{R: 0xfd, G: 0xe9, B: 0xc4}
)

// TestBrowserRendersMatrixAndRunPage renders a matrix of the fixture runs,
// compared with a baseline in which one cell passed, in headless Chromium:
// the grid must have every cell with its reason, the changed cell marked,
// and the link of a cell must lead to its scenario's section with its
// figure on the run's page.
func TestBrowserRendersMatrixAndRunPage(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("skipping: chromium is not installed (apt-get install chromium; scripts/install-deps installs it as root)")
	}
	m, dirs := fixtureMatrix(t)
	base, _ := fixtureMatrix(t)
	const kernel, nic, scen = "6.12.117+deb12-amd64", "virtio-net-pci", "TxTimeout/NapiStarve/ICMP"
	changed, ok := m.Cell(kernel, nic, scen)
	if !ok || changed.Result != harness.Inconclusive {
		t.Fatalf("fixture cell %s × %s × %s: %v, want inconclusive", kernel, nic, scen, changed.Result)
	}
	// The baseline: that cell passed, 6.1 × e1000 × NapiStarve/Pktgen
	// failed, and the 6.12 × e1000 Repeat cell did not exist.
	fixed, ok := m.Cell("6.1.0-56-amd64", "e1000", "TxTimeout/NapiStarve/Pktgen")
	if !ok || fixed.Result != harness.Pass {
		t.Fatalf("fixture cell %s: %v, want pass", fixed.Key(), fixed.Result)
	}
	var kept []Cell
	for _, c := range base.Cells {
		switch c.Key() {
		case changed.Key():
			c.Result = harness.Pass
		case fixed.Key():
			c.Result = harness.Fail
		case kernel + " × e1000 × TxTimeout/Repeat":
			continue
		}
		kept = append(kept, c)
	}
	base.Cells = kept
	dir := filepath.Dir(dirs[0])
	if err := m.WriteFiles(dir, base, "baseline/matrix.json"); err != nil {
		t.Fatal(err)
	}

	index := filepath.Join(dir, IndexHTML)
	doc := parsePage(t, chromium(t, bin, "file://"+index, "--dump-dom"))
	cells := findAll(doc, func(n *html.Node) bool { return n.Data == "td" && hasClass(n, "cell") })
	if want := len(m.Kernels) * len(m.NICs) * len(m.Scenarios); len(cells) != want {
		t.Errorf("the grid shows %d cells, want %d kernels × NICs × scenarios = %d", len(cells), len(m.Cells), want)
	}
	marked := map[Change][]*html.Node{}
	for _, c := range cells {
		for _, ch := range []Change{Regression, Fix, Changed, New, Same} {
			if hasClass(c, string(ch)) {
				marked[ch] = append(marked[ch], c)
			}
		}
	}
	for ch, want := range map[Change]int{Regression: 1, Fix: 1, New: 1, Changed: 0, Same: 0} {
		if len(marked[ch]) != want {
			t.Errorf("%d cells marked %s, want %d", len(marked[ch]), ch, want)
		}
	}
	if len(marked[Regression]) != 1 {
		t.FailNow()
	}
	regression := marked[Regression][0]
	if title := attr(regression, "title"); !strings.Contains(title, changed.Reason) || !strings.Contains(title, "was pass") {
		t.Errorf("the regression's hover text %q lacks its reason or its old result", title)
	}
	if s := text(findAll(doc, func(n *html.Node) bool { return attr(n, "id") == "summary" })[0]); !strings.Contains(s, "1 regression, 1 fix, 0 changed, 1 new,") {
		t.Errorf("summary %q does not count the regression", s)
	}
	links := findAll(regression, tag("a"))
	if len(links) != 1 {
		t.Fatalf("the regression cell has %d links, want 1", len(links))
	}
	target, err := url.Parse(attr(links[0], "href"))
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, filepath.FromSlash(target.Path))
	if target.Fragment != Anchor(scen) {
		t.Errorf("the cell links to #%s, want #%s", target.Fragment, Anchor(scen))
	}

	// The run page the cell links to, rendered, has the scenario's
	// section with its reason; a scenario with samples has its figure.
	run := parsePage(t, chromium(t, bin, "file://"+page, "--dump-dom"))
	secs := findAll(run, func(n *html.Node) bool { return attr(n, "id") == target.Fragment })
	if len(secs) != 1 {
		t.Fatalf("%s has %d sections with id %s, want 1", page, len(secs), target.Fragment)
	}
	if !strings.Contains(text(secs[0]), changed.Reason) {
		t.Errorf("the section lacks the scenario's reason")
	}
	pass := findAll(run, func(n *html.Node) bool { return attr(n, "id") == Anchor("TxTimeout/PartnerStall/ICMP") })
	if len(pass) != 1 || len(findAll(pass[0], tag("svg"))) != 1 {
		t.Errorf("PartnerStall/ICMP's section has no figure")
	} else if svgText := text(pass[0]); !strings.Contains(svgText, "first watchdog") {
		t.Errorf("the figure's legend did not render: %q", svgText)
	}

	screenshot(t, bin, "file://"+index, "matrix.png", 1100, 760, passBG, incBG)
	// Chromium's screenshot does not scroll to a fragment: the scenario
	// page's picture is of a run page with that one scenario (a reset and
	// a link flap, on e1000), rendered the same way.
	one := fixtureReport(t, "6.12-e1000")
	one.Scenarios = one.Scenarios[:1]
	onePage, err := RunPage(one)
	if err != nil {
		t.Fatal(err)
	}
	onePath := filepath.Join(t.TempDir(), IndexHTML)
	if err := os.WriteFile(onePath, onePage, 0o644); err != nil {
		t.Fatal(err)
	}
	screenshot(t, bin, "file://"+onePath, "scenario-page.png", 1100, 1450, passBG)
}
