package rig

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"txtimeout/rig/internal/guestproto"
)

func TestQEMUArgs(t *testing.T) {
	base := qemuSpec{
		Accel: "tcg", SMP: 2, MemMB: 1024, Kernel: "/k/vmlinuz", Initrd: "/w/initramfs.cpio",
		Append: kernelCmdline(), NICs: []qemuNIC{{Model: "virtio-net-pci", MAC: "52:54:00:12:34:56", NetSock: "/w/net.sock"}},
		Serials: []string{"/w/console.sock", "/w/out.sock", "/w/ctl.sock"},
	}
	nic := func(f func(*qemuNIC)) func(*qemuSpec) { return func(s *qemuSpec) { f(&s.NICs[0]) } }
	tests := []struct {
		name    string
		edit    func(*qemuSpec)
		want    []string // consecutive arguments that must appear
		notWant []string
		err     bool
	}{
		{name: "default", want: []string{
			"-accel tcg", "-cpu qemu64", "-m 1024", "-smp 2", "-no-reboot", "-nodefaults",
			"-kernel /k/vmlinuz", "-initrd /w/initramfs.cpio",
			"-netdev stream,id=n0,server=off,addr.type=unix,addr.path=/w/net.sock",
			"-device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
			"-serial unix:/w/console.sock -serial unix:/w/out.sock -serial unix:/w/ctl.sock",
		}, notWant: []string{"-enable-kvm", "-cpu host", "-monitor"}},
		{name: "monitor", edit: func(s *qemuSpec) { s.Monitor = "/w/monitor.sock" }, want: []string{"-monitor unix:/w/monitor.sock,server=on,wait=off"}},
		{name: "comma in the monitor path", edit: func(s *qemuSpec) { s.Monitor = "/w,x/monitor.sock" }, err: true},
		{name: "kvm", edit: func(s *qemuSpec) { s.Accel = "kvm" }, want: []string{"-accel kvm", "-cpu host"}},
		{name: "smp4", edit: func(s *qemuSpec) { s.SMP = 4; s.MemMB = 512 }, want: []string{"-smp 4", "-m 512"}},
		{name: "e1000", edit: nic(func(n *qemuNIC) { n.Model = "e1000" }), want: []string{"-device e1000,netdev=n0,mac=52:54:00:12:34:56"}},
		{name: "e1000e", edit: nic(func(n *qemuNIC) { n.Model = "e1000e" }), want: []string{"-device e1000e,netdev=n0,"}},
		{name: "rtl8139", edit: nic(func(n *qemuNIC) { n.Model = "rtl8139" }), want: []string{"-device rtl8139,netdev=n0,"}},
		{name: "more NICs", edit: func(s *qemuSpec) {
			s.NICs = append(s.NICs, qemuNIC{Model: "e1000", MAC: "52:54:00:12:35:56", NetSock: "/w/net1.sock"})
		}, want: []string{
			"-netdev stream,id=n0,server=off,addr.type=unix,addr.path=/w/net.sock -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 " +
				"-netdev stream,id=n1,server=off,addr.type=unix,addr.path=/w/net1.sock -device e1000,netdev=n1,mac=52:54:00:12:35:56",
		}},
		{name: "loop", edit: func(s *qemuSpec) {
			s.NICs = []qemuNIC{{Model: "e1000e", MAC: "52:54:00:12:34:56", Hub: true}, {Model: "e1000e", MAC: "02:74:78:00:00:01", Hub: true}}
		}, want: []string{
			"-netdev hubport,id=n0,hubid=0 -device e1000e,netdev=n0,mac=52:54:00:12:34:56 " +
				"-netdev hubport,id=n1,hubid=0 -device e1000e,netdev=n1,mac=02:74:78:00:00:01",
		}, notWant: []string{"-netdev stream"}},
		{name: "no NIC", edit: func(s *qemuSpec) { s.NICs = nil }, err: true},
		{name: "socket and hub", edit: nic(func(n *qemuNIC) { n.Hub = true }), err: true},
		{name: "neither socket nor hub", edit: nic(func(n *qemuNIC) { n.NetSock = "" }), err: true},
		{name: "comma in a MAC", edit: nic(func(n *qemuNIC) { n.MAC = "52,54" }), err: true},
		{name: "bad accel", edit: func(s *qemuSpec) { s.Accel = "hvf" }, err: true},
		{name: "two serials", edit: func(s *qemuSpec) { s.Serials = s.Serials[:2] }, err: true},
		{name: "comma in a path", edit: nic(func(n *qemuNIC) { n.NetSock = "/w,x/net.sock" }), err: true},
		{name: "no initrd", edit: func(s *qemuSpec) { s.Initrd = "" }, err: true},
		{name: "zero smp", edit: func(s *qemuSpec) { s.SMP = 0 }, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			s.Serials = slices.Clone(base.Serials)
			s.NICs = slices.Clone(base.NICs)
			if tt.edit != nil {
				tt.edit(&s)
			}
			args, err := qemuArgs(s)
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			line := " " + strings.Join(args, " ") + " "
			for _, w := range tt.want {
				assert.Contains(t, line, " "+w, "QEMU command line")
			}
			for _, w := range tt.notWant {
				assert.NotContains(t, line, " "+w+" ")
			}
			// The kernel command line is one argument.
			i := slices.Index(args, "-append")
			require.GreaterOrEqual(t, i, 0)
			assert.Equal(t, kernelCmdline(), args[i+1])
		})
	}
}

