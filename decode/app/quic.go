package app

import (
	"bytes"
	"strconv"
)

const (
	maxCIDLen  = 20         // longest connection ID (RFC 9000 section 17.2)
	quicV1     = 0x00000001 // RFC 9000
	quicV2     = 0x6b3343cf // RFC 9369
	maxQUICPkt = 2048       // bytes of one Initial packet deciphered
)

// Initial salts (RFC 9001 section 5.2, RFC 9369 section 3.3.1, the QUIC
// drafts, and Google's T050/T051/Q050, as nDPI and Wireshark know them).
var (
	saltV1      = [20]byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	saltV2      = [20]byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
	saltDraft22 = [20]byte{0x7f, 0xbc, 0xdb, 0x0e, 0x7c, 0x66, 0xbb, 0xe9, 0x19, 0x3a, 0x96, 0xcd, 0x21, 0x51, 0x9e, 0xbd, 0x7a, 0x02, 0x64, 0x4a}
	saltDraft23 = [20]byte{0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65, 0xbe, 0xf9, 0xf5, 0x02}
	saltDraft29 = [20]byte{0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99}
	saltQ050    = [20]byte{0x50, 0x45, 0x74, 0xef, 0xd0, 0x66, 0xfe, 0x2f, 0x9d, 0x94, 0x5c, 0xfc, 0xdb, 0xd3, 0xa7, 0xf0, 0xd3, 0xb5, 0x6b, 0x45}
	saltT050    = [20]byte{0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72, 0x91, 0x55, 0x80, 0x30, 0x4c, 0x43, 0xa2, 0x36, 0x7c, 0x60, 0x48, 0x83, 0x10}
	saltT051    = [20]byte{0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50, 0x6c, 0x19, 0x12, 0x4f, 0xc8, 0xcc, 0xda, 0x6e, 0x03, 0x3d}
)

// isGQUICVersion reports Google QUIC versions: 'Q' or 'T' and three digits.
func isGQUICVersion(v uint32) bool {
	c := byte(v >> 24)
	return (c == 'Q' || c == 'T') && isDigit(byte(v>>16)) && isDigit(byte(v>>8)) && isDigit(byte(v))
}

// isIETFQUICVersion reports version 1, 2, the IETF drafts, Facebook's mvfst
// versions and the 0x?a?a?a?a versions that force version negotiation.
func isIETFQUICVersion(v uint32) bool {
	return v == quicV1 || v == quicV2 || v>>8 == 0xff0000 || v&0xfffff000 == 0xfaceb000 || v&0x0f0f0f0f == 0x0a0a0a0a
}

// initialSalt returns the Initial salt of version v and whether v has one.
// Draft numbering follows the drafts' own changes of salt (22, 23-28, 29-32,
// 33+ = v1); mvfst versions follow the drafts they implement.
func initialSalt(v uint32) (*[20]byte, bool) {
	switch v {
	case quicV1:
		return &saltV1, true
	case quicV2:
		return &saltV2, true
	case 0x51303530: // Q050
		return &saltQ050, true
	case 0x54303530: // T050
		return &saltT050, true
	case 0x54303531: // T051
		return &saltT051, true
	case 0xfaceb001:
		return &saltDraft22, true
	case 0xfaceb002, 0xfaceb00e:
		return &saltDraft23, true
	}
	draft := -1
	switch {
	case v>>8 == 0xff0000:
		draft = int(v & 0xff)
	case v&0x0f0f0f0f == 0x0a0a0a0a:
		draft = 29
	}
	switch {
	case draft < 0:
		return nil, false
	case draft <= 22:
		return &saltDraft22, true
	case draft <= 28:
		return &saltDraft23, true
	case draft <= 32:
		return &saltDraft29, true
	}
	return &saltV1, true
}

