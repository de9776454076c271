package engine

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// Exporter carries ended flows from workers to sinks, one bounded queue and
// one goroutine per sink, so that a slow sink (a store on a busy disk) costs
// only its own records, never another sink's (the alert evaluator). Workers
// call Send (through a shard's onEnd); the records are copied once into a
// batch that every sink's queue shares. With Block set (replay) a full
// queue makes the worker wait, so nothing is lost; otherwise (live capture,
// where a worker must never stall) the batch is dropped for that sink alone
// and counted in its SinkStats.
type Exporter struct {
	sinks  []*sinkQueue
	free   chan *batch // batches every sink finished with, reused by Send
	block  bool
	giveUp atomic.Pointer[chan struct{}] // closed at the GiveUpAt deadline
}

// Sink receives ended flows, on its own goroutine.
type Sink interface {
	WriteFlows([]flowtable.Record) error
	Close() error
}

// Named is a Sink with a name for its counters ("flows_out", "summary");
// other sinks are named "sink0", "sink1", ... by position.
type Named interface{ Name() string }

// Resetter is a Sink that starts over when a new capture starts (Reset):
// the summary's top flows describe one capture.
type Resetter interface{ Reset() }

// SinkStats are one sink's counters.
type SinkStats struct {
	Name    string
	Written uint64 // records handed to the sink
	Dropped uint64 // records dropped because its queue was full
	Queued  int    // batches waiting in its queue now
	Depth   int    // the queue's bound, in batches
}

// batch is one Send's records, shared read-only by every sink queue.
type batch struct {
	recs []flowtable.Record
	refs atomic.Int32
}

// item is a queue entry: a batch, or a reset marker.
type item struct {
	b     *batch
	reset bool
}

type sinkQueue struct {
	name             string
	s                Sink
	q                chan item
	written, dropped atomic.Uint64
	err              error // first write error; read after done
	done             chan struct{}
	wake             chan struct{} // cap 1: the queue passed half full while the goroutine ticks
	ticking          atomic.Bool   // the goroutine waits out a drainTick (not parked on q)
}

// NewExporter starts an exporter with a queue of depth batches per sink.
func NewExporter(depth int, block bool, sinks ...Sink) *Exporter {
	x := &Exporter{free: make(chan *batch, depth+2), block: block}
	for i, s := range sinks {
		name := "sink" + strconv.Itoa(i)
		if n, ok := s.(Named); ok {
			name = n.Name()
		}
		sq := &sinkQueue{name: name, s: s, q: make(chan item, depth), done: make(chan struct{}), wake: make(chan struct{}, 1)}
		x.sinks = append(x.sinks, sq)
		go x.drain(sq)
	}
	return x
}

// drainTick is how long a sink's goroutine, having emptied its queue,
// waits for more before it parks on the queue. A worker's send to a parked
// goroutine wakes it (a futex call and a thread switch on the worker's
// time, and another for the sink), once per batch: under a flood of new
// flows thousands of times a second per sink. While batches keep coming
// the sink instead takes them every drainTick, woken by its timer, and a
// worker wakes it only when its queue is half full (sinkQueue.wake). A
// batch waits at most this long more before its sink sees it.
const drainTick = 2 * time.Millisecond