func TestKernelCmdline(t *testing.T) {
	c := " " + kernelCmdline() + " "
	for _, w := range []string{"console=ttyS0,115200", "panic=-1", "rdinit=/init", "printk.devkmsg=on"} {
		assert.Contains(t, c, " "+w+" ")
	}
	// A splat must be observed by the suite, not turned into a panic.
	assert.NotContains(t, c, "oops=panic")
	assert.NotContains(t, c, "panic_on_warn")
}

func TestLookupNIC(t *testing.T) {
	m, err := LookupNIC("")
	require.NoError(t, err)
	assert.Equal(t, "virtio-net-pci", m.Name)
	assert.Equal(t, []string{"virtio_pci", "virtio_net"}, m.Modules)
	for _, n := range []string{"e1000", "e1000e", "igb", "rtl8139"} {
		_, err := LookupNIC(n)
		assert.NoError(t, err, n)
	}
	_, err = LookupNIC("ne2k_pci")
	assert.ErrorIs(t, err, ErrNICUnsupported)
	assert.ErrorContains(t, err, "virtio-net-pci, e1000")
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("TXTIMEOUT_KERNEL", "/k")
	t.Setenv("TXTIMEOUT_MODULES", "/m")
	t.Setenv("TXTIMEOUT_NIC", "e1000")
	t.Setenv("TXTIMEOUT_SMP", "4")
	t.Setenv("TXTIMEOUT_MEM", "oops")
	t.Setenv("TXTIMEOUT_REPORT_DIR", "/r")
	t.Setenv("TXTIMEOUT_RIG_TIMEOUT", "3m")
	t.Setenv("TXTIMEOUT_ACCEL", "auto")
	t.Setenv("TXTIMEOUT_RIG_HANG", "2m")
	t.Setenv("TXTIMEOUT_MODPARAMS", "e1000e.IntMode=1,foo.bar=x bad")
	t.Setenv("TXTIMEOUT_EXTRA_MODULES", "lkdtm, txtimeout-splat")
	c := ConfigFromEnv()
	// Module parameters are split here and checked by Run: "bad" stays,
	// to fail the run.
	assert.Equal(t, Config{Kernel: "/k", Modules: "/m", NIC: "e1000", SMP: 4, ReportDir: "/r", Timeout: 3 * time.Minute, Accel: "auto", HangTimeout: 2 * time.Minute,
		ModParams: []string{"e1000e.IntMode=1", "foo.bar=x", "bad"}, ExtraModules: []string{"lkdtm", "txtimeout-splat"}}, c)
	t.Setenv("TXTIMEOUT_RIG_HANG", "90")
	assert.Zero(t, ConfigFromEnv().HangTimeout, "a duration without a unit is ignored")
}

func TestWithDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, DefaultNIC, c.NIC)
	assert.Equal(t, 2, c.SMP)
	assert.Equal(t, "tcg", c.Accel)
	assert.Equal(t, DefaultTimeout, c.Timeout)
	assert.Equal(t, 90*time.Second, c.HangTimeout)
	for _, bad := range []Config{
		{SMP: -1}, {MemMB: 100}, {Accel: "xen"}, {NIC: "ne2k"}, {Kernel: "/k"}, {Modules: "/m"}, {Timeout: -time.Second},
		{HangTimeout: -time.Second}, {HangTimeout: 3 * time.Second},
		{ExtraModules: []string{""}}, {ExtraModules: []string{"lkdtm.ko"}}, {ExtraModules: []string{"/lib/modules/lkdtm"}},
	} {
		_, err := bad.withDefaults()
		assert.Error(t, err, "%+v", bad)
	}
}

func TestExtraModules(t *testing.T) {
	c, err := Config{ExtraModules: []string{"lkdtm", "txtimeout-splat", "txtimeout_splat"}}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, []string{"lkdtm", "txtimeout_splat"}, c.ExtraModules, "normalised as the kernel spells them, each once")
	nic, err := LookupNIC("e1000")
	require.NoError(t, err)
	want, reasons := wantedModules([]NICModel{nic}, append(c.ExtraModules, "e1000", "pktgen"))
	assert.Equal(t, []string{"e1000", "sch_netem", "pktgen", "lkdtm", "txtimeout_splat"}, want, "the NIC's, the scenarios', then the extra ones, each once")
	assert.Equal(t, "the e1000 NIC", reasons["e1000"])
	assert.Contains(t, reasons["lkdtm"], "TXTIMEOUT_EXTRA_MODULES")
}

func TestParseGuestLine(t *testing.T) {
	tests := []struct {
		line string
		want guestEvent
	}{
		{"\x16=== RUN   TestX/Sub", guestEvent{Kind: "run", Name: "TestX/Sub", Line: "=== RUN   TestX/Sub"}},
		{"\x16--- PASS: TestX (1.20s)", guestEvent{Kind: "pass", Name: "TestX", Line: "--- PASS: TestX (1.20s)"}},
		{"\x16    --- SKIP: TestX/Sub (0.00s)", guestEvent{Kind: "skip", Name: "TestX/Sub", Line: "    --- SKIP: TestX/Sub (0.00s)"}},
		{"\x16--- FAIL: TestX/A#01 (0.00s)", guestEvent{Kind: "fail", Name: "TestX/A#01", Line: "--- FAIL: TestX/A#01 (0.00s)"}},
		{"\x16=== PAUSE TestP", guestEvent{Kind: "pause", Name: "TestP", Line: "=== PAUSE TestP"}},
		{"\x16=== CONT  TestP", guestEvent{Kind: "cont", Name: "TestP", Line: "=== CONT  TestP"}},
		{"\x16=== NAME  ", guestEvent{Kind: "name", Line: "=== NAME  "}},
		{"\x16PASS", guestEvent{Kind: "output", Line: "PASS"}},
		// Unframed lines are output even when they look like framing:
		// a test that prints "--- FAIL" must not end a mirrored test.
		{"--- FAIL: TestX (0.00s)", guestEvent{Kind: "output", Line: "--- FAIL: TestX (0.00s)"}},
		{"    x_test.go:12: hello", guestEvent{Kind: "output", Line: "    x_test.go:12: hello"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, parseGuestLine(tt.line), "%q", tt.line)
	}
}

func FuzzParseGuestLine(f *testing.F) {
	for _, s := range []string{"\x16=== RUN   TestX/Sub", "\x16--- SKIP: T (0.00s)", "plain", "\x16=== NAME  ", "\x16"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if len(line) > 4096 {
			return
		}
		ev := parseGuestLine(line)
		if ev.Kind != "output" && !strings.HasPrefix(line, "\x16") {
			t.Fatalf("unframed line %q parsed as %q", line, ev.Kind)
		}
		if strings.ContainsAny(ev.Name, " \t\n") {
			t.Fatalf("test name %q holds blanks", ev.Name)
		}
	})
}

