package flowtable

import (
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// The daemon's shapes at its default bound: one shard sized by the budget
// of memory_limit_mb 256 (the live bench's config), driven as
// engine.Worker.HandleBatch and EndBatch drive it: 32 frames at a time in
// three passes (Prefetch, PrefetchEntry, Packet), and every 1024 frames
// (a ring block) Pressure, Expire, the alert feed's ScanChanges and
// EndedProtocols, with ended records copied out as the exporter copies
// them.

// budgetShard returns a shard configured as the daemon's single worker
// with memory_limit_mb 256, whose onEnd copies every ended batch.
func budgetShard(b *testing.B) (*Shard, Config) {
	var cfg Config
	NewBudget(256<<20, 1, true, 0).Apply(&cfg)
	out := make([]Record, 0, EndBatch)
	s, err := New(cfg, func(rs []Record) { out = append(out[:0], rs...) })
	if err != nil {
		b.Fatal(err)
	}
	s.TrackScanChanges() // the alert feed is on
	return s, cfg
}

// benchLive runs ps through s at the bound (prefilled with other flows when
// flood, so that every new flow evicts one) for b.N frames.
func benchLive(b *testing.B, ps []decode.Packet, steady bool) {
	s, cfg := budgetShard(b)
	benchLiveOn(b, s, cfg, ps, steady)
}

// benchLiveOn is benchLive on the budget shard s (of configuration cfg).
func benchLiveOn(b *testing.B, s *Shard, cfg Config, ps []decode.Packet, steady bool) {
	ts := int64(1e9)
	if !steady {
		fill := benchPackets(cfg.MaxFlows, true)
		for i := range fill {
			fill[i].Flow.Dst[1], fill[i].IP[0].Dst[1] = 20, 20 // not the measured flows
			s.Packet(&fill[i], nil, ts)
		}
	} else {
		for i := range ps { // the recurring flows are in
			s.Packet(&ps[i], nil, ts)
		}
	}
	const batch, block = 32, 1024
	var hs [batch]uint32
	var touched uint32
	var changes []SourceStats
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
			ts += 3700 // ~0.27 M frames/s
		}
		if (i+batch)%block == 0 {
			s.Pressure(0)
			s.Expire(ts)
			changes = s.ScanChanges(changes[:0])
			touched += uint32(len(s.EndedProtocols()))
		}
	}
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
	if touched == 1 {
		b.Log("") // keep the loads
	}
}

// BenchmarkLive: "flood" every frame a new flow (random 16-bit host part of
// the source, random ports, TCP SYN and UDP alternately) into the full
// table, each evicting the oldest; "steady" 65,536 recurring TCP and
// 65,536 UDP flows.
func BenchmarkLive(b *testing.B) {
	b.Run("flood", func(b *testing.B) { benchLive(b, benchPackets(1<<20, true), false) })
	b.Run("steady", func(b *testing.B) { benchLive(b, benchPackets(1<<17, false), true) })
}

// BenchmarkHostSnapshot: the sensor's copy of every host (memory_limit_mb
// 256's table full of flood flows: 65,538 hosts, 490,469 open flows), into
// a new slice each time as the worker answers it.
func BenchmarkHostSnapshot(b *testing.B) {
	s, cfg := budgetShard(b)
	fill := benchPackets(cfg.MaxFlows, true)
	for i := range fill {
		s.Packet(&fill[i], nil, 1e9)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if hs := s.HostSnapshot(nil); len(hs) == 0 {
			b.Fatal("no hosts")
		}
	}
}
