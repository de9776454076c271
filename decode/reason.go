package decode

// Reason says why a frame could not be decoded completely. Malformed frames
// are counted by reason and never stop the pipeline.
type Reason uint8

// Reasons. ReasonNone means the frame decoded cleanly.
const (
	ReasonNone Reason = iota
	ReasonUnsupportedLink
	ReasonTruncatedLink
	ReasonTruncatedVLAN
	ReasonTruncatedPPPoE
	ReasonTruncatedMPLS
	ReasonTruncatedIPv4
	ReasonBadIPv4Header
	ReasonTruncatedIPv6
	ReasonBadIPVersion
	ReasonTruncatedExtHeader
	ReasonTruncatedTCP
	ReasonBadTCPHeader
	ReasonTruncatedUDP
	ReasonTruncatedICMP
	ReasonTruncatedSCTP
	ReasonTruncatedTunnel
	ReasonTooManyLayers
	NumReasons // number of reasons, for counter arrays
)

var reasonNames = [NumReasons]string{
	ReasonNone:               "none",
	ReasonUnsupportedLink:    "unsupported_link_type",
	ReasonTruncatedLink:      "truncated_link_header",
	ReasonTruncatedVLAN:      "truncated_vlan_tag",
	ReasonTruncatedPPPoE:     "truncated_pppoe",
	ReasonTruncatedMPLS:      "truncated_mpls",
	ReasonTruncatedIPv4:      "truncated_ipv4",
	ReasonBadIPv4Header:      "bad_ipv4_header",
	ReasonTruncatedIPv6:      "truncated_ipv6",
	ReasonBadIPVersion:       "bad_ip_version",
	ReasonTruncatedExtHeader: "truncated_ipv6_extension",
	ReasonTruncatedTCP:       "truncated_tcp",
	ReasonBadTCPHeader:       "bad_tcp_header",
	ReasonTruncatedUDP:       "truncated_udp",
	ReasonTruncatedICMP:      "truncated_icmp",
	ReasonTruncatedSCTP:      "truncated_sctp",
	ReasonTruncatedTunnel:    "truncated_tunnel",
	ReasonTooManyLayers:      "too_many_layers",
}

// String returns the reason's metric-label name, e.g. "truncated_tcp".
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
