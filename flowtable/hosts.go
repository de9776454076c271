package flowtable

import (
	"encoding/binary"
	"sort"
	"unsafe"

	"github.com/netsentry/netsentry/decode"
)

// HostCounters are one IP address's totals: every frame in which the address
// appears in an IP header (of any layer) counts once per appearance, as
// tshark's endpoint table counts.
type HostCounters struct {
	Addr      decode.Addr
	IPVersion uint8
	PacketsTx uint64
	BytesTx   uint64
	PacketsRx uint64
	BytesRx   uint64
	// FlowsInitiated and FlowsAnswered count the connections the host
	// started and the ones it was the responder of.
	FlowsInitiated uint64
	FlowsAnswered  uint64
}

// Bytes is the host's total of bytes sent and received.
func (h *HostCounters) Bytes() uint64 { return h.BytesTx + h.BytesRx }

// hostSlot is one host's slab entry: one cache line (64 bytes; the slab
// is page-aligned), counters first, so that counting a frame or a new
// connection touches that line alone. HostCounters is 72 bytes: as a slab
// entry it straddled two lines, and a new flow's FlowsInitiated missed in
// a line its prefetch (slotAddr) had not asked for. The IP version, read
// only to tell hashed addresses apart and by snapshots, lives in a byte
// slab of its own (Hosts.vers).
type hostSlot struct {
	PacketsTx      uint64
	BytesTx        uint64
	PacketsRx      uint64
	BytesRx        uint64
	FlowsInitiated uint64
	FlowsAnswered  uint64
	Addr           decode.Addr
}

// A hostSlot is one cache line (a compile-time check).
var _ [64 - unsafe.Sizeof(hostSlot{})]struct{}
var _ [unsafe.Sizeof(hostSlot{}) - 64]struct{}

// counters returns the slot's counters as HostCounters of version v.
func (sl *hostSlot) counters(v uint8) HostCounters {
	return HostCounters{Addr: sl.Addr, IPVersion: v, PacketsTx: sl.PacketsTx, BytesTx: sl.BytesTx,
		PacketsRx: sl.PacketsRx, BytesRx: sl.BytesRx, FlowsInitiated: sl.FlowsInitiated, FlowsAnswered: sl.FlowsAnswered}
}

// The host index: open addressing over buckets of one cache line, as the
// flow index (index.go). A way holds an IPv4 address itself (the rest of a
// decode.Addr of version 4 is zero), so an IPv4 lookup reads one line and
// never the slab; any other address is held as its hash, with hostHashed
// in the slot, and a match is checked against the slab entry. Hosts are
// never removed, so a lookup stops at the first bucket with a free way and
// needs no overflow counts.

const hostWays = 7

// hostHashed marks a way whose key is a hash (not an IPv4 address).
const hostHashed = 1 << 31

// hostBucket is one cache line of the host index.
type hostBucket struct {
	keys  [hostWays]uint32 // IPv4 address (little-endian), or the hash
	slots [hostWays]uint32 // slab index | hostHashed; 0: a free way
	_     [2]uint32
}

// hostBuckets is the number of host index buckets for max hosts: a power
// of two, at least max/4 (the index at most 4/7 full) and 256, allocated
// once (no doubling).
func hostBuckets(max int) int {
	n := 256
	for n*4 < max {
		n <<= 1
	}
	return n
}

// Hosts is a shard's host table. Host entries live in a chunked slab and
// never move, so a flow keeps the slab index of its two hosts; the host
// index (above) finds a host by address. A packet whose flow carries its
// IP layer counts for the flow's two hosts through the slab indices the
// flow keeps (no lookup; a new flow's host lines were prefetched with its
// batch), so the table is always current and a snapshot is one copy of
// it, whatever the number of open flows. IP layers no flow carries (a GRE
// packet's outer header, a frame without transport header) are looked up.
// At MaxHosts new hosts are not added; their updates are counted as
// overflow.
type Hosts struct {
	chunks   [][]hostSlot
	used     uint32 // slab slots handed out (slot 0 is never used)
	index    []hostBucket
	slotMem  []hostSlot // the slab's memory (chunks are cut from it), allocated at once for huge pages
	vers     []uint8    // IP version per slab slot
	mask     uint32
	max      int
	overflow uint64
}

func (h *Hosts) init(max int) {
	h.max = max
	h.used = 1
	n := hostBuckets(max)
	h.index = make([]hostBucket, n)
	hugeSlice(h.index)
	h.slotMem = make([]hostSlot, max+1)
	hugeSlice(h.slotMem)
	h.vers = make([]uint8, max+1)
	h.mask = uint32(n - 1)
}

func (h *Hosts) at(i uint32) *hostSlot { return &h.chunks[i>>chunkBits][i&chunkMask] }

func hostHash(a *decode.Addr, v uint8) uint32 {
	w0 := binary.LittleEndian.Uint64(a[0:8])
	w1 := binary.LittleEndian.Uint64(a[8:16])
	x := mix(w0^hashM1, w1^hashSeed^uint64(v))
	return uint32(x ^ x>>32)
}

// hostKey returns a's key in the index, the flag its ways carry
// (hostHashed or 0) and its home bucket.
func (h *Hosts) hostKey(a *decode.Addr, v uint8) (key, flag, b uint32) {
	w0 := binary.LittleEndian.Uint64(a[0:8])
	w1 := binary.LittleEndian.Uint64(a[8:16])
	if v == 4 && w0>>32 == 0 && w1 == 0 {
		key = uint32(w0)
		x := mix(w0^hashM1, hashSeed^4)
		return key, 0, uint32(x^x>>32) & h.mask
	}
	key = hostHash(a, v)
	return key, hostHashed, key & h.mask
}

