package harness

import (
	"errors"
	"strconv"
	"strings"

	"txtimeout/kmsg"
)

// maxTraceLine caps the length of a trace_pipe line the parser looks at.
const maxTraceLine = 4096

var errNotXmitTimeout = errors.New("not a net_dev_xmit_timeout line")

// parseXmitTimeout parses one trace_pipe line of the net:net_dev_xmit_timeout
// tracepoint, whose print format is "dev=%s driver=%s queue=%d"
// (include/trace/events/net.h), as in
//
//	<idle>-0  [000] ..s1.  123.456789: net_dev_xmit_timeout: dev=eth0 driver=virtio_net queue=0
//
// into a watchdog event. TSUsec is the trace timestamp when it parses.
func parseXmitTimeout(line string) (kmsg.Event, error) {
	if len(line) > maxTraceLine {
		return kmsg.Event{}, errors.New("trace line too long")
	}
	line = strings.TrimRight(line, "\r\n")
	const tag = " net_dev_xmit_timeout: "
	i := strings.Index(line, tag)
	if i < 0 {
		return kmsg.Event{}, errNotXmitTimeout
	}
	ev := kmsg.Event{Kind: kmsg.KindWatchdog, Queue: -1, Text: strings.TrimSpace(line)}
	// The timestamp is the last field before the tag, "123.456789:".
	head := strings.Fields(line[:i])
	if n := len(head); n > 0 {
		ts := strings.TrimSuffix(head[n-1], ":")
		if sec, frac, ok := strings.Cut(ts, "."); ok && len(frac) == 6 {
			s, err1 := strconv.ParseInt(sec, 10, 64)
			u, err2 := strconv.ParseInt(frac, 10, 64)
			if err1 == nil && err2 == nil && s >= 0 && s < 1<<40 {
				ev.TSUsec = s*1e6 + u
			}
		}
	}
	// The print format is "dev=%s driver=%s queue=%d": all three, each
	// once (a repeated key does not stand in for a missing one).
	var haveDev, haveDriver, haveQueue bool
	for _, f := range strings.Fields(line[i+len(tag):]) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "dev":
			ev.Iface, haveDev = v, true
		case "driver":
			ev.Driver, haveDriver = v, true
		case "queue":
			q, err := strconv.Atoi(v)
			if err != nil || q < 0 || q > 1<<16 {
				return kmsg.Event{}, errors.New("net_dev_xmit_timeout: bad queue " + strconv.Quote(v))
			}
			ev.Queue, haveQueue = q, true
		}
	}
	if ev.Iface == "" || !haveDev || !haveDriver || !haveQueue {
		return kmsg.Event{}, errors.New("net_dev_xmit_timeout: missing dev, driver or queue")
	}
	return ev, nil
}
