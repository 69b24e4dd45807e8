// Package traffic floods a DUT with oversized ICMP echo requests or pktgen, always bounded.
//
// A transmit timeout only fires when a device's TX ring is full and stays
// full, so the suite needs traffic that keeps the ring full while the link
// partner stops draining it. Two sources are offered, and both stop by
// themselves at a count, a duration or the end of a context, whichever comes
// first:
//
//   - [Flood] sends ICMP echo requests, by default with a 2048-byte payload so
//     that every request is two IPv4 fragments, from one or more sockets. It
//     keeps sending through ENOBUFS and EAGAIN, counting errors by errno name
//     and backing off briefly instead of spinning.
//   - [RunPktgen] drives the kernel's packet generator through
//     /proc/net/pktgen, checking every write by reading the device's Result
//     line back.
//
// [Reachable] sends one echo request with pro-bing, for recovery checks.
//
// # Why Flood does not use pro-bing
//
// pro-bing v0.9.1 sends from a time.Ticker (an Interval of 0 panics), keeps
// a map entry per outstanding sequence number, retries ENOBUFS in a tight
// loop and logs every failed send through its logger. Measured on a veth
// pair between two network namespaces on a 2-core machine (see
// BenchmarkProBing and BenchmarkFlood in this package):
//
//	MEASUREMENTS
//
// So Flood writes the echo requests itself over raw (or unprivileged
// datagram) ICMP sockets, through the Go network poller, building each
// message once with golang.org/x/net/icmp and patching only the sequence
// number and checksum per send.
//
// # Network namespaces
//
// Sockets belong to the network namespace of the thread that opens them.
// Flood opens all its sockets synchronously in the calling goroutine, so a
// caller that has locked its OS thread into a namespace floods from there;
// FloodConfig.NetNS names a namespace file instead, and Flood then opens the
// sockets on a locked thread switched into it. Reachable likewise opens its
// socket in the calling goroutine.
package traffic