// isQUICLong reports a QUIC long-header packet (RFC 8999 invariants) of a
// known version, or a version negotiation packet.
func isQUICLong(b []byte) bool {
	if len(b) < 7 || b[0]&0x80 == 0 {
		return false
	}
	v := be32(b[1:])
	if v != 0 && !isIETFQUICVersion(v) && !isGQUICVersion(v) {
		return false
	}
	if v&0x0f0f0f0f == 0x0a0a0a0a && len(b) < 1200 {
		return false // a reserved version only counts in a padded client Initial
	}
	dcil := int(b[5])
	if dcil > maxCIDLen || 6+dcil >= len(b) {
		return false
	}
	scil := int(b[6+dcil])
	return scil <= maxCIDLen && 7+dcil+scil <= len(b)
}

// isGQUIC reports a Google QUIC packet with the old public header (Q024 to
// Q043): flags with the version and 8-byte connection ID bits, then the
// connection ID and the version.
func isGQUIC(b []byte) bool {
	return len(b) >= 13 && b[0]&0x80 == 0 && b[0]&0x09 == 0x09 && isGQUICVersion(be32(b[9:]))
}

// quicFeed detects the QUIC version and finds the client's TLS ClientHello
// (IETF QUIC, T05x), or CHLO (gQUIC), for its server name.
func (s *State) quicFeed(p *Pool, b []byte, d uint8) {
	if s.flags&(flHello|flQUICGive) != 0 || (s.flags&flCli != 0 && s.cli != d) {
		return
	}
	var v uint32
	switch {
	case isQUICLong(b):
		v = be32(b[1:])
	case isGQUIC(b):
		v = be32(b[9:])
	default:
		return
	}
	if v == 0 { // version negotiation, from the server
		s.setClient(1 - d)
		return
	}
	if s.quicVer == 0 {
		s.quicVer = v
	}
	if _, ok := initialSalt(v); ok && b[0]&0x80 != 0 {
		s.quicInitial(p, b, d, v)
		return
	}
	if s.gquicCHLO(b) { // older gQUIC sends its CHLO in clear
		s.setClient(d)
		return
	}
	if isGQUICVersion(v) && s.pkts[d] > 2 {
		s.flags |= flQUICGive
	}
}

// varint reads a QUIC variable-length integer (RFC 9000 section 16). n is
// 0 when b is too short.
func varint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n
}

// quicKeys are a client's Initial packet protection keys.
type quicKeys struct {
	key, hp aes128
	iv      [12]byte
}

// derive computes the client Initial keys of version v for the client's
// first Destination Connection ID (RFC 9001 section 5.2, RFC 9369 section 3.3).
func (k *quicKeys) derive(v uint32, dcid []byte) bool {
	salt, ok := initialSalt(v)
	if !ok {
		return false
	}
	initial := hmacSHA256(salt[:], dcid) // HKDF-Extract
	client := hkdfExpandLabel(initial[:], "client in", 32)
	lk, liv, lhp := "quic key", "quic iv", "quic hp"
	if v == quicV2 {
		lk, liv, lhp = "quicv2 key", "quicv2 iv", "quicv2 hp"
	}
	key := hkdfExpandLabel(client[:], lk, 16)
	iv := hkdfExpandLabel(client[:], liv, 12)
	hp := hkdfExpandLabel(client[:], lhp, 16)
	k.key.init(key[:16])
	k.hp.init(hp[:16])
	copy(k.iv[:], iv[:12])
	return true
}

