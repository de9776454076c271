// Package trafficgen writes deterministic synthetic packet traces for
// NetSentry's benchmarks and tells the caller exactly what it wrote.
//
// A trace is a classic pcap file (Ethernet link type, microsecond
// timestamps, little-endian) holding a fixed number of packets spread over a
// fixed number of flows whose sizes follow a Zipf-like law: TCP connections
// with a three-way handshake, request/response data both ways and a FIN
// teardown (some end with a RST instead), DNS-like UDP request/response pairs
// and a few bulk UDP streams. About 15 % of the packets are IPv6 and about
// 10 % carry an 802.1Q tag. Frames are 60..1514 bytes (1518 when tagged: the
// 64..1518 bytes of the wire minus the FCS), IPv4 header checksums and TCP/UDP
// checksums are valid, sequence and acknowledgement numbers are consistent,
// and timestamps increase strictly while many flows are open at once.
//
// Every 5-tuple is used by exactly one flow, and no gap inside a flow exceeds
// 20 seconds, so a flow table with the usual idle timeouts (60 s and more)
// sees exactly Truth.Flows flows.
//
// The same Config (including Seed) always yields the same bytes: randomness
// comes only from a math/rand/v2 PCG seeded from Config.Seed.
//
// Threading and lifetimes: Generate runs on the caller's goroutine and keeps
// nothing after it returns; the returned Truth is the caller's.
package trafficgen
