package engine

import (
	"testing"

	"github.com/netsentry/netsentry/flowtable"
)

// BenchmarkFloodWorkerSwap is BenchmarkFloodWorker with the ended flows
// handed over as the daemon's exporter takes them (Shard.SetEndSwap): each
// full batch kept, the shard going on in a buffer the sinks finished
// with, one of 16 in turn, so that the lines of a record the shard writes
// are cold as in the daemon (where the sinks read them on another core),
// not the same hot buffer each time.
func BenchmarkFloodWorkerSwap(b *testing.B) {
	r := newWorkerBench(b, floodFrames(1<<20))
	bufs := make([][]flowtable.Record, 16)
	for i := range bufs {
		bufs[i] = make([]flowtable.Record, 0, r.sh.EndBuffer())
	}
	next := 0
	r.sh.SetEndSwap(func(rs []flowtable.Record) []flowtable.Record {
		bufs[next] = rs
		next = (next + 1) % len(bufs)
		return bufs[next][:0]
	})
	r.pass(r.cfg.MaxFlows+r.cfg.MaxFlows/2, false)
	if st := r.sh.Stats(); st.FlowsEvicted == 0 {
		b.Fatalf("no eviction while warming: %+v", st)
	}
	r.measure(b)
}
