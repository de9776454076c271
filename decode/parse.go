package decode

import "encoding/binary"

// maxSteps bounds how many headers Parse walks through (tags, labels,
// tunnels, extension headers), so a crafted frame cannot make it loop.
const maxSteps = 32

// Well-known UDP ports of the tunnels tshark decodes by default.
const (
	portVXLAN  = 4789
	portGENEVE = 6081
	portGTPU   = 2152
)

// EtherTypes used below.
const (
	etIPv4         = 0x0800
	etARP          = 0x0806
	etVLAN         = 0x8100
	etQinQ         = 0x88a8
	etQinQOld      = 0x9100
	etIPv6         = 0x86dd
	etPPPoESession = 0x8864
	etMPLS         = 0x8847
	etMPLSMulti    = 0x8848
	etTEB          = 0x6558 // transparent Ethernet bridging (GRE, GENEVE)
	etERSPAN2      = 0x88be
	etERSPAN3      = 0x22eb
	etPPP          = 0x880b
)

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

// parser carries the per-call state of one Parse.
type parser struct {
	p     *Packet
	b     []byte
	steps int
	// State when the fragmented IP layer was marked, restored when its first
	// fragment turns out to be a tiny one.
	fragTunnel Tunnel
	fragInner  uint16
	fragOuter  bool
	fragMarked bool
	// head: b is a datagram's head (ParseFragmentHead), not the frame.
	head bool
}

// Parse decodes frame, captured on a link of type link with original length
// wireLen, into p. It never reads past len(frame), never allocates and never
// panics; problems are reported in p.Err. Every field of p is overwritten.
func Parse(frame []byte, wireLen uint32, link uint16, p *Packet) {
	// The common frames are decoded here in one pass, exactly as parse
	// decodes them: Ethernet with at most one 802.1Q tag, then IPv4
	// without options or IPv6 without extension headers, not a fragment,
	// then a whole TCP or UDP header (UDP not on a tunnel's port). The
	// checks come before any write; every other frame goes to parse.
	b := frame
	if link != LinkEthernet || len(b) < 14 {
		parse(frame, wireLen, link, p)
		return
	}
	et := be16(b[12:14])
	off := 14
	var vlan uint16
	if et == etVLAN {
		if len(b) < 18 {
			parse(frame, wireLen, link, p)
			return
		}
		vlan = be16(b[14:16]) & 0x0fff
		et = be16(b[16:18])
		off = 18
	}
	// As ipv4, ipv6 and addIP: the packet ends at the length its header
	// gives or where the capture ends; a header that gives none (IPv4: a
	// total length shorter than the header) counts to the frame's end on
	// the wire.
	var l4, n int
	var proto uint8
	var src4, dst4 uint32
	switch et {
	case etIPv4:
		if len(b) < off+20 {
			parse(frame, wireLen, link, p)
			return
		}
		h := b[off : off+20]
		if h[0] != 0x45 || be16(h[6:8])&0x3fff != 0 {
			parse(frame, wireLen, link, p)
			return
		}
		proto, l4, n = h[9], off+20, int(be16(h[2:4]))
		if n < 20 {
			n = 0
		}
		src4, dst4 = binary.LittleEndian.Uint32(h[12:16]), binary.LittleEndian.Uint32(h[16:20])
	case etIPv6:
		if len(b) < off+40 {
			parse(frame, wireLen, link, p)
			return
		}
		h := b[off : off+40]
		if h[0]>>4 != 6 {
			parse(frame, wireLen, link, p)
			return
		}
		proto, l4, n = h[6], off+40, int(be16(h[4:6]))
		if n != 0 {
			n += 40
		}
	default:
		parse(frame, wireLen, link, p)
		return
	}
	end := len(b)
	if n == 0 {
		n = end - off
		if wireLen > uint32(len(b)) {
			n += int(wireLen - uint32(len(b)))
		}
	} else if off+n < end {
		end = off + n
	}
	// l4 <= end: an IP length is at least its header, and so is the frame.
	th := b[l4:end]
	var hl int
	var sp, dp uint16
	var flags uint8
	switch proto {
	case protoTCP:
		if len(th) < 20 {
			parse(frame, wireLen, link, p)
			return
		}
		if hl = int(th[12]>>4) * 4; hl < 20 {
			parse(frame, wireLen, link, p)
			return
		}
		sp, dp, flags = be16(th[0:2]), be16(th[2:4]), th[13]
	case protoUDP:
		if len(th) < 8 {
			parse(frame, wireLen, link, p)
			return
		}
		if sp, dp = be16(th[0:2]), be16(th[2:4]); tunnelPort(sp) || tunnelPort(dp) {
			parse(frame, wireLen, link, p)
			return
		}
		hl = 8
	default:
		parse(frame, wireLen, link, p)
		return
	}
	*p = Packet{}
	p.WireLen, p.CapLen, p.HasFlow, p.VLAN, p.NumIP = wireLen, uint32(len(b)), true, vlan, 1
	l, t := &p.IP[0], &p.Flow
	if et == etIPv4 {
		binary.LittleEndian.PutUint32(l.Src[:4], src4)
		binary.LittleEndian.PutUint32(l.Dst[:4], dst4)
		binary.LittleEndian.PutUint32(t.Src[:4], src4)
		binary.LittleEndian.PutUint32(t.Dst[:4], dst4)
		l.IPVersion, t.IPVersion = 4, 4
	} else {
		h := b[off : off+40]
		l.Src, l.Dst = Addr(h[8:24]), Addr(h[24:40])
		t.Src, t.Dst = l.Src, l.Dst
		l.IPVersion, t.IPVersion = 6, 6
	}
	p.IPLen[0] = uint32(n)
	t.SrcPort, t.DstPort, t.Proto = sp, dp, proto
	p.TCPFlags = flags
	if hl < len(th) {
		p.PayloadOff, p.PayloadLen = uint32(l4+hl), uint32(len(th)-hl)
	}
}

