package app

import (
	"bytes"
	"unsafe"
)

// MaxPackets is how many payload-carrying packets of each direction
// detection examines. DNS flows are the exception: every message of a DNS
// flow is counted (a few dozen nanoseconds each).
const MaxPackets = 12

// field names a string that detection keeps. Strings live in State.arena.
type field uint8

const (
	fMethod    field = iota // HTTP request method
	fHost                   // HTTP Host header
	fPath                   // HTTP request target (truncated)
	fUA                     // HTTP User-Agent, gQUIC UAID
	fSNI                    // TLS/QUIC server name
	fALPN                   // first ALPN protocol offered by the client
	fJA4                    // JA4 fingerprint of the ClientHello
	fQuery                  // first DNS question name
	fBanner                 // server greeting of SMTP, FTP, POP3, IMAP
	fHelo                   // SMTP EHLO/HELO argument
	fUser                   // FTP USER argument
	fSSHClient              // client SSH version banner
	fSSHServer              // server SSH version banner
	fHostname               // DHCP host name option
	numFields
)

// fieldCap bounds each string; longer values are truncated. Names that
// users search for (host, SNI, DNS name) get the DNS maximum.
var fieldCap = [numFields]uint8{
	fMethod:    16,
	fHost:      253,
	fPath:      64,
	fUA:        96,
	fSNI:       253,
	fALPN:      32,
	fJA4:       36,
	fQuery:     253,
	fBanner:    64,
	fHelo:      64,
	fUser:      32,
	fSSHClient: 80,
	fSSHServer: 80,
	fHostname:  64,
}

// arenaSize is the room for all strings of one flow. A flow's strings come
// from one protocol (two for STARTTLS), so typical flows use under 100 bytes;
// a string that no longer fits is truncated to what is left.
const arenaSize = 320

// Flag bits of State.flags.
const (
	flDone     uint32 = 1 << iota // nothing more to learn
	flCli                         // cli is known
	flHello                       // ClientHello parsed (maybe from a prefix)
	flHelloAll                    // ClientHello parsed whole: JA3/JA4 valid
	flSrvHello                    // ServerHello parsed
	flReq                         // HTTP request line parsed
	flResp                        // HTTP status line parsed
	flStartTLS                    // STARTTLS/STLS/AUTH TLS/CONNECT seen
	flDNSResp                     // a DNS response was seen (rcode, answers valid)
	flQUICGive                    // QUIC Initial undecodable: stop trying
)

// Reassembly kinds (State.bkind).
const (
	kindNone uint8 = iota
	kindTLS        // TLS records carrying a ClientHello
	kindHTTP       // HTTP request header block
	kindQUIC       // QUIC CRYPTO stream of client Initial packets
)

