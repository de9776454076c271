package app

import (
	"crypto/md5"
	"crypto/sha256"
	"slices"
	"strconv"
)

// Bounds of the lists a ClientHello parse keeps for JA3/JA4. A hello with
// longer lists still yields SNI and ALPN, but no fingerprint.
const (
	maxCiphers = 128
	maxExts    = 64
	maxGroups  = 64
	maxPoints  = 16
	maxSigAlgs = 64
)

// isTLSRecord reports whether b starts with a plausible TLS record header:
// a content type of 20..23, version 3.0 to 3.4 and a length within the
// limit of RFC 8446 (2^14 plus expansion).
func isTLSRecord(b []byte) bool {
	if len(b) < 5 || b[0] < 20 || b[0] > 23 || b[1] != 3 || b[2] > 4 {
		return false
	}
	n := be16(b[3:])
	return n > 0 && n <= 16384+2048
}

// isSSLv2Hello reports an SSL 2.0-format ClientHello (two-byte header with
// the high bit set, message type 1), as old clients send for compatibility.
func isSSLv2Hello(b []byte) bool {
	if len(b) < 11 || b[0]&0x80 == 0 || b[2] != 1 {
		return false
	}
	n := int(b[0]&0x7f)<<8 | int(b[1])
	v := be16(b[3:])
	return n >= 9 && (v == 0x0002 || (v >= 0x0300 && v <= 0x0303))
}

// tlsFeed parses the handshake records of a TLS flow (or of a flow upgraded
// to TLS): the ClientHello, reassembled when it spans packets, and the
// ServerHello from the server's first handshake record.
func (s *State) tlsFeed(p *Pool, b []byte, d uint8) {
	if s.bkind == kindTLS && s.bdir == d {
		s.tlsAppend(p, b)
		return
	}
	if len(b) >= 6 && b[0] == 22 && b[1] == 3 {
		switch b[5] {
		case 1:
			if s.flags&flHello == 0 {
				s.setClient(d)
				s.tlsRec = be16(b[1:])
				s.tlsClientStart(p, b, d)
			}
		case 2:
			if s.flags&flSrvHello == 0 {
				s.setClient(1 - d)
				s.serverHello(b)
			}
		}
		return
	}
	if s.flags&flHello == 0 && isSSLv2Hello(b) {
		s.setClient(d)
		s.flags |= flHello
		s.tlsRec = 0x0002
		s.tlsCli = be16(b[3:])
	}
}

// tlsClientStart parses a ClientHello whose first bytes are in b, or, when
// the hello continues in later packets, starts collecting it in a slot of p.
func (s *State) tlsClientStart(p *Pool, b []byte, d uint8) {
	var tmp [BufSize]byte
	hs, complete := tlsHandshake(b, &tmp)
	if complete || p == nil || len(b) >= BufSize {
		s.clientHello(hs, 't', complete)
		return
	}
	s.slot, s.ticket = p.acquire()
	m := p.slot(s.slot, s.ticket)
	s.blen = uint16(copy(m[:BufSize], b))
	s.bkind, s.bdir = kindTLS, d
}

// tlsAppend adds b to the ClientHello being collected and parses the hello
// once it is whole or the buffer is full.
func (s *State) tlsAppend(p *Pool, b []byte) {
	m := p.slot(s.slot, s.ticket)
	if m == nil { // the pool took the slot back: go on without
		s.free(p)
		s.flags |= flHello
		return
	}
	if s.isRetransmit(m, b) {
		return
	}
	s.blen += uint16(copy(m[s.blen:BufSize], b))
	var tmp [BufSize]byte
	hs, complete := tlsHandshake(m[:s.blen], &tmp)
	if complete || s.blen == BufSize {
		s.clientHello(hs, 't', complete)
		s.free(p)
	}
}

// isRetransmit reports that b repeats the start of what the slot holds: the
// first segment sent again, which must not be appended twice. Feed sees no
// sequence numbers, so a repeat of a later segment is not recognised (a
// continuation that equals the message's first bytes is the only false
// match, and it cannot start with a record or request header).
func (s *State) isRetransmit(m, b []byte) bool {
	held := m[:s.blen]
	return len(b) <= len(held) && string(held[:len(b)]) == string(b)
}

