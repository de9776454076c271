package engine

import (
	"bufio"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/netsentry/netsentry/flowtable"
)

// Exporter carries ended flows from workers to sinks through a bounded queue.
// Workers call Send (through a shard's onEnd); one goroutine drains the
// queue into every sink. With Block set (replay) a full queue makes the worker
// wait, so nothing is lost; otherwise (live capture, where a worker must never
// stall) the batch is dropped and counted in Dropped.
type Exporter struct {
	queue   chan []flowtable.Record
	free    chan []flowtable.Record // emptied batches, reused by Send
	sinks   []Sink
	block   bool
	dropped atomic.Uint64
	done    chan struct{}
	err     error
}

// Sink receives ended flows, on the exporter's goroutine.
type Sink interface {
	WriteFlows([]flowtable.Record) error
	Close() error
}

// NewExporter starts an exporter with a queue of depth batches.
func NewExporter(depth int, block bool, sinks ...Sink) *Exporter {
	x := &Exporter{queue: make(chan []flowtable.Record, depth), free: make(chan []flowtable.Record, depth+2),
		sinks: sinks, block: block, done: make(chan struct{})}
	go x.run()
	return x
}

func (x *Exporter) run() {
	defer close(x.done)
	for batch := range x.queue {
		for _, s := range x.sinks {
			if err := s.WriteFlows(batch); err != nil && x.err == nil {
				x.err = err
			}
		}
		select {
		case x.free <- batch[:0]:
		default:
		}
	}
}

// Send queues a copy of recs. It is the shard's onEnd callback.
func (x *Exporter) Send(recs []flowtable.Record) {
	buf := append(x.buffer(), recs...)
	if x.block {
		x.queue <- buf
		return
	}
	select {
	case x.queue <- buf:
	default:
		x.dropped.Add(uint64(len(recs)))
	}
}

// buffer returns an empty batch, reusing one the writer finished with.
func (x *Exporter) buffer() []flowtable.Record {
	select {
	case b := <-x.free:
		return b
	default:
		return nil
	}
}

// Dropped returns how many flow records were dropped because the queue was full.
func (x *Exporter) Dropped() uint64 { return x.dropped.Load() }

// Close drains the queue, closes the sinks and returns the first sink error.
func (x *Exporter) Close() error {
	close(x.queue)
	<-x.done
	for _, s := range x.sinks {
		if err := s.Close(); err != nil && x.err == nil {
			x.err = err
		}
	}
	return x.err
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

// Top returns the kept flows, largest first. Read it after the exporter closed.
func (t *TopFlows) Top() []flowtable.Record { return t.top }
