package faultinject

import (
	"context"
	"testing"
	"time"
)

// TestRestoreBound: each injector says how long its Restore may take, so
// that callers need not know which one waits for a partner.
func TestRestoreBound(t *testing.T) {
	o := Options{StateDir: t.TempDir()}
	st, err := NewStall("eth9", StallConfig{For: 7 * time.Second, AckTimeout: time.Second}, o)
	if err != nil {
		t.Fatal(err)
	}
	nm, err := NewNetem("eth9", NetemConfig{}, o)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := NewPauseFlood("eth9", PauseConfig{For: time.Minute}, o)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := NewNapiStarve("eth9", NapiConfig{For: 5 * time.Second}, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		inj  Injector
		want time.Duration
	}{
		// A stall cannot be ended from this side: the acknowledgement
		// and the stall's whole length, then Restore's own steps.
		{st, time.Second + 7*time.Second + RestoreSteps},
		{nm, RestoreSteps},
		{pf, RestoreSteps},
		{ns, RestoreSteps},
	} {
		if got := c.inj.RestoreBound(); got != c.want {
			t.Errorf("%s: RestoreBound = %v, want %v", c.inj.Name(), got, c.want)
		}
		// Before Inject nothing is in place: no channel to wait on.
		if c.inj.Done() != nil {
			t.Errorf("%s: Done before Inject is not nil", c.inj.Name())
		}
	}
	if s := st.Status(context.Background()); s != "" {
		t.Errorf("stall Status before Inject = %q, want empty", s)
	}
	if s := pf.Status(context.Background()); s != "0 PAUSE frames sent" {
		t.Errorf("pause Status before Inject = %q", s)
	}
}
