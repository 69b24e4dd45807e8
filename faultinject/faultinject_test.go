//go:build linux

package faultinject

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/florianl/go-tc/core"
	"github.com/google/go-cmp/cmp"
)

func TestCtrlFrameRoundTrip(t *testing.T) {
	src := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	dst := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	f := CtrlFrame{Command: CmdStall, Duration: 20 * time.Second, Nonce: 0xdeadbeef}
	b, err := f.MarshalEthernet(dst, src)
	check.NoError(t, err)
	want := []byte{
		2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5,
		'T', 'X', 'T', 'O', 1, 1, 0, 0, 0, 0, 0x4e, 0x20, 0xde, 0xad, 0xbe, 0xef,
	}
	want = append(want, make([]byte, 60-len(want))...)
	check.Equal(t, want, b)
	got, gsrc, err := ParseCtrlEthernet(b)
	check.NoError(t, err)
	check.Equal(t, f, got)
	check.Equal(t, src, gsrc)
	check.Equal(t, "stall-ack", (CmdStall | AckBit).String())
}

func TestCtrlFrameErrors(t *testing.T) {
	p, _ := CtrlFrame{Command: CmdStall, Duration: time.Second}.MarshalPayload()
	bad := func(mod func(b []byte) []byte) []byte { return mod(append([]byte(nil), p...)) }
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrNotCtrl},
		{"magic", bad(func(b []byte) []byte { b[0] = 'X'; return b }), ErrNotCtrl},
		{"short", p[:10], ErrCtrlTooShort},
		{"version", bad(func(b []byte) []byte { b[4] = 2; return b }), ErrCtrlVersion},
		{"duration", bad(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], math.MaxUint32); return b }), ErrCtrlBadDuration},
	} {
		_, err := ParseCtrlPayload(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	_, err := CtrlFrame{Duration: MaxStall + time.Millisecond}.MarshalPayload()
	check.ErrorIs(t, err, ErrCtrlBadDuration)
	_, err = CtrlFrame{}.MarshalEthernet(net.HardwareAddr{1}, net.HardwareAddr{1, 2, 3, 4, 5, 6})
	check.Error(t, err)
	_, _, err = ParseCtrlEthernet(make([]byte, 60)) // ethertype 0
	check.ErrorIs(t, err, ErrNotCtrl)
}

func FuzzParseCtrlEthernet(f *testing.F) {
	b, _ := CtrlFrame{Command: CmdStall, Duration: time.Second, Nonce: 7}.MarshalEthernet(
		net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, net.HardwareAddr{2, 0, 0, 0, 0, 1})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4096 {
			return
		}
		fr, src, err := ParseCtrlEthernet(b)
		if err != nil {
			return
		}
		// Whatever parses marshals again and parses back to itself.
		p, err := fr.MarshalPayload()
		if err != nil {
			t.Fatalf("parsed %+v does not marshal: %v", fr, err)
		}
		again, err := ParseCtrlPayload(p)
		if err != nil || again != fr || len(src) != 6 {
			t.Fatalf("round trip: %+v -> %+v (%v)", fr, again, err)
		}
	})
}

func TestPauseFrame(t *testing.T) {
	src := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	b, err := MarshalPause(src, 0xFFFF)
	check.NoError(t, err)
	want := []byte{0x01, 0x80, 0xC2, 0, 0, 1, 2, 0, 0, 0, 0, 9, 0x88, 0x08, 0x00, 0x01, 0xff, 0xff}
	want = append(want, make([]byte, 60-len(want))...)
	check.Equal(t, want, b)
	q, gsrc, err := ParsePause(b)
	check.NoError(t, err)
	check.Equal(t, uint16(0xFFFF), q)
	check.Equal(t, src, gsrc)
	_, _, err = ParsePause(b[:17])
	check.ErrorIs(t, err, ErrNotPause)
	_, err = MarshalPause(nil, 1)
	check.Error(t, err)
}

func FuzzParsePause(f *testing.F) {
	b, _ := MarshalPause(net.HardwareAddr{2, 0, 0, 0, 0, 9}, 0x1234)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4096 {
			return
		}
		q, src, err := ParsePause(b)
		if err != nil {
			return
		}
		out, err := MarshalPause(src, q)
		if err != nil || !bytes.Equal(out[6:18], b[6:18]) {
			t.Fatalf("round trip: %x vs %x (%v)", out, b, err)
		}
	})
}