func TestSkipMessage(t *testing.T) {
	assert.Equal(t, "inconclusive: the queue never stalled", skipMessage([]string{
		"    a_test.go:10: flooding",
		"    a_test.go:20: inconclusive: the queue never stalled",
	}))
	assert.Equal(t, "inconclusive: two\nlines", skipMessage([]string{
		"    a_test.go:20: inconclusive: two",
		"        lines",
	}))
	assert.Equal(t, "skipped in the guest", skipMessage(nil))
}

func TestPanicLines(t *testing.T) {
	assert.Empty(t, panicLines("[    1.0] ok\n"))
	con := "[ 1.0] boot\n[ 2.0] BUG: kernel NULL pointer dereference\n[ 2.1] Kernel panic - not syncing: Fatal exception\n[ 2.2] ---[ end Kernel panic - not syncing: Fatal exception ]---\n[ 3.0] after\n"
	pl := panicLines(con)
	assert.Contains(t, pl, "BUG: kernel NULL pointer dereference")
	assert.Contains(t, pl, "Kernel panic - not syncing: Fatal exception")
	assert.NotContains(t, pl, "after")
}

func TestInitramfsRoundTrip(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	bigData := bytes.Repeat([]byte("txtimeout"), 100000)
	require.NoError(t, os.WriteFile(big, bigData, 0o600))
	var buf bytes.Buffer
	require.NoError(t, writeInitramfs(&buf, []initramfsFile{
		{Name: "init", Data: []byte("\x7fELF init"), Mode: 0o755},
		{Name: "txtimeout.test", Path: big, Mode: 0o755},
		{Name: "lib/modules/rig/virtio_net.ko", Data: []byte("module"), Mode: 0o644},
	}))
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	require.NoError(t, err)
	got := map[string]cpio.Record{}
	for _, r := range recs {
		got[r.Name] = r
	}
	for name, want := range map[string][]byte{
		"init": []byte("\x7fELF init"), "txtimeout.test": bigData, "lib/modules/rig/virtio_net.ko": []byte("module"),
	} {
		r, ok := got[name]
		require.True(t, ok, "%s missing from the archive", name)
		b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, b), "%s content differs", name)
		assert.Equal(t, uint64(cpio.S_IFREG), r.Mode&cpio.S_IFMT, name)
	}
	assert.Equal(t, uint64(0o755), got["init"].Mode&0o777)
	con := got["dev/console"]
	assert.Equal(t, uint64(cpio.S_IFCHR), con.Mode&cpio.S_IFMT)
	assert.Equal(t, [2]uint64{5, 1}, [2]uint64{con.Rmajor, con.Rminor})
	for _, d := range []string{"proc", "sys", "dev", "tmp", "report", "lib", "lib/modules", "lib/modules/rig"} {
		assert.Equal(t, uint64(cpio.S_IFDIR), got[d].Mode&cpio.S_IFMT, d)
	}
	// Parents precede children, as the kernel creates them in order.
	seen := map[string]bool{".": true}
	for _, r := range recs {
		if r.Name == cpio.Trailer {
			continue
		}
		assert.True(t, seen[filepath.Dir(r.Name)], "%s before its directory", r.Name)
		seen[r.Name] = true
	}
}

func TestControlRead(t *testing.T) {
	dir := t.TempDir()
	c := newControl(dir)
	in := strings.Join([]string{
		"noise from nowhere",
		guestproto.Prefix + "HELLO",
		guestproto.Prefix + "MODULE virtio_net",
		guestproto.Prefix + "FILE 12 report.json",
		"eyJvayI6dHJ1",
		"ZX0K",
		guestproto.Prefix + "ENDFILE",
		guestproto.Prefix + "FILE 3 ../../escape",
		"YWJj",
		guestproto.Prefix + "ENDFILE",
		guestproto.Prefix + "EXIT 1",
		"",
	}, "\n")
	c.read(strings.NewReader(in))
	select {
	case <-c.hello:
	default:
		t.Error("HELLO not signalled")
	}
	code, ok := c.exitCode()
	assert.True(t, ok)
	assert.Equal(t, 1, code)
	require.NoError(t, c.fileErr)
	assert.Equal(t, []string{"report.json", "escape"}, c.files)
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	assert.Equal(t, "{\"ok\":true}\n", string(b))
	// "../../escape" stays inside the report directory.
	_, err = os.Stat(filepath.Join(dir, "escape"))
	assert.NoError(t, err)
}