// quicInitial removes header and packet protection from a client Initial
// packet and collects the CRYPTO frames it carries. The AEAD tag is not
// verified: deciphering with the wrong key (a server Initial, a corrupted
// packet) yields bytes that fail the strict frame walk in quicFrames, and
// not checking lets a packet cut by the snap length still give its first
// frames.
func (s *State) quicInitial(p *Pool, b []byte, d uint8, v uint32) {
	initialType := byte(0)
	if v == quicV2 {
		initialType = 1
	}
	if b[0]>>4&3 != initialType {
		return
	}
	dcid := b[6 : 6+int(b[5])]
	off := 7 + len(dcid) + int(b[6+len(dcid)])
	tok, n := varint(b[off:])
	if n == 0 || tok > uint64(len(b)-off-n) {
		return
	}
	off += n + int(tok)
	length, n := varint(b[off:])
	off += n
	if n == 0 || length < 20 || off+20 > len(b) {
		return
	}
	end := len(b) // a packet cut by the snap length has lost its tag
	if length <= uint64(len(b)-off) {
		end = off + int(length) - 16 // leave out the tag
	}

	// The keys come from the client's first DCID, kept with the slot when
	// the hello spans packets (later Initials may carry the server's CID).
	if m := s.quicSlot(p); m != nil && m[slotDCID] != 0 {
		dcid = m[slotDCID+1 : slotDCID+1+int(m[slotDCID])]
	}
	var k quicKeys
	if !k.derive(v, dcid) {
		return
	}
	var mask [16]byte
	k.hp.encrypt(mask[:], b[off+4:off+20])
	first := b[0] ^ mask[0]&0x0f
	pnLen := int(first&3) + 1
	var pn uint64
	for i := range pnLen {
		pn = pn<<8 | uint64(b[off+i]^mask[1+i])
	}
	if off+pnLen >= end {
		return
	}
	ct := b[off+pnLen : end]
	if len(ct) > maxQUICPkt {
		ct = ct[:maxQUICPkt]
	}
	nonce := k.iv
	for i := range 8 {
		nonce[4+i] ^= byte(pn >> (56 - 8*i))
	}
	var plain [maxQUICPkt]byte
	k.key.gcmKeystreamXOR(plain[:len(ct)], ct, &nonce)
	crypto := byte(0x06)
	if isGQUICVersion(v) {
		crypto = 0x08 // Google's Q050/T05x carry the handshake in frame type 8
	}
	s.quicFrames(p, plain[:len(ct)], d, dcid, crypto)
}

// quicSlot returns the slot holding this flow's CRYPTO stream, nil if none.
func (s *State) quicSlot(p *Pool) []byte {
	if s.bkind != kindQUIC {
		return nil
	}
	return p.slot(s.slot, s.ticket)
}

// quicFrames walks the frames of a deciphered Initial payload. Only the
// frames allowed in Initial packets are accepted (PADDING, PING, ACK,
// CRYPTO, CONNECTION_CLOSE); anything else means the packet was not
// deciphered right, and it is dropped whole. CRYPTO data is placed at its
// offset in a reassembly buffer; the ClientHello is parsed once its bytes
// are all there, from however many packets (and in whatever frame order)
// they came.
//
// crypto is the type of the CRYPTO frame: 0x06 in IETF QUIC, 0x08 in
// Google's versions with IETF headers.
func (s *State) quicFrames(p *Pool, pl []byte, d uint8, dcid []byte, crypto byte) {
	if !quicFramesValid(pl, crypto) {
		return
	}
	var local [BufSize + BufSize/8]byte
	asm, bits := local[:BufSize], local[BufSize:]
	m := s.quicSlot(p)
	if m != nil {
		asm, bits = m[:BufSize], m[slotBitmap:slotDCID]
	}
	got := false
	for len(pl) > 0 {
		switch ft := pl[0]; ft {
		case 0x00, 0x01:
			pl = pl[1:]
		case 0x02, 0x03:
			pl = pl[ackLen(pl):]
		case crypto:
			o, n1 := varint(pl[1:])
			l, n2 := varint(pl[1+n1:])
			data := pl[1+n1+n2 : 1+n1+n2+int(l)]
			if o < BufSize {
				c := copy(asm[o:], data)
				setBits(bits, int(o), c)
				got = true
			}
			pl = pl[1+n1+n2+int(l):]
		default: // CONNECTION_CLOSE ends the walk
			pl = nil
		}
	}
	if !got {
		return
	}
	s.setClient(d)
	have := prefixLen(bits)
	if have >= 4 && hasPrefix(asm, "CHLO") {
		s.gquicCHLO(asm[:have])
		s.free(p)
		return
	}
	if have >= 4 {
		need := 4 + be24(asm[1:])
		if have >= need || need > BufSize {
			s.clientHello(asm[:min(have, need)], 'q', have >= need)
			s.free(p)
			return
		}
	}
	switch {
	case m != nil: // wait for the next Initial
	case p != nil:
		s.slot, s.ticket = p.acquire()
		m = p.slot(s.slot, s.ticket)
		copy(m[:slotDCID], local[:])
		m[slotDCID] = byte(copy(m[slotDCID+1:], dcid))
		s.bkind, s.bdir = kindQUIC, d
	case have >= 4: // no pool: what this packet gave
		s.clientHello(asm[:have], 'q', false)
	}
}

