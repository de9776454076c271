package flowtable

import (
	"github.com/netsentry/netsentry/decode"
)

// Scan changes: the sources whose scan signals changed in a batch, for the
// alert evaluator (engine.Worker's alert feed). The shard marks a source
// when it starts a connection (Shard.started: one call, no allocation, no
// lock); between batches ScanChanges reports each marked source once, with
// its counts at the shard's clock, and clears the marks.
//
// The mark is kept in the source's own scan-tracker slot (scanSource.mark,
// a line the connection has just written), so marking costs no lookup. A
// source evicted and created again in a batch is marked again in its new
// slot; reporting checks each mark against its slot and reports a source
// once however many marks it left.
//
// At most MaxScanChanges marks are made per batch; more are counted
// (ScanChangesDropped) and left to the sensor's periodic snapshot.

// MaxScanChanges is the number of marks (distinct sources, unless evicted
// and created again within the batch) a batch can make.
const MaxScanChanges = 4096

// scanChanges is the list of marks made since the last ScanChanges, in
// marking order. A slot's mark carries the batch's generation, so clearing
// the set costs nothing.
type scanChanges struct {
	list    []scanRef
	gen     uint32
	dropped uint64
}

type scanRef struct {
	addr decode.Addr
	v    uint8
	slot uint32 // the source's scan-tracker slot when marked
}

const (
	scanIdxBits = 13 // list index+1 in a mark (MaxScanChanges < 8192)
	scanIdxMask = 1<<scanIdxBits - 1
)

func newScanChanges() *scanChanges {
	return &scanChanges{list: make([]scanRef, 0, MaxScanChanges), gen: 1}
}

// touch marks the source the scan tracker t holds in slot. A nil set marks
// nothing.
func (c *scanChanges) touch(t *ScanTracker, slot uint32) {
	if c == nil {
		return
	}
	s := t.at(slot)
	if s.mark>>scanIdxBits == c.gen {
		return // marked in this batch already
	}
	if len(c.list) == MaxScanChanges {
		c.dropped++
		return
	}
	c.list = append(c.list, scanRef{addr: s.addr, v: s.v, slot: slot})
	s.mark = c.gen<<scanIdxBits | uint32(len(c.list))
}

// reset empties the set: a new generation (the tracker's marks are cleared
// when the generation wraps).
func (c *scanChanges) reset(t *ScanTracker) {
	c.list = c.list[:0]
	c.gen++
	if c.gen >= 1<<(32-scanIdxBits) {
		for i := range t.used {
			t.at(i).mark = 0
		}
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
	s.marks = s.changes
}

// MarkScanChanges says whether connections mark their sources for
// ScanChanges from now on (after TrackScanChanges, they do): a feed that
// asks for no per-source figures (no alert rule uses them) turns the
// marking off, so that a new connection does not write its mark. Call it
// between batches, from the shard's owner.
func (s *Shard) MarkScanChanges(on bool) {
	s.marks = nil
	if on {
		s.marks = s.changes
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
		if st, ok := s.scan.marked(&c.list[i], c.gen<<scanIdxBits|uint32(i+1), s.now); ok {
			dst = append(dst, st)
		}
	}
	c.reset(s.scan)
	return dst
}

// ClearScanChanges forgets the sources marked since the last call.
func (s *Shard) ClearScanChanges() {
	if s.changes != nil {
		s.changes.reset(s.scan)
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

// marked returns the counts at now of the source of mark r (whose mark
// value is mark), unless another mark of this batch reports it: the slot
// is read without a lookup when it still holds r's source. A source's
// slot carries the mark of this batch that reports it: its latest, or the
// first to find it when its latest mark was dropped (which then claims it).
func (t *ScanTracker) marked(r *scanRef, mark uint32, now int64) (SourceStats, bool) {
	i := r.slot
	if i >= t.used || t.at(i).v != r.v || t.at(i).addr != r.addr {
		var ok bool
		if i, ok = t.find(&r.addr, r.v); !ok {
			return SourceStats{}, false // evicted since
		}
	}
	s := t.at(i)
	if s.mark != mark {
		if s.mark>>scanIdxBits == mark>>scanIdxBits {
			return SourceStats{}, false // its own mark of this batch reports it
		}
		s.mark = mark
	}
	return t.sourceStats(i, now)
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
	off := int(i&scanChunkMask) * t.cfg.ExactPorts
	st := SourceStats{Addr: s.addr, IPVersion: s.v, Connections: conns}
	st.DistinctPorts = t.distinct(s, kindPorts, e, scanCount(c.ports[off:off+int(s.n[kindPorts])], uint8(e)))
	st.DistinctHosts = t.distinct(s, kindHosts, e, scanCount(c.hosts[off:off+int(s.n[kindHosts])], uint8(e)))
	st.Approximate = s.sketch != [scanKinds]uint32{}
	return st, true
}