func FuzzControlRead(f *testing.F) {
	f.Add("TXTO HELLO\nTXTO FILE 3 a\nYWJj\nTXTO ENDFILE\nTXTO EXIT 0\n")
	f.Add("TXTO FILE\nTXTO ENDFILE\nTXTO EXIT x\nTXTO ERROR boom\n")
	f.Add("TXTO RESUME 0a1b2c3d\nTXTO RESUME\nTXTO READY eth0\n")
	f.Add("TXTO READY eth0\nTXTO ALIVE seq=1 uptime_ms=3000 load1=0.10 test_cpu_ms=20\nTXTO ALIVE seq=x\nTXTO ALIVE\n")
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > 1<<16 {
			return
		}
		c := newControl("")
		c.read(strings.NewReader(in))
		if code, ok := c.exitCode(); ok && !strings.Contains(in, "EXIT") {
			t.Fatalf("exit %d without an EXIT line", code)
		}
	})
}

func TestRunWatcher(t *testing.T) {
	var out bytes.Buffer
	var progress []string
	w := &runWatcher{w: &out, start: time.Now(), progressf: func(f string, a ...any) { progress = append(progress, f) }}
	io.WriteString(w, "boot noise\n\x16=== RU")
	assert.Zero(t, w.bootTime())
	io.WriteString(w, "N   TestA\nlog\n=== RUN   TestB\n")
	assert.NotZero(t, w.bootTime())
	assert.Equal(t, "boot noise\n\x16=== RUN   TestA\nlog\n=== RUN   TestB\n", out.String())
	assert.Equal(t, 2, w.n)
}

func TestConsoleKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	con, err := newConsole(path)
	require.NoError(t, err)
	// io.Copy stops at the first short write: CRLF must count as written.
	_, err = io.Copy(con, strings.NewReader("[ 1.0] one\r\n[ 2.0] two\r\n"))
	require.NoError(t, err)
	con.close()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "[ 1.0] one\n[ 2.0] two\n", string(b))
	assert.Equal(t, "[ 2.0] two", con.tail(1))
}

func TestNewestKernel(t *testing.T) {
	got, err := newestKernel([]byte("linux-image-6.1.0-9-amd64\nlinux-image-6.1.0-56-amd64\nlinux-image-6.1.0-56-amd64-dbg\nlinux-image-6.1.0-100-cloud-amd64\nlinux-image-6.1.0-57-rt-amd64\nlinux-image-6.1.0-12-amd64\n"))
	require.NoError(t, err)
	// Numerically newest, and only the plain amd64 flavour.
	assert.Equal(t, "linux-image-6.1.0-56-amd64", got)
	_, err = newestKernel([]byte("linux-image-6.1.0-56-cloud-amd64\n"))
	assert.Error(t, err)
}

func BenchmarkWriteInitramfs(b *testing.B) {
	big := filepath.Join(b.TempDir(), "test")
	if err := os.WriteFile(big, bytes.Repeat([]byte{0x90}, 20<<20), 0o755); err != nil {
		b.Fatal(err)
	}
	files := []initramfsFile{{Name: "init", Data: make([]byte, 4<<20), Mode: 0o755}, {Name: "txtimeout.test", Path: big, Mode: 0o755}}
	b.SetBytes(24 << 20)
	for b.Loop() {
		if err := writeInitramfs(io.Discard, files); err != nil {
			b.Fatal(err)
		}
	}
}

