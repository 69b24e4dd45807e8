package traffic

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readFixture splits a testdata/pktgen file into its "# " header and the
// file content after the first blank line, and returns the header's
// "Want:" line.
func readFixture(tb testing.TB, path string) (content, want string) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	head, body, ok := strings.Cut(string(b), "\n\n")
	if !ok {
		tb.Fatalf("%s: no blank line after the header", path)
	}
	for _, l := range strings.Split(head, "\n") {
		if w, ok := strings.CutPrefix(l, "# Want: "); ok {
			want = w
		}
	}
	if want == "" {
		tb.Fatalf("%s: no '# Want:' line in the header", path)
	}
	return body, want
}

func TestParsePktgenResultFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/pktgen/*.txt")
	must(t, err)
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			content, want := readFixture(t, f)
			r, err := ParsePktgenResult(content)
			if want == "error" {
				if err == nil || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want a one-line error", err)
				}
				return
			}
			must(t, err)
			var iface string
			var thread int
			var sent, errs, pps, bps uint64
			_, err = fmt.Sscanf(want, "iface %s thread %d sent %d errors %d pps %d bps %d", &iface, &thread, &sent, &errs, &pps, &bps)
			if err != nil {
				t.Fatalf("bad Want line %q: %v", want, err)
			}
			eq(t, iface, r.Iface)
			eq(t, thread, r.Thread)
			eq(t, sent, r.Sent)
			eq(t, errs, r.Errors)
			eq(t, float64(pps), r.PPS)
			if math.Abs(float64(bps)/1e6-r.Mbps) > 1e-9 {
				t.Fatalf("Mbps %v, want %v", r.Mbps, float64(bps)/1e6)
			}
			eq(t, content, r.Raw)
		})
	}
}

func TestParsePktgenResultForms(t *testing.T) {
	ok := "Result: OK: 15430(c15405+d25) usec, 100000 (60byte,0frags)\n  6480562pps 3110Mb/sec (3110669760bps) errors: 7\n"
	r, err := ParsePktgenResult(ok)
	must(t, err)
	eq(t, uint64(100000), r.Sent)
	eq(t, uint64(7), r.Errors)
	eq(t, "", r.Iface)

	// A kernel with the "Mb/sec" spacing of some trees still parses.
	spaced := strings.Replace(ok, "3110Mb/sec", "3110 Mb/sec", 1)
	_, err = ParsePktgenResult(spaced)
	must(t, err)

	for name, in := range map[string]string{
		"empty":        "",
		"no result":    "Params: count 1\n",
		"idle":         "Result: Idle\n",
		"no rate line": "Result: OK: 15430(c15405+d25) usec, 100000 (60byte,0frags)\n",
		"rate far":     "Result: OK: 1(c1+d0) usec, 1 (60byte,0frags)\nx\n  1pps 0Mb/sec (480bps) errors: 0\n",
		"error":        "Result: ERROR: can not add device eth9@0\n",
		"overflow":     "Result: OK: 1(c1+d0) usec, 99999999999999999999 (60byte,0frags)\n  1pps 0Mb/sec (480bps) errors: 0\n",
		"too big":      "Result: " + strings.Repeat("x", maxPktgenFile),
	} {
		if _, err := ParsePktgenResult(in); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", name, err)
		}
	}
}

// A device stopped while still "Starting" has no final result, but its
// counters so far are there.
func TestParsePktgenResultStarting(t *testing.T) {
	content, _ := readFixture(t, "testdata/pktgen/stopped-starting.txt")
	r, err := ParsePktgenResult(content)
	if err == nil || !errors.Is(err, errNotFinal) {
		t.Fatalf("err = %v, want one marked errNotFinal", err)
	}
	errContains(t, err, `not a run result: "Starting"`)
	eq(t, true, r.Partial)
	eq(t, uint64(4127), r.Sent)
	eq(t, uint64(2), r.Errors)
	eq(t, 0.0, r.PPS)
	eq(t, "eth0", r.Iface)

	// Without a Current section there are no counters to give.
	r, err = ParsePktgenResult("Result: Starting\n")
	if err == nil || errors.Is(err, errNotFinal) || r.Partial {
		t.Fatalf("no Current section: %+v, %v", r, err)
	}
}

func FuzzParsePktgenResult(f *testing.F) {
	files, _ := filepath.Glob("testdata/pktgen/*.txt")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("Result: OK: 1(c1+d0) usec, 1 (60byte,0frags)\n  1pps 0Mb/sec (480bps) errors: 0")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 2*maxPktgenFile {
			return
		}
		r, err := ParsePktgenResult(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			if r.Partial != errors.Is(err, errNotFinal) {
				t.Fatalf("Partial %v with error %v", r.Partial, err)
			}
			return
		}
		if r.Partial {
			t.Fatalf("a final result marked Partial: %+v", r)
		}
		if !strings.Contains(s, "Result: OK: ") {
			t.Fatalf("parsed %q without a Result: OK line", s)
		}
		if r.PPS < 0 || r.Mbps < 0 || math.IsNaN(r.Mbps) {
			t.Fatalf("bad rates %+v", r)
		}
	})
}

func TestSeedConfig(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	c := SeedConfig("eth0", 2, SeedOptions{Packets: 1000, DstMAC: mac})
	must(t, c.Validate())
	eq(t, 2, len(c.Devices))
	for i, d := range c.Devices {
		eq(t, i, d.Thread)
		eq(t, uint64(500), d.Count)
		eq(t, uint64(500000), d.RateP)
	}
	// The seed's per-CPU script, in its order, minus "config 1".
	want := []string{
		"count 500",
		"clone_skb 10",
		"frags 10",
		"pkt_size 9014",
		"ratep 500000",
		"burst 2",
		"dst 198.18.0.1",
		"dst_mac 52:54:00:12:34:56",
		"flag QUEUE_MAP_CPU",
		"flag IPDST_RND",
		"dst_min 198.18.0.1",
		"dst_max 198.18.0.254",
		"flows 1024",
		"flowlen 8",
	}
	eq(t, want, c.Devices[1].commands())
	eq(t, "eth0@1", c.Devices[1].name())

	// Scaled down below one packet per thread: never "count 0".
	small := SeedConfig("eth0", 4, SeedOptions{Packets: 2})
	for _, d := range small.Devices {
		if d.Count == 0 {
			t.Fatal("count 0")
		}
	}
	// count 0 (until stopped) is the seed's own setting.
	eq(t, uint64(0), SeedConfig("eth0", 1, SeedOptions{}).Devices[0].Count)
}

func TestPktgenDeviceCommandsAll(t *testing.T) {
	d := PktgenDevice{
		Thread: 3, Iface: "eth1", Count: 7, XmitMode: "queue_xmit", Delay: 1500 * time.Nanosecond,
		RateMbps: 300, SrcMin: net.IPv4(198, 18, 1, 1), SrcMax: net.IPv4(198, 18, 1, 9),
		UDPSrcMin: 9, UDPSrcMax: 109, UDPDstMin: 9, UDPDstMax: 9,
		QueueMapMax: 3, Config: true,
	}
	must(t, PktgenConfig{Devices: []PktgenDevice{d}}.Validate())
	eq(t, []string{
		"count 7", "xmit_mode queue_xmit", "delay 1500", "rate 300",
		"src_min 198.18.1.1", "src_max 198.18.1.9",
		"udp_src_min 9", "udp_src_max 109", "udp_dst_min 9", "udp_dst_max 9",
		"queue_map_min 0", "queue_map_max 3", "config 1",
	}, d.commands())
}

func TestPktgenConfigValidate(t *testing.T) {
	good := PktgenDevice{Iface: "eth0", Count: 1}
	tests := []struct {
		name string
		mod  func(*PktgenDevice)
		want string
	}{
		{"thread", func(d *PktgenDevice) { d.Thread = -1 }, "thread -1"},
		{"iface empty", func(d *PktgenDevice) { d.Iface = "" }, "interface"},
		{"iface with @", func(d *PktgenDevice) { d.Iface = "eth0@1" }, "interface"},
		{"iface long", func(d *PktgenDevice) { d.Iface = strings.Repeat("e", 16) }, "interface"},
		{"negative", func(d *PktgenDevice) { d.Burst = -1 }, "negative"},
		{"delay", func(d *PktgenDevice) { d.Delay = -1 }, "negative delay"},
		{"two rates", func(d *PktgenDevice) { d.RateP, d.RateMbps = 1, 1 }, "both"},
		{"mac", func(d *PktgenDevice) { d.DstMAC = net.HardwareAddr{1, 2} }, "MAC"},
		{"ipv6", func(d *PktgenDevice) { d.Dst = net.ParseIP("2001:db8::1") }, "IPv4"},
		{"flag space", func(d *PktgenDevice) { d.Flags = []string{"A B"} }, "flag"},
		{"flag newline", func(d *PktgenDevice) { d.Flags = []string{"A\nstart"} }, "flag"},
		{"xmit", func(d *PktgenDevice) { d.XmitMode = "x y" }, "xmit_mode"},
	}
	for _, tt := range tests {
		d := good
		tt.mod(&d)
		err := PktgenConfig{Devices: []PktgenDevice{d}}.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
	errContains(t, PktgenConfig{}.Validate(), "no devices")
	errContains(t, PktgenConfig{Devices: []PktgenDevice{good, good}}.Validate(), "twice")
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func eq[T any](tb testing.TB, want, got T) {
	tb.Helper()
	if d := cmp.Diff(want, got); d != "" {
		tb.Fatalf("(-want +got):\n%s", d)
	}
}

func errContains(tb testing.TB, err error, want string) {
	tb.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		tb.Fatalf("err = %v, want one containing %q", err, want)
	}
}
