package kmsg_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"txtimeout/kmsg"
)

// Scan a saved log for tx timeouts.
func ExampleMatcher() {
	log := `[    9.164193] virtio_net virtio0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 5760 ms
[    9.164300] virtio_net virtio0 eth0: TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 5764000 usecs ago
[   11.000000] Bluetooth: hci0: command 0x0c03 tx timeout
`
	lr := kmsg.NewLogReader(strings.NewReader(log))
	m := kmsg.NewMatcher()
	for {
		rec, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		for _, ev := range m.Match(rec) {
			fmt.Println(ev.Kind, ev.Driver, ev.Iface, ev.Queue, ev.TimedOutMS)
		}
	}
	// Output:
	// watchdog virtio_net eth0 0 5760
	// driver virtio_net eth0 0 5764
}
