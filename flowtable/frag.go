package flowtable

import (
	"unsafe"

	"github.com/netsentry/netsentry/decode"
)

// Reassembly bounds of one datagram in the fragment table.
const (
	// fragHeadLen is how many bytes of a datagram's payload (from offset 0)
	// a slot keeps: enough for any TCP header with options, or a tunnel
	// header plus the inner IPv4 and TCP headers, so that the flow of a
	// datagram whose first fragment is tiny can be read once they are in.
	fragHeadLen = 64
	// fragMaxRanges bounds the disjoint byte ranges tracked in a slot per
	// datagram (received data, merged). A datagram with more gaps (many
	// small fragments out of order) moves to a coverage bitmap of 8-byte
	// blocks from a pool of fragBitmaps per shard; when the pool is empty
	// the two closest ranges are joined, which may take a datagram for
	// complete early or a fragment in the joined gap for an overlap
	// (counted in Stats.FragRangeOverflow).
	fragMaxRanges = 8
	fragBitmaps   = 64
	fragBlocks    = 65536 / 8 // a datagram's data ends before 64 KiB
	fragWords     = fragBlocks / 64
)

// fragKey names one IP datagram: its addresses, protocol and identification.
type fragKey struct {
	src, dst  decode.Addr
	id        uint32
	proto     uint8
	ipVersion uint8
	vlan      uint16
}

type fragRange struct{ lo, hi uint32 }

// fragSlot remembers where a datagram's fragments are accounted (its flow
// and, for UDP tunnels, the outer flow), or, while that is not known yet, the
// fragments that came before; and its reassembly progress.
type fragSlot struct {
	key      fragKey
	expires  int64
	used     bool
	resolved bool
	hasFlow  bool
	hasOuter bool
	// headTried: the head was decoded once and held no flow.
	headTried bool
	tun       decode.Tunnel
	vlan      uint16
	inner     uint16
	flow      decode.Tuple
	outer     decode.Tuple
	// fragments held while the datagram's flow is not known
	pkts    uint32
	bytes   uint64
	ipBytes uint64
	first   int64
	last    int64
	// Reassembly progress: the byte ranges received, and the datagram's
	// length once its last fragment came. The IP layers inside the datagram
	// (and an IPv6 fragmented layer itself) count for their hosts once, on
	// the frame that completes it, as tshark's endpoint table counts them.
	total   uint32
	done    bool
	nRanges uint8
	ranges  [fragMaxRanges]fragRange
	bitmap  uint16 // 1 + index of the coverage bitmap in use instead of ranges, 0 none
	nLayers uint8
	layers  [decode.MaxIPLayers]decode.IPLayer
	// head holds the datagram's first bytes; own[i] is 1 + offset/8 of the
	// fragment that head[i] came from (0: not received). On overlap the
	// fragment with the lower offset wins, and among equal offsets the one
	// that came first, as Wireshark reassembles.
	head [fragHeadLen]byte
	own  [fragHeadLen]uint8
}

// fragSlotBytes is the size of one fragment-table slot.
const fragSlotBytes = int(unsafe.Sizeof(fragSlot{}))

// fragTable is a direct-mapped, fixed-size table: a datagram whose slot is
// taken by another live datagram replaces it (counted as FragEvicted; its
// held fragments are exported with ports 0, never dropped).
type fragTable struct {
	slots   []fragSlot
	mask    uint32
	timeout int64
	nextGC  int64
	key     fragKey
	live    int           // slots in use; the sweeps skip an empty table
	scratch decode.Packet // decode of a datagram's head
	anom    fragSources
	bitmaps [][fragWords]uint64
	freeBM  []uint16 // indices of free bitmaps
}

func (f *fragTable) init(max int, timeout int64) {
	n := 64
	for n < 2*max {
		n <<= 1
	}
	f.slots = make([]fragSlot, n)
	f.mask = uint32(n - 1)
	f.timeout = timeout
	f.anom.init(fragSourcesSize)
	f.bitmaps = make([][fragWords]uint64, fragBitmaps)
	f.freeBM = make([]uint16, fragBitmaps)
	for i := range f.freeBM {
		f.freeBM[i] = uint16(i)
	}
}

