package faultinject

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	tc "github.com/florianl/go-tc"
	"github.com/florianl/go-tc/core"
	"golang.org/x/sys/unix"
)

// Netem attaches a root netem qdisc to a DUT interface.
type Netem struct {
	iface string
	cfg   NetemConfig
	opt   Options

	mu       sync.Mutex
	locks    heldLocks // the interfaces' locks, from Inject until nothing is left
	st       *state    // non-nil between a recorded Inject and Restore
	restored string    // what Restore did, for Describe
}

var _ Injector = (*Netem)(nil)

// netemKind is the qdisc kind Netem installs. Tests on kernels without
// netem set it to "pfifo" to exercise the save, crash and restore paths
// for real.
var netemKind = "netem"

// NewNetem validates its input and changes nothing.
func NewNetem(iface string, c NetemConfig, o Options) (*Netem, error) {
	if err := validIfaceName(iface); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Netem{iface: iface, cfg: c, opt: o}, nil
}

// Name implements Injector.
func (n *Netem) Name() string { return "netem" }

// Describe implements Injector.
func (n *Netem) Describe() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := fmt.Sprintf("netem root qdisc %s on %s: delay %v", fmtHandle(ProjectQdiscHandle), n.iface, n.cfg.Delay)
	if n.cfg.Jitter > 0 {
		s += fmt.Sprintf(" jitter %v", n.cfg.Jitter)
	}
	if n.cfg.Loss > 0 {
		s += fmt.Sprintf(" loss %g%%", n.cfg.Loss)
	}
	s += fmt.Sprintf(" limit %d", n.cfg.Limit)
	if n.st != nil {
		s += fmt.Sprintf("; replaces %s", n.st.Saved)
	}
	if n.restored != "" {
		s += "; " + n.restored
	}
	return s
}

// ticks converts d to the kernel's psched ticks as iproute2 does, clamped
// to a u32 (delays over about 274 s saturate; the 64-bit attribute carries
// the real value).
func ticks(d time.Duration) uint32 {
	perSec := uint64(core.Time2Tick(1_000_000)) // ticks in one second
	us := uint64(d.Microseconds())
	if perSec != 0 && us > math.MaxUint32/perSec*1_000_000 {
		return math.MaxUint32
	}
	t := us * perSec / 1_000_000
	if t > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(t)
}

// lossFraction converts a percentage to the kernel's fraction of 2^32-1.
func lossFraction(pct float64) uint32 {
	return uint32(math.Round(pct / 100 * math.MaxUint32))
}

// netemObject is the go-tc request for c on ifindex.
func netemObject(ifindex int, c NetemConfig) *tc.Object {
	lat := c.Delay.Nanoseconds()
	q := &tc.Netem{
		Qopt: tc.NetemQopt{
			Latency: ticks(c.Delay),
			Limit:   c.Limit,
			Loss:    lossFraction(c.Loss),
			Jitter:  ticks(c.Jitter),
		},
		Latency64: &lat,
	}
	if c.Jitter > 0 {
		j := c.Jitter.Nanoseconds()
		q.Jitter64 = &j
	}
	return &tc.Object{
		Msg: tc.Msg{
			Family:  unix.AF_UNSPEC,
			Ifindex: uint32(ifindex),
			Handle:  ProjectQdiscHandle,
			Parent:  tc.HandleRoot,
		},
		Attribute: tc.Attribute{Kind: "netem", Netem: q},
	}
}

// checkNetem compares what the kernel reports with what was asked for.
func checkNetem(got netemOptions, c NetemConfig) error {
	var diffs []string
	if got.Latency64 == nil || *got.Latency64 != c.Delay.Nanoseconds() {
		lat := time.Duration(0)
		if got.Latency64 != nil {
			lat = time.Duration(*got.Latency64)
		}
		diffs = append(diffs, fmt.Sprintf("delay %v, want %v", lat, c.Delay))
	}
	var jit time.Duration
	if got.Jitter64 != nil {
		jit = time.Duration(*got.Jitter64)
	}
	if jit != c.Jitter {
		diffs = append(diffs, fmt.Sprintf("jitter %v, want %v", jit, c.Jitter))
	}
	if got.Limit != c.Limit {
		diffs = append(diffs, fmt.Sprintf("limit %d, want %d", got.Limit, c.Limit))
	}
	if got.Loss != lossFraction(c.Loss) {
		diffs = append(diffs, fmt.Sprintf("loss %d/2^32, want %d", got.Loss, lossFraction(c.Loss)))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("netem read back from the kernel differs: %s", strings.Join(diffs, ", "))
	}
	return nil
}

