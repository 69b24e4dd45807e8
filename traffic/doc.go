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
// [Reachable] sends one echo request over the same ICMP sockets, for
// recovery checks; it always returns by its deadline, even when the queue
// never drains (pro-bing v0.9.1 retries a failed send forever there).
//
// # Why Flood does not use pro-bing
//
// pro-bing v0.9.1 sends from a time.Ticker (an Interval of 0 panics), keeps
// a map entry per outstanding sequence number, waits for every reply up to
// its Timeout, logs every failed send, and retries ENOBUFS in a tight loop.
// Measured on a veth pair between two network namespaces on the project's
// shared 2-core build machine (load average about 10, so rates vary 2x
// from run to run) with BenchmarkProBing, BenchmarkFlood and
// BenchmarkStalled:
//
//	live veth, 2048-byte payload:
//	  pro-bing, Interval 1µs, 1 or 4 pingers     20k-33k requests/s
//	  Flood, 1 / 4 senders                        19k-65k / 28k-43k requests/s
//	  iputils ping -f, 1 / 4 processes            10k-130k / 18k-77k requests/s
//	live veth, 1400-byte payload:
//	  Flood, 1 / 4 senders                        39k-180k / 48k-214k requests/s
//	  iputils ping -f, 1 / 4 processes            48k-227k / 26k-210k requests/s
//	behind a queue that holds packets (1 Mbit/s TBF, 4 MB limit), 6 senders, 2048 bytes:
//	  pro-bing, Interval 1µs                      66742 ENOBUFS/s, 0.74 CPU s per s
//	  pro-bing, Interval 10ms                     570 requests/s, no ENOBUFS
//	  Flood, Interval 0                           753 ENOBUFS/s, 0.04 CPU s per s
//
// So pro-bing has the rate (a 256-entry ring stalled for a 5 s watchdog
// period needs only about 50 requests/s) but not the behaviour: against a
// stalled device its ENOBUFS loop burns a CPU per pinger, which on a
// one-vCPU TCG guest starves everything else. ping -f is clocked by the
// replies: on a stalled device none come, and it falls back to 100
// requests/s per process.
//
// In the virtual rig (Debian 6.1 under QEMU TCG, 2 vCPUs, virtio-net to the
// Go link partner), TestGuestTraffic measured Flood with six senders and
// 2048-byte payloads at about 7k requests/s (with ENOBUFS already, as the
// partner fell behind), and pktgen with the seed's configuration at 13k-18k
// packets/s per thread (9014 bytes, 10 frags, burst 2).
//
// So Flood writes the echo requests itself over raw (or unprivileged
// datagram) ICMP sockets, building each message once with
// golang.org/x/net/icmp and patching only the sequence number and checksum
// per send. It sends them 64 to a sendmmsg(2) call, each an 8-byte header
// of its own and the one shared payload, and counts the replies 64 to a
// recvmmsg(2), copying out only their headers. Its sockets are blocking and
// outside the Go network poller: a socket in the poller's epoll set wakes an
// idle thread for every reply queued and every request freed, which cost
// one sender 0.37 context switches per request. At full rate the senders
// read the replies between batches, so that nobody sleeps on a socket;
// with an Interval, and after the last send, reader goroutines wait for
// them. Measured on a veth pair (BenchmarkFlood, 1400 bytes): 6.3 µs of CPU
// per request with 1 or 4 senders, against 12.3 and 9.4 µs before and 8.4
// and 9.4 µs for ping -f. perf puts about 85% of it inside sendmmsg, where
// the kernel also runs the peer's echo and the reply's delivery: the floor
// that any echo flood pays.
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