// State is the application-protocol detection state of one flow. The zero
// value is ready to use. It holds no pointers, so flow slabs that embed it
// stay invisible to the garbage collector; its size is fixed (see
// TestStateSize). Strings are kept in a small arena, truncated to per-field
// bounds.
//
// A State is used by one goroutine at a time. It never keeps a reference to
// the bytes it is fed: what it keeps, it copies.
type State struct {
	// The fields leave no padding: a State is 448 bytes, 7 cache lines, so
	// each State of a flow table's slab has lines of its own. What a DNS
	// message of an open flow reads and writes (detection sees every
	// packet of such a flow) is in the first line; its names in the arena
	// come on top (TestStateLayout).

	// Proto is the detected protocol. When Guess is set it comes from the
	// server port alone (no payload matched, or none was seen yet).
	Proto Proto
	// Guess reports that Proto is a port-based guess.
	Guess bool

	l4      uint8     // 6 or 17; 0 before the first Feed
	cli     uint8     // direction (0 initiator, 1 responder) of the client, if flCli
	pkts    [2]uint8  // payload packets seen per direction, saturating
	rcode   uint8     // DNS rcode of the last response
	names   uint8     // further names kept in the arena (addName)
	flags   uint32    // fl* bits
	queries uint32    // DNS messages with QR=0
	replies uint32    // DNS messages with QR=1
	answers uint16    // DNS answer count of the last response
	qtype   uint16    // DNS type of the first question
	nameOff uint16    // arena offset of the first further name
	used    uint16    // arena bytes in use
	dnsSkip [2]uint16 // DNS over TCP: bytes of the current message still to come
	dnsHalf [2]uint16 // DNS over TCP: dnsHalfLen|byte, dnsAwaitMsg or 0
	ports   [2]uint16 // port of the initiator, port of the responder
	status  uint16    // HTTP status of the first response
	tlsRec  uint16    // record-layer version of the first ClientHello record
	tlsCli  uint16    // ClientHello legacy_version
	tlsMax  uint16    // highest supported_versions entry of the ClientHello
	tlsSrv  uint16    // version the server chose (ServerHello)
	blen    uint16    // bytes collected in the slot
	quicVer uint32    // QUIC version of the first long-header packet
	slot    uint32    // reassembly slot in the caller's Pool
	ticket  uint32    // proof that the slot is still ours
	msgType uint8     // DHCP message type, NTP mode
	msgVer  uint8     // NTP version
	bkind   uint8     // what is being reassembled, kindNone when nothing
	bdir    uint8     // direction being reassembled
	ja3     [16]byte  // MD5 of the JA3 string (valid with flHelloAll)
	soff    [numFields]uint16
	slen    [numFields]uint8
	arena   [arenaSize]byte
}

// Feed examines the transport payload of one packet of the flow. Call it for
// every packet, in capture order, with empty payloads too (the first call
// sets the port-based guess; later empty calls return at once).
//
// fromInitiator says the packet travels from the flow's initiator (the
// source of its first packet) to the responder; l4 is the IP protocol (6 TCP,
// 17 UDP) and srcPort/dstPort the packet's own ports. p is the shard's Pool of
// reassembly buffers; with a nil p, messages split over several packets are
// parsed from their first packet only.
//
// Feed does not allocate and keeps no reference to payload.
func (s *State) Feed(p *Pool, payload []byte, fromInitiator bool, l4 uint8, srcPort, dstPort uint16) {
	var d uint8
	if !fromInitiator {
		d = 1
	}
	if s.l4 == 0 {
		s.start(l4, d, srcPort, dstPort)
	}
	if len(payload) == 0 || s.flags&flDone != 0 {
		return
	}
	if s.pkts[d] < 255 {
		s.pkts[d]++
	}
	if s.Proto.isDNSFamily() && !s.Guess {
		if p == nil {
			s.dnsFeedOwn(payload, d)
		} else {
			s.dnsMessages(payload, d, &p.name) // dnsFeed, a call less
		}
		return
	}
	if s.pkts[d] <= MaxPackets {
		if s.Guess || s.Proto == Unknown {
			s.detect(p, payload, d)
		} else {
			s.resume(p, payload, d)
		}
	}
	s.settle(p)
}

// Done reports that further packets cannot change the result, so the caller
// may stop feeding the flow. It stays false for DNS flows, whose messages
// are all counted.
func (s *State) Done() bool {
	if s.flags&flDone != 0 {
		return true
	}
	if s.Proto.isDNSFamily() && !s.Guess {
		return false
	}
	return s.exhausted()
}

// exhausted reports that the packet budget is spent: both directions are
// past MaxPackets, or the flow is so one-sided that the other direction has
// little left to show.
func (s *State) exhausted() bool {
	a, b := int(s.pkts[0]), int(s.pkts[1])
	return (a > MaxPackets && b > MaxPackets) || a+b > 3*MaxPackets
}