// Inject implements Injector: safety checks, save the root qdisc, write
// the state file, attach netem, read it back.
func (n *Netem) Inject(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := startInject(ctx, n.st, "netem on "+n.iface); err != nil {
		return err
	}
	info, err := checkIface(n.opt, n.iface)
	if err != nil {
		return err
	}
	if err := n.locks.take(n.opt, n.iface); err != nil {
		return err
	}
	defer func() { n.locks.releaseIf(n.st == nil) }()
	if err := checkNoStale(n.opt, n.iface); err != nil {
		return err
	}
	qs, err := dumpQdiscs(n.opt, info.Index)
	if err != nil {
		return err
	}
	saved, err := classifyRoot(n.iface, qs)
	if err != nil {
		return err
	}
	st := &state{
		Injector: "netem", Iface: n.iface, Ifindex: info.Index, NetNS: n.opt.NetNS,
		PID: os.Getpid(), Created: time.Now().UTC(), Saved: saved, QdiscHandle: ProjectQdiscHandle,
	}
	if err := writeState(n.opt, st); err != nil {
		return err
	}
	n.st = st
	n.restored = ""
	if err := n.attach(info.Index); err != nil {
		// Nothing was attached: forget the state again.
		n.st = nil
		if rerr := removeState(n.opt, n.iface); rerr != nil {
			return fmt.Errorf("%w (and %v)", err, rerr)
		}
		return err
	}
	if err := n.readBack(info.Index); err != nil {
		if rerr := n.restoreLocked(ctx); rerr != nil {
			return fmt.Errorf("%w; restoring: %v", err, rerr)
		}
		return err
	}
	return nil
}

func (n *Netem) attach(ifindex int) error {
	ns, err := nsHandle(n.opt)
	if err != nil {
		return err
	}
	defer ns.Close()
	t, err := tc.Open(&tc.Config{NetNS: nsFD(ns)})
	if err != nil {
		return fmt.Errorf("rtnetlink: %w", err)
	}
	defer t.Close()
	obj := netemObject(ifindex, n.cfg)
	if netemKind != "netem" {
		obj = seamObject(ifindex, netemKind)
	}
	if err := t.Qdisc().Replace(obj); err != nil {
		return mapNetemErr(n.iface, err)
	}
	return nil
}

// mapNetemErr turns the kernel's answer to a netem request into a one-line
// error. A kernel without sch_netem (and no module to load) answers
// RTM_NEWQDISC with ENOENT ("Specified qdisc kind is unknown").
func mapNetemErr(iface string, err error) error {
	if isErrno(err, unix.ENOENT) {
		return fmt.Errorf("%s: %w", iface, ErrNetemUnavailable)
	}
	return fmt.Errorf("attaching netem to %s: %w", iface, err)
}

// seamObject is the classless qdisc tests install instead of netem.
func seamObject(ifindex int, kind string) *tc.Object {
	return &tc.Object{
		Msg:       tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(ifindex), Handle: ProjectQdiscHandle, Parent: tc.HandleRoot},
		Attribute: tc.Attribute{Kind: kind, Pfifo: &tc.FifoOpt{Limit: DefaultNetemLimit}},
	}
}

func (n *Netem) readBack(ifindex int) error {
	qs, err := dumpQdiscs(n.opt, ifindex)
	if err != nil {
		return err
	}
	root, ok := rootQdisc(qs)
	if !ok || root.Handle != ProjectQdiscHandle || root.Kind != netemKind {
		return fmt.Errorf("netem read back: root qdisc of %s is %s %s, want %s %s",
			n.iface, root.Kind, fmtHandle(root.Handle), netemKind, fmtHandle(ProjectQdiscHandle))
	}
	if netemKind != "netem" {
		return nil
	}
	got, err := parseNetemOptions(root.Options)
	if err != nil {
		return err
	}
	return checkNetem(got, n.cfg)
}

