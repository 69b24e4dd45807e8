//go:build linux

package faultinject

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"txtimeout/internal/testnet"
)

// The loop rig's layout: the partner port in one namespace, the DUT in
// another. The DUT is found in PauseConfig.DUTNetNS, not Options.NetNS;
// veth has no pause parameters, so asking for its flow control fails with
// ErrUnsupported and nothing is sent or recorded.
func TestIntegrationPauseFloodDUTNetNS(t *testing.T) {
	p := testnet.NewLinked(t) // A, the DUT, in one namespace; B, the partner port, in another
	o := Options{NetNS: p.B.NS.Path, StateDir: t.TempDir(), AllowNoTxTimeout: true}
	capt := listenIn(t, p.A.NS.Path, &net.Interface{Index: p.A.Index, Name: p.A.Name, HardwareAddr: p.A.MAC}, EtherTypeMACControl)
	for _, c := range []struct {
		name, dutNS string
		want        error
	}{
		// "" is the caller's namespace, where the DUT is not: the
		// partner port's namespace is not searched either.
		{"caller's namespace", "", ErrUnsafeInterface},
		{"partner's namespace", p.B.NS.Path, ErrUnsafeInterface},
		{"DUT's namespace", p.A.NS.Path, ErrUnsupported},
	} {
		f, err := NewPauseFlood(p.B.Name, PauseConfig{For: time.Second, DUTIface: p.A.Name, DUTNetNS: c.dutNS}, o)
		if err != nil {
			t.Fatal(err)
		}
		err = f.Inject(context.Background())
		t.Logf("%s: Inject: %v", c.name, err)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Inject = %v, want %v", c.name, err, c.want)
		}
		if stale, _ := StaleState(o); len(stale) != 0 {
			t.Errorf("%s: state written: %v", c.name, stale)
		}
		if err := f.Restore(context.Background()); err != nil {
			t.Errorf("%s: Restore after refusal: %v", c.name, err)
		}
	}
	if f := readFrame(t, capt, time.Now().Add(200*time.Millisecond)); f != nil {
		t.Errorf("a frame was sent: %x", f)
	}
	// The DUT's lock was released with the partner port's.
	release, err := Lock(p.A.Name, o)
	if err != nil {
		t.Fatalf("DUT still locked after the refusals: %v", err)
	}
	release()

	// Without the DUT, the frames cross from the partner's namespace.
	want, err := MarshalPause(p.B.MAC, DefaultQuanta)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewPauseFlood(p.B.Name, PauseConfig{For: 50 * time.Millisecond}, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Inject(context.Background()); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(func() { f.Restore(context.Background()) })
	got := readFrame(t, capt, time.Now().Add(5*time.Second))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frame on %s in the DUT's namespace (-want +got):\n%s", p.A.Name, diff)
	}
	if err := f.Restore(context.Background()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	t.Log(f.Describe())
}

// A state file records the DUT's namespace, and Cleanup sets its flow
// control back there: on veth that fails with ErrUnsupported, which
// shows the DUT was found, with its recorded index, in its own namespace
// (in the partner's it does not exist). A version-1 file had the DUT in
// the partner's namespace, where Cleanup then finds it gone.
func TestIntegrationCleanupPauseDUTNetNS(t *testing.T) {
	p := testnet.NewLinked(t)
	o := Options{StateDir: t.TempDir()}
	const deadPID = 999999999 // above any pid_max
	st := &state{
		Injector: "pause", Iface: p.B.Name, Ifindex: p.B.Index, NetNS: p.B.NS.Path, PID: deadPID,
		Created:     time.Now().UTC().Truncate(time.Second),
		FlowControl: &savedPause{Iface: p.A.Name, Ifindex: p.A.Index, NetNS: p.A.NS.Path},
	}
	if err := writeState(o, st); err != nil {
		t.Fatal(err)
	}
	got, err := readState(o, p.B.Name)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("state file round trip (-want +got):\n%s", diff)
	}
	acts, err := Cleanup(context.Background(), p.B.Name, o)
	t.Logf("Cleanup: %q, %v", acts, err)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "setting flow control of "+p.A.Name) {
		t.Errorf("Cleanup = %v, want ErrUnsupported setting the flow control of %s", err, p.A.Name)
	}
	if _, err := os.Stat(statePath(o, p.B.Name)); err != nil {
		t.Errorf("state file gone though flow control was not set back: %v", err)
	}

	// The same, as version 1 wrote it.
	b, err := os.ReadFile(statePath(o, p.B.Name))
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), `"version": 2`, `"version": 1`, 1))
	b = []byte(strings.Replace(string(b), `"netns": "`+p.A.NS.Path+`",`, "", 1))
	if strings.Contains(string(b), p.A.NS.Path) || !strings.Contains(string(b), `"version": 1`) {
		t.Fatalf("not a version-1 file:\n%s", b)
	}
	if err := os.WriteFile(statePath(o, p.B.Name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	acts, err = Cleanup(context.Background(), p.B.Name, o)
	t.Logf("Cleanup of the version-1 file: %q, %v", acts, err)
	if err != nil || !strings.Contains(strings.Join(acts, "\n"), p.A.Name+" (netns "+p.B.NS.Path+"): gone") {
		t.Errorf("Cleanup = %q, %v; want %s found gone in the partner's namespace", acts, err, p.A.Name)
	}
	if stale, _ := StaleState(o); len(stale) != 0 {
		t.Errorf("state left: %v", stale)
	}
}
