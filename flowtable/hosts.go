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

type hostSlot struct {
	HostCounters
}

// hostIndexSize is the size of the host index for max hosts: a power of
// two, at least twice max and 1024, allocated once (no doubling).
func hostIndexSize(max int) int {
	n := 1024
	for n < 2*max {
		n <<= 1
	}
	return n
}

// Hosts is a shard's host table. Host entries live in a chunked slab and
// never move, so a flow keeps the slab index of its two hosts; an
// open-addressing index of slab numbers finds a host by address. A packet
// costs the host table nothing when its flow carries its IP layer: the
// flow's counters are folded into its hosts when the flow's record is
// written, and a snapshot adds the open flows. Only IP layers no flow
// carries (a GRE packet's outer header, a frame without transport header)
// are counted per packet. At MaxHosts new hosts are not added; their
// updates are counted as overflow.
type Hosts struct {
	chunks   [][]hostSlot
	used     uint32 // slab slots handed out (slot 0 is never used)
	index    []uint32
	mask     uint32
	max      int
	overflow uint64
}

func (h *Hosts) init(max int) {
	h.max = max
	h.used = 1
	n := hostIndexSize(max)
	h.index = make([]uint32, n)
	adviseHuge(unsafe.Pointer(&h.index[0]), uintptr(n)*4)
	h.mask = uint32(n - 1)
}

func (h *Hosts) at(i uint32) *hostSlot { return &h.chunks[i>>chunkBits][i&chunkMask] }

func hostHash(a *decode.Addr, v uint8) uint32 {
	w0 := binary.LittleEndian.Uint64(a[0:8])
	w1 := binary.LittleEndian.Uint64(a[8:16])
	x := mix(w0^hashM1, w1^hashSeed^uint64(v))
	return uint32(x ^ x>>32)
}

// lookup returns the slab index of a's entry, creating it; 0 when the
// table is full.
func (h *Hosts) lookup(a *decode.Addr, v uint8) uint32 {
	i := hostHash(a, v) & h.mask
	for {
		j := h.index[i]
		if j == 0 {
			break
		}
		if sl := h.at(j); sl.Addr == *a && sl.IPVersion == v {
			return j
		}
		i = (i + 1) & h.mask
	}
	n := int(h.used) - 1
	if n >= h.max {
		return 0
	}
	j := h.used
	if int(j>>chunkBits) >= len(h.chunks) {
		// The last chunk holds only what max leaves (slot 0 unused).
		h.chunks = append(h.chunks, make([]hostSlot, min(chunkSize, h.max+1-len(h.chunks)*chunkSize)))
	}
	h.used++
	sl := h.at(j)
	sl.Addr, sl.IPVersion = *a, v
	h.index[i] = j
	return j
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
