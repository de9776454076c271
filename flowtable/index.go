package flowtable

import (
	"unsafe"

	"github.com/netsentry/netsentry/decode"
)

// The flow index: open addressing over buckets of one cache line each.
// A bucket holds the 32-bit hashes (tags) of up to bucketWays flows beside
// their slab slots, so a lookup reads one line of tags and then only the
// entry whose tag matches: no chain through the entries. A bucket that
// filled up sends later flows to the next bucket (linear probing by
// bucket) and counts them in over, so a lookup stops at the first bucket
// with nothing past it; removal decrements the counts it passed. The index
// is sized so that it is at most 4/7 full (bucketCount), where a Poisson
// load overflows a bucket rarely (about 5 % of buckets at the bound).

const bucketWays = 7

// tagBit marks a used way (a zero tag is an empty one).
const tagBit = 1 << 31

// bucket is one cache line of the index (64 bytes; a []bucket of at least
// 256 is a large allocation, page-aligned).
type bucket struct {
	tags  [bucketWays]uint32
	over  uint32 // flows stored past this bucket whose home is here or before
	slots [bucketWays]uint32
	_     uint32
}

// indexStart is the number of buckets a shard's index starts with (or its
// final size, if smaller).
const indexStart = 256

// growIndex doubles the index in use (within indexMem) and places every
// open flow again, from its link's hash: called by insert when the index is
// 4/7 full (as many flows as 4 per bucket), so that it stays as loaded as
// bucketCount sizes it at the bound. Each doubling re-places the flows
// held, so a table filled to n flows has re-placed fewer than n in all.
func (s *Shard) growIndex() {
	clear(s.index)
	n := 2 * len(s.index)
	s.index = s.indexMem[:n:n]
	s.mask = uint32(n - 1)
	for c, ch := range s.chunks {
		lk := s.links[c]
		for k := range ch {
			i := uint32(c*chunkSize + k)
			if i == 0 || i >= s.used || ch[k].q == queueNone {
				continue // slot 0, never handed out, or free
			}
			s.place(i, lk[k].hash)
		}
	}
}

// find returns the slot of k (hash h), 0 when it is not in the table.
func (s *Shard) find(k *Key, h uint32) uint32 {
	tag := h | tagBit
	b := h & s.mask
	for {
		bk := &s.index[b]
		for w := range bucketWays {
			if bk.tags[w] == tag {
				if i := bk.slots[w]; s.slot(i).key == *k {
					return i
				}
			}
		}
		if bk.over == 0 {
			return 0
		}
		b = (b + 1) & s.mask
	}
}

// place enters slot i with hash h in the index.
func (s *Shard) place(i, h uint32) {
	tag := h | tagBit
	b := h & s.mask
	for range len(s.index) {
		bk := &s.index[b]
		for w := range bucketWays {
			if bk.tags[w] == 0 {
				bk.tags[w], bk.slots[w] = tag, i
				return
			}
		}
		bk.over++
		b = (b + 1) & s.mask
	}
	panic("BUG: flow index full")
}

// unplace takes slot i with hash h out of the index.
func (s *Shard) unplace(i, h uint32) {
	tag := h | tagBit
	b := h & s.mask
	for range len(s.index) {
		bk := &s.index[b]
		for w := range bucketWays {
			if bk.tags[w] == tag && bk.slots[w] == i {
				bk.tags[w], bk.slots[w] = 0, 0
				// Undo the counts that the insert left on the way here.
				for c := h & s.mask; c != b; c = (c + 1) & s.mask {
					s.index[c].over--
				}
				return
			}
		}
		b = (b + 1) & s.mask
	}
	panic("BUG: flow entry missing from the index")
}

// Prefetch computes the hash of p's flow and starts loading (a prefetch
// instruction, which does not wait) its index bucket and the host index
// buckets of its two addresses, so that the lines are on their way to the
// cache while the caller decodes further frames; it returns the hash for
// PrefetchEntry. A frame without a flow of its own (fragments, no
// transport header) gets hash 0. It changes nothing. The second result is
// kept for callers that summed a touched word; it is 0.
func (s *Shard) Prefetch(p *decode.Packet) (h, touched uint32) {
	if !p.HasFlow || p.IsFragment {
		return 0, 0
	}
	var k Key
	makeKey(&p.Flow, p.VLAN, p.InnerVLAN, &k)
	h = k.hash() | tagBit
	t := &p.Flow
	prefetch3(uintptr(unsafe.Pointer(&s.index[h&s.mask])),
		s.hosts.bucketAddr(&t.Src, t.IPVersion), s.hosts.bucketAddr(&t.Dst, t.IPVersion))
	return h, 0
}

// PrefetchEntry, after Prefetch brought the buckets of p's flow (hash h)
// in, starts loading the entry of the first flow in h's home bucket whose
// tag matches; when none does (a new flow, most likely) it starts loading
// what a new flow touches instead: the slab entries of its two hosts and
// its source's scan-tracker index entry. It
// changes nothing and returns 0 (kept for callers that summed a touched
// word).
func (s *Shard) PrefetchEntry(p *decode.Packet, h uint32) uint32 {
	if h == 0 {
		return 0
	}
	bk := &s.index[h&s.mask]
	for w := range bucketWays {
		if bk.tags[w] == h {
			prefetch(uintptr(unsafe.Pointer(s.slot(bk.slots[w]))))
			return 0
		}
	}
	t := &p.Flow
	prefetch3(s.hosts.slotAddr(&t.Src, t.IPVersion), s.hosts.slotAddr(&t.Dst, t.IPVersion),
		s.scan.indexAddr(&t.Src, t.IPVersion)) // the initiator's, most likely
	return 0
}