// tunnelPort reports a UDP port that udpTunnel looks behind.
func tunnelPort(port uint16) bool {
	return port == portVXLAN || port == portGENEVE || port == portGTPU
}

// parse is Parse's general decoder, for every link type and frame.
func parse(frame []byte, wireLen uint32, link uint16, p *Packet) {
	*p = Packet{WireLen: wireLen, CapLen: uint32(len(frame))}
	d := parser{p: p, b: frame}
	switch link {
	case LinkEthernet:
		d.ethernet(0)
	case LinkSLL:
		if len(frame) < 16 {
			p.Err = ReasonTruncatedLink
			return
		}
		d.etherType(16, be16(frame[14:]))
	case LinkSLL2:
		if len(frame) < 20 {
			p.Err = ReasonTruncatedLink
			return
		}
		d.etherType(20, be16(frame[0:]))
	case LinkNull:
		if len(frame) < 4 {
			p.Err = ReasonTruncatedLink
			return
		}
		af := binary.LittleEndian.Uint32(frame)
		if af&0xffff0000 != 0 {
			af = binary.BigEndian.Uint32(frame)
		}
		d.addressFamily(4, af)
	case LinkLoop:
		if len(frame) < 4 {
			p.Err = ReasonTruncatedLink
			return
		}
		d.addressFamily(4, binary.BigEndian.Uint32(frame))
	case LinkRaw, LinkRawDLT12, LinkRawDLT14:
		d.ipByVersion(0)
	case LinkIPv4:
		d.ipv4(0)
	case LinkIPv6:
		d.ipv6(0)
	case LinkNFLOG:
		d.nflog()
	default:
		p.Err = ReasonUnsupportedLink
	}
	if d.fragMarked && p.FragOffset == 0 && p.MoreFragments && truncation(p.Err) && p.FragDataLen > 0 && p.FragCapLen == p.FragDataLen {
		d.tinyFragment()
	}
}

// truncation reports a reason that says a header was cut short.
func truncation(r Reason) bool {
	switch r {
	case ReasonTruncatedLink, ReasonTruncatedVLAN, ReasonTruncatedPPPoE, ReasonTruncatedMPLS,
		ReasonTruncatedIPv4, ReasonTruncatedIPv6, ReasonTruncatedExtHeader, ReasonTruncatedTCP,
		ReasonTruncatedUDP, ReasonTruncatedICMP, ReasonTruncatedSCTP, ReasonTruncatedTunnel:
		return true
	}
	return false
}

