package drivers

import (
	"regexp"
	"slices"
	"testing"
)

// groups are the named groups a Line's expression may have: what the
// kmsg Matcher reads from them.
var groups = []string{"queue", "ms", "usecs", "iface"}

// TestTableIsConsistent checks every row: names and link kinds unique,
// versions that parse, facts only where a handler is, lines whose
// expressions compile, of a known kind, with known groups and a source,
// and QEMU models that load the row's own driver.
func TestTableIsConsistent(t *testing.T) {
	names, kinds, devices := map[string]bool{}, map[string]string{}, map[string]string{}
	for _, d := range Table {
		if d.Name == "" || names[d.Name] {
			t.Errorf("empty or duplicate driver row %q", d.Name)
		}
		names[d.Name] = true
		for _, k := range d.Kinds {
			if k == "" || kinds[k] != "" {
				t.Errorf("%s: empty link kind, or one %s has too", d.Name, kinds[k])
			}
			kinds[k] = d.Name
		}
		if d.Since != "" && ParseVersion(d.Since) == nil {
			t.Errorf("%s: bad Since %q", d.Name, d.Since)
		}
		if !d.TxTimeout && (d.Since != "" || d.Logs != "" || len(d.Lines) > 0) {
			t.Errorf("%s: a driver without a handler has no Since, Logs or Lines", d.Name)
		}
		checkLines(t, d.Name, d.Lines)
		for _, m := range d.QEMU {
			if m.Device == "" || devices[m.Device] != "" {
				t.Errorf("%s: empty QEMU device, or one %s has too", d.Name, devices[m.Device])
			}
			devices[m.Device] = d.Name
			if len(m.Modules) == 0 || m.Modules[len(m.Modules)-1] != d.Name {
				t.Errorf("%s: QEMU model %s loads %q, which does not end with the driver", d.Name, m.Device, m.Modules)
			}
		}
	}
	checkLines(t, "Common", Common)
}

func checkLines(t *testing.T, who string, lines []Line) {
	t.Helper()
	for _, l := range lines {
		re, err := regexp.Compile(l.Re)
		if err != nil {
			t.Errorf("%s: %v", who, err)
			continue
		}
		if !slices.Contains(LineKinds, l.Kind) {
			t.Errorf("%s %q: unknown kind %q", who, l.Re, l.Kind)
		}
		for _, g := range re.SubexpNames()[1:] {
			if g != "" && !slices.Contains(groups, g) {
				t.Errorf("%s %q: unknown group %q (known: %q)", who, l.Re, g, groups)
			}
		}
		if l.Whole && !slices.Contains(re.SubexpNames(), "iface") {
			t.Errorf("%s %q: a Whole line names the interface in an iface group", who, l.Re)
		}
		if l.Source == "" {
			t.Errorf("%s %q has no Source", who, l.Re)
		}
	}
}

func TestLookup(t *testing.T) {
	if d, ok := Lookup("virtio_net"); !ok || !d.TxTimeout || d.Since != "5.16" {
		t.Errorf(`Lookup("virtio_net") = %+v, %v`, d, ok)
	}
	for _, name := range []string{"", "foonic"} {
		if d, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) = %+v, want none", name, d)
		}
	}
}

func TestLookupKind(t *testing.T) {
	for kind, want := range map[string]string{"veth": "veth", "tuntap": "tun", "tun": "tun", "vlan": "vlan"} {
		if d, ok := LookupKind(kind); !ok || d.Name != want {
			t.Errorf("LookupKind(%q) = %q, %v; want %q", kind, d.Name, ok, want)
		}
	}
	for _, kind := range []string{"", "device", "ipoib"} {
		if d, ok := LookupKind(kind); ok {
			t.Errorf("LookupKind(%q) = %q, want none", kind, d.Name)
		}
	}
}

func TestResetExpected(t *testing.T) {
	for name, want := range map[string]bool{
		"e1000": true, "e1000e": true, "igb": true, "ixgbe": true, "bnxt_en": true, "tg3": true, "i40e": true, "ice": true,
		"virtio_net": false, "mlx5_core": false, "r8169": false, "veth": false, "": false, "foonic": false,
		"8139too": false, // its reset line is printed at debug level only
	} {
		if got := ResetExpected(name); got != want {
			t.Errorf("ResetExpected(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNICs(t *testing.T) {
	var got []string
	for _, n := range NICs() {
		got = append(got, n.Device+"="+n.Driver)
	}
	want := []string{"virtio-net-pci=virtio_net", "e1000=e1000", "e1000e=e1000e", "igb=igb", "rtl8139=8139cp"}
	if !slices.Equal(got, want) {
		t.Errorf("NICs() = %q, want %q", got, want)
	}
}

func TestReleaseBefore(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"5.15.0-91-generic", "5.16", true},
		{"5.16.0", "5.16", false},
		{"6.1.0-50-amd64", "5.16", false},
		{"4.19.0", "5.2", true},
		{"6.12.117+deb12-amd64", "6.12.118", true},
		{"6", "5.16", false},       // unparsable: not older
		{"garbage", "5.16", false}, // unparsable: not older
	} {
		if got := ReleaseBefore(tc.a, tc.b); got != tc.want {
			t.Errorf("ReleaseBefore(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