// fragment accounts the IP fragment p for Packet; outerLayer and flowLayer
// are the IP layers Packet leaves to p's outer and own flows to count for
// their hosts (-1: none). It reports whether p is fully accounted; if not,
// Packet counts p in its own flows (a first fragment that names them).
func (s *Shard) fragment(p *decode.Packet, frame []byte, ts int64, outerLayer, flowLayer int) bool {
	s.stats.Fragments++
	if p.NeedPorts {
		// A UDP tunnel outside the fragmented layer is in every
		// fragment's frame: its outer flow counts the frame now.
		if p.HasOuter && p.OuterLayer < p.FragLayer {
			s.update(&p.Outer, p.VLAN, p.InnerVLAN, decode.TunnelNone, 0, 0, p.WireLen, p.IPLen[p.OuterLayer], ts, outerLayer >= 0)
		}
		s.frags.later(p, frame, ts, s)
		return true
	}
	if !s.frags.first(p, frame, ts, s) {
		return false
	}
	// Counted in the flows of the datagram's earlier first fragment. The
	// layers Packet left to p's own flows count for their hosts here; an
	// outer UDP tunnel outside the datagram counts in its outer flow.
	if p.HasOuter && p.OuterLayer < p.FragLayer {
		s.update(&p.Outer, p.VLAN, p.InnerVLAN, decode.TunnelNone, 0, 0, p.WireLen, p.IPLen[p.OuterLayer], ts, outerLayer >= 0)
	} else if outerLayer >= 0 && outerLayer != flowLayer {
		l := &p.IP[outerLayer]
		s.hosts.add(&l.Src, &l.Dst, l.IPVersion, p.WireLen)
	}
	if flowLayer >= 0 {
		l := &p.IP[flowLayer]
		s.hosts.add(&l.Src, &l.Dst, l.IPVersion, p.WireLen)
	}
	return true
}

// slotFor returns the slot of p's datagram, taking it over (and releasing
// the datagram that held it) or starting it as needed; the slot's timeout
// is renewed.
func (f *fragTable) slotFor(p *decode.Packet, ts int64, s *Shard) *fragSlot {
	k := &f.key
	l := &p.IP[p.FragLayer]
	k.src, k.dst, k.id, k.proto, k.ipVersion, k.vlan = l.Src, l.Dst, p.FragID, p.FragProto, l.IPVersion, p.FragVLAN
	w := Key{A: k.src, B: k.dst, PortA: uint16(k.id), PortB: uint16(k.id >> 16), VLAN: k.vlan, Proto: k.proto, IPVersion: k.ipVersion}
	sl := &f.slots[w.hash()&f.mask]
	if sl.used && sl.key != *k {
		f.release(sl, s)
	}
	if !sl.used {
		f.live++
		*sl = fragSlot{key: *k, used: true, first: ts, last: ts, vlan: p.VLAN, inner: p.InnerVLAN}
	}
	sl.expires = ts + f.timeout
	return sl
}

// first accounts a first fragment p whose headers were decoded from the
// frame: it names the datagram's flows, and the fragments held until now
// are added to them. The caller counts p itself in p's flows. A first
// fragment whose frame broke its own headers (no flow) names nothing: the
// datagram's other fragments are held and exported with ports 0.
//
// A first fragment that comes again after the datagram's flows are known
// (a repeat, or an overlap that names other ports) counts in those flows,
// as the copy that came first decides the reassembled datagram; first then
// reports true and the caller does not count p in p's own flows.
func (f *fragTable) first(p *decode.Packet, frame []byte, ts int64, s *Shard) bool {
	sl := f.slotFor(p, ts, s)
	f.progress(sl, p, frame, s)
	if sl.resolved {
		if !p.HasFlow && !p.HasOuter { // a frame that broke its own headers is in no flow
			f.complete(sl, p, s)
			return false
		}
		f.apply(sl, 1, uint64(p.WireLen), uint64(flowIPLen(p)), ts, ts, 0, s)
		f.complete(sl, p, s)
		return true
	}
	if p.HasFlow || p.HasOuter && p.OuterLayer >= p.FragLayer {
		sl.resolved, sl.hasFlow, sl.hasOuter = true, p.HasFlow, p.HasOuter && p.OuterLayer >= p.FragLayer
		sl.tun, sl.vlan, sl.inner, sl.flow, sl.outer = p.Tunnel, p.VLAN, p.InnerVLAN, p.Flow, p.Outer
		sl.nLayers = uint8(copy(sl.layers[:], p.IP[deferredLayers(p):p.NumIP]))
		f.applyHeld(sl, p.TCPFlags, s)
	}
	f.complete(sl, p, s)
	return false
}

