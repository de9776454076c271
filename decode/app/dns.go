package app

// maxQuestions bounds how many questions of one DNS message are read
// (multicast DNS queries ask for a dozen or two at once).
const maxQuestions = 32

// isDNSMessage reports whether b can be a DNS message. On a DNS port
// (strict false) any 4 bytes will do, as for tshark, which dissects
// whatever a DNS port carries: even a mangled header tells query from
// response. With strict (no DNS port vouches for the flow) it must start
// as a standard query for one name of class IN, CH or ANY, with at most one
// additional record (EDNS, or DNSCrypt's padding) and nothing else.
func isDNSMessage(b []byte, strict bool) bool {
	if !strict {
		return len(b) >= 4
	}
	if len(b) < 12 {
		return false
	}
	flags := be16(b[2:])
	qd, an, ns, ar := be16(b[4:]), be16(b[6:]), be16(b[8:]), be16(b[10:])
	if flags&0xf840 != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return false
	}
	var name nameBuf
	_, end, ok := dnsName(b, 12, &name)
	if !ok || end+4 > len(b) {
		return false
	}
	qtype, class := be16(b[end:]), be16(b[end+2:])&0x7fff
	return qtype != 0 && (class == 1 || class == 3 || class == 255) && (ar == 1 || end+4 == len(b))
}

// isDNSOverTCP reports a DNS message behind the two-byte length of DNS over
// TCP (RFC 1035 section 4.2.2), or that length alone: some stacks send it
// in a segment of its own.
func isDNSOverTCP(b []byte) bool {
	if len(b) == 2 {
		return be16(b) >= 12
	}
	return len(b) >= 14 && be16(b) >= 12 && isDNSMessage(b[2:], false)
}

// DNS over TCP parse states kept in State.dnsHalf, per direction.
const (
	dnsHalfLen  = 0x100 // the low byte is the first byte of a split length
	dnsAwaitMsg = 0x200 // a length was read, the message has not started yet
)

// dnsFeed counts and parses the DNS messages of one packet: one datagram, or
// the length-prefixed messages of a TCP segment, which may start or end in
// the middle of a message or of its length. Names are decoded in p's
// scratch buffer (one of its own without a Pool): a buffer declared per
// message is zeroed per message, 256 bytes for each packet of a DNS flow.
func (s *State) dnsFeed(p *Pool, b []byte, d uint8) {
	if p == nil {
		s.dnsFeedOwn(b, d)
		return
	}
	s.dnsMessages(b, d, &p.name)
}

// dnsFeedOwn is dnsFeed without a Pool. (Not inlined: its buffer stays out
// of the callers' frames.)
//
//go:noinline
func (s *State) dnsFeedOwn(b []byte, d uint8) {
	var name nameBuf
	s.dnsMessages(b, d, &name)
}

// dnsMessages is dnsFeed with name as scratch space.
func (s *State) dnsMessages(b []byte, d uint8, name *nameBuf) {
	if s.l4 != 6 {
		s.dnsMessage(b, d, name)
		return
	}
	for len(b) > 0 {
		h := s.dnsHalf[d]
		if skip := int(s.dnsSkip[d]); skip > 0 {
			n := min(skip, len(b))
			if h == dnsAwaitMsg {
				s.dnsHalf[d] = 0
				s.dnsMessage(b[:n], d, name)
			}
			s.dnsSkip[d] -= uint16(n)
			b = b[n:]
			continue
		}
		var n int
		switch {
		case h&dnsHalfLen != 0:
			n = int(h&0xff)<<8 | int(b[0])
			b = b[1:]
		case len(b) == 1:
			s.dnsHalf[d] = dnsHalfLen | uint16(b[0])
			return
		default:
			n = int(be16(b))
			b = b[2:]
		}
		s.dnsHalf[d] = 0
		m := b[:min(n, len(b))]
		if len(m) == 0 {
			s.dnsSkip[d], s.dnsHalf[d] = uint16(n), dnsAwaitMsg
			return
		}
		s.dnsMessage(m, d, name)
		s.dnsSkip[d] = uint16(n - len(m))
		b = b[len(m):]
	}
}

// dnsMessage counts one DNS message and records its question names; from a
// response, also the rcode and the answer count. A message cut short counts
// with what its header still tells. name is scratch space.
func (s *State) dnsMessage(m []byte, d uint8, name *nameBuf) {
	if len(m) < 4 {
		return
	}
	flags := be16(m[2:])
	if flags&0x8000 == 0 {
		s.queries++
		s.setClient(d)
	} else {
		s.replies++
		s.flags |= flDNSResp
		s.rcode = uint8(flags & 0xf)
		s.answers = 0
		if len(m) >= 8 {
			s.answers = be16(m[6:])
		}
		s.setClient(1 - d)
	}
	if len(m) < 12 {
		return
	}
	qd := int(be16(m[4:]))
	off := 12
	for i := 0; i < qd && i < maxQuestions; i++ {
		n, end, ok := dnsName(m, off, name)
		if !ok {
			return
		}
		qtype := uint16(0)
		if end+2 <= len(m) {
			qtype = be16(m[end:])
		}
		if s.addName(fQuery, name[:n]) {
			s.qtype = qtype
		}
		off = end + 4
	}
}

