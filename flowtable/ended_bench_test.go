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
	ps := benchPackets(1<<20, true)
	ts := int64(1e9)
	fill := benchPackets(cfg.MaxFlows, true)
	for i := range fill {
		fill[i].Flow.Dst[1], fill[i].IP[0].Dst[1] = 20, 20 // not the measured flows
		s.Packet(&fill[i], nil, ts)
	}
	const batch, block = 32, 1024
	var hs [batch]uint32
	var touched uint32
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNanos()
	for i := 0; i < b.N; i += batch {
		k := i % len(ps)
		n := min(batch, len(ps)-k, b.N-i)
		for j := range n {
			h, v := s.Prefetch(&ps[k+j])
			hs[j] = h
			touched += v
		}
		for j := range n {
			touched += s.PrefetchEntry(&ps[k+j], hs[j])
		}
		for j := range n {
			s.Packet(&ps[k+j], nil, ts)
			ts += 3700
		}
		if (i+batch)%block == 0 {
			s.Pressure(0)
			s.Expire(ts)
			touched += uint32(len(s.EndedProtocols()))
		}
	}
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
	if touched == 1 || ended == 0 {
		b.Log("") // keep the loads
	}
}
