package rig

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"txtimeout/rig/internal/guestproto"
	"txtimeout/rig/partner"
)

// testHookQEMUStarted, when set, is called with QEMU's PID once it runs.
var testHookQEMUStarted func(pid int)

// boot is one QEMU run, in four phases: prepare the image and the sockets,
// launch QEMU, watch the guest until QEMU has exited, and collect the
// result and the verdict.
type boot struct {
	c     Config
	qemu  string
	image string
	accel string
	links []Link
	work  string
	gc    guestproto.Config
	files []initramfsFile
	out   io.Writer
	start time.Time
	// launch starts QEMU; nil is execQEMU. connected, if set, is called
	// once QEMU's connections are accepted (a fake QEMU starts its guest
	// then, as a real guest runs only after QEMU has started).
	launch    launcher
	connected func()
}

// serialSockets are the unix sockets of the serial ports ttyS0, ttyS1,
// ttyS2, which QEMU connects to.
var serialSockets = []string{"console", "out", "ctl"}

// hostPartners reports whether the links' partners run on the host: all
// but the loop topology's.
func (b *boot) hostPartners() bool { return b.c.Topology != TopologyLoop }

// netSocket names the unix socket of link i's host partner: net (eth0),
// net1, net2, ...
func netSocket(i int) string {
	if i == 0 {
		return "net"
	}
	return "net" + strconv.Itoa(i)
}

// socketNames are the unix sockets QEMU connects to: the host partners'
// links, then the serial ports.
func (b *boot) socketNames() []string {
	var names []string
	if b.hostPartners() {
		for i := range b.links {
			names = append(names, netSocket(i))
		}
	}
	return append(names, serialSockets...)
}

func (b *boot) run(ctx context.Context, r *Result) error {
	initrd, err := b.prepareImage()
	if err != nil {
		return err
	}
	lns, err := b.listen()
	if err != nil {
		return err
	}
	defer closeAll(lns)
	args, err := b.qemuArgs(initrd)
	if err != nil {
		return fmt.Errorf("rig: %w", err)
	}
	r.QEMUCommand = append([]string{b.qemu}, args...)
	ps, err := b.partners()
	if err != nil {
		return err
	}
	con, err := b.openConsole()
	if err != nil {
		return err
	}
	defer b.keepConsole(con, r)
	c := b.c
	c.progressf("booting %s (%s, %d vCPUs, %d MiB, %s)", r.Kernel, b.accel, c.SMP, c.MemMB, strings.Join(append([]string{b.describeLinks()}, c.ModParams...), ", "))
	s, err := b.launchQEMU(ctx, args, lns)
	if err != nil {
		return err
	}
	defer s.stop()
	s.serve(ctx, ps, con)
	w := s.watch(ctx, r)
	s.drain()
	s.collect(r)
	if err := s.verdict(ctx, w); err != nil {
		return err
	}
	r.ExitCode, _ = s.ctl.exitCode()
	return nil
}

