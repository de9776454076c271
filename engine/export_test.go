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
