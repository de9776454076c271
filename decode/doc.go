// Package decode parses captured frames into a fixed Packet struct without
// allocating: link layers (Ethernet, 802.1Q/802.1ad/QinQ, Linux SLL and SLL2,
// BSD NULL/loopback, raw IP, NFLOG), PPPoE sessions, MPLS label stacks, IPv4
// (options) and IPv6 (the extension-header chain), TCP, UDP, ICMP, ICMPv6,
// SCTP and DCCP ports, and tunnels peeled in place to their inner connection:
// GRE (with ERSPAN types I, II and III), VXLAN, GENEVE, GTP-U and IP-in-IP.
//
// Parse never reads past the captured length and never panics; a frame it
// cannot decode completely gets a Reason, and what was decoded before the
// problem stays usable (its IP hosts, for instance). Wire length, not
// captured length, is what the frame counts for. The common frames
// (Ethernet with at most one 802.1Q tag, IPv4 without options or IPv6
// without extension headers, not fragmented, TCP or UDP) are decoded in one
// pass inside Parse; every other frame goes to the general decoder, which
// gives the same result for those (TestParseFastAgrees, FuzzParseFast).
//
// Threading: Parse is a pure function of its inputs; each worker keeps its
// own Packet. Lifetimes: a Packet holds no pointer into the frame; Payload
// returns a slice of the frame, valid as long as the frame is.
//
// The application-protocol detectors live in the sub-package app.
package decode
