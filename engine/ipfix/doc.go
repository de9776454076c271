// Package ipfix exports ended flows as IPFIX (RFC 7011) to collectors such
// as nfcapd, goflow2 or Akvorado, over UDP or TCP, and decodes IPFIX
// messages (the decoder checks the encoder in tests, and is fuzzed).
//
// What is sent: two templates, 256 for IPv4 flows and 257 for IPv6 flows,
// each a biflow record (RFC 5103) oriented from the flow's initiator:
//
//	sourceIPv4Address(8) / sourceIPv6Address(27)        the initiator
//	destinationIPv4Address(12) / destinationIPv6Address(28)
//	sourceTransportPort(7), destinationTransportPort(11) 0 unless TCP, UDP, SCTP
//	protocolIdentifier(4), vlanId(58) (the outer 802.1Q tag, 0 = none)
//	biflowDirection(239) = 1 (initiator)
//	flowStartMilliseconds(152), flowEndMilliseconds(153) first and last packet
//	flowEndReason(136)                                   see EndReason
//	packetDeltaCount(2), reverse (PEN 29305, 2)          per direction
//	octetDeltaCount(1), reverse (PEN 29305, 1)           IP bytes per direction
//	layer2OctetDeltaCount(352), reverse (PEN 29305, 352) frame bytes per direction
//	tcpControlBits(6), reverse (PEN 29305, 6)            flags seen, 2 bytes (RFC 7125)
//	applicationName(96), variable length                 e.g. "HTTPS", "DNS", "Unknown"
//	serverName (PEN 32473, 1), variable length           TLS/QUIC SNI, DNS query, HTTP Host
//
// Two byte counts go per direction: octetDeltaCount is the IP bytes (the
// IP total length of each packet, IPv6's payload length plus 40; of the
// inner header for a tunnelled flow; without Ethernet padding: the
// records' IPBytesTx/Rx), which collectors such as nfdump read as the
// flow's bytes; layer2OctetDeltaCount is the frame bytes (the link-layer
// header included, as the records' BytesTx/Rx and tshark's conversation
// tables count them). The server name is an
// enterprise-specific element: no IANA element means "the name the client
// asked for"; 32473 is the enterprise number RFC 5612 sets aside for
// documentation, used until NetSentry has its own (ServerNamePEN).
//
// Templates: over UDP, sent in the first message and again every
// TemplateRefresh (RFC 7011 section 8.4: periodically), and a UDP message
// is at most MaxUDPMessage bytes, within a 1500-byte path MTU. Over TCP,
// sent once at the start of each connection (section 8.3). Sequence
// numbers count data records per observation domain (ObservationDomain)
// and transport session: they go on across UDP messages and start at 0 on
// each new TCP connection.
//
// Threading: an Exporter is used by one goroutine (its engine.Exporter
// sink queue); Stats is safe from any goroutine. A dead collector never
// blocks: a TCP exporter that is not connected drops the records it is
// given (counted) and dials again with a backoff, a send has a deadline.
package ipfix
