package kmsg

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"
	"time"
)

// maxLine caps a saved-log line; longer lines are skipped as not understood.
const maxLine = 64 << 10

// LogReader reads a saved kernel log. Each line is recognised on its own,
// so a file may mix the forms:
//
//	[    9.164193] message                 dmesg
//	<2>[    9.164193] message              dmesg -r
//	2,1234,9164193,-;message               cat /dev/kmsg
//	 SUBSYSTEM=net                         its continuation lines
//	kern  :crit  : [    9.164193] message  dmesg -x
//
// dmesg's caller-id column ("[  T123] ", CONFIG_PRINTK_CALLER) is dropped,
// and indented lines after a dmesg record (a message with newlines) are
// appended to its Message.
type LogReader struct {
	br      *bufio.Reader
	pending *Record
	raw     bool // pending came from a raw /dev/kmsg line
	open    bool // indented lines still continue pending
	skipped int
	err     error
}

// NewLogReader returns a LogReader reading r.
func NewLogReader(r io.Reader) *LogReader {
	return &LogReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Skipped returns how many non-empty lines were not understood so far.
func (l *LogReader) Skipped() int { return l.skipped }

// Next returns the next record, or io.EOF at the end of the input. Lines
// that are not understood are counted (Skipped), not fatal; any other error
// is the underlying reader's.
func (l *LogReader) Next() (Record, error) {
	for {
		if l.err != nil {
			if l.pending != nil {
				r := *l.pending
				l.pending = nil
				return r, nil
			}
			return Record{}, l.err
		}
		line, err := l.readLine()
		if err != nil {
			l.err = err
			if line == "" {
				continue
			}
		}
		rec, raw, ok := l.parseLine(line)
		if !ok {
			continue
		}
		prev := l.pending
		l.pending, l.raw, l.open = &rec, raw, true
		if prev != nil {
			return *prev, nil
		}
	}
}

// parseLine handles one line: it either returns a new record, or folds
// the line into the pending one, or counts it as skipped.
func (l *LogReader) parseLine(line string) (rec Record, raw, ok bool) {
	switch {
	case strings.TrimSpace(line) == "":
		l.open = false
		return Record{}, false, false
	case line[0] == ' ' || line[0] == '\t':
		switch {
		case l.pending != nil && l.open && l.raw:
			if line[0] != ' ' || l.pending.addDict(line) != nil {
				l.skipped++
				l.open = false
			}
		case l.pending != nil && l.open:
			l.pending.Message += "\n" + strings.TrimLeft(line, " \t")
		default:
			l.skipped++
		}
		return Record{}, false, false
	case line[0] == '<':
		if r, ok := parseDmesgRaw(line); ok {
			return r, false, true
		}
	case line[0] == '[':
		if r, ok := parseDmesgText(line); ok {
			r.Level, r.Facility = -1, -1
			return r, false, true
		}
	case '0' <= line[0] && line[0] <= '9':
		if r, err := parseHeader(line); err == nil {
			return r, true, true
		}
	default:
		if r, ok := parseDmesgDecode(line); ok {
			return r, false, true
		}
	}
	l.skipped++
	l.open = false
	return Record{}, false, false
}

// readLine returns the next line without its line ending. A line longer
// than maxLine is consumed and counted as skipped.
func (l *LogReader) readLine() (string, error) {
	var long []byte
	for {
		b, err := l.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long) <= maxLine {
				long = append(long, b...)
			}
			continue
		}
		if long != nil {
			long = append(long, b...)
			b = long
		}
		if len(b) > maxLine {
			l.skipped++
			b = nil
		}
		b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		return string(b), err
	}
}

// parseDmesgRaw parses "<PRIO>[ SECONDS.MICROS] message" (dmesg -r).
func parseDmesgRaw(line string) (Record, bool) {
	end := strings.IndexByte(line, '>')
	if end < 2 || end > 5 {
		return Record{}, false
	}
	prio := 0
	for _, c := range line[1:end] {
		if c < '0' || c > '9' {
			return Record{}, false
		}
		prio = prio*10 + int(c-'0')
	}
	r, ok := parseDmesgText(line[end+1:])
	if !ok {
		return Record{}, false
	}
	r.Level, r.Facility = prio&7, prio>>3
	return r, true
}

// parseDmesgText parses "[ SECONDS.MICROS] message" (dmesg).
func parseDmesgText(line string) (Record, bool) {
	if len(line) < 2 || line[0] != '[' {
		return Record{}, false
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return Record{}, false
	}
	ts, ok := parseSeconds(strings.TrimLeft(line[1:end], " "))
	if !ok {
		return Record{}, false
	}
	msg := strings.TrimPrefix(line[end+1:], " ")
	msg = dropCaller(msg)
	return Record{Time: ts, Message: msg}, true
}

// parseSeconds parses "9.164193" into a duration.
func parseSeconds(s string) (time.Duration, bool) {
	sec, frac, ok := strings.Cut(s, ".")
	if !ok || sec == "" || frac == "" || len(sec) > 12 || len(frac) > 9 {
		return 0, false
	}
	var d time.Duration
	for _, c := range sec {
		if c < '0' || c > '9' {
			return 0, false
		}
		d = d*10 + time.Duration(c-'0')
	}
	d *= time.Second
	scale := time.Duration(time.Second)
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, false
		}
		scale /= 10
		d += time.Duration(c-'0') * scale
	}
	return d, true
}

// dropCaller removes dmesg's caller-id column "[  T123] " or "[    C1] ".
func dropCaller(msg string) string {
	if len(msg) < 4 || msg[0] != '[' {
		return msg
	}
	end := strings.IndexByte(msg, ']')
	if end < 0 || end > 12 {
		return msg
	}
	id := strings.TrimLeft(msg[1:end], " ")
	if len(id) < 2 || (id[0] != 'T' && id[0] != 'C') {
		return msg
	}
	for _, c := range id[1:] {
		if c < '0' || c > '9' {
			return msg
		}
	}
	return strings.TrimPrefix(msg[end+1:], " ")
}

// Names dmesg -x prints, indexed by value (syslog.h).
var (
	facilityNames = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
		"uucp", "cron", "authpriv", "ftp", "res0", "res1", "res2", "res3",
		"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}
	levelNames = []string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"}
)

// parseDmesgDecode parses "FACILITY:LEVEL : [ SECONDS.MICROS] message"
// (dmesg -x), which, unlike dmesg -r, keeps the facility right.
func parseDmesgDecode(line string) (Record, bool) {
	fac, rest, ok := strings.Cut(line, ":")
	if !ok {
		return Record{}, false
	}
	lvl, rest, ok := strings.Cut(rest, ": ")
	if !ok {
		return Record{}, false
	}
	f := slices.Index(facilityNames, strings.TrimRight(fac, " "))
	l := slices.Index(levelNames, strings.TrimRight(lvl, " "))
	if f < 0 || l < 0 {
		return Record{}, false
	}
	r, ok := parseDmesgText(rest)
	if !ok {
		return Record{}, false
	}
	r.Level, r.Facility = l, f
	return r, true
}
