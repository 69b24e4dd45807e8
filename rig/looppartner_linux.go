//go:build linux

package rig

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"txtimeout/faultinject"
	"txtimeout/rig/internal/guestproto"
	"txtimeout/rig/partner"
)

// The loop topology's guest init starts the test binary again, in the
// partner port's namespace, with guestproto.LoopPartnerEnv: every test
// binary that links this package then serves the link partner instead of
// running tests, as `txtimeout partner` does on a hardware rig's partner
// port. Only a child of the guest's init (PID 1) does.
func init() {
	if iface := os.Getenv(guestproto.LoopPartnerEnv); iface != "" && os.Getppid() == 1 {
		os.Exit(serveLoopPartner(iface, os.Getenv(guestproto.LoopPartnerIPEnv)))
	}
}

// loopPartnerStateDir holds the partner's PAUSE floods' state files.
const loopPartnerStateDir = "/tmp/txtimeout-loop-partner"

// serveLoopPartner serves the partner on iface for ip until SIGTERM and
// returns the exit status. It tells the init that it serves with a line
// on file descriptor 3.
func serveLoopPartner(iface, ip string) int {
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "loop partner: "+format+"\n", args...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	addr := net.ParseIP(ip).To4()
	if addr == nil {
		logf("%s=%q: not an IPv4 address", guestproto.LoopPartnerIPEnv, ip)
		return 2
	}
	l, err := partner.OpenPacket(iface, logf)
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer l.Close()
	ifi := l.Interface()
	p, err := partner.New(partner.Config{MAC: ifi.HardwareAddr, IP: addr, MTU: ifi.MTU, Logf: logf})
	if err != nil {
		logf("%v", err)
		return 1
	}
	ready := os.NewFile(3, "ready")
	fmt.Fprintf(ready, "serving %s %s\n", iface, addr)
	ready.Close()
	err = p.ServePacket(ctx, l, faultinject.Options{StateDir: loopPartnerStateDir})
	logf("stopped: %+v", p.Stats())
	if ctx.Err() != nil {
		return 0
	}
	logf("%v", err)
	return 1
}