// equalFold compares two names ignoring ASCII case.
func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if upper(a[i]) != upper(b[i]) {
			return false
		}
	}
	return true
}

// nameBuf holds one decoded name.
type nameBuf [256]byte

// dnsName decodes the domain name at m[off:] into out, following
// compression pointers, and returns its length in out, the offset just
// after the name in m, and false when there is no name to show.
//
// The text is the one Wireshark 4.0 shows (tshark's dns.qry.name), so that
// names compare with it (its escapes of control characters are applied by
// AppendJSON): the root as "<Root>"; a name of more than 255 bytes on the
// wire as "<Name too long>"; a compression loop as "<Name contains a pointer
// that loops>"; an extended label after the first label as "<Unknown
// extended label>". A name cut short, or starting with an extended or
// reserved label, has no text.
func dnsName(m []byte, off int, out *nameBuf) (n, end int, ok bool) {
	end = -1
	wire, labels, hops := 1, 0, 0
	var targets [16]uint16 // pointers are 14 bits; a small array is zeroed fast
	for {
		if off >= len(m) {
			return tooLong(out, wire, m)
		}
		l := int(m[off])
		switch l & 0xc0 {
		case 0xc0:
			if off+1 >= len(m) {
				return tooLong(out, wire, m)
			}
			if end < 0 {
				end = off + 2
			}
			t := (l&0x3f)<<8 | int(m[off+1])
			for _, seen := range targets[:hops] {
				if int(seen) == t {
					return copy(out[:], "<Name contains a pointer that loops>"), end, true
				}
			}
			if hops == len(targets) {
				return copy(out[:], "<Name contains a pointer that loops>"), end, true
			}
			targets[hops] = uint16(t)
			hops++
			off = t
			continue
		case 0x40:
			if labels == 0 {
				return 0, 0, false
			}
			if end < 0 {
				end = off + 1
			}
			return copy(out[:], "<Unknown extended label>"), end, true
		case 0x80:
			return tooLong(out, wire, m)
		}
		if l == 0 {
			if end < 0 {
				end = off + 1
			}
			if n == 0 {
				n = copy(out[:], "<Root>")
			}
			return n, end, true
		}
		if off+1+l > len(m) {
			return tooLong(out, wire+1+l, m)
		}
		wire += 1 + l
		if wire > 255 {
			return tooLong(out, wire, m)
		}
		labels++
		if n > 0 {
			out[n] = '.'
			n++
		}
		n += copy(out[n:], m[off+1:off+1+l])
		off += 1 + l
	}
}

// tooLong ends a name whose labels pass 255 bytes, or that is cut short:
// Wireshark shows "<Name too long>" for the first (and reads no further
// question), nothing for the second.
func tooLong(out *nameBuf, wire int, m []byte) (int, int, bool) {
	if wire > 255 {
		return copy(out[:], "<Name too long>"), len(m), true
	}
	return 0, 0, false
}

// qtypeName returns the mnemonic of a DNS RR type, or "" for others.
func qtypeName(t uint16) string {
	switch t {
	case 1:
		return "A"
	case 2:
		return "NS"
	case 5:
		return "CNAME"
	case 6:
		return "SOA"
	case 10:
		return "NULL"
	case 12:
		return "PTR"
	case 13:
		return "HINFO"
	case 15:
		return "MX"
	case 16:
		return "TXT"
	case 28:
		return "AAAA"
	case 33:
		return "SRV"
	case 35:
		return "NAPTR"
	case 41:
		return "OPT"
	case 43:
		return "DS"
	case 46:
		return "RRSIG"
	case 47:
		return "NSEC"
	case 48:
		return "DNSKEY"
	case 64:
		return "SVCB"
	case 65:
		return "HTTPS"
	case 251:
		return "IXFR"
	case 252:
		return "AXFR"
	case 255:
		return "ANY"
	case 257:
		return "CAA"
	}
	return ""
}

// rcodeName returns the mnemonic of a DNS response code, or "" for others.
func rcodeName(r uint8) string {
	switch r {
	case 0:
		return "NOERROR"
	case 1:
		return "FORMERR"
	case 2:
		return "SERVFAIL"
	case 3:
		return "NXDOMAIN"
	case 4:
		return "NOTIMP"
	case 5:
		return "REFUSED"
	case 6:
		return "YXDOMAIN"
	case 7:
		return "YXRRSET"
	case 8:
		return "NXRRSET"
	case 9:
		return "NOTAUTH"
	case 10:
		return "NOTZONE"
	}
	return ""
}