// Release parses whatever part of a message the State has collected (a
// ClientHello or request header still incomplete) and gives its reassembly
// buffer back to p. Call it before recording a flow that is not Done; Feed
// does it by itself when the State becomes Done.
func (s *State) Release(p *Pool) {
	if s.bkind == kindNone {
		return
	}
	if m := p.slot(s.slot, s.ticket); m != nil {
		switch s.bkind {
		case kindTLS:
			var tmp [BufSize]byte
			hs, whole := tlsHandshake(m[:s.blen], &tmp)
			s.clientHello(hs, 't', whole)
		case kindHTTP:
			s.httpRequest(m[:s.blen], true)
		case kindQUIC:
			if n := prefixLen(m[slotBitmap:slotDCID]); n >= 4 {
				s.clientHello(m[:n], 'q', false)
			}
		}
	}
	s.free(p)
}

// free gives the reassembly slot back without looking at its contents.
func (s *State) free(p *Pool) {
	if s.bkind != kindNone {
		p.release(s.slot, s.ticket)
	}
	s.slot, s.ticket, s.blen, s.bkind = 0, 0, 0, kindNone
}

// ServerPort returns the port of the flow's server: the side that did not
// send the client's first message when the payload told which side that is,
// else the side whose port names a protocol, else the responder.
func (s *State) ServerPort() uint16 {
	if s.flags&flCli != 0 {
		return s.ports[1-s.cli]
	}
	if portGuess(s.l4, s.ports[1]) == Unknown && portGuess(s.l4, s.ports[0]) != Unknown {
		return s.ports[0]
	}
	return s.ports[1]
}

// Name returns Name(s.Proto, s.ServerPort()): the protocol name to show.
func (s *State) Name() string { return Name(s.Proto, s.ServerPort()) }

// start records the flow's transport and ports and makes the port guess.
// The responder's port is tried first, then the initiator's (a capture may
// begin with the server's packet).
func (s *State) start(l4, d uint8, srcPort, dstPort uint16) {
	s.l4 = l4
	if s.l4 == 0 {
		s.l4 = 255
	}
	s.ports[d], s.ports[1-d] = srcPort, dstPort
	g := portGuess(l4, s.ports[1])
	if g == Unknown {
		g = portGuess(l4, s.ports[0])
	}
	if g != Unknown {
		s.Proto, s.Guess = g, true
	}
}

// found records a protocol that the payload showed.
func (s *State) found(p Proto) {
	s.Proto, s.Guess = p, false
}

// setClient records that direction d carries the client's messages.
func (s *State) setClient(d uint8) {
	if s.flags&flCli == 0 {
		s.cli = d
		s.flags |= flCli
	}
}

// isClient reports whether direction d is the client's, guessing from the
// server port when the payload has not told yet.
func (s *State) isClient(d uint8) bool {
	if s.flags&flCli != 0 {
		return s.cli == d
	}
	return s.ports[1-d] == s.ServerPort()
}

// detect tries the detectors on the first payloads of a flow whose protocol
// is not known yet.
func (s *State) detect(p *Pool, b []byte, d uint8) {
	if s.l4 == 17 {
		s.detectUDP(p, b, d)
		return
	}
	if s.l4 != 6 {
		return
	}
	if r, ok := skipProxyHeader(b); ok { // a load balancer's PROXY header
		if b = r; len(b) == 0 {
			return
		}
	}
	switch {
	case p.on(TLS) && (isTLSRecord(b) || isSSLv2Hello(b)):
		s.found(TLS)
		s.tlsFeed(p, b, d)
	case p.on(SSH) && hasPrefix(b, "SSH-"):
		s.found(SSH)
		s.sshFeed(b, d)
	case p.on(HTTP2) && hasPrefix(b, h2Preface):
		s.found(HTTP2)
		s.setClient(d)
	case p.on(HTTP) && (isHTTPRequest(b) || isHTTPResponse(b)):
		s.found(HTTP)
		s.httpFeed(p, b, d)
	case s.detectText(p, b, d):
		s.textFeed(p, b, d)
	case p.on(s.Proto) && s.Proto.isDNSFamily() && isDNSOverTCP(b):
		s.found(s.Proto)
		s.dnsFeed(p, b, d)
	}
}

