package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"txtimeout/kmsg"
)

func init() {
	register(command{
		name:    "scan",
		summary: "find tx timeouts and kernel splats in a saved kernel log, or follow /dev/kmsg",
		run:     runScan,
	})
}

// scanProgressEvery is how often a long scan reports progress on stderr.
const scanProgressEvery = 2 * time.Second

func runScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scan", stderr)
	follow := fs.Bool("follow", false, "watch /dev/kmsg for new records until interrupted")
	path := fs.String("kmsg", kmsg.DefaultPath, "kernel log device for -follow")
	kernelOnly := fs.Bool("kernel-only", false, "ignore records written from user space (facility > 0: known with -follow, raw /dev/kmsg and dmesg -x input)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: txtimeout scan [FILE|-]")
		fmt.Fprintln(stderr, "       txtimeout scan -follow")
		fmt.Fprintln(stderr, "\nReads a kernel log saved as dmesg, dmesg -r, dmesg -x or raw /dev/kmsg output")
		fmt.Fprintln(stderr, "(FILE, or standard input for - or no argument), or follows /dev/kmsg, and")
		fmt.Fprintln(stderr, "prints one JSON object per event on standard output:")
		fmt.Fprintln(stderr, "kind (watchdog, driver, link, splat), iface, driver, bus, queue, timed_out_ms,")
		fmt.Fprintln(stderr, "ts_usec, seq, text, and reset (a driver line that resets the device) and")
		fmt.Fprintln(stderr, "link_up (a link line: up, or down when absent) where they apply.")
		fmt.Fprintln(stderr, "Exit 0 when the input was read, 1 when it could not be.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *follow {
		if fs.NArg() > 0 {
			return usagef("-follow reads %s and takes no FILE (got %q)", *path, fs.Arg(0))
		}
		return scanFollow(ctx, *path, *kernelOnly, stdout, stderr)
	}
	if fs.NArg() > 1 {
		return usagef("at most one FILE, got %d arguments", fs.NArg())
	}
	name := "-"
	if fs.NArg() == 1 {
		name = fs.Arg(0)
	}
	var in io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	return scanLog(ctx, name, in, *kernelOnly, stdout, stderr)
}

// scanLog prints the events of a saved log.
func scanLog(ctx context.Context, name string, in io.Reader, kernelOnly bool, stdout, stderr io.Writer) error {
	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	lr := kmsg.NewLogReader(in)
	m := kmsg.NewMatcher()
	m.KernelOnly = kernelOnly
	records, events := 0, 0
	last := time.Now()
	for {
		rec, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		records++
		for _, ev := range m.Match(rec) {
			if err := enc.Encode(ev); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			events++
		}
		if records%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("interrupted after %d records: %w", records, err)
			}
			if time.Since(last) >= scanProgressEvery {
				fmt.Fprintf(stderr, "txtimeout: scan: %d records, %d events so far\n", records, events)
				last = time.Now()
			}
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n := lr.Skipped(); n > 0 {
		fmt.Fprintf(stderr, "txtimeout: scan: %d lines not understood (skipped)\n", n)
	}
	return nil
}

// scanFollow prints the events of new /dev/kmsg records until ctx ends.
func scanFollow(ctx context.Context, path string, kernelOnly bool, stdout, stderr io.Writer) error {
	// A regular file or a directory opens, but cannot be followed (the
	// reader polls): refuse it here, so that a failed follow is one line
	// and the progress line below is printed only for a log that follows.
	if fi, err := os.Stat(path); err == nil && fi.Mode()&(os.ModeCharDevice|os.ModeNamedPipe) == 0 {
		return fmt.Errorf("%s is not a kernel log device (want a character device such as %s, or a named pipe)", path, kmsg.DefaultPath)
	}
	r, err := kmsg.Open(kmsg.Options{Path: path})
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (run as root, or set kernel.dmesg_restrict=0)", err)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Fprintf(stderr, "txtimeout: scan: following %s (interrupt to stop)\n", path)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	m := kmsg.NewMatcher()
	m.KernelOnly = kernelOnly
	for {
		rec, err := r.Next(ctx)
		var gap *kmsg.GapError
		switch {
		case ctx.Err() != nil, errors.Is(err, io.EOF): // interrupted, or a named pipe's writer left
			return nil
		case errors.As(err, &gap):
			fmt.Fprintf(stderr, "txtimeout: scan: %v\n", err)
			continue
		case errors.Is(err, kmsg.ErrMalformed):
			fmt.Fprintf(stderr, "txtimeout: scan: %v\n", err)
			continue
		case err != nil:
			return err
		}
		for _, ev := range m.Match(rec) {
			if err := enc.Encode(ev); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
}
