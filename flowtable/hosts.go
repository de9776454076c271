package flowtable

import (
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
}

// Bytes is the host's total of bytes sent and received.
func (h *HostCounters) Bytes() uint64 { return h.BytesTx + h.BytesRx }

type hostSlot struct {
	HostCounters
	used bool
}

const hostEntryBytes = int(unsafe.Sizeof(hostSlot{})) * 2

// Hosts is a shard's host table: open addressing with linear probing, bounded
// by MaxHosts; updates for new hosts beyond the bound are counted as overflow.
type Hosts struct {
	slots    []hostSlot
	mask     uint32
	n        int
	max      int
	overflow uint64
}

func (h *Hosts) init(max int) {
	h.max = max
	h.slots = make([]hostSlot, 1024)
	h.mask = 1023
}

func (h *Hosts) find(a *decode.Addr, v uint8) *hostSlot {
	k := Key{A: *a, IPVersion: v}
	i := k.hash() & h.mask
	for {
		sl := &h.slots[i]
		if !sl.used {
			if h.n >= h.max {
				h.overflow++
				return nil
			}
			if 2*(h.n+1) > len(h.slots) {
				h.grow()
				return h.find(a, v)
			}
			sl.used, sl.Addr, sl.IPVersion = true, *a, v
			h.n++
			return sl
		}
		if sl.Addr == *a && sl.IPVersion == v {
			return sl
		}
		i = (i + 1) & h.mask
	}
}

func (h *Hosts) grow() {
	old := h.slots
	h.slots = make([]hostSlot, 2*len(old))
	h.mask = uint32(len(h.slots) - 1)
	for i := range old {
		if !old[i].used {
			continue
		}
		k := Key{A: old[i].Addr, IPVersion: old[i].IPVersion}
		j := k.hash() & h.mask
		for h.slots[j].used {
			j = (j + 1) & h.mask
		}
		h.slots[j] = old[i]
	}
}

func (h *Hosts) add(src, dst *decode.Addr, v uint8, n uint32) {
	if s := h.find(src, v); s != nil {
		s.PacketsTx++
		s.BytesTx += uint64(n)
	}
	if d := h.find(dst, v); d != nil {
		d.PacketsRx++
		d.BytesRx += uint64(n)
	}
}

// Len returns the number of hosts in the table.
func (h *Hosts) Len() int { return h.n }

// Snapshot appends a copy of every host's counters to dst.
func (h *Hosts) Snapshot(dst []HostCounters) []HostCounters {
	for i := range h.slots {
		if h.slots[i].used {
			dst = append(dst, h.slots[i].HostCounters)
		}
	}
	return dst
}

// MergeHosts sums host counters of several shards by address.
func MergeHosts(parts ...[]HostCounters) []HostCounters {
	if len(parts) == 1 {
		return parts[0]
	}
	type k struct {
		a decode.Addr
		v uint8
	}
	idx := map[k]int{}
	var out []HostCounters
	for _, p := range parts {
		for _, c := range p {
			if i, ok := idx[k{c.Addr, c.IPVersion}]; ok {
				o := &out[i]
				o.PacketsTx += c.PacketsTx
				o.BytesTx += c.BytesTx
				o.PacketsRx += c.PacketsRx
				o.BytesRx += c.BytesRx
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
