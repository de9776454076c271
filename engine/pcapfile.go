package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Classic pcap file reader. It reads every variant that tshark (Wireshark
// 4.0's wiretap) reads from a file, which is a superset of what libpcap's
// sf-pcap.c reads:
//
//   - magic 0xa1b2c3d4 (µs), 0xa1b23c4d (ns), 0xa1b2cd34 (the "modified" /
//     Kuznetzov patches), 0x1c0001ac and 0x1c0001ab (Ixia lcap: 4 more header
//     bytes, µs), each in either byte order;
//   - major version 2 with any minor version, DG/UX's 543.0, and (as wiretap,
//     unlike libpcap) any other major version from 2 up; before 2.3 the record
//     header holds the original length before the captured length, at 2.3 the
//     two are swapped when captured > original (libpcap's and wiretap's rule);
//   - version 2.2 with link type 6, 9, 15 or 24 is AIX's tcpdump: RFC 1573
//     ifType link values and nanosecond time stamps;
//   - the record header variant is guessed from the first three records as
//     wiretap does: for the standard magic, plain (16 bytes), Red Hat 6.1's
//     ss990417 (24) or Nokia's (24); for the modified magic, ss991029 (24) or
//     SuSE 6.3's ss990915 (28);
//   - the link-type field's upper bits: a non-zero reserved field (0x03ff0000)
//     is refused; "FCS length present" (0x04000000) with an FCS length in
//     16-bit words (0xf0000000) marks frames that end in an FCS, which is
//     cut from an Ethernet frame before decoding (it still counts in the
//     frame's wire length, as in tshark's frame.len).
//
// A record longer than maxRecord is refused as damage (wiretap's limit for
// the link types we decode); the header's snap length is not a limit.

// maxRecord is the largest captured length accepted: wiretap's
// WTAP_MAX_PACKET_SIZE_STANDARD, libpcap's MAXIMUM_SNAPLEN.
const maxRecord = 262144

// pcap file-header magic numbers, as read little-endian from the first 4 bytes.
const (
	magicMicro    = 0xa1b2c3d4
	magicNano     = 0xa1b23c4d
	magicModified = 0xa1b2cd34
	magicIxiaHW   = 0x1c0001ac
	magicIxiaSW   = 0x1c0001ab
)

// isPcapMagic reports whether m (the first 4 bytes read little-endian) is a
// classic pcap magic number in either byte order.
func isPcapMagic(m uint32) bool { return knownMagic(m) || knownMagic(bswap32(m)) }

func knownMagic(m uint32) bool {
	switch m {
	case magicMicro, magicNano, magicModified, magicIxiaHW, magicIxiaSW:
		return true
	}
	return false
}

func bswap32(v uint32) uint32 {
	return v>>24 | (v>>8)&0xff00 | (v<<8)&0xff0000 | v<<24
}

// pcapVariant is the record-header layout of a file.
type pcapVariant uint8

const (
	variantPlain    pcapVariant = iota // 16-byte record header, µs
	variantNano                        // 16-byte record header, ns
	variantAIX                         // 16-byte record header, ns
	variantSS990417                    // 24: + ifindex, protocol, pkt_type, pad
	variantSS990915                    // 28: + ifindex, protocol, pkt_type, cpu1, cpu2, 3 pad
	variantSS991029                    // 24: as ss990417, modified magic
	variantNokia                       // 24: + 4 unknown bytes
)

// variantNames are wiretap's names for the variants (capinfos -t).
var variantNames = [...]string{"pcap", "nsecpcap", "aixpcap", "rh6_1pcap", "suse6_3pcap", "modpcap", "nokiapcap"}

func (v pcapVariant) String() string { return variantNames[v] }

func (v pcapVariant) recordHeaderLen() int {
	switch v {
	case variantSS990417, variantSS991029, variantNokia:
		return 24
	case variantSS990915:
		return 28
	}
	return 16
}

// How the captured and original lengths sit in a record header.
const (
	lengthsInOrder = iota // captured, then original (2.4 and later)
	lengthsSwapped        // original, then captured (before 2.3, DG/UX 543.0)
	lengthsMaybe          // 2.3: swapped when captured > original
)

// errCorrupt marks a record whose header cannot be true.
var errCorrupt = errors.New("corrupt packet record")

// pcapReader walks the records of a classic pcap file in place in its
// window (the mapped file, or one reused buffer of large reads): no copy and
// no allocation per record.
type pcapReader struct {
	win       *window
	big       bool // file written big-endian
	lengths   uint8
	variant   pcapVariant
	hdrLen    int
	snaplen   uint32
	link      uint16 // LINKTYPE_ value (upper 16 bits removed)
	fcsLen    int    // bytes of FCS at the end of each frame, from the header's FCS bits; 0 if none said
	major     uint16
	minor     uint16
	swapNFLOG bool   // NFLOG TLV lengths are in the writer's order; turn them into little-endian
	rec       []byte // the last record's captured bytes, FCS included (tests)
	touch     byte   // the last byte of each record, read before it is handed out
}

func (r *pcapReader) u32(b []byte) uint32 {
	if r.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *pcapReader) u16(b []byte) uint16 {
	if r.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

// newPcapReader reads the file header from w, which starts at the magic
// number, and guesses the record-header variant by peeking at the first
// records (up to the window's size, at least 1 MiB).
func newPcapReader(w *window) (*pcapReader, error) {
	r := &pcapReader{win: w}
	var fh [28]byte
	if !w.fill(24) {
		return nil, fmt.Errorf("read pcap header: %w", w.short())
	}
	copy(fh[:24], w.take(24))
	m := binary.LittleEndian.Uint32(fh[:4])
	if !knownMagic(m) {
		r.big, m = true, bswap32(m)
		if !knownMagic(m) {
			return nil, fmt.Errorf("read pcap header: unknown magic %x", fh[:4])
		}
	}
	switch m {
	case magicIxiaHW, magicIxiaSW:
		if !w.fill(4) {
			return nil, fmt.Errorf("read pcap header: %w", w.short())
		}
		copy(fh[24:28], w.take(4))
	}
	r.major, r.minor = r.u16(fh[4:]), r.u16(fh[6:])
	r.snaplen = r.u32(fh[16:])
	network := r.u32(fh[20:])
	if r.major < 2 {
		return nil, fmt.Errorf("read pcap header: major version %d unsupported (pcap files are version 2.x)", r.major)
	}
	switch {
	case r.major == 2 && r.minor < 3, r.major == 543:
		r.lengths = lengthsSwapped
	case r.major == 2 && r.minor == 3:
		r.lengths = lengthsMaybe
	}
	guess := true
	switch m {
	case magicNano:
		r.variant, guess = variantNano, false
	case magicIxiaHW, magicIxiaSW:
		r.variant, guess = variantPlain, false
	case magicMicro:
		if r.major == 2 && r.minor == 2 {
			// AIX's tcpdump writes RFC 1573 ifType values and nanoseconds.
			aix := true
			switch network {
			case 6:
				network = 1 // Ethernet
			case 9:
				network = 6 // Token Ring
			case 15:
				network = 10 // FDDI
			case 24:
				network = 0 // loopback
			default:
				aix = false
			}
			if aix {
				r.variant, guess = variantAIX, false
			}
		}
	}
	if network&0x03ff0000 != 0 {
		return nil, fmt.Errorf("read pcap header: link type %#08x has its reserved bits set", network)
	}
	r.link = uint16(network)
	if network&0x04000000 != 0 {
		r.fcsLen = int(network>>28) * 2
	}
	r.swapNFLOG = r.big && r.link == 239
	if guess {
		cands := []pcapVariant{variantPlain, variantSS990417, variantNokia}
		if m == magicModified {
			cands = []pcapVariant{variantSS991029, variantSS990915}
		}
		r.variant = r.guessVariant(cands)
	}
	r.hdrLen = r.variant.recordHeaderLen()
	return r, nil
}

// guessVariant picks the record-header layout whose first three records look
// sanest, as wiretap's libpcap_try_variants does: the first candidate with no
// fault, else the one with the fewest faults (earlier wins a tie). It only
// peeks; nothing is consumed.
func (r *pcapReader) guessVariant(cands []pcapVariant) pcapVariant {
	r.win.fill(len(r.win.buf)) // as much as the window holds
	win := r.win.peek()
	best, bestScore := cands[0], int(^uint(0)>>1)
	for _, v := range cands {
		s := r.tryVariant(win, v)
		if s == 0 {
			return v
		}
		if s < bestScore {
			best, bestScore = v, s
		}
	}
	return best
}

// tryVariant scores the first three records of win read as variant v: 0 if
// they look right (or the file ends cleanly), else the faults of the first
// record that does not.
func (r *pcapReader) tryVariant(win []byte, v pcapVariant) int {
	hl := v.recordHeaderLen()
	off := 0
	for i := 0; i < 3; i++ {
		if off == len(win) {
			return 0
		}
		if len(win)-off < hl {
			return 1
		}
		_, frac, caplen, wirelen := r.recordHeader(win[off:])
		score := 0
		if frac >= 1000000 {
			score++
		}
		if caplen > maxRecord {
			score++
		}
		if wirelen > 128<<20 {
			score++
		}
		if caplen > r.snaplen {
			score++
		}
		if caplen > wirelen {
			score++
		}
		if score != 0 {
			return score
		}
		off += hl
		if uint64(len(win)-off) < uint64(caplen) {
			return 1
		}
		off += int(caplen)
	}
	return 0
}

// recordHeader decodes the common first 16 bytes of a record header.
func (r *pcapReader) recordHeader(h []byte) (sec, frac, caplen, wirelen uint32) {
	sec, frac = r.u32(h[0:]), r.u32(h[4:])
	caplen, wirelen = r.u32(h[8:]), r.u32(h[12:])
	switch r.lengths {
	case lengthsSwapped:
		caplen, wirelen = wirelen, caplen
	case lengthsMaybe:
		if caplen > wirelen {
			caplen, wirelen = wirelen, caplen
		}
	}
	return
}

// errWindow: the next record is not wholly in the window, and next was
// told not to move the window (the frames handed out so far must stay
// valid). Never returned for a mapped file.
var errWindow = errors.New("record past the window")

// next returns one record, read in place. data is the captured frame
// without any FCS the file header announces, valid until the window moves:
// for a mapped file until the file is closed, else until a call with move
// set (which may refill the window; without move, a record that is not
// wholly in the window gives errWindow and is not consumed). wirelen is
// the record's original length (FCS included, as tshark's frame.len); ts is
// in Unix nanoseconds. At a clean end of file err is io.EOF; a record cut
// short gives io.ErrUnexpectedEOF, an impossible one errCorrupt.
func (r *pcapReader) next(move bool) (data []byte, wirelen uint32, ts int64, err error) {
	w := r.win
	hl := r.hdrLen
	if move {
		w.dropBehind()
	}
	if w.end-w.off < hl {
		if !w.done && !move {
			return nil, 0, 0, errWindow
		}
		if !w.fill(hl) {
			if w.end == w.off && w.err == io.EOF {
				return nil, 0, 0, io.EOF
			}
			return nil, 0, 0, io.ErrUnexpectedEOF
		}
	}
	sec, frac, caplen, wirelen := r.recordHeader(w.buf[w.off : w.off+hl])
	if caplen > maxRecord {
		return nil, 0, 0, fmt.Errorf("%w: captured length %d is over the maximum of %d", errCorrupt, caplen, maxRecord)
	}
	n := hl + int(caplen)
	if w.end-w.off < n {
		if !w.done && !move {
			return nil, 0, 0, errWindow
		}
		if !w.fill(n) {
			return nil, 0, 0, io.ErrUnexpectedEOF
		}
	}
	r.touch ^= w.buf[w.off+n-1] // a fault of a shrunk mapping comes here (see Replay)
	data = w.take(n)[hl:n:n]
	r.rec = data
	switch r.variant {
	case variantNano, variantAIX:
		ts = int64(sec)*1e9 + int64(frac)
	default:
		ts = int64(sec)*1e9 + int64(frac)*1000
	}
	if r.fcsLen > 0 && r.link == 1 {
		// The FCS is the last fcsLen bytes of the wire frame; cut the
		// part of it that was captured. Only on Ethernet, as wiretap:
		// on the other links we decode, the IP length ends the packet
		// before any trailer anyway.
		if in := int64(caplen) - (int64(wirelen) - int64(r.fcsLen)); in > 0 {
			data = data[:int64(caplen)-min(in, int64(r.fcsLen))]
		}
	}
	if r.swapNFLOG {
		swapNFLOGTLVs(data, wirelen)
	}
	return data, wirelen, ts, nil
}

// swapNFLOGTLVs turns the type and length of each NFLOG TLV of a frame
// written on a big-endian host into little-endian, which is what the decoder
// reads, as libpcap and wiretap do for a file from a host of the other byte
// order. It stops at the first TLV that does not fit.
func swapNFLOGTLVs(b []byte, wirelen uint32) {
	if len(b) < 4 || wirelen < 4 || b[1] != 0 { // b[1]: NFLOG version, only 0 is known
		return
	}
	caplen, length := len(b)-4, int64(wirelen)-4
	p := 4
	for caplen >= 4 {
		b[p], b[p+1] = b[p+1], b[p]
		b[p+2], b[p+3] = b[p+3], b[p+2]
		size := int(binary.LittleEndian.Uint16(b[p:]))
		if size%4 != 0 {
			size += 4 - size%4
		}
		if size < 4 || caplen < size || length < int64(size) {
			return
		}
		caplen -= size
		length -= int64(size)
		p += size
	}
}
