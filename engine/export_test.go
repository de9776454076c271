package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// gateSink blocks in WriteFlows until its gate is opened: a stuck backend.
type gateSink struct {
	name string
	gate chan struct{}
	mu   sync.Mutex
	n    int
}

func (g *gateSink) Name() string { return g.name }
func (g *gateSink) WriteFlows(r []flowtable.Record) error {
	<-g.gate
	g.mu.Lock()
	g.n += len(r)
	g.mu.Unlock()
	return nil
}
func (g *gateSink) Close() error { return nil }

// countSink counts what it was given.
type countSink struct {
	mu sync.Mutex
	n  int
}

func (c *countSink) WriteFlows(r []flowtable.Record) error {
	c.mu.Lock()
	c.n += len(r)
	c.mu.Unlock()
	return nil
}
func (c *countSink) Close() error { return nil }

// TestExporterSlowSinkCostsOnlyItself: a sink that stops reading loses its
// own records once its queue is full, counted against it; the other sink
// gets every record.
func TestExporterSlowSinkCostsOnlyItself(t *testing.T) {
	slow := &gateSink{name: "store", gate: make(chan struct{})}
	fast := &countSink{}
	x := NewExporter(4, false, slow, fast)
	recs := make([]flowtable.Record, 10)
	const batches = 100
	for range batches {
		x.Send(recs)
		time.Sleep(100 * time.Microsecond) // let the fast sink keep up
	}
	st := x.Stats()
	if st[0].Name != "store" || st[1].Name != "sink1" {
		t.Fatalf("names %q %q", st[0].Name, st[1].Name)
	}
	// The slow sink holds one batch in WriteFlows and 4 in its queue.
	if want := uint64((batches - 5) * len(recs)); st[0].Dropped != want {
		t.Errorf("slow sink dropped %d, want %d", st[0].Dropped, want)
	}
	if st[1].Dropped != 0 {
		t.Errorf("fast sink dropped %d, want 0", st[1].Dropped)
	}
	close(slow.gate)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if fast.n != batches*len(recs) {
		t.Errorf("fast sink got %d records, want %d", fast.n, batches*len(recs))
	}
	if slow.n != 5*len(recs) {
		t.Errorf("slow sink got %d records, want %d", slow.n, 5*len(recs))
	}
	if got := x.Dropped(); got != st[0].Dropped {
		t.Errorf("Dropped() = %d, want %d", got, st[0].Dropped)
	}
}

// TestExporterResetOrdered: Reset reaches the summary sink after the
// records sent before it and before those sent after it.
func TestExporterResetOrdered(t *testing.T) {
	top := NewTopFlows(3)
	x := NewExporter(8, true, top)
	x.Send([]flowtable.Record{{BytesTx: 1000}, {BytesTx: 900}})
	x.Reset()
	x.Send([]flowtable.Record{{BytesTx: 5}})
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	got := top.Top()
	if len(got) != 1 || got[0].BytesTx != 5 {
		t.Fatalf("top after reset = %+v, want only the record sent after it", got)
	}
}

// TestExporterGiveUp: past the GiveUpAt deadline a final flush into a sink
// that stopped reading returns, and every record a sink could not take is
// counted as dropped for it.
func TestExporterGiveUp(t *testing.T) {
	slow := &gateSink{name: "store", gate: make(chan struct{})}
	fast := &countSink{}
	x := NewExporter(2, false, slow, fast)
	recs := make([]flowtable.Record, 10)
	x.GiveUpAt(time.Now().Add(200 * time.Millisecond))
	start := time.Now()
	for range 20 {
		x.SendWait(recs) // would block forever on the stuck sink
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("the flush took %v, want about the 200 ms deadline", d)
	}
	close(slow.gate) // the batch in WriteFlows and the queued ones are written
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	st := x.Stats()
	if got := slow.n + int(st[0].Dropped); got != 20*len(recs) {
		t.Errorf("slow sink: %d written + %d dropped, want all %d accounted", slow.n, st[0].Dropped, 20*len(recs))
	}
	// Past the deadline a sink whose queue is full for a moment drops too;
	// every record is still either written or counted.
	if got := fast.n + int(st[1].Dropped); got != 20*len(recs) {
		t.Errorf("fast sink: %d written + %d dropped, want all %d accounted", fast.n, st[1].Dropped, 20*len(recs))
	}
	if st[0].Dropped == 0 || st[0].Written != uint64(slow.n) {
		t.Errorf("slow sink: dropped %d, written %d (counted %d)", st[0].Dropped, slow.n, st[0].Written)
	}
}

// seqSink checks that every record it is given carries the next sequence
// number in PacketsTx (what the test wrote before handing the batch over),
// slowly, so that batches wait in its queue while the sender goes on.
type seqSink struct {
	mu    sync.Mutex
	next  uint64
	bad   int
	delay time.Duration
}

func (q *seqSink) WriteFlows(r []flowtable.Record) error {
	time.Sleep(q.delay)
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range r {
		if r[i].PacketsTx != q.next {
			q.bad++
		}
		q.next = r[i].PacketsTx + 1
	}
	return nil
}
func (q *seqSink) Close() error { return nil }

// TestExporterSwap: Swap keeps the caller's batch for the sinks and gives
// back a buffer that no queued batch uses: writing into it at once (as the
// shard does) never changes what a sink reads. Two sinks, one slow; the
// sender scribbles over each returned buffer before filling it.
func TestExporterSwap(t *testing.T) {
	a, b := &seqSink{delay: 200 * time.Microsecond}, &seqSink{}
	x := NewExporter(8, true, a, b)
	buf := make([]flowtable.Record, 0, 64)
	var seq uint64
	const batches = 300
	for range batches {
		buf = buf[:cap(buf)]
		for i := range buf {
			buf[i].PacketsTx = seq
			seq++
		}
		spare := x.Swap(buf)
		if cap(spare) < cap(buf) {
			t.Fatalf("spare capacity %d, batch %d", cap(spare), cap(buf))
		}
		if &spare[:1][0] == &buf[0] {
			t.Fatal("Swap gave back the batch it was handed")
		}
		spare = spare[:cap(spare)]
		for i := range spare {
			spare[i].PacketsTx = 1 << 62 // garbage a sink must never see
		}
		buf = spare[:0]
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*seqSink{a, b} {
		if s.bad != 0 || s.next != seq {
			t.Errorf("sink %d: %d records out of sequence, ended at %d, want %d", i, s.bad, s.next, seq)
		}
	}
	if d := x.Dropped(); d != 0 {
		t.Errorf("dropped %d with a blocking exporter", d)
	}
}