// tlsHandshake gathers the first handshake message from the TLS records at
// the start of b. It returns the message (header included) and whether it is
// whole; a message cut short comes back as the prefix that is there. A
// message within one record is returned in place; one spread over records is
// copied to tmp.
func tlsHandshake(b []byte, tmp *[BufSize]byte) ([]byte, bool) {
	n, need := 0, -1
	for off := 0; off+5 <= len(b) && b[off] == 22; {
		rl := int(be16(b[off+3:]))
		frag := b[off+5 : min(off+5+rl, len(b))]
		if off == 0 && len(frag) >= 4 {
			need = 4 + be24(frag[1:])
			if len(frag) >= need {
				return frag[:need], true
			}
		}
		n += copy(tmp[n:], frag)
		if need < 0 && n >= 4 {
			need = 4 + be24(tmp[1:])
		}
		if need >= 0 && n >= need {
			return tmp[:need], true
		}
		off += 5 + rl
	}
	return tmp[:n], false
}

// hello is what a ClientHello offers, kept for the fingerprints. The lists
// hold no GREASE values (RFC 8701), as JA3 and JA4 both ignore them.
//
// It holds no slices of the message: the strings it finds are returned
// (stored through the receiver they would make the compiler move every
// message buffer to the heap).
type hello struct {
	legacy   uint16 // legacy_version
	maxVer   uint16 // highest supported_versions entry, 0 without the extension
	hasSNI   bool
	overflow bool // a list was longer than kept: no fingerprint
	alpnSeen bool
	// alpnFirst and alpnLast are JA4's two ALPN characters.
	alpnFirst, alpnLast byte
	nCiph               int
	nExt                int
	nGroups             int
	nPoints             int
	nSigAlgs            int
	ciph                [maxCiphers]uint16
	ext                 [maxExts]uint16
	groups              [maxGroups]uint16
	points              [maxPoints]uint8
	sigAlgs             [maxSigAlgs]uint16
}

// isGREASE reports the reserved values of RFC 8701 (0x0a0a, 0x1a1a, ...).
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// cursor reads big-endian fields from a byte slice; reading past the end
// yields zeros and clears ok.
type cursor struct {
	b  []byte
	ok bool
}

func (c *cursor) bytes(n int) []byte {
	if n < 0 || n > len(c.b) {
		c.ok = false
		r := c.b
		c.b = nil
		return r
	}
	r := c.b[:n]
	c.b = c.b[n:]
	return r
}