// detectUDP tries the datagram detectors.
func (s *State) detectUDP(p *Pool, b []byte, d uint8) {
	switch {
	case p.on(s.Proto) && s.Proto.isDNSFamily() && isDNSMessage(b, false):
		s.found(s.Proto)
		s.dnsFeed(p, b, d)
	case p.on(QUIC) && (isQUICLong(b) || isGQUIC(b)):
		s.found(QUIC)
		s.quicFeed(p, b, d)
	case p.on(DHCP) && s.Proto == DHCP && isDHCP(b):
		s.found(DHCP)
		s.dhcpFeed(b)
	case p.on(NTP) && s.Proto == NTP && isNTP(b):
		s.found(NTP)
		s.msgVer, s.msgType = b[0]>>3&7, b[0]&7
	case p.on(DHCPv6) && s.Proto == DHCPv6 && len(b) >= 4 && b[0] >= 1 && b[0] <= 13:
		s.found(DHCPv6)
		s.msgType = b[0]
	case p.on(SSDP) && isSSDP(b):
		s.found(SSDP)
		s.httpFeed(p, b, d)
	case p.on(DNS) && (s.Proto == Unknown || s.Guess) && isDNSMessage(b, true): // DNSCrypt answers on 443
		s.found(DNS)
		s.dnsFeed(p, b, d)
	}
}

// skipProxyHeader returns b after a PROXY protocol header (HAProxy's v1
// text line or v2 binary header) at its start, and whether there was one.
func skipProxyHeader(b []byte) ([]byte, bool) {
	const v2sig = "\r\n\r\n\x00\r\nQUIT\n"
	if hasPrefix(b, "PROXY ") {
		for i, c := range b[:min(len(b), 108)] { // v1 lines are at most 107 bytes
			if c == '\n' {
				return b[i+1:], true
			}
		}
		return b, false
	}
	if hasPrefix(b, v2sig) && len(b) >= 16 {
		n := 16 + int(be16(b[14:]))
		if n <= len(b) {
			return b[n:], true
		}
	}
	return b, false
}

// resume hands a payload to the parser of the protocol already detected.
func (s *State) resume(p *Pool, b []byte, d uint8) {
	switch s.Proto {
	case TLS:
		s.tlsFeed(p, b, d)
	case HTTP, SSDP:
		s.httpFeed(p, b, d)
	case SSH:
		s.sshFeed(b, d)
	case SMTP, FTP, POP3, IMAP:
		s.textFeed(p, b, d)
	case QUIC:
		s.quicFeed(p, b, d)
	}
}

// settle sets flDone once the protocol's parser has what it wants, or the
// packet budget is spent, and then gives the reassembly slot back.
func (s *State) settle(p *Pool) {
	done := s.exhausted()
	switch s.Proto {
	case TLS:
		done = done || s.tlsDone()
	case HTTP:
		// Keep-alive requests may name other hosts (proxies): HTTP goes on
		// to the end of the budget, unless a CONNECT turned it into TLS.
		done = done || (s.flags&flStartTLS != 0 && s.tlsDone())
	case SSH:
		done = done || (s.slen[fSSHClient] != 0 && s.slen[fSSHServer] != 0)
	case QUIC:
		done = done || s.flags&(flHello|flQUICGive) != 0
	case SMTP, FTP, POP3, IMAP:
		done = done || (s.flags&flStartTLS != 0 && s.tlsDone())
	case HTTP2, DHCP, NTP, SSDP, DHCPv6:
		done = done || !s.Guess
	}
	if done {
		s.flags |= flDone
		s.Release(p)
	}
}