func TestPauseTiming(t *testing.T) {
	// 0xFFFF quanta × 512 bit = 33553920 bits: 3.355 ms at 10 Gb/s.
	check.Equal(t, 3355392*time.Nanosecond, pauseDuration(0xFFFF, 10_000))
	check.Equal(t, pauseDuration(0xFFFF, 10_000)/2, resendInterval(0xFFFF, 10_000))
	// Unknown speed: assume the fastest link, so the pause is shortest.
	check.Equal(t, pauseDuration(0xFFFF, assumedSpeedMbps), pauseDuration(0xFFFF, 0))
	check.Less(t, pauseDuration(0xFFFF, 0), pauseDuration(0xFFFF, 100_000))
	check.Equal(t, minResend, resendInterval(1, 100_000))
}

func TestNetemEncoding(t *testing.T) {
	perSec := uint64(core.Time2Tick(1_000_000))
	check.NotZero(t, perSec)
	check.Equal(t, uint32(9*perSec), ticks(9*time.Second))
	// iproute2's get_ticks + tc_core_time2tick for 9 s gives the same.
	us, err := core.Duration2TcTime(9 * time.Second)
	check.NoError(t, err)
	check.InDelta(t, float64(core.Time2Tick(us)), float64(ticks(9*time.Second)), 1)
	// Past ~274 s the u32 saturates; Latency64 carries the real value.
	check.Equal(t, uint32(math.MaxUint32), ticks(300*time.Second))
	check.Equal(t, uint32(math.MaxUint32), ticks(time.Hour))

	check.Equal(t, uint32(0), lossFraction(0))
	check.Equal(t, uint32(math.MaxUint32), lossFraction(100))
	check.Equal(t, uint32(math.MaxUint32/4+1), lossFraction(25))

	c := NetemConfig{Delay: 300 * time.Second, Jitter: time.Second, Loss: 10}.withDefaults()
	o := netemObject(7, c)
	check.Equal(t, "netem", o.Kind)
	check.Equal(t, uint32(7), o.Ifindex)
	check.Equal(t, ProjectQdiscHandle, o.Handle)
	check.Equal(t, uint32(0xFFFFFFFF), o.Parent)
	check.Equal(t, uint32(DefaultNetemLimit), o.Netem.Qopt.Limit)
	check.Equal(t, int64(300e9), *o.Netem.Latency64)
	check.Equal(t, int64(1e9), *o.Netem.Jitter64)
	check.Equal(t, lossFraction(10), o.Netem.Qopt.Loss)
	check.Nil(t, netemObject(7, NetemConfig{Delay: time.Second, Limit: 1}).Netem.Jitter64)
}

// netemDump builds a TCA_OPTIONS payload the way netem_dump lays it out:
// struct tc_netem_qopt, then LATENCY64 and JITTER64 attributes.
func netemDump(lat, jit int64, limit, loss uint32) []byte {
	b := make([]byte, 24)
	binary.NativeEndian.PutUint32(b[0:], ticks(time.Duration(lat)))
	binary.NativeEndian.PutUint32(b[4:], limit)
	binary.NativeEndian.PutUint32(b[8:], loss)
	attr := func(typ uint16, v int64) {
		a := make([]byte, 12)
		binary.NativeEndian.PutUint16(a[0:], 12)
		binary.NativeEndian.PutUint16(a[2:], typ)
		binary.NativeEndian.PutUint64(a[4:], uint64(v))
		b = append(b, a...)
	}
	attr(tcaNetemLatency64, lat)
	attr(tcaNetemJitter64, jit)
	return b
}

func TestParseNetemOptions(t *testing.T) {
	c := NetemConfig{Delay: 9 * time.Second, Loss: 5}.withDefaults()
	n, err := parseNetemOptions(netemDump(9e9, 0, 1000, lossFraction(5)))
	check.NoError(t, err)
	check.NoError(t, checkNetem(n, c))

	n, err = parseNetemOptions(netemDump(8e9, 0, 1000, lossFraction(5)))
	check.NoError(t, err)
	err = checkNetem(n, c)
	check.ErrorContains(t, err, "delay 8s, want 9s")

	n, _ = parseNetemOptions(netemDump(9e9, 0, 0, 0))
	check.ErrorContains(t, checkNetem(n, c), "limit 0, want 1000")

	_, err = parseNetemOptions(make([]byte, 10))
	check.Error(t, err)
}

