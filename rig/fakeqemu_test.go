package rig

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"txtimeout/rig/internal/guestproto"
)

// fakeQEMU is a launcher whose QEMU is a goroutine: it connects to the
// sockets its command line names, as QEMU does while it starts, and plays
// script as the guest; the script's return value is QEMU's exit status.
// Kill closes the connections and ends the script with "signal: killed".
type fakeQEMU struct {
	// stderr is what QEMU prints before anything else.
	stderr string
	// exitAtOnce makes QEMU exit with that status before connecting.
	exitAtOnce error
	script     func(g *fakeGuest) error
	// args is the command line it was started with.
	args []string
	// connected is closed when the host has accepted the connections:
	// the guest starts then.
	connected chan struct{}
}

var errKilled = errors.New("signal: killed")

func (f *fakeQEMU) launch(bin string, args []string, log io.Writer) (qemuProcess, error) {
	f.args = args
	p := &fakeProcess{exited: make(chan error, 1), killed: make(chan struct{})}
	io.WriteString(log, f.stderr)
	if f.exitAtOnce != nil {
		p.exited <- f.exitAtOnce
		return p, nil
	}
	g, err := dialFake(args, p.killed)
	if err != nil {
		return nil, err
	}
	go func() {
		var err error
		select {
		case <-f.connected:
			err = f.script(g)
		case <-p.killed:
			err = errKilled
		}
		g.close()
		p.exited <- err
	}()
	return p, nil
}

type fakeProcess struct {
	exited chan error
	once   sync.Once
	killed chan struct{}
}

func (p *fakeProcess) Exited() <-chan error { return p.exited }
func (p *fakeProcess) Kill()                { p.once.Do(func() { close(p.killed) }) }
func (p *fakeProcess) Pid() int             { return 0 }

// fakeGuest is the guest's side of QEMU's connections.
type fakeGuest struct {
	net, console, out, ctl net.Conn
	monitor                net.Listener
	// killed is closed by Kill.
	killed <-chan struct{}
}

// dialFake connects to the sockets of a QEMU command line built by
// qemuArgs: -netdev's addr.path, the three -serial unix: ports in order,
// and serves the -monitor socket.
func dialFake(args []string, killed <-chan struct{}) (*fakeGuest, error) {
	g := &fakeGuest{killed: killed}
	serials := []*net.Conn{&g.console, &g.out, &g.ctl}
	dial := func(path string) (net.Conn, error) { return net.Dial("unix", path) }
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		var err error
		switch args[i] {
		case "-netdev":
			_, p, _ := strings.Cut(v, "addr.path=")
			g.net, err = dial(p)
		case "-serial":
			*serials[0], err = dial(strings.TrimPrefix(v, "unix:"))
			serials = serials[1:]
		case "-monitor":
			p, _, _ := strings.Cut(strings.TrimPrefix(v, "unix:"), ",")
			g.monitor, err = net.Listen("unix", p)
			if err == nil {
				go serveFakeMonitor(g.monitor)
			}
		}
		if err != nil {
			g.close()
			return nil, fmt.Errorf("fake QEMU: %w", err)
		}
	}
	if len(serials) != 0 || g.net == nil {
		g.close()
		return nil, fmt.Errorf("fake QEMU: command line %q lacks a socket", args)
	}
	return g, nil
}

func (g *fakeGuest) close() {
	for _, c := range []net.Conn{g.net, g.console, g.out, g.ctl} {
		if c != nil {
			c.Close()
		}
	}
	if g.monitor != nil {
		g.monitor.Close()
	}
}

// control writes a control line as the init does.
func (g *fakeGuest) control(verb string, args ...any) {
	line := guestproto.Prefix + verb
	for _, a := range args {
		line += " " + fmt.Sprint(a)
	}
	fmt.Fprintln(g.ctl, line)
}

// runTests plays an init that boots and runs a test binary with output
// and exit status code, then powers off.
func (g *fakeGuest) runTests(output string, code int) error {
	io.WriteString(g.console, "Linux version 6.1.0-fake\r\n")
	g.control(guestproto.Hello)
	g.control(guestproto.Ready, DUTIface)
	g.control(guestproto.Alive, guestproto.Heartbeat{Seq: 1, Load1: -1, TestCPU: -1})
	io.WriteString(g.out, output)
	g.control(guestproto.Exit, code)
	return nil
}

// hang waits for the host to kill QEMU.
func (g *fakeGuest) hang() error {
	<-g.killed
	return errKilled
}

// serveFakeMonitor answers QEMU's human monitor as a running VM with one
// vCPU: the banner and prompt, then each command's echo, answer and prompt.
func serveFakeMonitor(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			io.WriteString(conn, "QEMU 8.2.2 monitor - type 'help' for more information\r\n"+hmpPrompt)
			s := bufio.NewScanner(conn)
			for s.Scan() {
				answer := ""
				switch s.Text() {
				case "info status":
					answer = "VM status: running\r\n"
				case "info registers -a":
					answer = "CPU#0\r\nRAX=0000000000000000 RBX=0000000000000000\r\nRIP=ffffffff81e0f2d4 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n"
				}
				io.WriteString(conn, s.Text()+"\r\n"+answer+hmpPrompt)
			}
		}()
	}
}

// fakeBoot is a boot of nothing but data files with a fake QEMU: every
// phase of a run but the launch is real.
func fakeBoot(t *testing.T, c Config, work string, f *fakeQEMU) *boot {
	t.Helper()
	c, err := c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	f.connected = make(chan struct{})
	return &boot{
		c: c, qemu: "qemu-system-x86_64", image: work + "/vmlinuz", accel: "tcg", links: probeLinks, work: work,
		gc:     guestproto.Config{NICs: []guestproto.NIC{probeLinks[0].guestNIC()}},
		files:  []initramfsFile{{Name: "init", Data: []byte("fake init"), Mode: 0o755}},
		launch: f.launch, connected: func() { close(f.connected) },
	}
}