// tlsDone reports that the TLS handshake has shown what detection wants:
// the ClientHello, and the ServerHello or a sign that it will not come.
func (s *State) tlsDone() bool {
	if s.flags&flHello == 0 || s.bkind != kindNone {
		return false
	}
	if s.flags&flSrvHello != 0 {
		return true
	}
	return s.flags&flCli != 0 && s.pkts[1-s.cli] > 3
}

// set stores v as field f unless f is already set. v is truncated to the
// field's bound and to the room left in the arena.
func (s *State) set(f field, v []byte) {
	if s.slen[f] != 0 || len(v) == 0 {
		return
	}
	n := min(len(v), int(fieldCap[f]), arenaSize-int(s.used))
	if n <= 0 {
		return
	}
	copy(s.arena[s.used:], v[:n])
	s.soff[f], s.slen[f] = s.used, uint8(n)
	s.used += uint16(n)
}

// get returns field f (empty when unset). The slice aliases the State.
func (s *State) get(f field) []byte {
	return s.arena[s.soff[f] : s.soff[f]+uint16(s.slen[f])]
}

// hasPrefix reports whether b starts with the string p.
func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// hasPrefixFold is hasPrefix ignoring ASCII case; p must be upper case.
func hasPrefixFold(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if upper(b[i]) != p[i] {
			return false
		}
	}
	return true
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 32
	}
	return c
}

// line returns b up to the first CR or LF, and whether a line end was found.
func line(b []byte) ([]byte, bool) {
	// Two vectorised searches rather than a byte loop: detection asks for
	// the first line of every payload, most of which (TLS, binary) hold
	// none, and a loop over 1,460 bytes was a tenth of a replay's CPU.
	n := bytes.IndexByte(b, '\n')
	head := b
	if n >= 0 {
		head = b[:n]
	}
	if r := bytes.IndexByte(head, '\r'); r >= 0 {
		return b[:r], true
	}
	if n >= 0 {
		return b[:n], true
	}
	return b, false
}

// trimSpace removes ASCII spaces and tabs at both ends.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
func be24(b []byte) int    { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }
func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// headBytes is the part of a State before its arena: everything but the
// strings' bytes, which are read only below used.
const headBytes = unsafe.Offsetof(State{}.arena)

// HeadBytes is the size of a State's head, the part before its strings'
// arena: the bytes that Reset clears and that a copy of a State without
// strings reads (a flow table prefetches them).
const HeadBytes = headBytes

// Reset makes s the zero State without writing its arena: a new flow's
// state costs the lines of its head, not the arena's too. (State holds no
// pointers, so clearing it as bytes is what assigning State{} does.)
func (s *State) Reset() {
	*(*[headBytes]byte)(unsafe.Pointer(s)) = [headBytes]byte{}
}

// CopyFrom makes s a copy of src, copying only the arena bytes src uses:
// a flow's record reads the head and its strings, not the whole arena.
// Bytes of s's arena past them keep what they held and are never read.
func (s *State) CopyFrom(src *State) {
	*(*[headBytes]byte)(unsafe.Pointer(s)) = *(*[headBytes]byte)(unsafe.Pointer(src))
	copy(s.arena[:src.used], src.arena[:src.used])
}

// CopyOver is CopyFrom into an s whose arena is zero past its used bytes
// (a zero State, or one only CopyOver and ResetOver wrote): the arena of
// the copy is zero past its used bytes too, as a copy of the whole State
// into a zeroed one leaves it, and the arena lines that stay zero are not
// written. A flow record's State is one: an ended flow's record costs the
// lines of the head and of the strings, not those of an empty arena.
func (s *State) CopyOver(src *State) {
	old := s.used
	s.CopyFrom(src)
	if old > src.used {
		clear(s.arena[src.used:old])
	}
}

// ResetOver is Reset for an s whose arena is zero past its used bytes (see
// CopyOver): it stays so, all of s zero.
func (s *State) ResetOver() {
	if s.used > 0 {
		clear(s.arena[:s.used])
	}
	s.Reset()
}