func (x *Exporter) drain(sq *sinkQueue) {
	defer close(sq.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for it := range sq.q {
		x.write(sq, it)
		for {
			// Busy: take what is queued, then wait a tick for more (or
			// for a worker's wake-up when the queue fills).
			for empty := false; !empty; {
				select {
				case it, ok := <-sq.q:
					if !ok {
						return
					}
					x.write(sq, it)
				default:
					empty = true
				}
			}
			sq.ticking.Store(true)
			t.Reset(drainTick)
			select {
			case <-t.C:
			case <-sq.wake:
				t.Stop()
			}
			sq.ticking.Store(false)
			if len(sq.q) == 0 {
				break // nothing came in a tick: park on the queue
			}
		}
	}
}

// write hands one queue item to the sink.
func (x *Exporter) write(sq *sinkQueue, it item) {
	if it.reset {
		if r, ok := sq.s.(Resetter); ok {
			r.Reset()
		}
		return
	}
	if err := sq.s.WriteFlows(it.b.recs); err != nil && sq.err == nil {
		sq.err = err
	}
	sq.written.Add(uint64(len(it.b.recs)))
	x.release(it.b)
}

// queued tells sq's goroutine, when it waits out a tick, that its queue
// passed half full (the sender's side of drainTick).
func (sq *sinkQueue) queued() {
	if sq.ticking.Load() && len(sq.q) >= cap(sq.q)/2 {
		select {
		case sq.wake <- struct{}{}:
		default:
		}
	}
}

// release drops one sink's reference to b; the last one recycles it.
func (x *Exporter) release(b *batch) {
	if b.refs.Add(-1) != 0 {
		return
	}
	b.recs = b.recs[:0]
	select {
	case x.free <- b:
	default:
	}
}

// Send queues a copy of recs for every sink. It is the shard's onEnd callback.
func (x *Exporter) Send(recs []flowtable.Record) { x.send(recs, x.block) }

// SendWait queues a copy of recs like Send, but waits while a queue is
// full, whatever the Exporter's Block setting. Live capture uses it for the
// final flush at shutdown, when waiting can no longer cost packets.
func (x *Exporter) SendWait(recs []flowtable.Record) { x.send(recs, true) }

// Swap queues recs for every sink like Send, without copying them: the
// Exporter keeps recs until the sinks are done with it, and returns an empty
// buffer (length 0, capacity that of recs) for the caller to go on in. It is
// the shard's SetEndSwap callback.
func (x *Exporter) Swap(recs []flowtable.Record) []flowtable.Record {
	return x.swap(recs, x.block)
}

// SwapWait is Swap waiting like SendWait.
func (x *Exporter) SwapWait(recs []flowtable.Record) []flowtable.Record { return x.swap(recs, true) }

func (x *Exporter) swap(recs []flowtable.Record, wait bool) []flowtable.Record {
	if len(recs) == 0 || len(x.sinks) == 0 {
		return recs[:0]
	}
	b := x.buffer()
	spare := b.recs[:0]
	if cap(spare) < cap(recs) {
		spare = make([]flowtable.Record, 0, cap(recs))
	}
	b.recs = recs
	x.queue(b, len(recs), wait)
	return spare
}

func (x *Exporter) send(recs []flowtable.Record, wait bool) {
	if len(recs) == 0 || len(x.sinks) == 0 {
		return
	}
	b := x.buffer()
	b.recs = append(b.recs, recs...)
	x.queue(b, len(recs), wait)
}

// queue hands b (n records) to every sink, or counts it dropped for each
// whose queue is full (unless wait).
func (x *Exporter) queue(b *batch, n int, wait bool) {
	b.refs.Store(int32(len(x.sinks)))
	for _, sq := range x.sinks {
		if wait {
			select {
			case sq.q <- item{b: b}:
				sq.queued()
				continue
			default:
			}
			sq.queued() // full: make sure its goroutine is not waiting out a tick
			select {
			case sq.q <- item{b: b}:
			case <-x.gaveUp():
				sq.dropped.Add(uint64(n))
				x.release(b)
			}
			continue
		}
		select {
		case sq.q <- item{b: b}:
			sq.queued()
		default:
			sq.dropped.Add(uint64(n))
			x.release(b)
		}
	}
}

// GiveUpAt bounds every wait for a sink by t (a shutdown that must end in
// time): past it, a batch that finds no room in a sink's queue is dropped
// for that sink and counted in its SinkStats; what is queued is still
// written (at most the queue's depth). The first call sets the deadline.
func (x *Exporter) GiveUpAt(t time.Time) {
	ch := make(chan struct{})
	if !x.giveUp.CompareAndSwap(nil, &ch) {
		return
	}
	time.AfterFunc(time.Until(t), func() { close(ch) })
}

// gaveUp is closed once the GiveUpAt deadline passed; nil (never ready)
// without one.
func (x *Exporter) gaveUp() <-chan struct{} {
	if p := x.giveUp.Load(); p != nil {
		return *p
	}
	return nil
}

// Reset tells every Resetter sink, in order with the records queued before
// it, that a new capture starts. It waits for room in the queues.
func (x *Exporter) Reset() {
	for _, sq := range x.sinks {
		sq.q <- item{reset: true}
	}
}

// buffer returns an empty batch, reusing one the sinks finished with.
func (x *Exporter) buffer() *batch {
	select {
	case b := <-x.free:
		return b
	default:
		return &batch{}
	}
}

// Dropped returns how many flow records were dropped, summed over the sinks.
func (x *Exporter) Dropped() uint64 {
	var n uint64
	for _, sq := range x.sinks {
		n += sq.dropped.Load()
	}
	return n
}

// Stats returns every sink's counters, in the order the sinks were given.
// Safe from any goroutine.
func (x *Exporter) Stats() []SinkStats {
	out := make([]SinkStats, len(x.sinks))
	for i, sq := range x.sinks {
		out[i] = SinkStats{Name: sq.name, Written: sq.written.Load(), Dropped: sq.dropped.Load(),
			Queued: len(sq.q), Depth: cap(sq.q)}
	}
	return out
}

// Close drains every queue, closes the sinks and returns the first error.
func (x *Exporter) Close() error {
	for _, sq := range x.sinks {
		close(sq.q)
	}
	var err error
	for _, sq := range x.sinks {
		<-sq.done
		if sq.err != nil && err == nil {
			err = sq.err
		}
		if cerr := sq.s.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// JSONLines writes each flow as one JSON object per line (--flows-out).
type JSONLines struct {
	w     *bufio.Writer
	c     io.Closer
	buf   []byte
	Extra func(r *flowtable.Record, b []byte) []byte
}

// NewJSONLines writes to w; c, if not nil, is closed by Close.
func NewJSONLines(w io.Writer, c io.Closer) *JSONLines {
	return &JSONLines{w: bufio.NewWriterSize(w, 1<<16), c: c}
}

// WriteFlows implements Sink.
func (j *JSONLines) WriteFlows(recs []flowtable.Record) error {
	for i := range recs {
		r := &recs[i]
		var extra func([]byte) []byte
		if j.Extra != nil {
			extra = func(b []byte) []byte { return j.Extra(r, b) }
		}
		j.buf = r.AppendJSON(j.buf[:0], extra)
		j.buf = append(j.buf, '\n')
		if _, err := j.w.Write(j.buf); err != nil {
			return fmt.Errorf("write flow record: %w", err)
		}
	}
	return nil
}

// Name implements Named.
func (j *JSONLines) Name() string { return "flows_out" }

// Close flushes and closes the output.
func (j *JSONLines) Close() error {
	err := j.w.Flush()
	if j.c != nil {
		if cerr := j.c.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("close flow output: %w", err)
	}
	return nil
}

// TopFlows keeps the n ended flows with the most bytes (both directions).
type TopFlows struct {
	n   int
	top []flowtable.Record
}

// NewTopFlows returns a sink keeping the top n flows.
func NewTopFlows(n int) *TopFlows { return &TopFlows{n: n} }

// WriteFlows implements Sink.
func (t *TopFlows) WriteFlows(recs []flowtable.Record) error {
	for i := range recs {
		r := &recs[i]
		b := r.BytesTx + r.BytesRx
		if len(t.top) == t.n && (t.n == 0 || b <= t.top[len(t.top)-1].BytesTx+t.top[len(t.top)-1].BytesRx) {
			continue
		}
		j := len(t.top)
		for j > 0 && t.top[j-1].BytesTx+t.top[j-1].BytesRx < b {
			j--
		}
		if len(t.top) < t.n {
			t.top = append(t.top, flowtable.Record{})
		}
		copy(t.top[j+1:], t.top[j:len(t.top)-1])
		t.top[j] = *r
	}
	return nil
}

// Close implements Sink.
func (t *TopFlows) Close() error { return nil }

// Name implements Named.
func (t *TopFlows) Name() string { return "summary" }

// Reset implements Resetter: a new capture starts with no top flows.
func (t *TopFlows) Reset() { t.top = t.top[:0] }

// Top returns the kept flows, largest first. Read it after the exporter closed.
func (t *TopFlows) Top() []flowtable.Record { return t.top }
