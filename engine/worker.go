package engine

import (
	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
)

// Counters are a worker's packet counters. Each worker owns its Counters and
// writes them without synchronisation; the padding keeps two workers'
// counters off one cache line.
type Counters struct {
	Packets uint64
	Bytes   uint64
	NonIP   uint64 // frames without IP (ARP, LLDP, ...): counted, not errors
	Decode  [decode.NumReasons]uint64
	_       [64]byte
}

// Malformed returns the number of frames that failed to decode completely.
func (c *Counters) Malformed() uint64 {
	var n uint64
	for r := decode.ReasonNone + 1; r < decode.NumReasons; r++ {
		n += c.Decode[r]
	}
	return n
}

// Worker decodes frames and accounts them in its own flow-table shard. A
// source (a ring queue, a pcap file) calls Handle for each frame and
// EndBatch after each batch; both run on the worker's goroutine only.
type Worker struct {
	shard   *flowtable.Shard
	pkt     decode.Packet
	c       Counters
	snapReq chan *snapRequest
	// HandleBatch's decoded frames and their flows' hashes.
	pkts  [BatchFrames]decode.Packet
	hash  [BatchFrames]uint32
	touch uint32    // keeps the prefetching loads alive
	feed  *FeedRing // the alert feed (alertfeed.go); nil: off
}

// BatchFrames is the most frames HandleBatch takes at once: their decoded
// packets (a few hundred bytes each) stay in the first-level cache while
// the flow table's lines for them are on their way.
const BatchFrames = 32

// NewWorker returns a worker that accounts into shard.
func NewWorker(shard *flowtable.Shard) *Worker {
	return &Worker{shard: shard, snapReq: make(chan *snapRequest)}
}

// Handle decodes one frame captured at ts (Unix nanoseconds) on a link of
// type link and accounts it. frame is not retained.
func (w *Worker) Handle(frame []byte, wireLen uint32, link uint16, ts int64) {
	p := &w.pkt
	decode.Parse(frame, wireLen, link, p)
	w.c.Packets++
	w.c.Bytes += uint64(p.WireLen)
	w.c.Decode[p.Err]++
	if p.NonIP {
		w.c.NonIP++
	}
	w.shard.Packet(p, frame, ts)
}

// HandleBatch decodes and accounts frames[:n] (n at most BatchFrames),
// captured at ts[i] with wire lengths wire[i], on a link of type link. It
// works in three passes so that the cache misses of one frame's flow
// overlap those of the others: decode every frame and touch its flow's
// index bucket; find each flow's entry in its (now cached) bucket and touch
// it; then account every frame in order, as Handle would. The frames are
// not retained.
func (w *Worker) HandleBatch(frames [][]byte, wire []uint32, ts []int64, link uint16) {
	n := min(len(frames), len(wire), len(ts), BatchFrames)
	sh := w.shard
	var t uint32
	for i := range n {
		p := &w.pkts[i]
		decode.Parse(frames[i], wire[i], link, p)
		w.c.Packets++
		w.c.Bytes += uint64(p.WireLen)
		w.c.Decode[p.Err]++
		if p.NonIP {
			w.c.NonIP++
		}
		h, v := sh.Prefetch(p)
		w.hash[i] = h
		t += v
	}
	for i := range n {
		t += sh.PrefetchEntry(&w.pkts[i], w.hash[i])
	}
	w.touch += t
	for i := range n {
		sh.PacketHashed(&w.pkts[i], frames[i], ts[i], w.hash[i])
	}
}

// EndBatch runs the between-batch work: flow expiry at the clock now (the
// latest packet time for replay, the ring's clock when live).
func (w *Worker) EndBatch(now int64) {
	w.shard.Expire(now)
	w.feedAlerts() // before the snapshot: both see the same batch (alertfeed.go)
	w.answerSnapshot()
}

// Counters returns a copy of the worker's counters; call it from the
// worker's goroutine or after the worker stopped.
func (w *Worker) Counters() Counters { return w.c }

// Shard returns the worker's flow table.
func (w *Worker) Shard() *flowtable.Shard { return w.shard }
