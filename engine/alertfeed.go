package engine

import (
	"sync/atomic"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
)

// The alert feed: between batches (EndBatch) each worker hands what changed
// in the batch to the alert evaluator's feeder, so that an alert leaves
// within a batch of the packet that crossed its threshold instead of with
// the next periodic snapshot. One FeedRing per worker, a single-producer
// single-consumer ring of fixed items: the worker writes, the feeder reads;
// no lock, no allocation once the ring exists, never a wait: a full ring
// drops the item and counts it (FeedRing.Dropped), and since every item
// carries absolute values (the source's counts, cumulative counters) a
// later item or the next snapshot makes up for it.

// FeedRingSize is the number of items one worker's ring holds.
const FeedRingSize = 2048

// FeedKind says what a FeedItem holds.
type FeedKind uint8

// The feed's items.
const (
	// FeedSource: one source's scan counts in the shard's window at At:
	// N[0] connections, N[1] distinct destination ports, N[2] distinct
	// destination hosts, N[3] 1 when the distinct counts are estimates.
	FeedSource FeedKind = iota + 1
	// FeedTotals: the worker's cumulative counters at At: N[0] packets,
	// N[1] bytes, N[2] malformed frames, N[3] flows created, N[4] flows
	// ended, N[5] flows evicted.
	FeedTotals
	// FeedProtocol: cumulative totals of the ended flows of protocol Name
	// (Guess: by port guess): N[0] flows, N[1] packets, N[2] bytes.
	FeedProtocol
)

// FeedItem is one change a worker reports. It holds no reference into the
// shard (Name is the protocol's immutable name string).
type FeedItem struct {
	At        int64 // the shard's clock (latest packet time), Unix ns
	Kind      FeedKind
	Guess     bool
	IPVersion uint8
	Addr      decode.Addr
	Name      string
	N         [6]uint64
}

// FeedRing is one worker's queue of FeedItems.
type FeedRing struct {
	_       [64]byte
	tail    atomic.Uint64 // items written (producer)
	_       [56]byte
	head    atomic.Uint64 // items read (consumer)
	_       [56]byte
	dropped atomic.Uint64
	items   [FeedRingSize]FeedItem
	set     *FeedSet

	// Producer state, the worker's alone.
	pending   uint64 // tail not yet published
	markDrops uint64 // the shard's ScanChangesDropped already counted
	totals    [6]uint64
	protoSent []flowtable.ProtoStat
	sources   []flowtable.SourceStats
}

// Dropped counts the items lost to a full ring (and the sources a batch
// could not mark, flowtable.MaxScanChanges).
func (r *FeedRing) Dropped() uint64 { return r.dropped.Load() }

// FeedSet is the rings of one capture's workers and the consumer's wake-up.
// The consumer (one goroutine) calls Drain until it returns nothing, then
// Sleep, then waits on Wake (and whatever else it waits for).
type FeedSet struct {
	rings   []*FeedRing
	wake    chan struct{}
	asleep  atomic.Bool
	sources atomic.Bool // report FeedSource items (a rule uses the scan signals)
	lazy    atomic.Bool // wake the consumer only when a ring is half full
}

// SetSources says whether the workers report per-source scan figures
// (on by default); off, a worker drops its batch's marks unread.
func (s *FeedSet) SetSources(on bool) { s.sources.Store(on) }

// SetLazy says whether the consumer needs to be woken for every batch's
// items (off, the default) or only when a ring is half full (on: nothing
// reads the items at once, e.g. no alert rule uses the figures they carry,
// and the consumer drains them at its own pace, with each snapshot). The
// items are the same either way; only the wake-ups, a thread hand-off per
// batch end, are saved.
func (s *FeedSet) SetLazy(on bool) { s.lazy.Store(on) }

// NewFeedSet returns the rings of n workers.
func NewFeedSet(n int) *FeedSet {
	s := &FeedSet{wake: make(chan struct{}, 1)}
	s.sources.Store(true)
	for range n {
		s.rings = append(s.rings, &FeedRing{set: s, protoSent: make([]flowtable.ProtoStat, 0, 64),
			sources: make([]flowtable.SourceStats, 0, flowtable.MaxScanChanges)})
	}
	return s
}

// Ring returns worker q's ring.
func (s *FeedSet) Ring(q int) *FeedRing { return s.rings[q] }

// Len returns the number of rings.
func (s *FeedSet) Len() int { return len(s.rings) }

// Wake is signalled after Sleep when a worker publishes items.
func (s *FeedSet) Wake() <-chan struct{} { return s.wake }