// later accounts a fragment p whose flow its own frame does not name (a
// later fragment, or a tiny first one): in its datagram's flows when they
// are known, otherwise it is held (counted) until they are, or the datagram
// times out. The flows become known from a first fragment that holds the
// headers, or from the datagram's head once enough bytes are in.
func (f *fragTable) later(p *decode.Packet, frame []byte, ts int64, s *Shard) {
	sl := f.slotFor(p, ts, s)
	if p.TinyFragment {
		f.anomaly(p, anomTiny, s)
	}
	f.progress(sl, p, frame, s)
	if sl.resolved {
		f.apply(sl, 1, uint64(p.WireLen), uint64(flowIPLen(p)), ts, ts, 0, s)
		f.complete(sl, p, s)
		return
	}
	sl.pkts++
	sl.bytes += uint64(p.WireLen)
	sl.ipBytes += uint64(flowIPLen(p))
	sl.first = min(sl.first, ts)
	sl.last = max(sl.last, ts)
	if !sl.headTried {
		f.resolveHead(sl, p, s)
	}
	f.complete(sl, p, s)
}

// resolveHead reads the datagram's flows from its head once the head holds
// its first fragHeadLen bytes (or the whole datagram, if shorter).
func (f *fragTable) resolveHead(sl *fragSlot, p *decode.Packet, s *Shard) {
	n := uint32(fragHeadLen)
	if sl.total > 0 && sl.total < n {
		n = sl.total
	}
	for i := range n {
		if sl.own[i] == 0 {
			return
		}
	}
	sl.headTried = true
	sc := &f.scratch
	*sc = *p
	decode.ParseFragmentHead(sl.head[:n], sc)
	if !sc.HasFlow && !(sc.HasOuter && sc.OuterLayer >= sc.FragLayer) {
		return // kept unresolved: exported with ports 0 when released
	}
	sl.resolved, sl.hasFlow, sl.hasOuter = true, sc.HasFlow, sc.HasOuter && sc.OuterLayer >= sc.FragLayer
	sl.tun, sl.vlan, sl.inner, sl.flow, sl.outer = sc.Tunnel, sc.VLAN, sc.InnerVLAN, sc.Flow, sc.Outer
	sl.nLayers = uint8(copy(sl.layers[:], sc.IP[deferredLayers(sc):sc.NumIP]))
	f.applyHeld(sl, sc.TCPFlags, s)
}

// applyHeld adds the fragments held so far to the datagram's flows, with
// the datagram's TCP flags.
func (f *fragTable) applyHeld(sl *fragSlot, flags uint8, s *Shard) {
	if sl.pkts > 0 {
		f.apply(sl, sl.pkts, sl.bytes, sl.ipBytes, sl.first, sl.last, flags, s)
	}
	sl.pkts, sl.bytes, sl.ipBytes = 0, 0, 0
}

// deferredLayers returns the index of p's first IP layer whose hosts are
// counted only when the datagram is complete: the layers inside the
// fragmented one, and for IPv6 the fragmented layer itself.
func deferredLayers(p *decode.Packet) int {
	n := int(p.FragLayer) + 1
	if p.IP[p.FragLayer].IPVersion == 6 {
		n--
	}
	return min(n, int(p.NumIP))
}