// markFragment records the fragment state of the IP layer just added
// (p.IP[p.NumIP-1]) whose data starts at dataOff and whose bytes end at end
// (bounded by the capture); dataLen is the data length its header declares.
func (d *parser) markFragment(offset uint16, more bool, id uint32, proto uint8, dataOff, end, dataLen int) {
	p := d.p
	p.IsFragment = true
	p.MoreFragments = more
	p.FragOffset = offset
	p.FragID = id
	p.FragLayer = p.NumIP - 1
	p.FragProto = proto
	p.FragVLAN = p.VLAN
	p.FragDataOff = uint32(dataOff)
	if dataLen > 0 {
		p.FragDataLen = uint16(min(dataLen, 0xffff))
		p.FragCapLen = uint16(min(max(end-dataOff, 0), int(p.FragDataLen)))
	}
	d.fragMarked = true
	d.fragTunnel, d.fragInner, d.fragOuter = p.Tunnel, p.InnerVLAN, p.HasOuter
}

// tinyFragment turns a first fragment whose data ended inside a header into
// a fragment that waits for its datagram's head, as later fragments do.
func (d *parser) tinyFragment() {
	p := d.p
	l := &p.IP[p.FragLayer]
	p.Err = ReasonNone
	p.NumIP = p.FragLayer + 1
	p.Flow = Tuple{Src: l.Src, Dst: l.Dst, Proto: p.FragProto, IPVersion: l.IPVersion}
	p.HasFlow, p.NeedPorts, p.TinyFragment = true, true, true
	p.TCPFlags, p.ICMPType, p.ICMPCode = 0, 0, 0
	p.PayloadOff, p.PayloadLen = 0, 0
	p.VLAN, p.InnerVLAN, p.Tunnel = p.FragVLAN, d.fragInner, d.fragTunnel
	if !d.fragOuter {
		p.HasOuter, p.Outer, p.OuterLayer = false, Tuple{}, 0
	}
}

// ParseFragmentHead decodes the headers inside a fragmented datagram from
// head, the datagram's first bytes (the payload of p's fragmented IP layer,
// IP[FragLayer], from offset 0) collected from its fragments. p holds the
// decode of one of the datagram's fragments; ParseFragmentHead replaces what
// lies past the fragmented layer (Flow, TCP flags, tunnels and inner IP
// layers, Err) with what head holds, as Parse would have decoded an
// unfragmented datagram. The payload is not located (PayloadLen 0). It
// never reads past len(head), never allocates and never panics.
func ParseFragmentHead(head []byte, p *Packet) {
	l := &p.IP[p.FragLayer]
	p.NumIP = p.FragLayer + 1
	p.Err = ReasonNone
	p.HasFlow, p.NeedPorts, p.TinyFragment = false, false, false
	p.TCPFlags, p.ICMPType, p.ICMPCode = 0, 0, 0
	p.Flow = Tuple{Src: l.Src, Dst: l.Dst, IPVersion: l.IPVersion}
	d := parser{p: p, b: head, head: true}
	if l.IPVersion == 6 {
		d.ipv6Chain(0, len(head), len(head), p.FragProto)
	} else {
		d.transport(0, len(head), p.FragProto)
	}
	p.PayloadOff, p.PayloadLen = 0, 0
}

func (d *parser) step() bool {
	d.steps++
	if d.steps > maxSteps {
		d.p.Err = ReasonTooManyLayers
		return false
	}
	return true
}

func (d *parser) ethernet(off int) {
	if len(d.b) < off+14 {
		d.p.Err = ReasonTruncatedLink
		return
	}
	d.etherType(off+14, be16(d.b[off+12:]))
}

// etherType dispatches on an EtherType whose payload starts at off.
func (d *parser) etherType(off int, et uint16) {
	for d.step() {
		switch et {
		case etVLAN, etQinQ, etQinQOld:
			if len(d.b) < off+4 {
				d.p.Err = ReasonTruncatedVLAN
				return
			}
			vid := be16(d.b[off:]) & 0x0fff
			switch {
			case d.p.VLAN == 0:
				d.p.VLAN = vid
			case d.p.InnerVLAN == 0:
				d.p.InnerVLAN = vid
			}
			et = be16(d.b[off+2:])
			off += 4
			continue
		case etIPv4:
			d.ipv4(off)
		case etIPv6:
			d.ipv6(off)
		case etPPPoESession:
			d.pppoe(off)
		case etMPLS, etMPLSMulti:
			d.mpls(off)
		default:
			d.p.NonIP = true
		}
		return
	}
}

