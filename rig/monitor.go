package rig

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// hmpPrompt ends every answer of QEMU's human monitor.
const hmpPrompt = "(qemu) "

// queryMonitor asks QEMU's human monitor, served on the unix socket at
// path, for the VM's run state and each vCPU's instruction pointer, for the
// report of a hung guest (HLT=1 on every vCPU: the guest idles and nothing
// wakes it; a kernel RIP that stays put: it spins). It returns within
// timeout: a QEMU whose main loop is stuck does not answer, and the text
// says so, which is worth knowing too.
func queryMonitor(path string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return fmt.Sprintf("QEMU monitor unreachable: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	br := bufio.NewReader(conn)
	if _, err := readHMP(br); err != nil {
		return fmt.Sprintf("QEMU monitor did not answer (QEMU's main loop may be stuck): %v", err)
	}
	var parts []string
	for _, cmd := range []string{"info status", "info registers -a"} {
		if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", cmd, err))
			break
		}
		raw, err := readHMP(br)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: no answer (%v)", cmd, err))
			break
		}
		parts = append(parts, summarizeHMP(raw)...)
	}
	return "QEMU monitor: " + strings.Join(parts, "; ")
}

// readHMP reads up to and including the next prompt (at most 1 MiB).
func readHMP(br *bufio.Reader) ([]byte, error) {
	var b []byte
	for !bytes.HasSuffix(b, []byte(hmpPrompt)) {
		c, err := br.ReadByte()
		if err != nil {
			return b, err
		}
		b = append(b, c)
		if len(b) > 1<<20 {
			return b, errors.New("answer over 1 MiB")
		}
	}
	return b, nil
}

// summarizeHMP turns one monitor answer (the echo of the typed command,
// drawn with terminal escapes, then its output, then the prompt) into the
// lines worth a report: "VM status: ..." and, per vCPU, "CPU#N" with its
// RIP (EIP in real or protected mode) line.
func summarizeHMP(raw []byte) []string {
	s := strings.TrimSuffix(string(raw), hmpPrompt)
	// The echo ends at the first line break.
	if i := strings.Index(s, "\r\n"); i >= 0 {
		s = s[i+2:]
	}
	var out []string
	cpu := ""
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(strings.TrimRight(l, "\r"))
		switch {
		case l == "":
		case strings.HasPrefix(l, "CPU#"):
			cpu = l
		case strings.HasPrefix(l, "RIP=") || strings.HasPrefix(l, "EIP="):
			out = append(out, strings.TrimSpace(cpu+" "+l))
		case strings.HasPrefix(l, "VM status:"):
			out = append(out, l)
		}
	}
	return out
}