// progress adds fragment p's byte range to its datagram's reassembly state,
// copies its bytes into the head and counts overlaps with data already
// received (and, within the head, conflicting ones) for p's source.
func (f *fragTable) progress(sl *fragSlot, p *decode.Packet, frame []byte, s *Shard) {
	if sl.done {
		return
	}
	lo := uint32(p.FragOffset)
	hi := lo + uint32(p.FragDataLen)
	if !p.MoreFragments && sl.total == 0 {
		sl.total = hi
	}
	if hi <= lo {
		return
	}
	if f.overlaps(sl, lo, hi) {
		f.anomaly(p, anomOverlap, s)
	}
	f.addRange(sl, lo, hi, s)
	if lo >= fragHeadLen {
		return
	}
	start := int(p.FragDataOff)
	n := min(int(p.FragCapLen), len(frame)-start, fragHeadLen-int(lo))
	if start > len(frame) || n <= 0 {
		return
	}
	data := frame[start : start+n]
	o := uint8(lo/8 + 1)
	conflict := false
	for i, b := range data {
		x := int(lo) + i
		switch own := sl.own[x]; {
		case own == 0:
			sl.head[x], sl.own[x] = b, o
		case own <= o: // the byte held sorts first: it stays
			conflict = conflict || sl.head[x] != b
		default: // p has the lower offset: its byte wins
			conflict = conflict || sl.head[x] != b
			sl.head[x], sl.own[x] = b, o
		}
	}
	if conflict {
		f.anomaly(p, anomConflict, s)
	}
}

// blocks returns the 8-byte blocks [a, b) that [lo, hi) touches, within
// the bitmap.
func blocks(lo, hi uint32) (a, b uint32) {
	return min(lo/8, fragBlocks), min((hi+7)/8, fragBlocks)
}

// overlaps reports whether [lo, hi) shares a byte (with a bitmap: an
// 8-byte block) with the data received.
func (f *fragTable) overlaps(sl *fragSlot, lo, hi uint32) bool {
	if sl.bitmap != 0 {
		bm := &f.bitmaps[sl.bitmap-1]
		a, b := blocks(lo, hi)
		for i := a; i < b; i++ {
			if bm[i/64]&(1<<(i%64)) != 0 {
				return true
			}
		}
		return false
	}
	for _, r := range sl.ranges[:sl.nRanges] {
		if lo < r.hi && r.lo < hi {
			return true
		}
	}
	return false
}

// addRange records [lo, hi) as received: merged into the slot's sorted,
// disjoint ranges, or set in its bitmap.
func (f *fragTable) addRange(sl *fragSlot, lo, hi uint32, s *Shard) {
	if sl.bitmap != 0 {
		bm := &f.bitmaps[sl.bitmap-1]
		a, b := blocks(lo, hi)
		for i := a; i < b; i++ {
			bm[i/64] |= 1 << (i % 64)
		}
		return
	}
	rs := sl.ranges[:sl.nRanges]
	i := 0
	for i < len(rs) && rs[i].hi < lo {
		i++
	}
	j := i
	for j < len(rs) && rs[j].lo <= hi {
		lo, hi = min(lo, rs[j].lo), max(hi, rs[j].hi)
		j++
	}
	if j > i { // [i, j) merge into one
		rs[i] = fragRange{lo, hi}
		n := copy(rs[i+1:], rs[j:])
		sl.nRanges = uint8(i + 1 + n)
		return
	}
	if len(rs) == fragMaxRanges {
		if n := len(f.freeBM); n > 0 { // move to a bitmap
			sl.bitmap = f.freeBM[n-1] + 1
			f.freeBM = f.freeBM[:n-1]
			sl.nRanges = 0
			for _, r := range rs {
				f.addRange(sl, r.lo, r.hi, s)
			}
			f.addRange(sl, lo, hi, s)
			return
		}
		// join the two closest ranges to make room
		s.stats.FragRangeOverflow++
		best := 0
		for k := 1; k+1 < len(rs); k++ {
			if rs[k+1].lo-rs[k].hi < rs[best+1].lo-rs[best].hi {
				best = k
			}
		}
		rs[best].hi = rs[best+1].hi
		copy(rs[best+1:], rs[best+2:])
		sl.nRanges--
		f.addRange(sl, lo, hi, s)
		return
	}
	rs = rs[:len(rs)+1]
	copy(rs[i+1:], rs[i:])
	rs[i] = fragRange{lo, hi}
	sl.nRanges = uint8(len(rs))
}

