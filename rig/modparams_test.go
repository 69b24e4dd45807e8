package rig

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseModParams(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string // a substring of the error; "" wants none
	}{
		{in: "", want: nil},
		{in: "  \n ", want: nil},
		{in: "e1000e.IntMode=1", want: []string{"e1000e.IntMode=1"}},
		{in: "e1000e.IntMode=1 foo.bar=x", want: []string{"e1000e.IntMode=1", "foo.bar=x"}},
		{in: "e1000e.IntMode=1,foo.bar=x", want: []string{"e1000e.IntMode=1", "foo.bar=x"}},
		{in: " e1000e.IntMode=1,\tfoo.bar=x, ", want: []string{"e1000e.IntMode=1", "foo.bar=x"}},
		// A comma not followed by MODULE.PARAM= is an array value's.
		{in: "e1000e.IntMode=1,1 e1000e.copybreak=0", want: []string{"e1000e.IntMode=1,1", "e1000e.copybreak=0"}},
		{in: "e1000e.IntMode=1,1,foo.bar=x", want: []string{"e1000e.IntMode=1,1", "foo.bar=x"}},
		// '-' is '_' in names, as the kernel compares them.
		{in: "virtio-net.napi-tx=1", want: []string{"virtio_net.napi_tx=1"}},
		// The later of two items for one parameter wins, in place.
		{in: "e1000e.IntMode=2 foo.bar=x e1000e.IntMode=1", want: []string{"e1000e.IntMode=1", "foo.bar=x"}},
		{in: "8139cp.debug=3", want: []string{"8139cp.debug=3"}},
		{in: "m.p=a=b:c/d", want: []string{"m.p=a=b:c/d"}},

		{in: "e1000e.IntMode", err: `"e1000e.IntMode": want MODULE.PARAM=VALUE`},
		{in: "IntMode=1", err: "want MODULE.PARAM=VALUE"},
		{in: ".IntMode=1", err: "want MODULE.PARAM=VALUE"},
		{in: "e1000e.=1", err: "want MODULE.PARAM=VALUE"},
		{in: "e1000e.IntMode=", err: "empty value"},
		{in: "e1000e!.IntMode=1", err: `module name "e1000e!"`},
		{in: "e1000e.Int.Mode=1", err: `parameter name "Int.Mode"`},
		{in: `m.p="a"`, err: "quotes"},
		{in: `m.p=it's`, err: "quotes"},
		{in: "m.p=caf\u00e9", err: "non-ASCII"},
		// A comma that begins no item, first in the list, is no item's.
		{in: ",1", err: "want MODULE.PARAM=VALUE"},
	} {
		got, err := ParseModParams(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrModParam) {
				t.Errorf("ParseModParams(%q): error %v, want ErrModParam containing %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseModParams(%q): error of more than one line: %q", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseModParams(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseModParams(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

// Items set in Config directly (not split from a string) are checked the
// same way, so a space or newline in one cannot reach the kernel.
func TestWithDefaultsModParams(t *testing.T) {
	for _, bad := range [][]string{{"e1000e.IntMode=1 2"}, {"e1000e.IntMode=1\n"}, {""}, {"e1000e.IntMode"}} {
		_, err := Config{ModParams: bad}.withDefaults()
		if !errors.Is(err, ErrModParam) || !strings.HasPrefix(err.Error(), "rig: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("withDefaults(%q): %v, want one line beginning rig: wrapping ErrModParam", bad, err)
		}
	}
	c, err := Config{ModParams: []string{"e1000e.Int-Mode=1", "e1000e.Int_Mode=2"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"e1000e.Int_Mode=2"}, c.ModParams); d != "" {
		t.Errorf("normalised (-want +got):\n%s", d)
	}
}

func TestModuleParams(t *testing.T) {
	mods := []kmod{
		{Name: "sch_netem"},
		{Name: "e1000e", params: []string{"copybreak", "IntMode", "InterruptThrottleRate"}},
		{Name: "pktgen", params: []string{"pg_count_d"}},
	}
	ix := &moduleIndex{release: "6.1.0-56-amd64", builtin: map[string]bool{"af_packet": true}}
	got, err := moduleParams([]string{"e1000e.IntMode=1", "pktgen.pg_count_d=10", "e1000e.copybreak=0"}, mods, ix)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"e1000e": "IntMode=1 copybreak=0", "pktgen": "pg_count_d=10"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("moduleParams (-want +got):\n%s", d)
	}
	for _, tc := range []struct{ item, err string }{
		{"e1000.IntMode=1", "e1000.IntMode=1: the rig does not load module e1000 (it loads sch_netem, e1000e, pktgen; the NIC model selects the driver)"},
		{"af_packet.x=1", "af_packet is built into kernel 6.1.0-56-amd64"},
		{"e1000e.intmode=1", "module e1000e has no parameter intmode (it has copybreak, IntMode, InterruptThrottleRate)"},
		{"sch_netem.x=1", "module sch_netem has no parameter x (it has none)"},
	} {
		_, err := moduleParams([]string{tc.item}, mods, ix)
		if !errors.Is(err, ErrModParam) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("moduleParams(%q): %v, want ErrModParam containing %q", tc.item, err, tc.err)
		}
	}
}

func TestParamsOf(t *testing.T) {
	// As in e1000e.ko's .modinfo (Debian 6.1): parmtype for every
	// parameter, parm only where MODULE_PARM_DESC gave a description.
	info := map[string][]string{
		"parmtype": {"copybreak:uint", "IntMode:array of int", "debug:int"},
		"parm":     {"copybreak:Maximum size of packet that is copied to a new buffer on receive", "IntMode:Interrupt Mode", "extra:no parmtype"},
	}
	want := []string{"copybreak", "IntMode", "debug", "extra"}
	if d := cmp.Diff(want, paramsOf(info)); d != "" {
		t.Errorf("paramsOf (-want +got):\n%s", d)
	}
}

// The pinned kernel's e1000e declares IntMode (the NapiStarve scenario's
// knob), and a typo of it is refused before any boot.
func TestIntegrationModParamsDebian(t *testing.T) {
	k := debianModules(t)
	ix, err := loadModuleIndex(k.Modules)
	if err != nil {
		t.Fatal(err)
	}
	nic, _ := LookupNIC("e1000e")
	mods, err := ix.resolve(nic.Modules, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := moduleParams([]string{"e1000e.IntMode=1"}, mods, ix)
	if err != nil {
		t.Fatal(err)
	}
	if got["e1000e"] != "IntMode=1" {
		t.Errorf("e1000e params %q, want IntMode=1", got["e1000e"])
	}
	_, err = moduleParams([]string{"e1000e.IntMod=1"}, mods, ix)
	if !errors.Is(err, ErrModParam) || !strings.Contains(err.Error(), "IntMode") {
		t.Errorf("typo IntMod: %v, want ErrModParam listing IntMode", err)
	}
	t.Logf("%v", err)
}
