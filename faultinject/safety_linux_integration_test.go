//go:build linux

package faultinject

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// Every injector refuses an unsafe interface with one line, before it
// writes a state file or changes anything.
func TestIntegrationSafetyChecks(t *testing.T) {
	usePfifoSeam(t)
	v := testVeth(t)

	// A second veth pair, left down.
	down := v.ns.AddVeth(t, nil).A.Name
	// A default route through A (as on a management link).
	if err := v.handle.AddrAdd(mustLink(t, v, v.A), mustAddr(t, "198.18.0.1/24")); err != nil {
		t.Fatal(err)
	}
	gw := net.ParseIP("198.18.0.254")
	if err := v.handle.RouteAdd(&netlink.Route{LinkIndex: v.AIdx, Gw: gw}); err != nil {
		t.Fatal(err)
	}
	lo := mustLink(t, v, "lo")
	if err := v.handle.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		iface string
		want  string
	}{
		{"txto-nonexist", "no such interface"},
		{down, "is down"},
		{"lo", "loopback"},
		{v.A, "default route"},
	}
	for _, c := range cases {
		o := v.opts(t)
		injectors := map[string]func() (Injector, error){
			"netem": func() (Injector, error) { return NewNetem(c.iface, NetemConfig{}, o) },
			"stall": func() (Injector, error) { return NewStall(c.iface, StallConfig{For: time.Second}, o) },
			"pause": func() (Injector, error) { return NewPauseFlood(c.iface, PauseConfig{For: time.Second}, o) },
			"pause-dut": func() (Injector, error) {
				return NewPauseFlood(v.B, PauseConfig{For: time.Second, DUTIface: c.iface, DUTNetNS: v.NS}, o)
			},
		}
		for name, mk := range injectors {
			inj, err := mk()
			if err != nil {
				t.Fatalf("%s %s: constructor: %v", name, c.iface, err)
			}
			err = inj.Inject(context.Background())
			if err == nil {
				inj.Restore(context.Background())
				t.Errorf("%s on %s: Inject succeeded, want refusal", name, c.iface)
				continue
			}
			if !errors.Is(err, ErrUnsafeInterface) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s on %s: Inject = %q, want one line with ErrUnsafeInterface and %q", name, c.iface, err, c.want)
			}
			if stale, _ := StaleState(o); len(stale) != 0 {
				t.Errorf("%s on %s: state written for a refused injection: %v", name, c.iface, stale)
			}
			if err := inj.Restore(context.Background()); err != nil {
				t.Errorf("%s on %s: Restore after refusal: %v", name, c.iface, err)
			}
		}
	}

	// CarriesDefaultRoute, for tools without an injector (pktgen), tells
	// the management-like link from its peer.
	for iface, want := range map[string]bool{v.A: true, v.B: false} {
		got, err := CarriesDefaultRoute(iface, v.opts(t))
		if err != nil || got != want {
			t.Errorf("CarriesDefaultRoute(%s) = %v, %v; want %v", iface, got, err, want)
		}
	}

	// AllowDefaultRoute lets the DUT link through.
	o := v.opts(t)
	o.AllowDefaultRoute = true
	check.NoError(t, injectNetem(t, v.A, o).Restore(context.Background()))
}

// A veth has no ndo_tx_timeout, so the kernel never fires its TX
// watchdog: every injector refuses it with one line naming that, unless
// Options.AllowNoTxTimeout opts in (as the other tests here do).
func TestIntegrationSafetyNoTxTimeoutHandler(t *testing.T) {
	v, o := seamVeth(t)
	o.AllowNoTxTimeout = false
	dutPause := PauseConfig{For: time.Second, DUTIface: v.B, DUTNetNS: v.NS}
	injectors := map[string]func() (Injector, error){
		"netem": func() (Injector, error) { return NewNetem(v.A, NetemConfig{}, o) },
		"stall": func() (Injector, error) { return NewStall(v.A, StallConfig{For: time.Second}, o) },
		// The DUT whose flow control the flood switches on must have a
		// handler; the partner port that sends the frames need not.
		"pause": func() (Injector, error) { return NewPauseFlood(v.A, dutPause, o) },
	}
	for name, mk := range injectors {
		inj, err := mk()
		if err != nil {
			t.Fatalf("%s: constructor: %v", name, err)
		}
		err = inj.Inject(context.Background())
		if err == nil {
			inj.Restore(context.Background())
			t.Errorf("%s on veth %s: Inject succeeded, want refusal", name, v.A)
			continue
		}
		if !errors.Is(err, ErrUnsafeInterface) || !strings.Contains(err.Error(), "has no tx-timeout handler (veth)") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s on veth %s: Inject = %q, want one line with ErrUnsafeInterface and \"has no tx-timeout handler (veth)\"", name, v.A, err)
		}
		if stale, _ := StaleState(o); len(stale) != 0 {
			t.Errorf("%s: state written for a refused injection: %v", name, stale)
		}
		if r := v.root(t, v.AIdx); IsProjectHandle(r.Handle) {
			t.Errorf("%s: the project's qdisc is on %s after a refusal", name, v.A)
		}
	}

	// A veth as the partner port alone is fine.
	p, err := NewPauseFlood(v.A, PauseConfig{For: 50 * time.Millisecond}, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Inject(context.Background()); err != nil {
		t.Errorf("pause from veth partner port %s: %v, want it accepted (only the DUT needs a handler)", v.A, err)
	} else if err := p.Restore(context.Background()); err != nil {
		t.Error(err)
	}

	o.AllowNoTxTimeout = true
	check.NoError(t, injectNetem(t, v.A, o).Restore(context.Background()))
}

func TestNoTxTimeoutKind(t *testing.T) {
	for typ, want := range map[string]string{"veth": "veth", "dummy": "dummy", "tuntap": "tun", "bridge": "bridge", "vlan": "vlan"} {
		if k, none := noTxTimeoutKind(typ); !none || k != want {
			t.Errorf("noTxTimeoutKind(%q) = %q, %v; want %q, true", typ, k, none, want)
		}
	}
	// Physical NICs (no IFLA_INFO_KIND) and kinds whose drivers have a
	// handler (IPoIB) pass.
	for _, typ := range []string{"device", "ipoib", ""} {
		if k, none := noTxTimeoutKind(typ); none {
			t.Errorf("noTxTimeoutKind(%q) = %q, true; want false", typ, k)
		}
	}
}

// A state file from an earlier run blocks a new injection until Cleanup.
func TestIntegrationStaleStateRefused(t *testing.T) {
	v, o := seamVeth(t)
	if err := writeState(o, &state{Injector: "stall", Iface: v.A, PID: 1 << 30, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	n, _ := NewNetem(v.A, NetemConfig{}, o)
	err := n.Inject(context.Background())
	if !errors.Is(err, ErrStaleState) || !strings.Contains(err.Error(), "txtimeout cleanup -iface "+v.A) {
		t.Fatalf("Inject = %v, want ErrStaleState naming the cleanup command", err)
	}
	acts, err := Cleanup(context.Background(), v.A, o)
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	t.Logf("Cleanup: %q", acts)
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Fatalf("stale after Cleanup: %v", stale)
	}
	if err := n.Inject(context.Background()); err != nil {
		t.Fatalf("Inject after Cleanup: %v", err)
	}
	n.Restore(context.Background())
}

func mustLink(t *testing.T, v *vethPair, name string) netlink.Link {
	t.Helper()
	l, err := v.handle.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAddr(t *testing.T, s string) *netlink.Addr {
	t.Helper()
	a, err := netlink.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
