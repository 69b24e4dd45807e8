package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"txtimeout/rig"
)

func init() {
	register(command{
		name:    "rig",
		summary: "run the scenarios inside the virtual rig (a kernel under QEMU)",
		run:     runRig,
	})
}

// goTestFlags are the go test flags that the guest test binary knows as
// -test.NAME.
var goTestFlags = map[string]bool{
	"run": true, "skip": true, "v": true, "count": true, "timeout": true, "failfast": true,
	"short": true, "list": true, "bench": true, "benchtime": true, "benchmem": true,
	"cpu": true, "parallel": true, "shuffle": true,
}

func runRig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rig", stderr)
	env := rig.ConfigFromEnv()
	kernel := fs.String("kernel", env.Kernel, "kernel image (vmlinuz); default: the pinned Debian kernel "+rig.DefaultKernelPackage)
	modules := fs.String("modules", env.Modules, "the kernel's module tree (PATH/lib/modules/VERSION); needed with -kernel")
	kernelPkg := fs.String("kernel-package", "", "a Debian kernel package to boot instead of the pinned one: a name, a pattern, or "+strings.Join(rig.KernelAliasNames(), ", ")+" (fetched from the machine's apt sources or another suite of its Debian mirror)")
	nic := fs.String("nic", orDefault(env.NIC, rig.DefaultNIC), "NIC model: "+nicNames())
	moreNICs := &listFlag{items: env.MoreNICs}
	fs.Var(moreNICs, "more-nic", "another NIC `MODEL` (eth1, eth2, ...), cabled to a host partner of its own on 198.18.N.0/24 (repeatable, or comma-separated; added to TXTIMEOUT_RIG_MORE_NICS)")
	topology := fs.String("topology", orDefault(env.Topology, rig.TopologyHost), "host (each NIC's partner on the host) or loop (two -nic NICs cabled to each other, the partner port eth1 in netns partner; the tests run in hardware mode)")
	smp := fs.Int("smp", orDefaultInt(env.SMP, rig.DefaultSMP), "number of vCPUs")
	mem := fs.Int("mem", orDefaultInt(env.MemMB, rig.DefaultMemMB), "guest memory in MiB")
	accel := fs.String("accel", orDefault(env.Accel, "tcg"), "accelerator: tcg, kvm, or auto (KVM if a probe boot works)")
	report := fs.String("report", env.ReportDir, "directory that receives the guest's report files and console.log")
	keep := fs.Bool("keep", env.Keep, "keep the work directory (initramfs, logs) and print its path")
	timeout := fs.Duration("timeout", orDefaultDur(env.Timeout, rig.DefaultTimeout), "hard deadline of the guest run")
	hang := fs.Duration("hang", orDefaultDur(env.HangTimeout, rig.DefaultHangTimeout), "fail when the running guest sends no heartbeat for this long")
	pkg := fs.String("pkg", "txtimeout/scenarios", "test package to run in the guest")
	modParams := &modParamFlag{items: env.ModParams}
	fs.Var(modParams, "modparam", "parameter `MODULE.PARAM=VALUE` for a module the rig loads, e.g. e1000e.IntMode=1 (repeatable; added to TXTIMEOUT_MODPARAMS, a later value of a parameter wins)")
	extraMods := &listFlag{items: env.ExtraModules}
	fs.Var(extraMods, "extra-module", "another `MODULE` of the module tree for the guest init to load, e.g. lkdtm (repeatable, or comma-separated; added to TXTIMEOUT_EXTRA_MODULES)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: txtimeout rig [flags] [-- go test flags, e.g. -run TxTimeout/NetemDelay]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*kernel == "") != (*modules == "") {
		return usagef("-kernel and -modules go together")
	}
	if *kernelPkg != "" && *kernel != "" {
		return usagef("-kernel-package or -kernel/-modules, not both")
	}
	if *smp < 1 || *smp > 64 {
		return usagef("-smp %d: want 1 to 64", *smp)
	}
	if *mem < 256 {
		return usagef("-mem %d: want at least 256 MiB", *mem)
	}
	if *timeout < time.Minute {
		return usagef("-timeout %v: want at least 1m", *timeout)
	}
	if *hang < 4*time.Second {
		return usagef("-hang %v: want at least 4s (two heartbeats)", *hang)
	}
	if _, err := rig.LookupNIC(*nic); err != nil {
		return usagef("-nic: %v", err)
	}
	for _, m := range moreNICs.items {
		if _, err := rig.LookupNIC(m); err != nil {
			return usagef("-more-nic: %v", err)
		}
	}
	switch *topology {
	case rig.TopologyHost:
	case rig.TopologyLoop:
		if len(moreNICs.items) > 0 {
			return usagef("-topology loop has its two NICs of model -nic: no -more-nic")
		}
	default:
		return usagef("-topology %q: want %s or %s", *topology, rig.TopologyHost, rig.TopologyLoop)
	}
	if len(moreNICs.items) > rig.MaxMoreNICs {
		return usagef("-more-nic: %d NICs, at most %d", len(moreNICs.items), rig.MaxMoreNICs)
	}
	switch *accel {
	case "tcg", "kvm", "auto":
	default:
		return usagef("-accel %q: want tcg, kvm or auto", *accel)
	}
	// TXTIMEOUT_MODPARAMS is checked here too, so that a malformed item
	// is a usage error wherever it came from.
	mp, err := rig.ParseModParams(modParams.String())
	if err != nil {
		return usagef("-modparam or TXTIMEOUT_MODPARAMS: %v", err)
	}
	testArgs, err := guestFlags(fs.Args())
	if err != nil {
		return err
	}
	if *kernelPkg != "" {
		k, err := rig.FetchKernelPackage(ctx, *kernelPkg, func(f string, a ...any) { fmt.Fprintf(stderr, "rig: "+f+"\n", a...) })
		if err != nil {
			return err
		}
		*kernel, *modules = k.Image, k.Modules
	}
	c := rig.Config{
		Kernel: *kernel, Modules: *modules, NIC: *nic, SMP: *smp, MemMB: *mem,
		Accel: *accel, ReportDir: *report, Keep: *keep, Timeout: *timeout,
		HangTimeout: *hang, Progress: stderr, ModParams: mp,
		ExtraModules: extraMods.items, MoreNICs: moreNICs.items, Topology: *topology,
	}
	out := unframe(stdout)
	r, err := rig.RunPackage(ctx, c, *pkg, testArgs, out)
	out.Flush()
	if r != nil {
		if r.BootTime > 0 {
			fmt.Fprintf(stderr, "rig: first test ran %.1fs after start (kernel %s, %s)\n", r.BootTime.Seconds(), r.Kernel, strings.Join(append([]string{r.NIC}, r.ModParams...), ", "))
		}
		if r.ReportDir != "" {
			fmt.Fprintf(stderr, "rig: report files and console.log in %s\n", r.ReportDir)
		}
	}
	if err != nil {
		// The CLI's error is one line; the console excerpt and where the
		// evidence is kept go before it.
		msg, detail, _ := strings.Cut(err.Error(), "\n")
		if detail != "" {
			fmt.Fprintln(stderr, detail)
		}
		return errors.New(msg)
	}
	if r.ExitCode != 0 {
		if ev := r.Evidence(); ev != "" {
			fmt.Fprintln(stderr, ev)
		}
		return fmt.Errorf("guest tests failed (test binary exit status %d)", r.ExitCode)
	}
	return nil
}