// Sleep tells the workers that the consumer is about to wait on Wake; it
// reports false (stay awake) when items arrived meanwhile.
func (s *FeedSet) Sleep() bool {
	s.asleep.Store(true)
	for _, r := range s.rings {
		if r.tail.Load() != r.head.Load() {
			s.asleep.Store(false)
			return false
		}
	}
	return true
}

// Dropped sums the rings' dropped items.
func (s *FeedSet) Dropped() uint64 {
	var n uint64
	for _, r := range s.rings {
		n += r.Dropped()
	}
	return n
}

// Drain appends every published item of every ring to dst, with the index
// of its ring in qs, and returns both extended.
func (s *FeedSet) Drain(dst []FeedItem, qs []int) ([]FeedItem, []int) {
	for q, r := range s.rings {
		h, t := r.head.Load(), r.tail.Load()
		for i := h; i < t; i++ {
			dst = append(dst, r.items[i%FeedRingSize])
			qs = append(qs, q)
		}
		r.head.Store(t)
	}
	return dst, qs
}

// SetAlertFeed makes the worker report its changes into r at every batch
// end. Call it before the worker's first batch.
func (w *Worker) SetAlertFeed(r *FeedRing) {
	w.feed = r
	w.shard.TrackScanChanges()
}

// feedAlerts reports the batch's changes (EndBatch, worker goroutine).
func (w *Worker) feedAlerts() {
	r := w.feed
	if r == nil {
		return
	}
	sh := w.shard
	at := sh.Now()
	if r.set.sources.Load() {
		r.sources = sh.ScanChanges(r.sources[:0])
		sh.MarkScanChanges(true)
	} else {
		// No rule uses per-source figures: the next batch's connections
		// leave no marks (the marks of this one are dropped).
		r.sources = r.sources[:0]
		sh.ClearScanChanges()
		sh.MarkScanChanges(false)
	}
	if d := sh.ScanChangesDropped(); d != r.markDrops {
		r.dropped.Add(d - r.markDrops)
		r.markDrops = d
	}
	for i := range r.sources {
		s := &r.sources[i]
		it := r.next()
		if it == nil {
			r.dropped.Add(uint64(len(r.sources) - i))
			break
		}
		var approx uint64
		if s.Approximate {
			approx = 1
		}
		*it = FeedItem{At: at, Kind: FeedSource, IPVersion: s.IPVersion, Addr: s.Addr,
			N: [6]uint64{s.Connections, s.DistinctPorts, s.DistinctHosts, approx}}
	}
	st := sh.Stats()
	tot := [6]uint64{w.c.Packets, w.c.Bytes, w.c.Malformed(), st.FlowsCreated, st.FlowsEnded, st.FlowsEvicted}
	if tot != r.totals {
		if it := r.next(); it != nil {
			*it = FeedItem{At: at, Kind: FeedTotals, N: tot}
			r.totals = tot
		}
	}
	for i, p := range sh.EndedProtocols() {
		if i < len(r.protoSent) && r.protoSent[i].Flows == p.Flows {
			continue
		}
		it := r.next()
		if it == nil {
			break // sent at a later batch end
		}
		*it = FeedItem{At: at, Kind: FeedProtocol, Name: p.Name, Guess: p.Guess, N: [6]uint64{p.Flows, p.Packets, p.Bytes}}
		if i < len(r.protoSent) {
			r.protoSent[i] = p
		} else {
			r.protoSent = append(r.protoSent, p) // a new protocol: rare
		}
	}
	r.publish()
}

// next returns the next free item of the ring, nil (counted) when full.
func (r *FeedRing) next() *FeedItem {
	if r.pending == 0 {
		r.pending = r.tail.Load()
	}
	if r.pending-r.head.Load() >= FeedRingSize {
		r.dropped.Add(1)
		return nil
	}
	it := &r.items[r.pending%FeedRingSize]
	r.pending++
	return it
}

// publish makes the written items visible and wakes a sleeping consumer
// (when lazy, only past half the ring).
func (r *FeedRing) publish() {
	if r.pending == 0 || r.pending == r.tail.Load() {
		r.pending = 0
		return
	}
	r.tail.Store(r.pending)
	fill := r.pending - r.head.Load()
	r.pending = 0
	s := r.set
	if s.lazy.Load() && fill < FeedRingSize/2 {
		return
	}
	if s.asleep.Load() && s.asleep.CompareAndSwap(true, false) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}