func (d *parser) addressFamily(off int, af uint32) {
	switch af {
	case 2:
		d.ipv4(off)
	case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS
		d.ipv6(off)
	default:
		d.p.NonIP = true
	}
}

func (d *parser) ipByVersion(off int) {
	if len(d.b) <= off {
		d.p.Err = ReasonTruncatedIPv4
		return
	}
	switch d.b[off] >> 4 {
	case 4:
		d.ipv4(off)
	case 6:
		d.ipv6(off)
	default:
		d.p.Err = ReasonBadIPVersion
	}
}

func (d *parser) pppoe(off int) {
	// version/type, code, session id, length, then the PPP protocol.
	if len(d.b) < off+8 {
		d.p.Err = ReasonTruncatedPPPoE
		return
	}
	d.ppp(off+6, len(d.b))
}

// ppp decodes a PPP header (optional address/control bytes, a protocol field
// that may be compressed to one byte) at off.
func (d *parser) ppp(off, end int) {
	b := d.b
	if end >= off+2 && b[off] == 0xff && b[off+1] == 0x03 {
		off += 2
	}
	if end < off+1 {
		d.p.Err = ReasonTruncatedPPPoE
		return
	}
	if b[off]&1 == 1 { // protocol field compressed to one byte
		d.pppProtocol(off+1, uint16(b[off]))
		return
	}
	if end < off+2 {
		d.p.Err = ReasonTruncatedPPPoE
		return
	}
	d.pppProtocol(off+2, be16(b[off:]))
}

func (d *parser) pppProtocol(off int, proto uint16) {
	switch proto {
	case 0x0021:
		d.ipv4(off)
	case 0x0057:
		d.ipv6(off)
	default:
		d.p.NonIP = true
	}
}

func (d *parser) mpls(off int) {
	for d.step() {
		if len(d.b) < off+4 {
			d.p.Err = ReasonTruncatedMPLS
			return
		}
		bottom := d.b[off+2]&1 == 1
		off += 4
		if bottom {
			break
		}
	}
	if d.p.Err != ReasonNone {
		return
	}
	if len(d.b) <= off {
		d.p.Err = ReasonTruncatedMPLS
		return
	}
	switch d.b[off] >> 4 {
	case 4:
		d.ipv4(off)
	case 6:
		d.ipv6(off)
	case 0: // pseudowire control word, then Ethernet
		d.ethernet(off + 4)
	default:
		d.p.NonIP = true
	}
}

func (d *parser) nflog() {
	b := d.b
	if len(b) < 4 {
		d.p.Err = ReasonTruncatedLink
		return
	}
	family := b[0]
	off := 4
	for d.step() {
		if len(b) < off+4 {
			d.p.Err = ReasonTruncatedLink
			return
		}
		// TLV lengths and types are in the host order of the capturing box.
		tlen := int(binary.LittleEndian.Uint16(b[off:]))
		typ := binary.LittleEndian.Uint16(b[off+2:]) & 0x7fff
		if tlen < 4 || off+tlen > len(b) {
			d.p.Err = ReasonTruncatedLink
			return
		}
		if typ == 9 { // NFULA_PAYLOAD
			d.b = b[:off+tlen]
			switch family {
			case 2:
				d.ipv4(off + 4)
			case 10:
				d.ipv6(off + 4)
			default:
				d.ipByVersion(off + 4)
			}
			return
		}
		off += (tlen + 3) &^ 3
	}
}

// addIP records one IP header's addresses for host accounting and its
// length n, or (n 0) the bytes from off to the end of the frame on the wire.
func (d *parser) addIP(src, dst []byte, version uint8, off, n int) {
	p := d.p
	if p.NumIP >= MaxIPLayers {
		p.Err = ReasonTooManyLayers
		return
	}
	l := &p.IP[p.NumIP]
	copy(l.Src[:], src)
	copy(l.Dst[:], dst)
	l.IPVersion = version
	if n == 0 {
		n = len(d.b) - off
		if !d.head && p.WireLen > p.CapLen {
			n += int(p.WireLen - p.CapLen)
		}
	}
	p.IPLen[p.NumIP] = uint32(max(n, 0))
	p.NumIP++
}

