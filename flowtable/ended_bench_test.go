package flowtable

import "testing"

// BenchmarkFloodSwap is BenchmarkLive's flood with the ended flows handed
// over as the daemon's exporter takes them (SetEndSwap): each full batch
// kept, the shard going on in a buffer the sinks finished with, one of 16
// in turn (4.7 MiB: the lines of a record the shard writes are cold, as in
// the daemon, where the sinks read them on another core).
func BenchmarkFloodSwap(b *testing.B) {
	s, cfg := budgetShard(b)
	bufs := make([][]Record, 16)
	for i := range bufs {
		bufs[i] = make([]Record, 0, s.EndBuffer())
	}
	next := 0
	var ended int
	s.SetEndSwap(func(rs []Record) []Record {
		ended += len(rs)
		bufs[next] = rs
		next = (next + 1) % len(bufs)
		return bufs[next][:0]
	})
	benchLiveOn(b, s, cfg, benchPackets(1<<20, true), false)
	b.ReportMetric(float64(ended)/float64(b.N), "handed-over/op")
}
