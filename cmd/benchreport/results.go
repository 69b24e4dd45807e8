package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// figure is one row of the table and one key of bench.json.
type figure struct {
	Key   string
	Value float64
	Valid bool // false: not measured (Note says why)
	Unit  string
	Limit string // the limit or the comparison it is read against
	Note  string
}

// machine describes where the figures were measured.
type machine struct {
	CPU          string `json:"cpu"`
	Cores        int    `json:"cores"`
	MemoryMB     int64  `json:"memory_mb"`
	Kernel       string `json:"kernel"`
	Go           string `json:"go"`
	QEMU         string `json:"qemu"`
	Date         string `json:"date"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

// results is everything a run measured.
type results struct {
	Figures    []figure
	Machine    machine
	StepErrors map[string]string
}

func newResults(m machine) *results {
	return &results{Machine: m, StepErrors: map[string]string{}}
}

// add records a measured figure. A NaN or infinite value is recorded as
// not measured.
func (r *results) add(key string, v float64, unit, limit, note string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.missing(key, unit, limit, "not measured: the value came out as "+strconv.FormatFloat(v, 'g', -1, 64)+"; "+note)
		return
	}
	r.Figures = append(r.Figures, figure{Key: key, Value: v, Valid: true, Unit: unit, Limit: limit, Note: note})
}

// missing records a figure that could not be measured, and why.
func (r *results) missing(key, unit, limit, why string) {
	r.Figures = append(r.Figures, figure{Key: key, Unit: unit, Limit: limit, Note: why})
}

// MarshalJSON writes the flat document bench.json holds: one key per
// figure (null when not measured), "machine", "notes" (key: note, limit)
// and "step_errors".
func (r *results) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("{")
	write := func(k string, v any) error {
		if buf.Len() > 1 {
			buf.WriteString(",")
		}
		buf.WriteString("\n  ")
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteString(": ")
		vb, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf.Write(vb)
		return nil
	}
	notes := map[string]map[string]string{}
	for _, f := range r.Figures {
		var v any
		if f.Valid {
			v = roundSig(f.Value)
		}
		if err := write(f.Key, v); err != nil {
			return nil, err
		}
		n := map[string]string{"unit": f.Unit}
		if f.Limit != "" {
			n["limit"] = f.Limit
		}
		if f.Note != "" {
			n["note"] = f.Note
		}
		notes[f.Key] = n
	}
	if err := write("machine", r.Machine); err != nil {
		return nil, err
	}
	if err := write("notes", notes); err != nil {
		return nil, err
	}
	if err := write("step_errors", r.StepErrors); err != nil {
		return nil, err
	}
	buf.WriteString("\n}\n")
	return buf.Bytes(), nil
}

// roundSig keeps four significant digits (at least three decimals below 1),
// so that bench.json does not pretend to a precision no run has.
func roundSig(v float64) float64 {
	if v == 0 {
		return 0
	}
	mag := math.Floor(math.Log10(math.Abs(v)))
	scale := math.Pow(10, 3-mag)
	return math.Round(v*scale) / scale
}

// formatValue prints a figure's value for the table.
func formatValue(f figure) string {
	if !f.Valid {
		return "-"
	}
	return strconv.FormatFloat(roundSig(f.Value), 'f', -1, 64)
}

// writeTable prints the figures as a table: figure, value, unit,
// limit/comparison, note.
func writeTable(w io.Writer, r *results) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %s, %d cores, %d MB, kernel %s, %s, %s\n", m.CPU, m.Cores, m.MemoryMB, m.Kernel, m.Go, m.QEMU)
	fmt.Fprintf(w, "date: %s, load average at start %s, at end %s\n\n", m.Date, m.LoadAvgStart, m.LoadAvgEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tUNIT\tLIMIT/COMPARISON\tNOTE")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Key, formatValue(f), f.Unit, dash(f.Limit), dash(oneLine(f.Note)))
	}
	tw.Flush()
	if len(r.StepErrors) > 0 {
		fmt.Fprintln(w, "\nsteps that failed:")
		for _, s := range allSteps {
			if e, ok := r.StepErrors[s]; ok {
				fmt.Fprintf(w, "  %s: %s\n", s, oneLine(e))
			}
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// writeJSON writes r to path through a temporary file, so that a reader
// never sees half a document.
func writeJSON(path string, r *results) error {
	b, err := r.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// machineInfo describes this machine.
func machineInfo(ctx context.Context, goBin string) machine {
	m := machine{
		Cores:        runtime.NumCPU(),
		Date:         time.Now().UTC().Format(time.RFC3339),
		LoadAvgStart: loadAvg(),
		CPU:          "unknown",
		Go:           "unknown",
		QEMU:         "not installed",
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemoryMB = kb / 1024
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, goBin, "version").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if q, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		if out, err := exec.CommandContext(cctx, q, "--version").Output(); err == nil {
			m.QEMU = firstLine(string(out))
		}
	}
	return m
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// findModule returns the go command and the txtimeout module's directory.
func findModule(ctx context.Context) (goBin, dir string, err error) {
	goBin, err = exec.LookPath("go")
	if err != nil {
		// Go's usual install location (go.dev/doc/install).
		goBin = "/usr/local/go/bin/go"
		if _, serr := os.Stat(goBin); serr != nil {
			return "", "", fmt.Errorf("the go command is not in PATH (add /usr/local/go/bin to PATH)")
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	b, err := os.ReadFile(gomod)
	if gomod == "" || gomod == os.DevNull || err != nil || !bytes.HasPrefix(bytes.TrimSpace(b), []byte("module txtimeout\n")) {
		return "", "", fmt.Errorf("run it from the txtimeout module's directory (make bench)")
	}
	return goBin, filepath.Dir(gomod), nil
}