// lookup returns the slab index of a's entry, creating it; 0 when the
// table is full.
func (h *Hosts) lookup(a *decode.Addr, v uint8) uint32 {
	key, flag, b := h.hostKey(a, v)
	for range len(h.index) {
		bk := &h.index[b]
		for w := range hostWays {
			j := bk.slots[w]
			if j == 0 {
				return h.create(bk, w, a, v, key, flag)
			}
			if bk.keys[w] == key && j&hostHashed == flag {
				j &^= hostHashed
				if flag == 0 {
					return j
				}
				if sl := h.at(j); sl.Addr == *a && h.vers[j] == v {
					return j
				}
			}
		}
		b = (b + 1) & h.mask
	}
	h.overflow++ // not reached: the index holds 4 × max ways
	return 0
}

// create enters a in free way w of bk; 0 when the table is full.
func (h *Hosts) create(bk *hostBucket, w int, a *decode.Addr, v uint8, key, flag uint32) uint32 {
	if int(h.used)-1 >= h.max {
		return 0
	}
	j := h.used
	if int(j>>chunkBits) >= len(h.chunks) {
		// The last chunk holds only what max leaves (slot 0 unused).
		lo := len(h.chunks) * chunkSize
		hi := lo + min(chunkSize, h.max+1-lo)
		h.chunks = append(h.chunks, h.slotMem[lo:hi:hi])
	}
	h.used++
	sl := h.at(j)
	sl.Addr, h.vers[j] = *a, v
	bk.keys[w], bk.slots[w] = key, j|flag
	return j
}

// bucketAddr is the address of a's home bucket (batch pass 1 prefetches it).
func (h *Hosts) bucketAddr(a *decode.Addr, v uint8) uintptr {
	_, _, b := h.hostKey(a, v)
	return uintptr(unsafe.Pointer(&h.index[b]))
}

// slotAddr is the address of a's slab entry when its home bucket (cached
// by pass 1) names it, else that of the bucket (batch pass 2 prefetches
// it: a line already there).
func (h *Hosts) slotAddr(a *decode.Addr, v uint8) uintptr {
	key, flag, b := h.hostKey(a, v)
	bk := &h.index[b]
	for w := range hostWays {
		if j := bk.slots[w]; bk.keys[w] == key && j != 0 && j&hostHashed == flag {
			return uintptr(unsafe.Pointer(h.at(j &^ hostHashed)))
		}
	}
	return uintptr(unsafe.Pointer(bk))
}

// count adds pkts frames of n bytes sent by host src to host dst (slab
// indices; 0 means the host did not fit and the update is counted as
// overflow). Negative adjustments are made by passing the two's complement:
// the counters are modular, and every total they reach is non-negative.
func (h *Hosts) count(src, dst uint32, pkts, n uint64) {
	if src != 0 {
		sl := h.at(src)
		sl.PacketsTx += pkts
		sl.BytesTx += n
	} else {
		h.overflow++
	}
	if dst != 0 {
		sl := h.at(dst)
		sl.PacketsRx += pkts
		sl.BytesRx += n
	} else {
		h.overflow++
	}
}

// credit adds pkts frames of n bytes sent by host src to host dst (slab
// indices; 0, a host that did not fit, is skipped: the flow's end counts
// it as overflow, as count would have).
func (h *Hosts) credit(src, dst uint32, pkts, n uint64) {
	if src != 0 {
		sl := h.at(src)
		sl.PacketsTx += pkts
		sl.BytesTx += n
	}
	if dst != 0 {
		sl := h.at(dst)
		sl.PacketsRx += pkts
		sl.BytesRx += n
	}
}

// add counts one frame of n bytes from src to dst, looking both up.
func (h *Hosts) add(src, dst *decode.Addr, v uint8, n uint32) {
	h.count(h.lookup(src, v), h.lookup(dst, v), 1, uint64(n))
}

// Len returns the number of hosts in the table.
func (h *Hosts) Len() int { return int(h.used) - 1 }

// MergeHosts sums host counters of several shards by address.
func MergeHosts(parts ...[]HostCounters) []HostCounters {
	if len(parts) == 1 {
		return parts[0]
	}
	type k struct {
		a decode.Addr
		v uint8
	}
	// Sized once: no growth, no garbage (the summary at exit merges every
	// host of every shard).
	n, most := 0, 0
	for _, p := range parts {
		n += len(p)
		most = max(most, len(p))
	}
	idx := make(map[k]int, n)
	out := make([]HostCounters, 0, most)
	for _, p := range parts {
		for _, c := range p {
			if i, ok := idx[k{c.Addr, c.IPVersion}]; ok {
				o := &out[i]
				o.PacketsTx += c.PacketsTx
				o.BytesTx += c.BytesTx
				o.PacketsRx += c.PacketsRx
				o.BytesRx += c.BytesRx
				o.FlowsInitiated += c.FlowsInitiated
				o.FlowsAnswered += c.FlowsAnswered
				continue
			}
			idx[k{c.Addr, c.IPVersion}] = len(out)
			out = append(out, c)
		}
	}
	return out
}

// SortHosts orders hosts by total bytes, largest first (ties by address).
func SortHosts(hs []HostCounters) {
	sort.Slice(hs, func(i, j int) bool {
		bi, bj := hs[i].Bytes(), hs[j].Bytes()
		if bi != bj {
			return bi > bj
		}
		return endpointLess(&hs[i].Addr, 0, &hs[j].Addr, 0)
	})
}