// quicFramesValid reports whether pl is a sequence of well-formed frames of
// the kinds an Initial packet may carry.
func quicFramesValid(pl []byte, crypto byte) bool {
	for len(pl) > 0 {
		switch pl[0] {
		case 0x00, 0x01:
			pl = pl[1:]
		case 0x02, 0x03:
			n := ackLen(pl)
			if n == 0 {
				return false
			}
			pl = pl[n:]
		case crypto:
			_, n1 := varint(pl[1:])
			if n1 == 0 {
				return false
			}
			l, n2 := varint(pl[1+n1:])
			if n2 == 0 || l > uint64(len(pl)-1-n1-n2) {
				return false
			}
			pl = pl[1+n1+n2+int(l):]
		case 0x1c, 0x1d:
			return true
		default:
			return false
		}
	}
	return true
}

// ackLen returns the length of the ACK frame at the start of pl, 0 if it is
// malformed.
func ackLen(pl []byte) int {
	off := 1
	count := 0
	for i := 0; i < 4+count; i++ { // largest, delay, range count, first range
		v, n := varint(pl[off:])
		if n == 0 {
			return 0
		}
		off += n
		if i == 2 {
			if v > 256 {
				return 0
			}
			count = 2 * int(v) // gap and length per range
		}
	}
	if pl[0] == 0x03 { // ECN counts
		for range 3 {
			_, n := varint(pl[off:])
			if n == 0 {
				return 0
			}
			off += n
		}
	}
	return off
}

// setBits marks bytes [off, off+n) as received.
func setBits(bits []byte, off, n int) {
	for i := off; i < off+n; i++ {
		bits[i>>3] |= 1 << (i & 7)
	}
}

// prefixLen returns how many bytes from offset 0 on are all received.
func prefixLen(bits []byte) int {
	n := 0
	for _, b := range bits {
		if b != 0xff {
			for b&1 != 0 {
				n++
				b >>= 1
			}
			return n
		}
		n += 8
	}
	return n
}

// gquicCHLO finds a gQUIC client hello ("CHLO" tag-value message, little
// endian) in b and records its SNI and UAID (user agent) tags.
func (s *State) gquicCHLO(b []byte) bool {
	i := bytes.Index(b, []byte("CHLO"))
	if i < 0 || len(b) < i+8 {
		return false
	}
	m := b[i:]
	n := int(m[4]) | int(m[5])<<8
	idx := m[8:]
	n = min(n, len(idx)/8)
	vals := idx[8*n:]
	prev := 0
	for k := range n {
		e := idx[8*k:]
		end := int(e[4]) | int(e[5])<<8 | int(e[6])<<16 | int(e[7])<<24
		if end < prev {
			break
		}
		v := vals[min(prev, len(vals)):min(end, len(vals))]
		switch string(e[:4]) {
		case "SNI\x00":
			s.set(fSNI, v)
		case "UAID":
			s.set(fUA, v)
		}
		prev = end
	}
	s.flags |= flHello
	return true
}

// appendQUICVersion appends the name of QUIC version v: "1", "2",
// "draft-29", "Q046", or hex.
func appendQUICVersion(dst []byte, v uint32) []byte {
	switch {
	case v == quicV1:
		return append(dst, '1')
	case v == quicV2:
		return append(dst, '2')
	case v>>8 == 0xff0000:
		return strconv.AppendUint(append(dst, "draft-"...), uint64(v&0xff), 10)
	case isGQUICVersion(v):
		return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	dst = append(dst, "0x"...)
	for i := 28; i >= 0; i -= 4 {
		dst = append(dst, hexDigits[v>>uint(i)&0xf])
	}
	return dst
}