func (d *parser) ipv4(off int) {
	b, p := d.b, d.p
	if !d.step() {
		return
	}
	if len(b) < off+20 {
		p.Err = ReasonTruncatedIPv4
		return
	}
	if b[off]>>4 != 4 {
		p.Err = ReasonBadIPVersion
		return
	}
	ihl := int(b[off]&0x0f) * 4
	if ihl < 20 {
		p.Err = ReasonBadIPv4Header
		return
	}
	if len(b) < off+ihl {
		p.Err = ReasonTruncatedIPv4
		return
	}
	if p.NumIP >= MaxIPLayers {
		p.Err = ReasonTooManyLayers
		return
	}
	// The IP packet ends at its total length, or where the capture ends.
	// A total length of 0 (segmentation offload) or one shorter than the
	// header is not trusted.
	end := len(b)
	total := int(be16(b[off+2:]))
	if total < ihl {
		total = 0
	}
	d.addIP(b[off+12:off+16], b[off+16:off+20], 4, off, total)
	if total > 0 && off+total < end {
		end = off + total
	}
	fo := be16(b[off+6:])
	proto := b[off+9]
	t := &p.Flow
	*t = Tuple{Proto: proto, IPVersion: 4}
	copy(t.Src[:4], b[off+12:off+16])
	copy(t.Dst[:4], b[off+16:off+20])
	if fo&0x3fff != 0 && !p.IsFragment {
		d.markFragment((fo&0x1fff)*8, fo&0x2000 != 0, uint32(be16(b[off+4:])), proto, off+ihl, end, int(be16(b[off+2:]))-ihl)
		if p.FragOffset != 0 {
			p.HasFlow = true
			p.NeedPorts = true
			return
		}
	}
	d.transport(off+ihl, end, proto)
}

// ipv6 extension headers that are walked to reach the transport header.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6AH       = 51
	ipv6NoNext   = 59
	ipv6DestOpts = 60
	ipv6Mobility = 135
	ipv6HIP      = 139
	ipv6Shim6    = 140
	protoIPv4    = 4
	protoTCP     = 6
	protoUDP     = 17
	protoIPv6    = 41
	protoGRE     = 47
	protoICMP    = 1
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136
	protoDCCP    = 33
)

func (d *parser) ipv6(off int) {
	b, p := d.b, d.p
	if !d.step() {
		return
	}
	if len(b) < off+40 {
		p.Err = ReasonTruncatedIPv6
		return
	}
	if b[off]>>4 != 6 {
		p.Err = ReasonBadIPVersion
		return
	}
	if p.NumIP >= MaxIPLayers {
		p.Err = ReasonTooManyLayers
		return
	}
	ipLen := int(be16(b[off+4:]))
	if ipLen != 0 {
		ipLen += 40
	}
	d.addIP(b[off+8:off+24], b[off+24:off+40], 6, off, ipLen)
	end := len(b)
	if plen := int(be16(b[off+4:])); plen != 0 && off+40+plen < end {
		end = off + 40 + plen
	}
	next := b[off+6]
	ipEnd := off + 40 + int(be16(b[off+4:]))
	t := &p.Flow
	*t = Tuple{IPVersion: 6}
	copy(t.Src[:], b[off+8:off+24])
	copy(t.Dst[:], b[off+24:off+40])
	d.ipv6Chain(off+40, end, ipEnd, next)
}

// ipv6Chain walks the IPv6 extension headers from off, next naming the
// first, to the transport header; end bounds the packet's bytes, ipEnd is
// where its payload length says it ends.
func (d *parser) ipv6Chain(off, end, ipEnd int, next uint8) {
	b, p := d.b, d.p
	t := &p.Flow
	for d.step() {
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6Mobility, ipv6HIP, ipv6Shim6:
			if end < off+2 {
				p.Err = ReasonTruncatedExtHeader
				return
			}
			next, off = b[off], off+(int(b[off+1])+1)*8
			continue
		case ipv6AH:
			if end < off+2 {
				p.Err = ReasonTruncatedExtHeader
				return
			}
			next, off = b[off], off+(int(b[off+1])+2)*4
			continue
		case ipv6Fragment:
			if end < off+8 {
				p.Err = ReasonTruncatedExtHeader
				return
			}
			fo := be16(b[off+2:])
			next, off = b[off], off+8
			if p.IsFragment {
				continue
			}
			d.markFragment(fo&^7, fo&1 != 0, be32(b[off-4:]), next, off, end, ipEnd-off)
			if p.FragOffset != 0 {
				t.Proto = next
				p.HasFlow = true
				p.NeedPorts = true
				return
			}
			continue
		}
		break
	}
	if p.Err != ReasonNone {
		return
	}
	if off > end {
		p.Err = ReasonTruncatedExtHeader
		return
	}
	t.Proto = next
	d.transport(off, end, next)
}

