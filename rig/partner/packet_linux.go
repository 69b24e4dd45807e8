package partner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"txtimeout/faultinject"
)

// ifaceCheck is how often a quiet PacketLink checks that its interface
// still exists: an AF_PACKET socket whose device is deleted reports it
// once (ENETDOWN) and then blocks for ever.
const ifaceCheck = time.Second

// PacketLink is an AF_PACKET socket on the partner's port, receiving every
// frame that arrives there and none that leaves.
type PacketLink struct {
	ifi     *net.Interface
	conn    *packet.Conn
	closing atomic.Bool
	logf    func(format string, args ...any)
	down    bool // the interface was reported down and not seen up since
}

// OpenPacket opens an AF_PACKET socket on iface in the network namespace
// of the calling thread (a program run with "ip netns exec" is in its
// namespace on every thread). It refuses loopback and interfaces without
// an Ethernet address. logf, when not nil, hears of the interface going
// down and up.
func OpenPacket(iface string, logf func(format string, args ...any)) (*PacketLink, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("no such interface %q", iface)
	}
	if ifi.Flags&net.FlagLoopback != 0 {
		return nil, fmt.Errorf("%s is a loopback interface, not a link to a DUT", iface)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s has no Ethernet address", iface)
	}
	conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket on %s: %w", iface, err)
	}
	// The partner's own frames (replies, PAUSE) are no input.
	if err := control(conn, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("PACKET_IGNORE_OUTGOING on %s (Linux 4.20): %w", iface, err)
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &PacketLink{ifi: ifi, conn: conn, logf: logf}, nil
}

// control runs fn on c's file descriptor.
func control(c *packet.Conn, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Interface is the interface the socket is bound to, as it was when opened.
func (l *PacketLink) Interface() *net.Interface { c := *l.ifi; return &c }

// Close closes the socket.
func (l *PacketLink) Close() error { return l.conn.Close() }

// present reports an error when the interface is gone: looked up by name
// through the socket, so in the socket's own namespace, and compared by
// index, since the socket stays bound to the device it was opened on.
// It returns whether the interface is up.
func (l *PacketLink) present() (up bool, err error) {
	var index uint32
	var flags uint16
	err = control(l.conn, func(fd int) error {
		ifr, err := unix.NewIfreq(l.ifi.Name)
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
			return err
		}
		index = ifr.Uint32()
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		flags = ifr.Uint16()
		return nil
	})
	switch {
	case errors.Is(err, unix.ENODEV), err == nil && int(index) != l.ifi.Index:
		return false, fmt.Errorf("%w: %s", ErrInterfaceGone, l.ifi.Name)
	case err != nil:
		return false, fmt.Errorf("looking up %s: %w", l.ifi.Name, err)
	}
	return flags&unix.IFF_UP != 0, nil
}

func (l *PacketLink) read(buf []byte) ([]byte, error) {
	for {
		if l.closing.Load() {
			return nil, net.ErrClosed
		}
		if err := l.conn.SetReadDeadline(time.Now().Add(ifaceCheck)); err != nil {
			return nil, err
		}
		n, _, err := l.conn.ReadFrom(buf)
		if err == nil {
			if n < 14 {
				continue // not Ethernet (a device without a header)
			}
			return buf[:n], nil
		}
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, unix.ENETDOWN) {
			return nil, err
		}
		up, perr := l.present()
		if perr != nil {
			return nil, perr
		}
		if up == l.down {
			l.down = !up
			if l.down {
				l.logf("partner: %s is down; waiting for it to come back", l.ifi.Name)
			} else {
				l.logf("partner: %s is up again", l.ifi.Name)
			}
		}
	}
}

func (l *PacketLink) write(b []byte) error {
	f := b[prefixLen:]
	_, err := l.conn.WriteTo(f, &packet.Addr{HardwareAddr: net.HardwareAddr(f[0:6])})
	if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENXIO) {
		// A full device queue or a port that is down loses the frame,
		// as a NIC would; the partner goes on.
		return errTxDropped
	}
	return err
}

func (l *PacketLink) unblock() bool {
	l.closing.Store(true)
	now := time.Now()
	l.conn.SetReadDeadline(now)
	l.conn.SetWriteDeadline(now)
	return true
}

// ServePacket serves the DUT over l until ctx ends (it returns ctx.Err()),
// the interface goes away (ErrInterfaceGone) or reading or writing fails.
// The partner keeps reading during a stall, which floods 802.3x PAUSE
// frames from l's interface (faultinject.NewPauseFlood with quanta
// faultinject.DefaultQuanta, renewed before each pause expires) until it
// ends; o is the flood's (its NetNS must name l's namespace, its StateDir
// holds the flood's crash-recovery state). A refused flood is not
// acknowledged. The caller closes l.
func (p *Partner) ServePacket(ctx context.Context, l *PacketLink, o faultinject.Options) error {
	l.closing.Store(false)
	return p.serve(ctx, l, pauseFlood{iface: l.ifi.Name, opt: o, logf: p.logf})
}

// pauseFlood is a hardware partner's stall: PAUSE frames make the DUT's MAC
// stop transmitting, as not reading makes QEMU stop draining the guest's
// ring.
type pauseFlood struct {
	iface string
	opt   faultinject.Options
	logf  func(format string, args ...any)
}

func (pauseFlood) holdsReading() bool { return false }

// restoreTimeout bounds the wait for a flood to stop.
const restoreTimeout = 5 * time.Second

func (a pauseFlood) start(ctx context.Context, dut net.HardwareAddr, d time.Duration) (running, error) {
	if d <= 0 {
		return running{stop: func() {}}, nil // nothing to flood for
	}
	f, err := faultinject.NewPauseFlood(a.iface, faultinject.PauseConfig{For: d, Quanta: faultinject.DefaultQuanta}, a.opt)
	if err != nil {
		return running{}, err
	}
	// The flood outlives the frame that asked for it, not Serve.
	if err := f.Inject(ctx); err != nil {
		return running{}, err
	}
	a.logf("partner: %s (at %s)", f.Describe(), dut)
	return running{stopped: f.Done(), stop: func() {
		rctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
		defer cancel()
		if err := f.Restore(rctx); err != nil {
			a.logf("partner: stopping the PAUSE flood: %v", err)
		}
		a.logf("partner: %s", f.Describe())
	}}, nil
}