func FuzzParseNetemOptions(f *testing.F) {
	f.Add(netemDump(9e9, 1e9, 1000, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4096 {
			return
		}
		parseNetemOptions(b)
	})
}

func TestParseQdiscMsg(t *testing.T) {
	// RTM_NEWQDISC body: tcmsg, TCA_KIND "tbf", TCA_OPTIONS.
	b := tcmsg(3, 0x10000, tcHRoot)
	b = append(b, 8, 0, tcaKind, 0, 't', 'b', 'f', 0)
	b = append(b, 8, 0, tcaOptions, 0, 1, 2, 3, 4)
	q, err := parseQdiscMsg(b)
	check.NoError(t, err)
	check.Equal(t, qdiscInfo{Ifindex: 3, Handle: 0x10000, Parent: tcHRoot, Kind: "tbf", Options: []byte{1, 2, 3, 4},
		Stats: QdiscStats{Kind: "tbf", Handle: 0x10000}}, q)
	_, err = parseQdiscMsg(b[:10])
	check.Error(t, err)
}

func FuzzParseQdiscMsg(f *testing.F) {
	f.Add(append(tcmsg(3, 0x10000, tcHRoot), 8, 0, tcaKind, 0, 't', 'b', 'f', 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4096 {
			return
		}
		parseQdiscMsg(b)
	})
}

func TestClassifyRoot(t *testing.T) {
	tbf := qdiscInfo{Handle: 0x10000, Parent: tcHRoot, Kind: "tbf", Options: []byte{1}}
	s, err := classifyRoot("x", []qdiscInfo{tbf})
	check.NoError(t, err)
	check.Equal(t, &savedQdisc{Kind: "tbf", Handle: 0x10000, Options: []byte{1}}, s)

	s, err = classifyRoot("x", []qdiscInfo{{Handle: 0, Parent: tcHRoot, Kind: "mq"}, {Handle: 0, Parent: 1, Kind: "fq_codel"}})
	check.NoError(t, err)
	check.Nil(t, s, "a default root qdisc (handle 0) comes back by itself")

	_, err = classifyRoot("x", []qdiscInfo{{Handle: 0, Parent: tcHRoot, Kind: "mq"}, {Handle: 0x80010000, Parent: 1, Kind: "fq"}})
	check.ErrorIs(t, err, ErrNotRestorable)
	_, err = classifyRoot("x", []qdiscInfo{{Handle: 0x10000, Parent: tcHRoot, Kind: "htb"}})
	check.ErrorIs(t, err, ErrNotRestorable)
	_, err = classifyRoot("x", []qdiscInfo{tbf, {Handle: 0x20000, Parent: 0x10001, Kind: "pfifo"}})
	check.ErrorIs(t, err, ErrNotRestorable)
	_, err = classifyRoot("x", []qdiscInfo{{Handle: 0x10000, Parent: tcHRoot, Kind: "sfq", HasStab: true}})
	check.ErrorIs(t, err, ErrNotRestorable)
	_, err = classifyRoot("x", []qdiscInfo{{Handle: ProjectQdiscHandle, Parent: tcHRoot, Kind: "netem"}})
	check.ErrorIs(t, err, ErrStaleState)
	// An ingress qdisc beside the root is not a child.
	_, err = classifyRoot("x", []qdiscInfo{tbf, {Handle: 0xFFFF0000, Parent: tcHIngress, Kind: "ingress"}})
	check.NoError(t, err)
}