func TestGuestEnv(t *testing.T) {
	own := []string{"TXTIMEOUT_RIG=1", "TXTIMEOUT_IFACE=eth0"}
	got, err := guestEnv(own, []string{"TXTIMEOUT_STALL_FOR=7s", "TXTIMEOUT_SENDERS=3"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"TXTIMEOUT_RIG=1", "TXTIMEOUT_IFACE=eth0", "TXTIMEOUT_STALL_FOR=7s", "TXTIMEOUT_SENDERS=3"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("guestEnv = %q, want %q", got, want)
	}
	for _, bad := range []string{"TXTIMEOUT_IFACE=eth1", "NOEQUALS", "=x", "A=b\nC=d"} {
		if _, err := guestEnv(own, []string{bad}); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("guestEnv accepts %q or errs on several lines: %v", bad, err)
		}
	}
}

func TestCmdlineQuoted(t *testing.T) {
	args := []string{"/usr/bin/qemu-system-x86_64", "-m", "1024", "-append", "console=ttyS0,115200 panic=-1 rdinit=/init", "-device", "e1000,netdev=n0,mac=52:54:00:12:34:56", "it's", ""}
	want := `/usr/bin/qemu-system-x86_64 -m 1024 -append 'console=ttyS0,115200 panic=-1 rdinit=/init' -device e1000,netdev=n0,mac=52:54:00:12:34:56 'it'\''s' ''`
	if got := CmdlineQuoted(args); got != want {
		t.Errorf("CmdlineQuoted =\n%s\nwant\n%s", got, want)
	}
	// What a shell reads back is the arguments again.
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skipf("skipping the read-back: no sh in PATH: %v", err)
	}
	script := "set -- " + CmdlineQuoted(args) + `; for a in "$@"; do printf '[%s]\n' "$a"; done`
	got, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	var back []string
	for _, l := range strings.Split(strings.TrimSuffix(string(got), "\n"), "\n") {
		back = append(back, strings.TrimSuffix(strings.TrimPrefix(l, "["), "]"))
	}
	if strings.Join(back, "\x00") != strings.Join(args, "\x00") {
		t.Errorf("the shell read back %q, want %q", back, args)
	}
}

// RunPackage adds test2json framing and a guest deadline unless the
// caller's flags set them (the soak reads plain -test.v output).
func TestGuestArgs(t *testing.T) {
	c, err := Config{Timeout: 10 * time.Minute}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, []string{"-test.v=test2json", "-test.run=^TestA$", "-test.timeout=7m30s"}, c.guestArgs([]string{"-test.run=^TestA$"}))
	assert.Equal(t, []string{"-test.v", "-soak=3", "-test.timeout=2m"}, c.guestArgs([]string{"-test.v", "-soak=3", "-test.timeout=2m"}))
	c.Timeout, c.BootTimeout = 90*time.Second, time.Minute
	assert.Equal(t, []string{"-test.v=test2json", "-test.timeout=1m0s"}, c.guestArgs(nil), "at least a minute")
	assert.False(t, hasTestFlag([]string{"-test.vet=off", "test.v"}, "v"), "another flag, or no flag at all")
	assert.True(t, hasTestFlag([]string{"--test.v=true"}, "v"))
}

// The progress lines the rig writes are the ones ParseProgress reads.
func TestParseProgress(t *testing.T) {
	out := strings.Join([]string{
		"rig: booting 6.1.0-56-amd64 (tcg, 2 vCPUs, 1024 MiB, virtio-net-pci)",
		"rig: " + fmt.Sprintf(progressGuestInit, 2.46),
		"rig: " + fmt.Sprintf(progressFirstTest, 11.44),
		"rig: " + fmt.Sprintf(progressKept, "/tmp/txtimeout-rig-1"),
		"    main_test.go:91: rig: " + fmt.Sprintf(progressFirstTest, 3.0),
		"rig: " + fmt.Sprintf(progressKept, "/tmp/txtimeout-rig-2"),
		(&Result{WorkDir: "/tmp/txtimeout-rig-1"}).Evidence(),
	}, "\n")
	p := ParseProgress(out)
	assert.Equal(t, 11400*time.Millisecond, p.BootTime, "the first run's")
	assert.Equal(t, 2500*time.Millisecond, p.GuestBootTime)
	assert.Equal(t, []string{"/tmp/txtimeout-rig-1", "/tmp/txtimeout-rig-2"}, p.Kept)
	assert.Equal(t, Progress{}, ParseProgress("rig: booting\nok txtimeout/scenarios 40s\n"))
}
