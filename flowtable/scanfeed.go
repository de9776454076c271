package flowtable

import (
	"encoding/binary"

	"github.com/netsentry/netsentry/decode"
)

// Scan changes: the sources whose scan signals changed in a batch, for the
// alert evaluator (engine.Worker's alert feed). The shard marks a source
// when it starts a connection (Shard.started: one call, no allocation, no
// lock); between batches ScanChanges reports each marked source once, with
// its counts at the shard's clock, and clears the marks.
//
// At most MaxScanChanges sources are marked per batch; more are counted
// (ScanChangesDropped) and left to the sensor's periodic snapshot.

// MaxScanChanges is the number of distinct sources a batch can mark.
const MaxScanChanges = 4096

// scanChanges is the set of sources marked since the last ScanChanges: a
// list in marking order and an open-addressing index into it whose entries
// carry the batch's generation, so clearing the set costs nothing.
type scanChanges struct {
	list    []scanRef
	index   []uint32 // gen<<13 | list index+1 (13 bits: MaxScanChanges < 8192)
	mask    uint32
	gen     uint32
	dropped uint64
}

type scanRef struct {
	addr decode.Addr
	v    uint8
	slot uint32 // the source's scan-tracker slot when marked (a hint: checked)
}

const scanIdxBits = 13

func newScanChanges() *scanChanges {
	n := 4 * MaxScanChanges
	return &scanChanges{list: make([]scanRef, 0, MaxScanChanges), index: make([]uint32, n), mask: uint32(n - 1), gen: 1}
}

// touch marks (src, v), which the scan tracker holds in slot. A nil set
// marks nothing.
func (c *scanChanges) touch(src *decode.Addr, v uint8, slot uint32) {
	if c == nil {
		return
	}
	w0 := binary.LittleEndian.Uint64(src[0:8])
	w1 := binary.LittleEndian.Uint64(src[8:16])
	h := uint32(fmix64(w0^fmix64(w1^uint64(v)<<56)) >> 32)
	for p := h & c.mask; ; p = (p + 1) & c.mask {
		e := c.index[p]
		if e>>scanIdxBits != c.gen {
			if len(c.list) == MaxScanChanges {
				c.dropped++
				return
			}
			c.list = append(c.list, scanRef{addr: *src, v: v, slot: slot})
			c.index[p] = c.gen<<scanIdxBits | uint32(len(c.list))
			return
		}
		if r := &c.list[e&(1<<scanIdxBits-1)-1]; r.v == v && r.addr == *src {
			r.slot = slot // it may have been evicted and taken another since
			return
		}
	}
}

// reset empties the set: a new generation (the index is cleared when the
// generation wraps).
func (c *scanChanges) reset() {
	c.list = c.list[:0]
	c.gen++
	if c.gen >= 1<<(32-scanIdxBits) {
		clear(c.index)
		c.gen = 1
	}
}

// TrackScanChanges turns on the marking of sources whose scan signals
// change (ScanChanges). Call it before the shard's first packet, from its
// owner.
func (s *Shard) TrackScanChanges() {
	if s.changes == nil {
		s.changes = newScanChanges()
	}
}

// ScanChanges appends to dst the counts, at the shard's clock, of every
// source that started a connection since the previous call (each once),
// and returns the extended slice; it allocates only to grow dst. Without
// TrackScanChanges it appends nothing.
func (s *Shard) ScanChanges(dst []SourceStats) []SourceStats {
	c := s.changes
	if c == nil {
		return dst
	}
	const ahead = 4 // slots on their way while one is read
	for i := range min(ahead, len(c.list)) {
		s.scan.prefetchSource(c.list[i].slot)
	}
	for i := range c.list {
		if i+ahead < len(c.list) {
			s.scan.prefetchSource(c.list[i+ahead].slot)
		}
		r := &c.list[i]
		if st, ok := s.scan.sourceAt(r.slot, &r.addr, r.v, s.now); ok {
			dst = append(dst, st)
		}
	}
	c.reset()
	return dst
}

// ClearScanChanges forgets the sources marked since the last call.
func (s *Shard) ClearScanChanges() {
	if s.changes != nil {
		s.changes.reset()
	}
}

// ScanChangesDropped counts the sources not marked because a batch had
// MaxScanChanges already.
func (s *Shard) ScanChangesDropped() uint64 {
	if s.changes == nil {
		return 0
	}
	return s.changes.dropped
}

// EndedProtocols returns the shard's running totals per application
// protocol of the flows that ended (in the order protocols first appeared:
// an index stays the same protocol). The slice is the shard's own: read it
// on the shard's goroutine, before the next packet, and keep no reference.
func (s *Shard) EndedProtocols() []ProtoStat { return s.protos.list }

// Source returns the counts of (src, v) in the window ending at now, as
// Snapshot reports them, and false when the source has no connection in it.
func (t *ScanTracker) Source(src *decode.Addr, v uint8, now int64) (SourceStats, bool) {
	i, ok := t.find(src, v)
	if !ok {
		return SourceStats{}, false
	}
	return t.sourceStats(i, now)
}

// sourceAt is Source for a source last seen in slot i: the slot is read
// without a lookup when it still holds (src, v).
func (t *ScanTracker) sourceAt(i uint32, src *decode.Addr, v uint8, now int64) (SourceStats, bool) {
	if i < t.used {
		if s := t.at(i); s.v == v && s.addr == *src {
			return t.sourceStats(i, now)
		}
	}
	return t.Source(src, v, now)
}

// sourceStats returns the counts of the source in slot i (Source).
func (t *ScanTracker) sourceStats(i uint32, now int64) (SourceStats, bool) {
	e := floorDiv(now, t.bw)
	s := t.at(i)
	if s.lastEp < e-scanBuckets || s.lastEp > e+scanBuckets {
		return SourceStats{}, false
	}
	var conns uint64
	for k, ep := range s.epochs {
		if ep <= e && ep >= e-scanBuckets {
			conns += uint64(s.conns[k])
		}
	}
	if conns == 0 {
		return SourceStats{}, false
	}
	c := &t.chunks[i>>scanChunkBits]
	off := int(i&scanChunkMask) * t.exact
	st := SourceStats{Addr: s.addr, IPVersion: s.v, Connections: conns}
	st.DistinctPorts = t.distinct(s, kindPorts, e, scanCount(c.ports[off:off+int(s.n[kindPorts])], uint8(e)))
	st.DistinctHosts = t.distinct(s, kindHosts, e, scanCount(c.hosts[off:off+int(s.n[kindHosts])], uint8(e)))
	st.Approximate = s.sketch != [scanKinds]uint32{}
	return st, true
}