// transport decodes the header of proto at off; end is where the IP packet's
// bytes end (bounded by the capture).
func (d *parser) transport(off, end int, proto uint8) {
	b, p := d.b, d.p
	t := &p.Flow
	t.Proto = proto
	switch proto {
	case protoTCP:
		if end < off+20 {
			p.Err = ReasonTruncatedTCP
			return
		}
		t.SrcPort, t.DstPort = be16(b[off:]), be16(b[off+2:])
		p.TCPFlags = b[off+13]
		p.HasFlow = true
		hl := int(b[off+12]>>4) * 4
		if hl < 20 {
			p.Err = ReasonBadTCPHeader
			return
		}
		if off+hl < end {
			p.PayloadOff, p.PayloadLen = uint32(off+hl), uint32(end-off-hl)
		}
	case protoUDP, protoUDPLite:
		if end < off+8 {
			p.Err = ReasonTruncatedUDP
			return
		}
		t.SrcPort, t.DstPort = be16(b[off:]), be16(b[off+2:])
		p.HasFlow = true
		if off+8 < end {
			p.PayloadOff, p.PayloadLen = uint32(off+8), uint32(end-off-8)
		}
		if proto == protoUDP {
			d.udpTunnel(off+8, end)
		}
	case protoSCTP, protoDCCP:
		if end < off+12 {
			p.Err = ReasonTruncatedSCTP
			return
		}
		t.SrcPort, t.DstPort = be16(b[off:]), be16(b[off+2:])
		p.HasFlow = true
	case protoICMP, protoICMPv6:
		if end < off+4 {
			p.Err = ReasonTruncatedICMP
			return
		}
		p.ICMPType, p.ICMPCode = b[off], b[off+1]
		t.SrcPort, t.DstPort = icmpPorts(p.ICMPType, p.ICMPCode, proto == protoICMPv6)
		p.HasFlow = true
		if off+4 < end {
			p.PayloadOff, p.PayloadLen = uint32(off+4), uint32(end-off-4)
		}
	case protoGRE:
		p.HasFlow = true // the GRE packet itself, until an inner flow replaces it
		d.gre(off, end)
	case protoIPv4, protoIPv6:
		p.Tunnel = TunnelIPIP
		d.b = b[:end]
		if proto == protoIPv4 {
			d.ipv4(off)
		} else {
			d.ipv6(off)
		}
	default:
		p.HasFlow = true
	}
}

func (d *parser) udpTunnel(off, end int) {
	b, p := d.b, d.p
	t := &p.Flow
	var kind Tunnel
	switch {
	case t.DstPort == portVXLAN || t.SrcPort == portVXLAN:
		if end < off+8 || b[off]&0x08 == 0 {
			return
		}
		kind = TunnelVXLAN
	case t.DstPort == portGENEVE || t.SrcPort == portGENEVE:
		if end < off+8 || b[off]>>6 != 0 {
			return
		}
		kind = TunnelGENEVE
	case t.DstPort == portGTPU || t.SrcPort == portGTPU:
		if end < off+8 || b[off]>>5 != 1 || b[off]&0x10 == 0 || b[off+1] != 0xff {
			return // not GTPv1 G-PDU: signalling or something else, keep it plain UDP
		}
		kind = TunnelGTPU
	default:
		return
	}
	if !p.HasOuter {
		p.HasOuter = true
		p.Outer = *t
		p.OuterLayer = p.NumIP - 1
	}
	p.Tunnel = kind
	p.HasFlow = false
	p.PayloadOff, p.PayloadLen = 0, 0
	d.b = b[:end]
	switch kind {
	case TunnelVXLAN:
		d.innerEthernet(off + 8)
	case TunnelGENEVE:
		optLen := int(b[off]&0x3f) * 4
		proto := be16(b[off+2:])
		off += 8 + optLen
		if end < off {
			p.Err = ReasonTruncatedTunnel
			return
		}
		if proto == etTEB {
			d.innerEthernet(off)
		} else {
			d.etherType(off, proto)
		}
	case TunnelGTPU:
		flags := b[off]
		h := off + 8
		if flags&0x07 != 0 {
			if end < h+4 {
				p.Err = ReasonTruncatedTunnel
				return
			}
			next := b[h+3]
			h += 4
			for next != 0 && d.step() {
				if end < h+1 || b[h] == 0 || end < h+int(b[h])*4 {
					p.Err = ReasonTruncatedTunnel
					return
				}
				l := int(b[h]) * 4
				next = b[h+l-1]
				h += l
			}
		}
		d.ipByVersion(h)
	}
}

