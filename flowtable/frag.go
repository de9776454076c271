package flowtable

import (
	"github.com/netsentry/netsentry/decode"
)

// fragKey names one IP datagram: its addresses, protocol and identification.
type fragKey struct {
	src, dst  decode.Addr
	id        uint32
	proto     uint8
	ipVersion uint8
	vlan      uint16
}

// fragSlot remembers where a datagram's first fragment was accounted (its
// flow and, for UDP tunnels, the outer flow), or, while the first fragment
// has not arrived, the fragments that came before it.
type fragSlot struct {
	key      fragKey
	expires  int64
	used     bool
	resolved bool
	hasFlow  bool
	hasOuter bool
	tun      decode.Tunnel
	vlan     uint16
	inner    uint16
	flow     decode.Tuple
	outer    decode.Tuple
	// fragments held while the first fragment is missing
	pkts  uint32
	bytes uint64
	first int64
	last  int64
	// Reassembly progress: data bytes seen, and the datagram's length once
	// its last fragment came. The IP layers inside the datagram (and an IPv6
	// fragmented layer itself) count for their hosts once, on the frame that
	// completes it, as tshark's endpoint table counts them.
	got, total uint32
	done       bool
	nLayers    uint8
	layers     [decode.MaxIPLayers]decode.IPLayer
}

// fragTable is a direct-mapped, fixed-size table: a datagram whose slot is
// taken by another live datagram replaces it (counted as FragEvicted; its
// held fragments are exported with ports 0, never dropped).
type fragTable struct {
	slots   []fragSlot
	mask    uint32
	timeout int64
	nextGC  int64
	key     fragKey
	live    int // slots in use; the sweeps skip an empty table
}

func (f *fragTable) init(max int, timeout int64) {
	n := 64
	for n < 2*max {
		n <<= 1
	}
	f.slots = make([]fragSlot, n)
	f.mask = uint32(n - 1)
	f.timeout = timeout
}

// lookup returns the slot of p's datagram (maybe holding another datagram);
// the datagram's key is left in f.key.
func (f *fragTable) lookup(p *decode.Packet) *fragSlot {
	k := &f.key
	l := &p.IP[p.FragLayer]
	k.src, k.dst, k.id, k.proto, k.ipVersion, k.vlan = l.Src, l.Dst, p.FragID, p.FragProto, l.IPVersion, p.VLAN
	w := Key{A: k.src, B: k.dst, PortA: uint16(k.id), PortB: uint16(k.id >> 16), VLAN: k.vlan, Proto: k.proto, IPVersion: k.ipVersion}
	return &f.slots[w.hash()&f.mask]
}

// first records where the first fragment p of a datagram is accounted and
// adds the fragments that overtook it to the same flows.
func (f *fragTable) first(p *decode.Packet, ts int64, s *Shard) {
	sl := f.lookup(p)
	if sl.used && sl.key != f.key {
		f.release(sl, s)
	}
	held := *sl
	if !held.used {
		f.live++
	}
	*sl = fragSlot{key: f.key, used: true, resolved: true, expires: ts + f.timeout,
		hasFlow: p.HasFlow, hasOuter: p.HasOuter, tun: p.Tunnel, vlan: p.VLAN, inner: p.InnerVLAN,
		flow: p.Flow, outer: p.Outer}
	if held.used {
		sl.got, sl.total = held.got, held.total
	}
	from := deferredLayers(p)
	sl.nLayers = uint8(copy(sl.layers[:], p.IP[from:p.NumIP]))
	if held.used && !held.resolved && held.pkts > 0 {
		f.apply(sl, held.pkts, held.bytes, held.first, held.last, s)
	}
	f.progress(sl, p, s)
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

// progress adds fragment p to its datagram's reassembly state and, on the
// frame that completes the datagram, counts the deferred layers' hosts.
func (f *fragTable) progress(sl *fragSlot, p *decode.Packet, s *Shard) {
	if sl.done {
		return
	}
	sl.got += uint32(p.FragDataLen)
	if !p.MoreFragments {
		sl.total = uint32(p.FragOffset) + uint32(p.FragDataLen)
	}
	if !sl.resolved || sl.total == 0 || sl.got < sl.total {
		return
	}
	sl.done = true
	for i := 0; i < int(sl.nLayers); i++ {
		l := &sl.layers[i]
		s.hosts.add(&l.Src, &l.Dst, l.IPVersion, p.WireLen)
	}
}

func (f *fragTable) apply(sl *fragSlot, pkts uint32, bytes uint64, first, last int64, s *Shard) {
	if sl.hasOuter {
		s.updateMany(&sl.outer, sl.vlan, sl.inner, decode.TunnelNone, pkts, bytes, first, last)
	}
	if sl.hasFlow {
		s.updateMany(&sl.flow, sl.vlan, sl.inner, sl.tun, pkts, bytes, first, last)
	}
}

// later accounts a non-first fragment p: in the flows of its datagram's first
// fragment when that was seen, otherwise it is held (counted) until the
// first fragment arrives or the datagram times out.
func (f *fragTable) later(p *decode.Packet, ts int64, s *Shard) {
	sl := f.lookup(p)
	if sl.used && sl.key != f.key {
		f.release(sl, s)
	}
	if sl.used && sl.resolved {
		sl.expires = ts + f.timeout
		f.apply(sl, 1, uint64(p.WireLen), ts, ts, s)
		f.progress(sl, p, s)
		return
	}
	if !sl.used {
		f.live++
		*sl = fragSlot{key: f.key, used: true, first: ts, last: ts, vlan: p.VLAN, inner: p.InnerVLAN}
	}
	f.progress(sl, p, s)
	sl.pkts++
	sl.bytes += uint64(p.WireLen)
	sl.first = min(sl.first, ts)
	sl.last = max(sl.last, ts)
	sl.expires = ts + f.timeout
}

// release frees sl; fragments still waiting for their first fragment are
// exported as a flow with ports 0 so that nothing is lost.
func (f *fragTable) release(sl *fragSlot, s *Shard) {
	if sl.used && !sl.resolved && sl.pkts > 0 {
		s.stats.FragOrphans += uint64(sl.pkts)
		if sl.expires > s.now {
			s.stats.FragEvicted++
		}
		t := decode.Tuple{Src: sl.key.src, Dst: sl.key.dst, Proto: sl.key.proto, IPVersion: sl.key.ipVersion}
		s.updateMany(&t, sl.vlan, sl.inner, decode.TunnelNone, sl.pkts, sl.bytes, sl.first, sl.last)
	}
	if sl.used {
		f.live--
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
