package rig

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"txtimeout/faultinject"
	"txtimeout/rig/guest"
)

// testResumeEndsStall stalls the partner for 15 s through faultinject with
// guest.ResumePartner as the resume hook, checks that TX froze, and has
// Restore end the stall early: Restore must come back before the stall's
// own end with the partner's acknowledgement of a resume frame, and TX
// must move again before that end. The host checks that the partner
// received the request while stalled (Result.Resumes).
func testResumeEndsStall(t *testing.T) {
	const stall = 15 * time.Second
	var hookCalls atomic.Int32
	hook := func(context.Context) error {
		hookCalls.Add(1)
		return guest.ResumePartner()
	}
	s, ctx := injectStall(t, DUTIface, PeerMAC, stall, hook)
	until := s.Until()

	var attempts, sent atomic.Uint64
	stopUDP := offerUDP(t, ctx, &attempts, &sent)
	defer stopUDP()

	// Frozen: tx_packets stands still for 2 s while datagrams are offered.
	// It must happen well inside the stall, or there is nothing to end.
	var frozenAt uint64
	lastTX, lastAttempts, since := txPackets(t), attempts.Load(), time.Now()
	for deadline := until.Add(-5 * time.Second); ; {
		time.Sleep(100 * time.Millisecond)
		tx := txPackets(t)
		if tx != lastTX {
			lastTX, lastAttempts, since = tx, attempts.Load(), time.Now()
		} else if time.Since(since) >= 2*time.Second && attempts.Load() > lastAttempts {
			frozenAt = tx
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tx_packets never stood still for 2s before %v: the stall did not stop the device", deadline.Format("15:04:05.000"))
		}
	}
	t.Logf("tx_packets frozen at %d, %v before the stall's own end", frozenAt, time.Until(until).Round(100*time.Millisecond))

	if err := s.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	restored := time.Now()
	t.Log(s.Describe())
	if hookCalls.Load() != 1 {
		t.Errorf("resume hook called %d times, want 1", hookCalls.Load())
	}
	if !restored.Before(until) {
		t.Fatalf("Restore returned at %s, not before the stall's own end at %s: ResumePartner did not end it",
			restored.Format("15:04:05.000"), until.Format("15:04:05.000"))
	}
	if d := s.Describe(); !strings.Contains(d, "ended early") {
		t.Errorf("Describe = %q, want it to say the stall ended early", d)
	}
	for txPackets(t) <= frozenAt {
		if !time.Now().Before(until) {
			t.Fatalf("tx_packets stayed at %d until the stall's own end although it was resumed", frozenAt)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("tx_packets moving again %v before the stall's own end", time.Until(until).Round(10*time.Millisecond))
	stopUDP()
	if st := ping(t, 56, 1); st.PacketsRecv != 1 {
		t.Errorf("no echo reply after the resumed stall")
	}
}

// injectStall stalls the partner of iface (peer) for d through faultinject
// with hook as its resume hook; the stall is restored and ctx (which
// bounds the test's waits) ends when the test does.
func injectStall(t *testing.T, iface string, peer net.HardwareAddr, d time.Duration, hook func(context.Context) error) (*faultinject.Stall, context.Context) {
	t.Helper()
	s, err := faultinject.NewStall(iface, faultinject.StallConfig{For: d, PeerMAC: peer, Resume: hook},
		faultinject.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	t.Cleanup(cancel)
	if err := s.Inject(ctx); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	t.Cleanup(func() { s.Restore(context.Background()) })
	return s, ctx
}
