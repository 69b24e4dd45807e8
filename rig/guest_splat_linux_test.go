package rig

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"txtimeout/rig/guest"
)

var splatFlag = flag.String("splat", "", "TestGuestSplat (in the rig's guest only): comma-separated `ITEMS` to do in order: "+
	"lkdtm:TYPE (write TYPE to lkdtm's provoke-crash/DIRECT; needs -extra-module lkdtm), "+
	"lockdep, leak, netdev (contrib/kernel/splat's txtimeout_splat module; needs -extra-module txtimeout_splat), "+
	"kmemleak (scan twice, print /sys/kernel/debug/kmemleak), sleep:DURATION, kmsg:NAME (save /dev/kmsg's records to the report file NAME; kmsg:- prints them), "+
	"bg:ITEM (do ITEM in the background, for a trigger that never returns, e.g. bg:lkdtm:HUNG_TASK)")

// TestGuestSplat provokes kernel reports on purpose, so that the kmsg
// matcher's fixtures can be captured from a real debug kernel (see
// kmsg/testdata/reports/captured-*.txt for the command lines). It runs only
// inside the guest and only when -splat names what to do; each item is
// announced on the console by a "txtimeout-splat: ITEM" record, so that the
// reports can be cut from console.log.
func TestGuestSplat(t *testing.T) {
	if !guest.Inside() || *splatFlag == "" {
		t.Skip("runs only inside the virtual rig's guest, with -splat ITEMS (txtimeout rig -extra-module lkdtm -pkg txtimeout/rig -- -run TestGuestSplat -splat lkdtm:WARNING)")
	}
	for _, item := range strings.Split(*splatFlag, ",") {
		kmsgMark(t, "begin "+item)
		err := splat(t, item)
		kmsgMark(t, "end "+item)
		if err != nil {
			t.Errorf("%s: %v", item, err)
		}
	}
}

func splat(t *testing.T, item string) error {
	if rest, ok := strings.CutPrefix(item, "bg:"); ok {
		// For a report whose trigger never returns (lkdtm:HUNG_TASK,
		// lkdtm:SOFTLOCKUP): the writer stays blocked, the test goes on.
		go func() {
			if err := splat(t, rest); err != nil {
				fmt.Printf("%s: %v\n", item, err)
			}
		}()
		return nil
	}
	kind, arg, _ := strings.Cut(item, ":")
	switch kind {
	case "lkdtm":
		return os.WriteFile("/sys/kernel/debug/provoke-crash/DIRECT", []byte(arg), 0)
	case "lockdep", "leak", "netdev":
		return os.WriteFile("/sys/module/txtimeout_splat/parameters/trigger", []byte(kind), 0)
	case "kmemleak":
		for i := 0; i < 2; i++ {
			if err := os.WriteFile("/sys/kernel/debug/kmemleak", []byte("scan"), 0); err != nil {
				return err
			}
		}
		b, err := os.ReadFile("/sys/kernel/debug/kmemleak")
		if err != nil {
			return err
		}
		fmt.Printf("--- /sys/kernel/debug/kmemleak ---\n%s--- end of /sys/kernel/debug/kmemleak ---\n", b)
		return nil
	case "sleep":
		d, err := time.ParseDuration(arg)
		if err != nil {
			return err
		}
		time.Sleep(d)
		return nil
	case "kmsg":
		if arg == "-" {
			// To the test's output, which streams out live: for a run
			// whose test never exits (bg:lkdtm:HUNG_TASK), so that the
			// init never copies the report files.
			b, err := readKmsgNow()
			fmt.Printf("--- /dev/kmsg ---\n%s--- end of /dev/kmsg ---\n", b)
			return err
		}
		dir := os.Getenv("TXTIMEOUT_REPORT_DIR")
		if dir == "" || arg == "" || strings.Contains(arg, "/") {
			return fmt.Errorf("kmsg:NAME needs a file name and TXTIMEOUT_REPORT_DIR")
		}
		b, err := readKmsgNow()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, arg), b, 0o644)
	}
	return fmt.Errorf("unknown item (want lkdtm:TYPE, lockdep, leak, netdev, kmemleak, sleep:D, kmsg:NAME)")
}

// kmsgMark writes a warning-level record, so that it reaches the console
// (loglevel=5) between the reports.
func kmsgMark(t *testing.T, s string) {
	if err := os.WriteFile("/dev/kmsg", []byte("<4>txtimeout-splat: "+s+"\n"), 0); err != nil {
		t.Logf("/dev/kmsg: %v", err)
	}
}

// readKmsgNow returns every record /dev/kmsg holds now, in its own format
// (PRIORITY,SEQ,USEC,FLAGS;TEXT and continuation lines).
func readKmsgNow() ([]byte, error) {
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var out []byte
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(fd, buf)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return out, nil
		case errors.Is(err, syscall.EPIPE):
			out = append(out, "(records overwritten)\n"...)
			continue
		case err != nil:
			return out, err
		}
		out = append(out, buf[:n]...)
	}
}
