package app

// Proto is an application protocol.
type Proto uint8

// Application protocols. The order is part of no format: persist names
// (String), never numbers.
const (
	Unknown Proto = iota
	HTTP          // HTTP/1.x
	HTTP2         // HTTP/2 in clear text (connection preface seen)
	TLS           // TLS (any version, SSL 3.0 and 2.0 ClientHellos too)
	DNS           // DNS over UDP or TCP
	SMTP          // SMTP, also after STARTTLS
	SSH           // SSH (version banners)
	QUIC          // IETF QUIC (v1, v2, drafts) and Google QUIC
	FTP           // FTP control connection
	DHCP          // DHCP (BOOTP with the DHCP magic cookie)
	NTP           // NTP
	MDNS          // multicast DNS (port 5353)
	LLMNR         // link-local multicast name resolution (port 5355)
	SSDP          // SSDP (HTTP over UDP on port 1900)
	POP3          // POP3
	IMAP          // IMAP
	DHCPv6        // DHCPv6
	numProto
)

var protoNames = [numProto]string{
	Unknown: "Unknown",
	HTTP:    "HTTP",
	HTTP2:   "HTTP2",
	TLS:     "TLS",
	DNS:     "DNS",
	SMTP:    "SMTP",
	SSH:     "SSH",
	QUIC:    "QUIC",
	FTP:     "FTP",
	DHCP:    "DHCP",
	NTP:     "NTP",
	MDNS:    "MDNS",
	LLMNR:   "LLMNR",
	SSDP:    "SSDP",
	POP3:    "POP3",
	IMAP:    "IMAP",
	DHCPv6:  "DHCPv6",
}

// jsonKeys name each protocol's object in AppendJSON. The DNS family shares
// "dns"; SSDP's object has the fields of "http".
var jsonKeys = [numProto]string{
	HTTP:   "http",
	HTTP2:  "http2",
	TLS:    "tls",
	DNS:    "dns",
	SMTP:   "smtp",
	SSH:    "ssh",
	QUIC:   "quic",
	FTP:    "ftp",
	DHCP:   "dhcp",
	NTP:    "ntp",
	MDNS:   "dns",
	LLMNR:  "dns",
	SSDP:   "ssdp",
	POP3:   "pop3",
	IMAP:   "imap",
	DHCPv6: "dhcpv6",
}

// String returns the product name of p: "HTTP", "TLS", "DNS", ... and
// "Unknown" for Unknown or an out-of-range value.
func (p Proto) String() string {
	if p < numProto {
		return protoNames[p]
	}
	return "Unknown"
}

// Name returns the name to show for protocol p on a flow whose server (the
// responder) listens on serverPort. It is p.String() except that TLS to port
// 443 is "HTTPS", the name users expect for it. No other port renames a
// protocol: TLS on 993 stays "TLS", since the name must keep agreeing with
// what the bytes showed.
func Name(p Proto, serverPort uint16) string {
	if p == TLS && serverPort == 443 {
		return "HTTPS"
	}
	return p.String()
}

// isDNSFamily reports protocols carried in DNS messages.
func (p Proto) isDNSFamily() bool { return p == DNS || p == MDNS || p == LLMNR }

// portGuess returns the protocol conventionally served on port for the given
// transport (6 TCP, 17 UDP), Unknown when there is none.
func portGuess(l4 uint8, port uint16) Proto {
	if l4 == 6 {
		switch port {
		case 20, 21:
			return FTP
		case 22:
			return SSH
		case 25, 587, 2525:
			return SMTP
		case 53:
			return DNS
		case 80, 81, 8000, 8008, 8080, 8181:
			return HTTP
		case 110:
			return POP3
		case 143:
			return IMAP
		case 443, 465, 853, 993, 995, 8443:
			return TLS
		}
		return Unknown
	}
	if l4 == 17 {
		switch port {
		case 53:
			return DNS
		case 67, 68:
			return DHCP
		case 123:
			return NTP
		case 443:
			return QUIC
		case 546, 547:
			return DHCPv6
		case 1900:
			return SSDP
		case 5353:
			return MDNS
		case 5355:
			return LLMNR
		}
	}
	return Unknown
}

// PortName returns the name (Name) and the guess flag that a State shows
// for a flow of transport l4 (6 TCP, 17 UDP) from initPort (the
// initiator's) to respPort when it saw no payload: what
// State.Feed(nil, nil, true, l4, initPort, respPort) on a zero State
// leaves, without the State.
func PortName(l4 uint8, initPort, respPort uint16) (name string, guess bool) {
	g, server := portChoice(l4, initPort, respPort)
	return Name(g, server), g != Unknown
}

// portChoice is the protocol a flow's ports suggest and the port taken as
// the server's: the responder's port first, then the initiator's (as
// State.start guesses).
func portChoice(l4 uint8, initPort, respPort uint16) (g Proto, server uint16) {
	if l4 == 0 {
		l4 = 255 // as start
	}
	r, i := portGuess(l4, respPort), portGuess(l4, initPort)
	g, server = r, respPort
	if r == Unknown {
		g = i
		if i != Unknown {
			server = initPort
		}
	}
	return g, server
}

// NameIDs bounds NameID.
const NameIDs = int(numProto) + 1

// NameOfID returns the name (Name) that NameID id stands for.
func NameOfID(id int) string {
	if id == int(numProto) {
		return "HTTPS"
	}
	return Proto(id).String()
}

// PortNameID is PortName's name as a NameID, beside its guess flag.
func PortNameID(l4 uint8, initPort, respPort uint16) (id int, guess bool) {
	g, server := portChoice(l4, initPort, respPort)
	if g == TLS && server == 443 {
		return int(numProto), true
	}
	return int(g), g != Unknown
}

// NameID returns a small number, below NameIDs, for s.Name(): two States
// have the same NameID exactly when they have the same Name. A table of
// counts per name indexes by it, without building or comparing the name.
func (s *State) NameID() int {
	p := s.Proto
	if p >= numProto {
		p = Unknown // Name is "Unknown"
	}
	if p == TLS && s.ServerPort() == 443 {
		return int(numProto) // "HTTPS"
	}
	return int(p)
}
