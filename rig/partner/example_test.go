package partner_test

import (
	"context"
	"errors"
	"log"
	"net"

	"txtimeout/rig/partner"
)

// The rig's way: listen on a unix socket that QEMU connects to with
// -netdev stream,id=n0,server=off,addr.type=unix,addr.path=PATH and
// -device virtio-net-pci,netdev=n0, then serve the connection.
func ExamplePartner_Serve() {
	p, err := partner.New(partner.Config{Logf: log.Printf})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("unix", "/tmp/txtimeout-example/net.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	conn, err := l.Accept() // QEMU connecting as it starts
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	go func() {
		for e := range p.StallEvents() {
			log.Printf("stall start=%v for %v (nonce %#x)", e.Start, e.For, e.Nonce)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.Serve(ctx, conn); err != nil && !errors.Is(err, context.Canceled) {
		log.Print(err)
	}
	log.Printf("partner: %+v", p.Stats())
}
