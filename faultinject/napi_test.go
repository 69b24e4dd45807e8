package faultinject

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "0-1\n", want: []int{0, 1}},
		{in: "0", want: []int{0}},
		{in: "0-3,5,7-8", want: []int{0, 1, 2, 3, 5, 7, 8}},
		{in: "", want: nil},
		{in: "3-1", bad: true},
		{in: "a", bad: true},
		{in: "0-", bad: true},
		{in: "-1", bad: true},
		{in: "0-5000", bad: true},
	} {
		got, err := parseCPUList(tc.in)
		if tc.bad {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		if len(got) > 0 {
			back, err := parseCPUList(formatCPUList(got))
			require.NoError(t, err)
			assert.Equal(t, got, back, "round trip of %q", tc.in)
		}
	}
	assert.Equal(t, "0-3,5,7-8", formatCPUList([]int{0, 1, 2, 3, 5, 7, 8}))
}

func TestNapiThreadOf(t *testing.T) {
	for _, tc := range []struct {
		name, iface string
		ok, cut     bool
	}{
		{"napi/eth0-8193", "eth0", true, false},
		{"napi/eth0-8194", "eth0", true, false},
		{"napi/eth0-", "eth0", false, false},
		{"napi/eth1-8193", "eth0", false, false},
		{"napi/eth00-8193", "eth0", false, false},
		{"napi/eth0-81x3", "eth0", false, false},
		{"ksoftirqd/1", "eth0", false, false},
		// Full names on 5.17+.
		{"napi/enp3s0f0np0-8193", "enp3s0f0np0", true, false},
		// Cut to 15 bytes on older kernels: inside the id, and inside
		// the interface name.
		{"napi/enp3s0f0-8", "enp3s0f0", true, true},
		{"napi/enp3s0f0np", "enp3s0f0np0", true, true},
		{"napi/enp3s0f0np", "enp3s0f0np1", true, true},
		{"napi/enp3s0f1-8", "enp3s0f0", false, false},
	} {
		ok, cut := napiThreadOf(tc.name, tc.iface)
		assert.Equal(t, tc.ok, ok, "%s of %s", tc.name, tc.iface)
		assert.Equal(t, tc.cut, cut, "%s of %s: truncated", tc.name, tc.iface)
	}
}

// /proc/interrupts of the rig's guest with e1000e in its default MSI-X
// mode (three vectors) and with IntMode=1 (one legacy line).
const (
	interruptsMSIX = `           CPU0       CPU1
  0:         44          0   IO-APIC   2-edge      timer
 24:          0         12   PCI-MSI 32768-edge      eth0-rx-0
 25:         83          0   PCI-MSI 32769-edge      eth0-tx-0
 26:          3          0   PCI-MSI 32770-edge      eth0
NMI:          0          0   Non-maskable interrupts
`
	interruptsLegacy = `           CPU0       CPU1
  0:         44          0   IO-APIC   2-edge      timer
 11:        310          0   IO-APIC  11-fasteoi   eth0
`
	interruptsTxRx = ` 40:  1  2  PCI-MSI 1-edge  eth1-TxRx-0
 41:  1  2  PCI-MSI 2-edge  eth1-TxRx-1
 42:  0  0  PCI-MSI 3-edge  eth10-tx-0
`
)

func TestTxIRQVectors(t *testing.T) {
	assert.Equal(t, []string{"eth0-tx-0"}, txIRQVectors(interruptsMSIX, "eth0"))
	assert.Empty(t, txIRQVectors(interruptsLegacy, "eth0"))
	assert.Empty(t, txIRQVectors(interruptsTxRx, "eth1"), "TxRx vectors poll both in NAPI")
	assert.Empty(t, txIRQVectors(interruptsTxRx, "eth1"), "eth10 is not eth1")
	assert.Equal(t, []string{"eth10-tx-0"}, txIRQVectors(interruptsTxRx, "eth10"))
}

func TestNapiDiagnosis(t *testing.T) {
	d := NapiDiagnosis("e1000e", "eth0", interruptsMSIX, false)
	assert.Contains(t, d, "eth0-tx-0")
	assert.Contains(t, d, "IntMode=1")
	assert.Contains(t, NapiDiagnosis("8139cp", "eth0", interruptsLegacy, false), "interrupt handler")
	assert.Contains(t, NapiDiagnosis("virtio_net", "eth0", "", false), "start_xmit")
	assert.NotContains(t, NapiDiagnosis("virtio_net", "eth0", "", true), "start_xmit itself")
	assert.Contains(t, NapiDiagnosis("", "eth0", "", true), "the driver")
	for _, d := range []string{NapiDiagnosis("e1000e", "eth0", interruptsMSIX, false), NapiDiagnosis("foo", "eth0", "", false)} {
		assert.NotContains(t, d, "\n", "one line")
	}
}

func TestNapiConfigValidate(t *testing.T) {
	c, err := NapiConfig{For: 5 * time.Second, CPU: AutoCPU}.validate()
	require.NoError(t, err)
	assert.Equal(t, DefaultHogPriority, c.Priority)
	for _, bad := range []NapiConfig{
		{For: 0}, {For: 11 * time.Second}, {For: time.Second, CPU: -2}, {For: time.Second, CPU: 5000},
		{For: time.Second, Priority: 1}, {For: time.Second, Priority: 99},
	} {
		_, err := bad.validate()
		assert.True(t, errors.Is(err, ErrBadConfig), "%+v: %v", bad, err)
		assert.False(t, strings.Contains(err.Error(), "\n"))
	}
}

func TestStateNapiRoundTrip(t *testing.T) {
	dir := t.TempDir()
	o := Options{StateDir: dir}
	in := &state{Injector: "napi", Iface: "eth0", Ifindex: 2, PID: 7, Napi: &savedNapi{
		CPU: 1, Threaded: "0", RTRuntime: "950000",
		Threads: []savedThread{{PID: 157, Name: "napi/eth0-8193", Start: 512, CPUs: "0-1", Policy: 0, Nice: 0}},
		HogPID:  300, HogStart: 9000,
	}}
	require.NoError(t, writeState(o, in))
	got, err := readState(o, "eth0")
	require.NoError(t, err)
	assert.Equal(t, in.Napi, got.Napi)
}