// partners makes the links' host partners, one per link (none on the
// loop topology).
func (b *boot) partners() ([]*partner.Partner, error) {
	if !b.hostPartners() {
		return nil, nil
	}
	var ps []*partner.Partner
	for _, l := range b.links {
		logf := b.c.PartnerLogf
		if logf != nil && l.Iface != DUTIface {
			logf = func(format string, args ...any) { b.c.PartnerLogf(l.Iface+": "+format, args...) }
		}
		p, err := partner.New(partner.Config{MAC: l.PeerMAC, IP: l.PeerIP, Logf: logf})
		if err != nil {
			return nil, fmt.Errorf("rig: link partner of %s: %w", l.Iface, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// describeLinks names the NICs for the progress line: "virtio-net-pci",
// "virtio-net-pci eth0, e1000 eth1", or "e1000e loop eth0-eth1".
func (b *boot) describeLinks() string {
	if !b.hostPartners() {
		return b.c.NIC + " loop " + DUTIface + "-" + LoopPartnerIface + " (" + LoopPartnerIface + " in netns " + LoopNetNS + ")"
	}
	if len(b.links) == 1 {
		return b.links[0].Model
	}
	var ds []string
	for _, l := range b.links {
		ds = append(ds, l.Model+" "+l.Iface)
	}
	return strings.Join(ds, ", ")
}

// prepareImage writes the initramfs (the files and the guest's
// configuration) into the work directory.
func (b *boot) prepareImage() (string, error) {
	gcJSON, err := json.Marshal(b.gc)
	if err != nil {
		return "", err
	}
	files := append(b.files, initramfsFile{Name: strings.TrimPrefix(guestproto.ConfigPath, "/"), Data: gcJSON, Mode: 0o644})
	initrd := filepath.Join(b.work, "initramfs.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := writeInitramfs(bw, files); err != nil {
		f.Close()
		return "", err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return initrd, f.Close()
}

// listen opens the sockets QEMU connects to, named by socketNames.
func (b *boot) listen() (map[string]*net.UnixListener, error) {
	lns := map[string]*net.UnixListener{}
	for _, n := range b.socketNames() {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: b.socket(n), Net: "unix"})
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("rig: %w", err)
		}
		lns[n] = l
	}
	return lns, nil
}

func (b *boot) socket(name string) string { return filepath.Join(b.work, name+".sock") }

func (b *boot) qemuArgs(initrd string) ([]string, error) {
	c := b.c
	var nics []qemuNIC
	for i, l := range b.links {
		n := qemuNIC{Model: l.Model, MAC: l.MAC.String(), Hub: !b.hostPartners()}
		if !n.Hub {
			n.NetSock = b.socket(netSocket(i))
		}
		nics = append(nics, n)
	}
	return qemuArgs(qemuSpec{
		Binary: b.qemu, Accel: b.accel, SMP: c.SMP, MemMB: c.MemMB,
		Kernel: b.image, Initrd: initrd, Append: kernelCmdline(), NICs: nics,
		Serials: []string{b.socket("console"), b.socket("out"), b.socket("ctl")},
		Monitor: b.socket("monitor"),
	})
}

// openConsole creates the console log in the work directory, which a
// failed run keeps (a hang included); keepConsole copies it into the
// report directory at the end: a report directory that its caller
// removes must not take the evidence of a failure with it.
func (b *boot) openConsole() (*console, error) {
	if b.c.ReportDir != "" {
		if err := os.MkdirAll(b.c.ReportDir, 0o755); err != nil {
			return nil, fmt.Errorf("rig: report directory: %w", err)
		}
	}
	return newConsole(filepath.Join(b.work, "console.log"))
}

func (b *boot) keepConsole(con *console, r *Result) {
	con.close()
	path := filepath.Join(b.work, "console.log")
	r.ConsoleLog = con.String()
	r.ConsoleLogPath = path
	if b.c.ReportDir != "" {
		kept := filepath.Join(b.c.ReportDir, "console.log")
		if data, err := os.ReadFile(path); err == nil && os.WriteFile(kept, data, 0o644) == nil {
			r.ConsoleLogPath = kept
		}
	}
}

func closeAll[T io.Closer](m map[string]T) {
	for _, c := range m {
		c.Close()
	}
}

// session is a launched QEMU and what talks to it.
type session struct {
	b       *boot
	proc    qemuProcess
	stderr  *tailBuffer // QEMU's own messages
	started time.Time
	// exited is set once proc's exit status has been received, qemuErr.
	exited  bool
	qemuErr error
	conns   map[string]net.Conn

	// partners are the links' host partners, by link (none on the
	// loop topology).
	partners []*partner.Partner
	con      *console
	out      *runWatcher
	ctl      *control
	// readers counts the goroutines reading conns; pcancel stops the
	// partner's.
	readers chan struct{}
	pcancel context.CancelFunc
}

// launchQEMU starts QEMU and accepts its connections to every socket,
// which it makes while it starts, before the guest runs.
func (b *boot) launchQEMU(ctx context.Context, args []string, lns map[string]*net.UnixListener) (*session, error) {
	launch := b.launch
	if launch == nil {
		launch = execQEMU
	}
	s := &session{b: b, stderr: &tailBuffer{}, started: time.Now(), conns: map[string]net.Conn{}}
	proc, err := launch(b.qemu, args, s.stderr)
	if err != nil {
		return nil, fmt.Errorf("rig: starting QEMU: %w", err)
	}
	s.proc = proc
	if testHookQEMUStarted != nil {
		testHookQEMUStarted(proc.Pid())
	}
	if err := s.accept(ctx, lns); err != nil {
		s.stop()
		return nil, err
	}
	if b.connected != nil {
		b.connected()
	}
	return s, nil
}

func (s *session) accept(ctx context.Context, lns map[string]*net.UnixListener) error {
	type accepted struct {
		name string
		conn net.Conn
		err  error
	}
	acc := make(chan accepted, len(lns))
	for n, l := range lns {
		go func() {
			conn, err := l.Accept()
			acc <- accepted{n, conn, err}
		}()
	}
	deadline := time.NewTimer(s.b.c.BootTimeout)
	defer deadline.Stop()
	for len(s.conns) < len(lns) {
		select {
		case a := <-acc:
			if a.err != nil {
				return fmt.Errorf("rig: accepting QEMU's %s connection: %w", a.name, a.err)
			}
			s.conns[a.name] = a.conn
		case werr := <-s.proc.Exited():
			s.exited, s.qemuErr = true, werr
			return fmt.Errorf("rig: QEMU exited at start (%v): %s", werr, strings.TrimSpace(s.stderr.String()))
		case <-deadline.C:
			return fmt.Errorf("%w: QEMU did not connect its sockets within %v: %s", ErrBootTimeout, s.b.c.BootTimeout, s.stderr.String())
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// stop kills QEMU if it still runs, waits for it, and closes the
// connections.
func (s *session) stop() {
	if !s.exited {
		s.proc.Kill()
		s.qemuErr = <-s.proc.Exited()
		s.exited = true
	}
	closeAll(s.conns)
}

// serve starts the readers of QEMU's connections: the partners on the
// links, the console into its log, the test output to the caller and the
// control port.
func (s *session) serve(ctx context.Context, ps []*partner.Partner, con *console) {
	c := s.b.c
	s.partners, s.con = ps, con
	s.out = &runWatcher{w: s.b.out, start: s.b.start, progressf: c.progressf}
	s.ctl = newControl(c.ReportDir)
	s.ctl.watch = newHangWatch(c.HangTimeout, time.Now)
	s.ctl.resume = s.resume
	pctx, pcancel := context.WithCancel(ctx)
	s.pcancel = pcancel
	var readers []func()
	for i, p := range ps {
		readers = append(readers, func() {
			if err := p.Serve(pctx, s.conns[netSocket(i)]); err != nil && pctx.Err() == nil && c.PartnerLogf != nil {
				c.PartnerLogf("partner of %s: %v", s.b.links[i].Iface, err)
			}
		})
	}
	readers = append(readers,
		func() { io.Copy(con, s.conns["console"]) },
		func() { io.Copy(s.out, s.conns["out"]); s.out.flush() },
		func() { s.ctl.read(s.conns["ctl"]) },
	)
	s.readers = make(chan struct{}, len(readers))
	for _, f := range readers {
		go func() {
			defer func() { s.readers <- struct{}{} }()
			f()
		}()
	}
}

// resume ends the stall of the partner of the guest's interface iface
// ("" is eth0) and reports whether it was stalled. The guest's test ends a
// partner stall early through the control port (guest.ResumePartner): the
// stalled partner reads nothing from the link, but it is ours.
func (s *session) resume(nonce, iface string) bool {
	c := s.b.c
	if iface == "" {
		iface = DUTIface
	}
	i := slices.IndexFunc(s.b.links, func(l Link) bool { return l.Iface == iface })
	if i < 0 || i >= len(s.partners) {
		c.progressf("the guest asked to resume the partner of %s (resume %s), which has no host partner", iface, nonce)
		return false
	}
	p := s.partners[i]
	stalled := p.Stalled()
	p.Resume()
	if stalled {
		c.progressf("partner stall of %s ended early at the guest's request (resume %s)", iface, nonce)
	} else {
		c.progressf("the guest asked to resume the partner of %s (resume %s), which was not stalled", iface, nonce)
	}
	return stalled
}

// watchResult is what the watch saw besides the control port's record.
type watchResult struct {
	bootTimedOut, powerOffTimedOut, hung bool
	// hangInfo and qemuState describe a hung guest.
	hangInfo, qemuState string
}

// watch follows the guest until QEMU has exited: the boot deadline until
// the init's HELLO, the hang watch from READY to EXIT, the power-off
// after EXIT, and the caller's context. Each of them stops QEMU.
func (s *session) watch(ctx context.Context, r *Result) watchResult {
	c := s.b.c
	var w watchResult
	bootTimer := time.NewTimer(c.BootTimeout)
	defer bootTimer.Stop()
	// The hang watch arms itself at READY; checking it every second (or
	// more often for a short window) is precise enough.
	hangTick := time.NewTicker(min(time.Second, c.HangTimeout/4))
	defer hangTick.Stop()
	var powerOff <-chan time.Time
	hello, exit := s.ctl.hello, s.ctl.exit
	ctxDone := ctx.Done()
	for !s.exited {
		select {
		case <-hello:
			hello = nil
			bootTimer.Stop()
			r.GuestBootTime = time.Since(s.started)
			c.progressf(progressGuestInit, r.GuestBootTime.Seconds())
		case <-exit:
			exit = nil
			// The init powers off right after EXIT.
			powerOff = time.After(30 * time.Second)
		case <-powerOff:
			w.powerOffTimedOut = true
			s.proc.Kill()
		case <-bootTimer.C:
			if hello != nil {
				w.bootTimedOut = true
				s.proc.Kill()
			}
		case <-hangTick.C:
			if silent, h := s.ctl.watch.check(); h && !w.hung {
				w.hung = true
				w.hangInfo = s.ctl.watch.describe()
				c.progressf("the guest made no progress for %v: stopping QEMU", silent.Round(time.Second))
				w.qemuState = queryMonitor(s.b.socket("monitor"), 5*time.Second)
				s.proc.Kill()
			}
		case <-ctxDone:
			ctxDone = nil
			s.proc.Kill()
		case s.qemuErr = <-s.proc.Exited():
			s.exited = true
		}
	}
	return w
}

// drain waits for the readers once QEMU is gone. Its ends of the sockets
// are closed: the readers drain what is buffered (a panic's last lines)
// and meet EOF. Closing our ends first would throw that away; the
// deadline only guards against a reader that never ends.
func (s *session) drain() {
	s.pcancel()
	deadline := time.After(10 * time.Second)
	for range cap(s.readers) {
		select {
		case <-s.readers:
		case <-deadline:
			closeAll(s.conns)
			deadline = nil
			<-s.readers
		}
	}
}

// collect fills in what the guest and the partner reported.
func (s *session) collect(r *Result) {
	for i, l := range s.b.links {
		lr := LinkResult{Link: l}
		if i < len(s.partners) {
			lr.PartnerStats = s.partners[i].Stats()
		}
		r.Links = append(r.Links, lr)
	}
	if len(r.Links) > 0 {
		r.PartnerStats = r.Links[0].PartnerStats
	}
	r.BootTime = s.out.bootTime()
	r.ReportFiles = s.ctl.files
	r.Resumes = s.ctl.resumes
	r.Heartbeats, r.MaxSilence = s.ctl.watch.stats()
	if s.b.c.ReportDir != "" {
		r.ReportDir = s.b.c.ReportDir
	}
	s.con.close()
}

// verdict says whether the rig itself failed, most telling cause first:
// a panic on the console explains a boot timeout, a hang or a death.
func (s *session) verdict(ctx context.Context, w watchResult) error {
	c := s.b.c
	tail := s.con.tail(30)
	if pl := panicLines(s.con.String()); pl != "" {
		return fmt.Errorf("%w:\n%s", ErrGuestPanic, pl)
	}
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), ErrRunTimeout) {
			return fmt.Errorf("%w (%v); last console lines:\n%s", ErrRunTimeout, c.Timeout, tail)
		}
		return context.Cause(ctx)
	}
	if w.bootTimedOut {
		return fmt.Errorf("%w (%v after QEMU started); last console lines:\n%s", ErrBootTimeout, c.BootTimeout, tail)
	}
	if w.hung {
		return fmt.Errorf("%w for %v: its kernel hung or QEMU stalled; %s; %s; last console lines:\n%s", ErrGuestHung, c.HangTimeout, w.hangInfo, w.qemuState, tail)
	}
	_, gotExit := s.ctl.exitCode()
	if msg := s.ctl.errorText(); msg != "" {
		return fmt.Errorf("%w: %s; last console lines:\n%s", ErrGuestInit, msg, tail)
	}
	if !gotExit {
		return fmt.Errorf("%w (QEMU: %v %s); last console lines:\n%s", ErrGuestDied, s.qemuErr, strings.TrimSpace(s.stderr.String()), tail)
	}
	if s.ctl.fileErr != nil {
		return fmt.Errorf("rig: copying report files: %w", s.ctl.fileErr)
	}
	if w.powerOffTimedOut {
		c.progressf("guest did not power off within 30s of its exit report; QEMU killed")
	}
	return nil
}