func (c *cursor) u8() int {
	if len(c.b) < 1 {
		c.ok = false
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v
}

func (c *cursor) u16() int {
	if len(c.b) < 2 {
		c.ok = false
		c.b = nil
		return 0
	}
	v := int(be16(c.b))
	c.b = c.b[2:]
	return v
}

// parse reads a ClientHello handshake message (4-byte header included),
// possibly cut short. It returns the first server name and ALPN protocol,
// and true when the whole message was read.
func (h *hello) parse(hs []byte) (sni, alpn []byte, whole bool) {
	if len(hs) < 4 || hs[0] != 1 {
		return nil, nil, false
	}
	body := hs[4:]
	whole = len(body) >= be24(hs[1:])
	if whole {
		body = body[:be24(hs[1:])]
	}
	c := cursor{b: body, ok: true}
	h.legacy = uint16(c.u16())
	c.bytes(32)
	c.bytes(c.u8())
	cs := cursor{b: c.bytes(c.u16()), ok: true}
	for len(cs.b) >= 2 {
		if v := uint16(cs.u16()); !isGREASE(v) {
			h.nCiph = appendU16(h.ciph[:], h.nCiph, v, &h.overflow)
		}
	}
	c.bytes(c.u8())
	if !c.ok {
		return nil, nil, false
	}
	if len(c.b) == 0 {
		return nil, nil, whole // no extensions at all
	}
	ex := cursor{b: c.bytes(c.u16()), ok: c.ok}
	for len(ex.b) >= 4 {
		typ := uint16(ex.u16())
		data := ex.bytes(ex.u16())
		if !isGREASE(typ) {
			h.nExt = appendU16(h.ext[:], h.nExt, typ, &h.overflow)
		}
		if n, a := h.extension(typ, data); n != nil || a != nil {
			if sni == nil {
				sni = n
			}
			if alpn == nil {
				alpn = a
			}
		}
	}
	return sni, alpn, whole && ex.ok && len(ex.b) == 0
}

// extension records what the fingerprints use from one ClientHello
// extension, and returns the server name or ALPN protocol it holds.
func (h *hello) extension(typ uint16, data []byte) (sni, alpn []byte) {
	c := cursor{b: data, ok: true}
	switch typ {
	case 0x0000: // server_name
		h.hasSNI = true
		list := cursor{b: c.bytes(c.u16()), ok: true}
		for len(list.b) >= 3 && sni == nil {
			kind := list.u8()
			name := list.bytes(list.u16())
			if kind == 0 {
				sni = name
			}
		}
	case 0x0010: // application_layer_protocol_negotiation
		list := cursor{b: c.bytes(c.u16()), ok: true}
		if len(list.b) > 0 {
			alpn = list.bytes(list.u8())
			h.alpnSeen = true
			h.alpnFirst, h.alpnLast = ja4ALPN(alpn)
		}
	case 0x000a: // supported_groups
		list := cursor{b: c.bytes(c.u16()), ok: true}
		for len(list.b) >= 2 {
			if v := uint16(list.u16()); !isGREASE(v) {
				h.nGroups = appendU16(h.groups[:], h.nGroups, v, &h.overflow)
			}
		}
	case 0x000b: // ec_point_formats
		for _, v := range c.bytes(c.u8()) {
			if h.nPoints == maxPoints {
				h.overflow = true
				break
			}
			h.points[h.nPoints] = v
			h.nPoints++
		}
	case 0x000d: // signature_algorithms
		list := cursor{b: c.bytes(c.u16()), ok: true}
		for len(list.b) >= 2 {
			if v := uint16(list.u16()); !isGREASE(v) {
				h.nSigAlgs = appendU16(h.sigAlgs[:], h.nSigAlgs, v, &h.overflow)
			}
		}
	case 0x002b: // supported_versions
		list := cursor{b: c.bytes(c.u8()), ok: true}
		for len(list.b) >= 2 {
			if v := uint16(list.u16()); !isGREASE(v) && v > h.maxVer {
				h.maxVer = v
			}
		}
	}
	return sni, alpn
}

// appendU16 stores v at list[n] and returns n+1, or sets *overflow when the
// list is full.
func appendU16(list []uint16, n int, v uint16, overflow *bool) int {
	if n == len(list) {
		*overflow = true
		return n
	}
	list[n] = v
	return n + 1
}

// clientHello records what the ClientHello message hs offers. kind is the
// JA4 transport letter ('t' for TCP, 'q' for QUIC); whole says hs is the
// entire message, which the fingerprints need.
func (s *State) clientHello(hs []byte, kind byte, whole bool) {
	s.flags |= flHello
	var h hello
	sni, alpn, ok := h.parse(hs)
	s.tlsCli, s.tlsMax = h.legacy, h.maxVer
	s.set(fSNI, sni)
	s.set(fALPN, alpn)
	if !ok || !whole || h.overflow {
		return
	}
	s.flags |= flHelloAll
	s.ja3 = h.ja3()
	var j [36]byte
	h.ja4(kind, &j)
	s.set(fJA4, j[:])
}

// ja3 returns the MD5 of the JA3 string
// "version,ciphers,extensions,groups,point_formats" (decimal values joined
// by '-', GREASE left out), as defined by Salesforce's JA3 and printed by
// Wireshark's tls.handshake.ja3.
func (h *hello) ja3() [16]byte {
	var buf [2048]byte
	b := strconv.AppendUint(buf[:0], uint64(h.legacy), 10)
	b = append(b, ',')
	b = appendDecimals(b, h.ciph[:h.nCiph])
	b = append(b, ',')
	b = appendDecimals(b, h.ext[:h.nExt])
	b = append(b, ',')
	b = appendDecimals(b, h.groups[:h.nGroups])
	b = append(b, ',')
	for i, v := range h.points[:h.nPoints] {
		if i > 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	return md5.Sum(b)
}

func appendDecimals(b []byte, list []uint16) []byte {
	for i, v := range list {
		if i > 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	return b
}

// ja4 writes the JA4 fingerprint (FoxIO, technical_details/JA4.md) of the
// hello to out: kind, version, SNI flag, cipher and extension counts, ALPN
// ends, then the truncated SHA-256 of the sorted cipher list and of the
// sorted extension list (SNI and ALPN left out) followed by the signature
// algorithms in their order.
func (h *hello) ja4(kind byte, out *[36]byte) {
	out[0] = kind
	v := h.legacy
	if h.maxVer != 0 {
		v = h.maxVer
	}
	ver := ja4Version(v)
	out[1], out[2] = ver[0], ver[1]
	out[3] = 'i'
	if h.hasSNI {
		out[3] = 'd'
	}
	twoDigits(out[4:6], h.nCiph)
	twoDigits(out[6:8], h.nExt)
	out[8], out[9] = '0', '0'
	if h.alpnSeen {
		out[8], out[9] = h.alpnFirst, h.alpnLast
	}
	out[10] = '_'

	var buf [maxCiphers * 5]byte
	var sorted [maxCiphers]uint16
	list := sorted[:copy(sorted[:], h.ciph[:h.nCiph])]
	slices.Sort(list)
	ja4Hash(out[11:23], appendHex4List(buf[:0], list))
	out[23] = '_'

	var ebuf [(maxExts + maxSigAlgs) * 5]byte
	exts := sorted[:0]
	for _, e := range h.ext[:h.nExt] {
		if e != 0x0000 && e != 0x0010 {
			exts = append(exts, e)
		}
	}
	slices.Sort(exts)
	eb := appendHex4List(ebuf[:0], exts)
	if len(exts) > 0 && h.nSigAlgs > 0 {
		eb = append(eb, '_')
		eb = appendHex4List(eb, h.sigAlgs[:h.nSigAlgs])
	}
	if len(exts) == 0 {
		eb = eb[:0]
	}
	ja4Hash(out[24:36], eb)
}

// ja4Version maps a TLS version to JA4's two characters.
func ja4Version(v uint16) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

// twoDigits writes n (capped at 99) as two decimal digits.
func twoDigits(dst []byte, n int) {
	n = min(n, 99)
	dst[0], dst[1] = byte('0'+n/10), byte('0'+n%10)
}

// ja4ALPN returns JA4's two ALPN characters: the first and last byte of the
// first protocol when both are ASCII letters or digits, else the first and
// last hex digit of the protocol; "00" when there is none.
func ja4ALPN(a []byte) (byte, byte) {
	if len(a) == 0 {
		return '0', '0'
	}
	first, last := a[0], a[len(a)-1]
	if isAlnum(first) && isAlnum(last) {
		return first, last
	}
	return hexDigits[first>>4], hexDigits[last&0xf]
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

const hexDigits = "0123456789abcdef"

// appendHex4List appends the values as 4-digit lower-case hex, comma
// separated.
func appendHex4List(b []byte, list []uint16) []byte {
	for i, v := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
	}
	return b
}

// ja4Hash writes the first 12 hex digits of SHA-256(b) to dst, or twelve
// zeros when b is empty.
func ja4Hash(dst []byte, b []byte) {
	if len(b) == 0 {
		for i := range dst[:12] {
			dst[i] = '0'
		}
		return
	}
	sum := sha256.Sum256(b)
	for i := 0; i < 6; i++ {
		dst[2*i], dst[2*i+1] = hexDigits[sum[i]>>4], hexDigits[sum[i]&0xf]
	}
}

// serverHello records the version the server chose from the ServerHello
// at the start of the TLS record in b (cut short or not): supported_versions
// when present (TLS 1.3), else legacy_version.
func (s *State) serverHello(b []byte) {
	s.flags |= flSrvHello
	hs := b[5:min(len(b), 5+int(be16(b[3:])))]
	if len(hs) < 6 {
		return
	}
	c := cursor{b: hs[4:], ok: true}
	s.tlsSrv = uint16(c.u16())
	c.bytes(32)
	c.bytes(c.u8())
	c.u16() // cipher suite
	c.u8()  // compression
	ex := cursor{b: c.bytes(c.u16()), ok: true}
	for len(ex.b) >= 4 {
		typ := ex.u16()
		data := ex.bytes(ex.u16())
		if typ == 0x002b && len(data) == 2 {
			s.tlsSrv = be16(data)
		}
	}
}

// tlsVersionName returns the name of a TLS version ("TLS 1.3"), or "" for
// versions without one.
func tlsVersionName(v uint16) string {
	switch v {
	case 0x0002:
		return "SSL 2.0"
	case 0x0300:
		return "SSL 3.0"
	case 0x0301:
		return "TLS 1.0"
	case 0x0302:
		return "TLS 1.1"
	case 0x0303:
		return "TLS 1.2"
	case 0x0304:
		return "TLS 1.3"
	}
	if v>>8 == 0x7f {
		return "TLS 1.3" // draft versions 0x7fXX
	}
	return ""
}
