package decode

// Link types, as numbered by pcap's LINKTYPE_* registry (and the few DLT_*
// aliases that appear in files written on BSDs).
const (
	LinkNull     uint16 = 0   // BSD loopback: 4-byte address family in the writer's byte order
	LinkEthernet uint16 = 1   // IEEE 802.3 Ethernet
	LinkRawDLT12 uint16 = 12  // DLT_RAW on most BSDs
	LinkRawDLT14 uint16 = 14  // DLT_RAW on OpenBSD
	LinkRaw      uint16 = 101 // raw IPv4 or IPv6, version from the first nibble
	LinkLoop     uint16 = 108 // OpenBSD loopback: address family in network order
	LinkSLL      uint16 = 113 // Linux cooked capture v1
	LinkIPv4     uint16 = 228 // raw IPv4
	LinkIPv6     uint16 = 229 // raw IPv6
	LinkNFLOG    uint16 = 239 // Linux netfilter NFLOG
	LinkSLL2     uint16 = 276 // Linux cooked capture v2
)

// Addr is an IP address: IPv4 in the first 4 bytes (the rest zero), IPv6 in all 16.
type Addr [16]byte

// Tuple is one transport-level connection as seen in one packet, oriented as the
// packet travels (Src sent it).
type Tuple struct {
	Src, Dst         Addr
	SrcPort, DstPort uint16 // ICMP: see Packet.ICMPType; non-first fragments: 0 until resolved
	Proto            uint8  // IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP, ...)
	IPVersion        uint8  // 4 or 6
}

// IPLayer is the address pair of one IP header of a frame. A tunnelled frame
// has several; host accounting counts every one, as tshark's endpoint table does.
type IPLayer struct {
	Src, Dst  Addr
	IPVersion uint8
}

// MaxIPLayers bounds how many IP headers one frame may nest (outer, tunnel, inner...).
const MaxIPLayers = 4

// Tunnel says which encapsulation, if any, was peeled to reach the innermost flow.
type Tunnel uint8

// Tunnel kinds.
const (
	TunnelNone Tunnel = iota
	TunnelGRE
	TunnelERSPAN
	TunnelVXLAN
	TunnelGENEVE
	TunnelGTPU
	TunnelIPIP
)

var tunnelNames = [...]string{"", "gre", "erspan", "vxlan", "geneve", "gtpu", "ipip"}

// String returns the lower-case name of the tunnel ("" for none).
func (t Tunnel) String() string {
	if int(t) < len(tunnelNames) {
		return tunnelNames[t]
	}
	return "unknown"
}

// TCP flag bits, as in the TCP header's 13th byte.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
	TCPEce = 0x40
	TCPCwr = 0x80
)

// Packet is the decoded form of one frame. Parse fills it in place; nothing in
// it points into the frame except through Payload offsets, so a Packet may be
// kept after the frame's memory is gone (the payload may not).
type Packet struct {
	// WireLen is the frame's original length on the wire (pcap "len"); it is
	// what bytes are counted in, as tcpdump and tshark do, also when a
	// damaged record claims more captured bytes than that (tshark's
	// frame.len is the original length then too).
	WireLen uint32
	// CapLen is the number of bytes captured.
	CapLen uint32

	// Err is the first problem found, ReasonNone when the frame decoded cleanly.
	// Fields filled before the problem stay valid (an IP layer before a cut
	// TCP header still counts for its hosts).
	Err Reason
	// HasFlow reports that Flow holds a usable transport tuple.
	HasFlow bool
	// NonIP reports a frame that carries no IP (ARP, LLDP, STP, ...): not an error.
	NonIP bool

	// VLAN ids of the first two 802.1Q/802.1ad tags (outermost first), 0 when absent.
	VLAN, InnerVLAN uint16
	// Tunnel is the innermost encapsulation peeled, TunnelNone when none.
	Tunnel Tunnel

	// Flow is the innermost transport tuple.
	Flow Tuple
	// TCPFlags are the flags of Flow's TCP header (Flow.Proto == 6).
	TCPFlags uint8
	// ICMPType and ICMPCode of an ICMP/ICMPv6 Flow. Flow's ports then hold the
	// Community ID port equivalents (type, counterpart type or code).
	ICMPType, ICMPCode uint8

	// Fragment state of the outermost fragmented IP header (IP[FragLayer]):
	// IsFragment for any fragment, with FragOffset in bytes, MoreFragments,
	// the IP identification FragID and the protocol it carries, FragProto.
	// A first fragment is decoded through to its innermost flow. A later one
	// carries no headers past IP: HasFlow is true, Flow holds the fragmented
	// layer's addresses with ports 0 and NeedPorts is set; the flow table
	// attributes it to the flows of the datagram's first fragment.
	IsFragment    bool
	MoreFragments bool
	NeedPorts     bool
	FragLayer     uint8
	FragProto     uint8
	FragOffset    uint16
	FragDataLen   uint16 // bytes of the datagram this fragment carries (from its IP header)
	FragID        uint32
	// FragDataOff is where the fragment's data (the fragmented layer's
	// payload) starts in the frame, FragCapLen how many of its FragDataLen
	// bytes were captured. FragVLAN is the VLAN id at the fragmented layer
	// (a tunnel inside the datagram may replace VLAN on the first fragment).
	FragDataOff uint32
	FragCapLen  uint16
	FragVLAN    uint16
	// TinyFragment marks a first fragment (offset 0, more to come) whose data
	// ends inside a header past the fragmented IP layer (RFC 1858's tiny
	// fragment; a TCP header split over fragments). Parse then reports it
	// like a later fragment (NeedPorts, no Err, nothing decoded past the
	// fragmented layer); the flow table reads the headers once the datagram's
	// first bytes are in (ParseFragmentHead).
	TinyFragment bool

	// HasOuter reports a UDP tunnel (VXLAN, GENEVE, GTP-U) whose outer UDP flow
	// is tracked too, as tshark counts both.
	HasOuter bool
	// Outer is the outer UDP tuple when HasOuter, carried by IP[OuterLayer].
	Outer      Tuple
	OuterLayer uint8

	// NumIP is how many entries of IP are filled, outermost first.
	NumIP uint8
	IP    [MaxIPLayers]IPLayer
	// IPLen[i] is the length of IP[i] as its header gives it: IPv4's total
	// length, IPv6's payload length plus the 40-byte header (a fragment:
	// its own length). A header that gives none (a total or payload length
	// of 0, as segmentation offload and jumbograms leave; an IPv4 total
	// length shorter than its header) counts the bytes from the header to
	// the frame's end on the wire instead. Ethernet padding after the
	// packet is not in it. Flow records' IP bytes (IPFIX octetDeltaCount)
	// add these up.
	IPLen [MaxIPLayers]uint32

	// PayloadOff and PayloadLen locate Flow's transport payload in the frame,
	// bounded by both the captured length and the IP header's length.
	PayloadOff, PayloadLen uint32
}

// Payload returns the transport payload of p inside frame (the bytes Parse
// was given). The slice aliases frame: it is only valid as long as frame is.
func (p *Packet) Payload(frame []byte) []byte {
	end := p.PayloadOff + p.PayloadLen
	if p.PayloadLen == 0 || int(end) > len(frame) {
		return nil
	}
	return frame[p.PayloadOff:end]
}