func TestConstructorsValidate(t *testing.T) {
	o := Options{StateDir: t.TempDir()}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"netem empty iface", func() error { _, err := NewNetem("", NetemConfig{}, o); return err }()},
		{"netem long iface", func() error { _, err := NewNetem("abcdefghijklmnopq", NetemConfig{}, o); return err }()},
		{"netem slash", func() error { _, err := NewNetem("a/b", NetemConfig{}, o); return err }()},
		{"netem negative delay", func() error { _, err := NewNetem("eth1", NetemConfig{Delay: -1}, o); return err }()},
		{"netem jitter > delay", func() error {
			_, err := NewNetem("eth1", NetemConfig{Delay: time.Second, Jitter: 2 * time.Second}, o)
			return err
		}()},
		{"netem loss", func() error { _, err := NewNetem("eth1", NetemConfig{Loss: 101}, o); return err }()},
		{"netem NaN loss", func() error { _, err := NewNetem("eth1", NetemConfig{Loss: math.NaN()}, o); return err }()},
		{"stall zero", func() error { _, err := NewStall("eth1", StallConfig{}, o); return err }()},
		{"stall too long", func() error { _, err := NewStall("eth1", StallConfig{For: MaxStall + 1}, o); return err }()},
		{"stall mac", func() error {
			_, err := NewStall("eth1", StallConfig{For: time.Second, PeerMAC: net.HardwareAddr{1, 2}}, o)
			return err
		}()},
		{"pause zero", func() error { _, err := NewPauseFlood("eth1", PauseConfig{}, o); return err }()},
		{"pause same iface", func() error {
			_, err := NewPauseFlood("eth1", PauseConfig{For: time.Second, DUTIface: "eth1"}, o)
			return err
		}()},
	} {
		if !errors.Is(c.err, ErrBadConfig) || strings.Contains(c.err.Error(), "\n") {
			t.Errorf("%s: err = %v, want a one-line ErrBadConfig", c.name, c.err)
		}
	}
	n, err := NewNetem("eth1", NetemConfig{}, o)
	check.NoError(t, err)
	check.Equal(t, DefaultNetemDelay, n.cfg.Delay)
	check.Equal(t, uint32(DefaultNetemLimit), n.cfg.Limit)
	check.Contains(t, n.Describe(), "delay 9s limit 1000")
	p, err := NewPauseFlood("eth1", PauseConfig{For: time.Second}, o)
	check.NoError(t, err)
	check.Equal(t, uint16(0xFFFF), p.cfg.Quanta)
	// Nothing was written by any constructor.
	stale, err := StaleState(o)
	check.NoError(t, err)
	check.Empty(t, stale)
}

func TestStateFile(t *testing.T) {
	o := Options{StateDir: filepath.Join(t.TempDir(), "run")}
	stale, err := StaleState(o)
	check.NoError(t, err)
	check.Empty(t, stale)
	// The pid is beyond any pid_max (at most 2^22): its owner is dead,
	// so the state is stale.
	s := &state{Injector: "netem", Iface: "eth1", Ifindex: 3, PID: 1 << 30, Created: time.Unix(1e9, 0).UTC(),
		Saved: &savedQdisc{Kind: "tbf", Handle: 0x10000, Options: []byte{1, 2}}, QdiscHandle: ProjectQdiscHandle}
	check.NoError(t, writeState(o, s))
	got, err := readState(o, "eth1")
	check.NoError(t, err)
	check.Equal(t, s, got)
	stale, err = StaleState(o)
	check.NoError(t, err)
	check.Equal(t, []string{"eth1"}, stale)
	check.ErrorIs(t, checkNoStale(o, "eth1"), ErrStaleState)
	check.NoError(t, checkNoStale(o, "eth2"))
	// A state file whose owner runs is no stale state: the interface is
	// in use, and the error names the owner.
	check.NoError(t, writeState(o, &state{Injector: "stall", Iface: "eth3", PID: os.Getpid()}))
	err = checkNoStale(o, "eth3")
	check.ErrorIs(t, err, ErrBusy)
	if errors.Is(err, ErrStaleState) {
		t.Errorf("error %v: a live owner's state called stale", err)
	}
	check.ErrorContains(t, err, fmt.Sprintf("in use by pid %d (", os.Getpid()))
	check.NoError(t, removeState(o, "eth3"))
	// A pause injection's flow-control change on the DUT blocks the DUT.
	check.NoError(t, writeState(o, &state{Injector: "pause", Iface: "p0", FlowControl: &savedPause{Iface: "eth2"}}))
	check.ErrorContains(t, checkNoStale(o, "eth2"), "recorded in p0")
	check.NoError(t, removeState(o, "p0"))
	// No temporary files are left next to it.
	ents, _ := os.ReadDir(o.StateDir)
	check.Len(t, ents, 1)
	check.NoError(t, removeState(o, "eth1"))
	check.NoError(t, removeState(o, "eth1"))
	got, err = readState(o, "eth1")
	check.NoError(t, err)
	check.Nil(t, got)

	// A corrupt state file is an error, not "clean".
	check.NoError(t, os.WriteFile(statePath(o, "eth3"), []byte("{"), 0o644))
	_, err = readState(o, "eth3")
	check.ErrorContains(t, err, "corrupt state file")
	check.ErrorIs(t, checkNoStale(o, "eth3"), ErrStaleState)
}