// covered reports whether every byte of the datagram up to its length
// (given by its last fragment) was received.
func (f *fragTable) covered(sl *fragSlot) bool {
	if sl.total == 0 {
		return false
	}
	if sl.bitmap != 0 {
		bm := &f.bitmaps[sl.bitmap-1]
		_, b := blocks(0, sl.total)
		for i := uint32(0); i < b; i++ {
			if bm[i/64]&(1<<(i%64)) == 0 {
				return false
			}
		}
		return true
	}
	return sl.nRanges > 0 && sl.ranges[0].lo == 0 && sl.ranges[0].hi >= sl.total
}

// complete ends the datagram on the frame p that completes it (every byte up
// to the length its last fragment gave) once its flows are known: it counts
// the deferred IP layers for their hosts with p's length and frees the slot.
func (f *fragTable) complete(sl *fragSlot, p *decode.Packet, s *Shard) {
	if sl.done || !sl.resolved || !f.covered(sl) {
		return
	}
	sl.done = true
	for i := 0; i < int(sl.nLayers); i++ {
		l := &sl.layers[i]
		s.hosts.add(&l.Src, &l.Dst, l.IPVersion, p.WireLen)
	}
	// Like Wireshark, a complete datagram is forgotten: a later fragment
	// with the same key (a repeat, or a new datagram reusing the IP id, as
	// packet generators do) starts a new datagram.
	f.release(sl, s)
}

func (f *fragTable) apply(sl *fragSlot, pkts uint32, bytes, ipBytes uint64, first, last int64, flags uint8, s *Shard) {
	if sl.hasOuter {
		s.updateMany(&sl.outer, sl.vlan, sl.inner, decode.TunnelNone, 0, pkts, bytes, ipBytes, first, last)
	}
	if sl.hasFlow {
		s.updateMany(&sl.flow, sl.vlan, sl.inner, sl.tun, flags, pkts, bytes, ipBytes, first, last)
	}
}

// anomaly counts one fragment anomaly of p's source.
func (f *fragTable) anomaly(p *decode.Packet, kind int, s *Shard) {
	l := &p.IP[p.FragLayer]
	switch kind {
	case anomTiny:
		s.stats.FragTiny++
	case anomOverlap:
		s.stats.FragOverlap++
	case anomConflict:
		s.stats.FragConflict++
	}
	f.anom.add(&l.Src, l.IPVersion, kind, s.now)
}

// release frees sl; fragments still waiting for their datagram's flow are
// exported as a flow with ports 0 so that nothing is lost.
func (f *fragTable) release(sl *fragSlot, s *Shard) {
	if sl.used && !sl.resolved && sl.pkts > 0 {
		s.stats.FragOrphans += uint64(sl.pkts)
		if sl.expires > s.now {
			s.stats.FragEvicted++
		}
		t := decode.Tuple{Src: sl.key.src, Dst: sl.key.dst, Proto: sl.key.proto, IPVersion: sl.key.ipVersion}
		s.updateMany(&t, sl.vlan, sl.inner, decode.TunnelNone, 0, sl.pkts, sl.bytes, sl.ipBytes, sl.first, sl.last)
	}
	if sl.used {
		f.live--
	}
	if sl.bitmap != 0 {
		f.bitmaps[sl.bitmap-1] = [fragWords]uint64{}
		f.freeBM = append(f.freeBM, sl.bitmap-1)
	}
	*sl = fragSlot{}
}

// expire releases the datagrams that timed out; it sweeps the table at most
// once per timeout/4 of packet time.
func (f *fragTable) expire(now int64, s *Shard) {
	if now < f.nextGC || f.live == 0 {
		return
	}
	f.nextGC = now + max(f.timeout/4, 1)
	for i := range f.slots {
		if sl := &f.slots[i]; sl.used && sl.expires <= now {
			f.release(sl, s)
		}
	}
}

// flush releases every datagram (end of capture).
func (f *fragTable) flush(s *Shard) {
	if f.live == 0 {
		return
	}
	for i := range f.slots {
		if f.slots[i].used {
			f.release(&f.slots[i], s)
		}
	}
}
