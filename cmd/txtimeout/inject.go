package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"txtimeout/faultinject"
)

func init() {
	register(command{
		name:    "inject",
		summary: "stall a transmit path by hand (netem, stall, pause, napi), hold, restore",
		run:     runInject,
	})
}

const injectUsage = `usage:
  txtimeout inject netem -iface IFACE [-delay 9s] [-jitter D] [-loss PCT] [-limit N] -for D
  txtimeout inject stall -iface IFACE [-peer MAC] [-ack-timeout 2s] -for D
  txtimeout inject pause -partner IFACE [-quanta N] [-dut IFACE [-dut-netns PATH]] -for D
  txtimeout inject napi -iface IFACE [-cpu N] [-priority 50] -for D (at most 10s)
common flags: -netns PATH -state-dir DIR -allow-default-route -allow-no-handler -clean-stale`

// maxHold bounds how long "inject" holds a fault.
const maxHold = time.Hour

// commonFlags are shared by every injector.
type commonFlags struct {
	netns, stateDir   string
	allowDefaultRoute bool
	allowNoHandler    bool
	cleanStale        bool
	hold              time.Duration
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.netns, "netns", "", "act in this network namespace (path, e.g. /run/netns/x)")
	fs.StringVar(&c.stateDir, "state-dir", faultinject.DefaultStateDir, "directory of the crash-recovery state files")
	fs.BoolVar(&c.allowDefaultRoute, "allow-default-route", false, "allow an interface that carries a default route")
	fs.BoolVar(&c.allowNoHandler, "allow-no-handler", false, "allow an interface whose driver has no tx-timeout handler (veth, dummy, ...): the watchdog never fires there; for testing the injector itself")
	fs.BoolVar(&c.cleanStale, "clean-stale", false, "clean up state left by an earlier run first")
	fs.DurationVar(&c.hold, "for", 0, "how long to hold the fault (required)")
}

func (c *commonFlags) options() faultinject.Options {
	return faultinject.Options{NetNS: c.netns, StateDir: c.stateDir, AllowDefaultRoute: c.allowDefaultRoute, AllowNoTxTimeout: c.allowNoHandler}
}