func FuzzParseState(f *testing.F) {
	seed, _ := os.ReadFile("testdata/state-netem-tbf.json")
	f.Add(seed)
	f.Add([]byte(`{"version":1,"injector":"pause","iface":"eth0","flow_control":{"iface":"../x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		s, err := parseState(b)
		if err != nil {
			return
		}
		// Whatever parses names safe file names.
		if validIfaceName(s.Iface) != nil || (s.FlowControl != nil && validIfaceName(s.FlowControl.Iface) != nil) {
			t.Fatalf("accepted unsafe names: %+v", s)
		}
	})
}

func TestStateFixture(t *testing.T) {
	b, err := os.ReadFile("testdata/state-netem-tbf.json")
	check.NoError(t, err)
	s, err := parseState(b)
	check.NoError(t, err)
	check.Equal(t, "netem", s.Injector)
	check.Equal(t, "tbf 1:", s.Saved.String())
}

// TestStateVersions: a version-1 file's DUT was looked up in the partner
// port's namespace, so it is read with that namespace; version 2 records
// the DUT's own ("" the caller's); other versions are refused.
func TestStateVersions(t *testing.T) {
	const fc = `"flow_control":{"iface":"eth0","ifindex":2,"rx":true}`
	for _, c := range []struct {
		file, wantNS string
	}{
		{`{"version":1,"injector":"pause","iface":"eth1","netns":"/run/netns/p",` + fc + `}`, "/run/netns/p"},
		{`{"version":2,"injector":"pause","iface":"eth1","netns":"/run/netns/p",` + fc + `}`, ""},
		{`{"version":2,"injector":"pause","iface":"eth1","netns":"/run/netns/p","flow_control":{"iface":"eth0","netns":"/run/netns/d"}}`, "/run/netns/d"},
	} {
		s, err := parseState([]byte(c.file))
		check.NoError(t, err)
		check.Equal(t, c.wantNS, s.FlowControl.NetNS)
		check.Equal(t, c.wantNS, s.FlowControl.options(Options{NetNS: "/run/netns/p", StateDir: "d"}).NetNS)
	}
	_, err := parseState([]byte(`{"version":3,"injector":"pause","iface":"eth1"}`))
	check.ErrorContains(t, err, "state file version 3, want 2")
}

// check holds fatal assertions with (-want +got) diffs.
var check checker

type checker struct{}

func (checker) NoError(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func (checker) Error(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
}

func (checker) ErrorIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

func (checker) ErrorContains(t testing.TB, err error, sub string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), sub) {
		t.Fatalf("error %v, want one containing %q", err, sub)
	}
}

func (checker) Equal(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("%v (-want +got):\n%s", msg, d)
	}
}

func (checker) Nil(t testing.TB, v any, msg ...any) {
	t.Helper()
	if v != nil && !reflectNil(v) {
		t.Fatalf("%v: got %v, want nil", msg, v)
	}
}

func (checker) NotZero(t testing.TB, v uint64) {
	t.Helper()
	if v == 0 {
		t.Fatal("got zero")
	}
}

func (checker) InDelta(t testing.TB, want, got, delta float64) {
	t.Helper()
	if math.Abs(want-got) > delta {
		t.Fatalf("got %v, want %v ± %v", got, want, delta)
	}
}

func (checker) Less(t testing.TB, a, b time.Duration) {
	t.Helper()
	if a >= b {
		t.Fatalf("%v is not less than %v", a, b)
	}
}

func (checker) Contains(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}

func (checker) Empty(t testing.TB, v []string) {
	t.Helper()
	if len(v) != 0 {
		t.Fatalf("got %q, want empty", v)
	}
}

func (checker) Len(t testing.TB, v []os.DirEntry, n int) {
	t.Helper()
	if len(v) != n {
		t.Fatalf("got %d entries, want %d", len(v), n)
	}
}

func reflectNil(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// TestStartInject checks the guard every Inject begins with: a second
// Inject names the fault, an ended context is refused, else go ahead.
func TestStartInject(t *testing.T) {
	live := context.Background()
	check.NoError(t, startInject(live, nil, "netem on eth0"))
	err := startInject(live, &state{}, "netem on eth0")
	check.Error(t, err)
	check.Equal(t, "netem on eth0 already injected", err.Error())
	ended, cancel := context.WithCancel(live)
	cancel()
	check.ErrorIs(t, startInject(ended, nil, "stall on eth0"), context.Canceled)
}
