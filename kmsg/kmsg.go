// Package kmsg reads the Linux kernel log from /dev/kmsg and finds tx timeouts in it.
//
// A Reader follows /dev/kmsg live (see Documentation/ABI/testing/dev-kmsg in
// the kernel tree); a LogReader reads logs saved earlier as dmesg text,
// dmesg -r output or raw /dev/kmsg dumps. Both yield Records, and a Matcher
// turns Records into Events: the kernel's NETDEV WATCHDOG line, the drivers'
// own tx-timeout, reset and link lines (those of package drivers' table,
// compiled into DriverPatterns) and kernel splats (WARNING, BUG, Oops,
// lockups, hung tasks, RCU stalls, panics).
package kmsg

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed is wrapped by every error about a record or line that does
// not follow the /dev/kmsg format.
var ErrMalformed = errors.New("kmsg: malformed record")

// Record is one kernel log record.
type Record struct {
	// Level is the log level, 0 (KERN_EMERG) to 7 (KERN_DEBUG): PRIO & 7.
	// LogReader sets it to -1 for plain dmesg text, which does not carry it.
	Level int
	// Facility is PRIO >> 3 (0 for the kernel, 1 for user space writes).
	// LogReader sets it to -1 for plain dmesg text.
	Facility int
	// Seq is the record's sequence number. Plain dmesg text and dmesg -r
	// output do not carry it: it is 0 there.
	Seq uint64
	// Time is the time since boot (CLOCK_MONOTONIC based, TS_USEC).
	Time time.Duration
	// Flags is the FLAGS field: "-" for a whole record, "c" or "+" for
	// old continuation fragments. Empty when the source does not say.
	Flags string
	// Message is the text with \xNN escapes decoded; it may hold newlines.
	Message string
	// Dict holds the continuation lines " KEY=value" (e.g. SUBSYSTEM,
	// DEVICE), values decoded like Message. It is nil when there are none.
	Dict map[string]string
}

// maxTSUsec is the largest TS_USEC that fits a time.Duration.
const maxTSUsec = math.MaxInt64 / int64(time.Microsecond)

// ParseRecord parses one /dev/kmsg read() buffer: a header line
// "PRIO,SEQ,TS_USEC,FLAGS[,more];MESSAGE" followed by optional continuation
// lines " KEY=value". Fields after FLAGS are ignored, as the ABI asks.
func ParseRecord(b []byte) (Record, error) {
	s := string(b)
	head, rest, _ := strings.Cut(s, "\n")
	r, err := parseHeader(head)
	if err != nil {
		return Record{}, err
	}
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		if line == "" {
			continue
		}
		if err := r.addDict(line); err != nil {
			return Record{}, err
		}
	}
	return r, nil
}

// parseHeader parses "PRIO,SEQ,TS_USEC,FLAGS[,more];MESSAGE".
func parseHeader(line string) (Record, error) {
	pre, msg, ok := strings.Cut(line, ";")
	if !ok {
		return Record{}, fmt.Errorf("%w: no ';' after the prefix", ErrMalformed)
	}
	fields := strings.Split(pre, ",")
	if len(fields) < 3 {
		return Record{}, fmt.Errorf("%w: prefix %q has fewer than 3 fields", ErrMalformed, clip(pre))
	}
	prio, err := strconv.ParseUint(fields[0], 10, 31)
	if err != nil {
		return Record{}, fmt.Errorf("%w: bad PRIO %q", ErrMalformed, clip(fields[0]))
	}
	seq, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("%w: bad SEQ %q", ErrMalformed, clip(fields[1]))
	}
	ts, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil || ts < 0 || ts > maxTSUsec {
		return Record{}, fmt.Errorf("%w: bad TS_USEC %q", ErrMalformed, clip(fields[2]))
	}
	r := Record{
		Level:    int(prio & 7),
		Facility: int(prio >> 3),
		Seq:      seq,
		Time:     time.Duration(ts) * time.Microsecond,
		Message:  unescape(strings.TrimSuffix(msg, "\r")),
	}
	if len(fields) > 3 {
		r.Flags = fields[3]
	}
	return r, nil
}

// addDict adds a continuation line " KEY=value" to r.Dict.
func (r *Record) addDict(line string) error {
	if line[0] != ' ' {
		return fmt.Errorf("%w: continuation line %q does not begin with a space", ErrMalformed, clip(line))
	}
	k, v, ok := strings.Cut(line[1:], "=")
	if !ok || k == "" {
		return fmt.Errorf("%w: continuation line %q is not KEY=value", ErrMalformed, clip(line))
	}
	if r.Dict == nil {
		r.Dict = make(map[string]string)
	}
	r.Dict[k] = unescape(strings.TrimSuffix(v, "\r"))
	return nil
}

// unescape decodes the kernel's \xNN escapes. A backslash not followed by
// x and two hex digits is kept as it is (the kernel escapes every
// backslash, so that only happens in hand-written input).
func unescape(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+3 < len(s) && s[i+1] == 'x' && ishex(s[i+2]) && ishex(s[i+3]) {
			b.WriteByte(unhex(s[i+2])<<4 | unhex(s[i+3]))
			i += 3
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