// Stats returns the counters of the project's qdisc on the interface.
func (n *Netem) Stats(ctx context.Context) (QdiscStats, error) {
	if err := ctx.Err(); err != nil {
		return QdiscStats{}, err
	}
	n.mu.Lock()
	st := n.st
	n.mu.Unlock()
	if st == nil {
		return QdiscStats{}, fmt.Errorf("netem on %s is not injected", n.iface)
	}
	qs, err := dumpQdiscs(n.opt, st.Ifindex)
	if err != nil {
		return QdiscStats{}, err
	}
	for _, q := range qs {
		if q.Handle == ProjectQdiscHandle {
			return q.Stats, nil
		}
	}
	return QdiscStats{}, fmt.Errorf("netem qdisc %s is gone from %s", fmtHandle(ProjectQdiscHandle), n.iface)
}

// RestoreBound implements Injector: putting the root qdisc back is one
// of Restore's own steps.
func (n *Netem) RestoreBound() time.Duration { return RestoreSteps }

// Status implements Injector: the netem qdisc's backlog and drops.
func (n *Netem) Status(ctx context.Context) string {
	st, err := n.Stats(ctx)
	if err != nil {
		return "stats: " + err.Error()
	}
	return fmt.Sprintf("qdisc backlog %d packets %d bytes, drops %d", st.QLen, st.Backlog, st.Drops)
}

// Done implements Injector: nil, netem stays until Restore.
func (n *Netem) Done() <-chan struct{} { return nil }

// Restore implements Injector.
func (n *Netem) Restore(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	defer func() { n.locks.releaseIf(n.st == nil) }()
	return n.restoreLocked(ctx)
}

func (n *Netem) restoreLocked(ctx context.Context) error {
	st := n.st
	if st == nil {
		return nil
	}
	did, err := restoreQdisc(ctx, n.opt, st)
	if err != nil {
		return err
	}
	if err := removeState(n.opt, n.iface); err != nil {
		return err
	}
	n.st = nil
	n.restored = did
	return nil
}

// restoreQdisc puts back the root qdisc recorded in st. It touches the
// root qdisc only when it is the project's; it reports what it did.
func restoreQdisc(ctx context.Context, o Options, st *state) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	qs, err := dumpQdiscs(o, st.Ifindex)
	if err != nil {
		return "", err
	}
	root, ok := rootQdisc(qs)
	switch {
	case ok && IsProjectHandle(root.Handle):
		if st.Saved != nil {
			if err := replaceRoot(o, st.Ifindex, st.Saved); err != nil {
				return "", err
			}
			if err := verifyRoot(o, st); err != nil {
				return "", err
			}
			return fmt.Sprintf("re-created %s on %s", st.Saved, st.Iface), nil
		}
		if err := deleteRoot(o, st.Ifindex, root.Handle); err != nil {
			return "", err
		}
		return fmt.Sprintf("deleted %s %s from %s; the default qdisc is back", root.Kind, fmtHandle(root.Handle), st.Iface), nil
	case st.Saved == nil && (!ok || root.Handle == 0):
		return fmt.Sprintf("%s already has its default qdisc", st.Iface), nil
	case st.Saved != nil && ok && root.Handle == st.Saved.Handle && root.Kind == st.Saved.Kind:
		return fmt.Sprintf("%s already has %s", st.Iface, st.Saved), nil
	default:
		return "", fmt.Errorf("root qdisc of %s is now %s %s, not this project's and not the %s found before; left alone",
			st.Iface, root.Kind, fmtHandle(root.Handle), st.Saved)
	}
}

func verifyRoot(o Options, st *state) error {
	qs, err := dumpQdiscs(o, st.Ifindex)
	if err != nil {
		return err
	}
	root, ok := rootQdisc(qs)
	if !ok || root.Handle != st.Saved.Handle || root.Kind != st.Saved.Kind {
		return fmt.Errorf("after restore the root qdisc of %s is %s %s, want %s", st.Iface, root.Kind, fmtHandle(root.Handle), st.Saved)
	}
	return nil
}