// innerEthernet decodes a tunnelled Ethernet frame; its VLAN tags replace
// the outer ones, since they describe the inner connection.
func (d *parser) innerEthernet(off int) {
	d.p.VLAN, d.p.InnerVLAN = 0, 0
	d.ethernet(off)
}

func (d *parser) gre(off, end int) {
	b, p := d.b, d.p
	if end < off+4 {
		p.Err = ReasonTruncatedTunnel
		return
	}
	flags := be16(b[off:])
	proto := be16(b[off+2:])
	h := 4
	switch flags & 7 {
	case 0:
		if flags&0xc000 != 0 { // checksum or routing present
			h += 4
		}
		if flags&0x2000 != 0 { // key
			h += 4
		}
		if flags&0x1000 != 0 { // sequence number
			h += 4
		}
	case 1: // enhanced GRE (PPTP): key always, sequence and ack optional
		h += 4
		if flags&0x1000 != 0 {
			h += 4
		}
		if flags&0x0080 != 0 {
			h += 4
		}
	default:
		return
	}
	if end < off+h {
		p.Err = ReasonTruncatedTunnel
		return
	}
	off += h
	d.b = b[:end]
	p.HasFlow = false
	p.Tunnel = TunnelGRE
	switch proto {
	case etIPv4, etIPv6, etMPLS, etMPLSMulti:
		d.etherType(off, proto)
	case etTEB:
		d.innerEthernet(off)
	case etERSPAN2:
		p.Tunnel = TunnelERSPAN
		if flags&0x1000 != 0 { // type II: 8-byte ERSPAN header; type I has none
			off += 8
		}
		d.innerEthernet(off)
	case etERSPAN3:
		p.Tunnel = TunnelERSPAN
		if end < off+12 {
			p.Err = ReasonTruncatedTunnel
			return
		}
		if b[off+11]&1 != 0 { // platform-specific subheader follows
			off += 8
		}
		d.innerEthernet(off + 12)
	case etPPP:
		d.ppp(off, end)
	default:
		p.HasFlow = true // unknown payload: keep the GRE packet as the flow
		p.Tunnel = TunnelNone
	}
}

// icmpPorts maps an ICMP type and code to the port pair that Community ID v1
// (and Zeek) use, so that a request and its reply form one flow.
func icmpPorts(typ, code uint8, v6 bool) (uint16, uint16) {
	var peer int
	if v6 {
		peer = icmp6Peer[typ]
	} else {
		peer = icmp4Peer[typ]
	}
	if peer == 0 {
		return uint16(typ), uint16(code)
	}
	return uint16(typ), uint16(peer - 1)
}

// ICMPOneWay reports whether an ICMP type has no request/reply counterpart
// (Community ID then keeps the packet's own orientation).
func ICMPOneWay(typ uint8, v6 bool) bool {
	if v6 {
		return icmp6Peer[typ] == 0
	}
	return icmp4Peer[typ] == 0
}

// icmp4Peer and icmp6Peer hold counterpart type + 1 (0 = none).
var icmp4Peer = [256]int{8: 0 + 1, 0: 8 + 1, 13: 14 + 1, 14: 13 + 1, 15: 16 + 1, 16: 15 + 1,
	10: 9 + 1, 9: 10 + 1, 17: 18 + 1, 18: 17 + 1}
var icmp6Peer = [256]int{128: 129 + 1, 129: 128 + 1, 133: 134 + 1, 134: 133 + 1, 135: 136 + 1,
	136: 135 + 1, 130: 131 + 1, 131: 130 + 1, 139: 140 + 1, 140: 139 + 1, 144: 145 + 1, 145: 144 + 1}