// guestFlags turns go test flags (-run X, -count=2) into the test binary's
// (-test.run=X, -test.count=2). -v is dropped: the rig always runs the
// guest with -test.v=test2json to follow its tests. Other flags pass as
// they are (the scenarios' own flags).
func guestFlags(args []string) ([]string, error) {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			out = append(out, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		name = strings.TrimPrefix(name, "test.")
		if !goTestFlags[name] {
			out = append(out, a)
			continue
		}
		if name == "v" {
			continue
		}
		boolFlag := name == "failfast" || name == "short" || name == "benchmem"
		if !hasVal && !boolFlag {
			if i+1 >= len(args) {
				return nil, usagef("flag -%s needs a value", name)
			}
			i++
			val, hasVal = args[i], true
		}
		if hasVal {
			out = append(out, "-test."+name+"="+val)
		} else {
			out = append(out, "-test."+name)
		}
	}
	return out, nil
}

// lineWriter calls line with each whole line written to it, newline
// included; Flush hands it what is left.
type lineWriter struct {
	line func(l []byte) error
	buf  bytes.Buffer
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		if err := w.line(w.buf.Next(i + 1)); err != nil {
			return 0, err
		}
	}
}

func (w *lineWriter) Flush() error {
	if w.buf.Len() == 0 {
		return nil
	}
	err := w.line(w.buf.Bytes())
	w.buf.Reset()
	return err
}

// unframe turns the guest's test2json-framed output back into go test -v
// output on w: it removes the ^V framing bytes and the "=== NAME" lines
// that only matter to test2json.
func unframe(w io.Writer) *lineWriter {
	return &lineWriter{line: func(l []byte) error {
		if framed, ok := bytes.CutPrefix(l, []byte{0x16}); ok {
			if bytes.HasPrefix(framed, []byte("=== NAME")) {
				return nil
			}
			l = framed
		}
		_, err := w.Write(l)
		return err
	}}
}

// modParamFlag is the repeatable -modparam flag: each value is one or
// more MODULE.PARAM=VALUE items (see rig.ParseModParams), appended to the
// items before it.
type modParamFlag struct{ items []string }

func (f *modParamFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.items, " ")
}

func (f *modParamFlag) Set(v string) error {
	items, err := rig.ParseModParams(v)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return errors.New("want MODULE.PARAM=VALUE")
	}
	f.items = append(f.items, items...)
	return nil
}

func nicNames() string {
	var n []string
	for _, m := range rig.NICModels {
		n = append(n, m.Name)
	}
	return strings.Join(n, ", ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orDefaultInt(n, d int) int {
	if n == 0 {
		return d
	}
	return n
}

func orDefaultDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// listFlag is a repeatable flag whose values may also be comma-separated
// lists; it starts from the environment's items.
type listFlag struct{ items []string }

func (f *listFlag) String() string { return strings.Join(f.items, ",") }

func (f *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			return fmt.Errorf("empty item in %q", v)
		}
		f.items = append(f.items, s)
	}
	return nil
}