func runInject(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("missing injector (netem, stall, pause or napi; 'txtimeout inject -h' lists them)")
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintln(stderr, injectUsage)
		return flag.ErrHelp
	}
	kind := args[0]
	fs := newFlagSet("inject "+kind, stderr)
	var c commonFlags
	c.register(fs)
	var (
		inj faultinject.Injector
		// ifaces are the interfaces -clean-stale cleans, each with
		// the options of its namespace.
		ifaces []cleanTarget
		build  func(o faultinject.Options) (faultinject.Injector, error)
	)
	switch kind {
	case "netem":
		iface := fs.String("iface", "", "DUT interface (required)")
		delay := fs.Duration("delay", faultinject.DefaultNetemDelay, "netem delay")
		jitter := fs.Duration("jitter", 0, "netem jitter")
		loss := fs.Float64("loss", 0, "loss in percent")
		limit := fs.Uint("limit", faultinject.DefaultNetemLimit, "netem queue limit in packets")
		build = func(o faultinject.Options) (faultinject.Injector, error) {
			if *iface == "" {
				return nil, usagef("-iface is required")
			}
			if *limit == 0 || *limit > 1<<31 {
				return nil, usagef("-limit %d out of range (1..%d)", *limit, 1<<31)
			}
			if *delay == 0 {
				return nil, usagef("-delay must be positive")
			}
			ifaces = []cleanTarget{{*iface, o}}
			return faultinject.NewNetem(*iface, faultinject.NetemConfig{Delay: *delay, Jitter: *jitter, Loss: *loss, Limit: uint32(*limit)}, o)
		}
	case "stall":
		iface := fs.String("iface", "", "DUT interface (required)")
		peer := fs.String("peer", "", "partner MAC address (default broadcast)")
		ackTimeout := fs.Duration("ack-timeout", faultinject.DefaultAckTimeout, "how long to wait for the partner's acknowledgement")
		build = func(o faultinject.Options) (faultinject.Injector, error) {
			if *iface == "" {
				return nil, usagef("-iface is required")
			}
			var mac net.HardwareAddr
			if *peer != "" {
				var err error
				if mac, err = net.ParseMAC(*peer); err != nil || len(mac) != 6 {
					return nil, usagef("-peer %q is not an Ethernet MAC address", *peer)
				}
			}
			if *ackTimeout <= 0 {
				return nil, usagef("-ack-timeout must be positive")
			}
			ifaces = []cleanTarget{{*iface, o}}
			return faultinject.NewStall(*iface, faultinject.StallConfig{For: c.hold, PeerMAC: mac, AckTimeout: *ackTimeout}, o)
		}
	case "pause":
		partner := fs.String("partner", "", "partner-side interface the PAUSE frames leave from (required)")
		quanta := fs.Uint("quanta", faultinject.DefaultQuanta, "pause time per frame in units of 512 bit times (1..65535)")
		dut := fs.String("dut", "", "DUT interface on this machine: switch its RX flow control on for the flood")
		var dutNetNS *string // nil: -netns's
		fs.Func("dut-netns", "the DUT's network namespace (path; default: -netns's; '' for this process's own)", func(v string) error {
			dutNetNS = &v
			return nil
		})
		build = func(o faultinject.Options) (faultinject.Injector, error) {
			if *partner == "" {
				return nil, usagef("-partner is required")
			}
			if *quanta == 0 || *quanta > 0xFFFF {
				return nil, usagef("-quanta %d out of range (1..65535)", *quanta)
			}
			ifaces = []cleanTarget{{*partner, o}}
			pc := faultinject.PauseConfig{For: c.hold, Quanta: uint16(*quanta), DUTIface: *dut}
			if *dut != "" {
				pc.DUTNetNS = o.NetNS
				if dutNetNS != nil {
					pc.DUTNetNS = *dutNetNS
				}
				do := o
				do.NetNS = pc.DUTNetNS
				ifaces = append(ifaces, cleanTarget{*dut, do})
			} else if dutNetNS != nil {
				return nil, usagef("-dut-netns needs -dut")
			}
			return faultinject.NewPauseFlood(*partner, pc, o)
		}
	case "napi":
		iface := fs.String("iface", "", "DUT interface (required)")
		cpu := fs.Int("cpu", faultinject.AutoCPU, "CPU to starve (-1: the highest online CPU)")
		prio := fs.Int("priority", faultinject.DefaultHogPriority, "the hog's SCHED_FIFO priority (2..98)")
		build = func(o faultinject.Options) (faultinject.Injector, error) {
			if *iface == "" {
				return nil, usagef("-iface is required")
			}
			ifaces = []cleanTarget{{*iface, o}}
			return faultinject.NewNapiStarve(*iface, faultinject.NapiConfig{For: c.hold, CPU: *cpu, Priority: *prio}, o)
		}
	default:
		return usagef("unknown injector %q (want netem, stall, pause or napi)", kind)
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if c.hold <= 0 || c.hold > maxHold {
		return usagef("-for must be between 0 and %v, got %v", maxHold, c.hold)
	}
	o := c.options()
	inj, err := build(o)
	if err != nil {
		if errors.Is(err, faultinject.ErrBadConfig) {
			return usageError{err.Error()}
		}
		return err
	}
	if c.cleanStale {
		for _, i := range ifaces {
			acts, err := faultinject.Cleanup(ctx, i.iface, i.o)
			for _, a := range acts {
				fmt.Fprintln(stdout, "cleanup:", a)
			}
			if err != nil {
				return err
			}
		}
	}
	return holdFault(ctx, inj, c.hold, stdout, stderr)
}

// cleanTarget is an interface to clean up and the options of its
// namespace.
type cleanTarget struct {
	iface string
	o     faultinject.Options
}

// holdFault injects, holds for d (or until ctx ends), restores and prints
// what was done. Nothing is announced before Inject has passed its safety
// checks and changed the interface: a refusal is the only line.
func holdFault(ctx context.Context, inj faultinject.Injector, d time.Duration, stdout, stderr io.Writer) error {
	if err := inj.Inject(ctx); err != nil {
		if rerr := inj.Restore(context.Background()); rerr != nil {
			return fmt.Errorf("%w; restoring: %w", err, rerr)
		}
		return err
	}
	fmt.Fprintln(stdout, "injected:", inj.Describe())
	start := time.Now()
	done := inj.Done()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	timer := time.NewTimer(d)
	defer timer.Stop()
	interrupted := false
hold:
	for {
		select {
		case <-timer.C:
			break hold
		case <-done:
			break hold
		case <-ctx.Done():
			interrupted = true
			break hold
		case <-tick.C:
			fmt.Fprintf(stderr, "inject: holding %s: %v of %v%s\n", inj.Name(),
				time.Since(start).Round(time.Second), d, progressDetail(ctx, inj))
		}
	}
	if interrupted {
		fmt.Fprintf(stderr, "inject: interrupted after %v, restoring\n", time.Since(start).Round(time.Millisecond))
	}
	// Restore gets its own deadline, the injector's own bound: the hold
	// context may be cancelled (Ctrl-C), and a stall can only be waited
	// out.
	rctx, cancel := context.WithTimeout(context.Background(), inj.RestoreBound())
	defer cancel()
	fmt.Fprintf(stderr, "inject: restoring %s (at most %v)\n", inj.Name(), inj.RestoreBound())
	if err := inj.Restore(rctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "restored:", inj.Describe())
	return nil
}

func progressDetail(ctx context.Context, inj faultinject.Injector) string {
	if st := inj.Status(ctx); st != "" {
		return " (" + st + ")"
	}
	return ""
}
