package main

import (
	"encoding/json"
	"testing"

	"txtimeout/internal/testnet"
)

// TestFloodJSON floods across a veth between two namespaces the test
// creates and checks the JSON summary.
func TestFloodJSON(t *testing.T) {
	p := testnet.NewLinked(t)
	rc, out, errb := trafficCLI("flood", "icmp", "-dst", p.B.Addr.String(), "-netns", p.A.NS.Path, "-iface", p.A.Name,
		"-count", "6", "-senders", "2", "-interval", "2ms", "-json")
	if rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	for _, k := range []string{"sent", "received", "errors", "seconds", "pps"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, out)
		}
	}
	if got["sent"] != 6.0 || got["received"] != 6.0 {
		t.Fatalf("sent %v received %v, want 6 and 6", got["sent"], got["received"])
	}
}
