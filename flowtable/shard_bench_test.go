package flowtable

import (
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// benchPackets returns n decoded 64-byte frames (60 on the wire) of the
// bench-live shapes: flood (every frame a new 5-tuple: a random 16-bit host
// part of the source in 198.18.0.0/16, random ports, TCP SYNs and UDP
// alternately) or steady (tuples recurring 65,536 per protocol).
func benchPackets(n int, flood bool) []decode.Packet {
	r := rand.New(rand.NewPCG(1, 2))
	ps := make([]decode.Packet, n)
	for i := range ps {
		p := &ps[i]
		src := decode.Addr{198, 18}
		dst := decode.Addr{198, 19, 0, 1}
		var sp, dp uint16
		if flood {
			src[2], src[3] = byte(r.Uint32()), byte(r.Uint32())
			sp, dp = uint16(r.Uint32()), uint16(r.Uint32())
		} else {
			src[2], src[3] = 0, 1
			sp, dp = uint16(i/2), 443
		}
		proto, flags := uint8(6), uint8(decode.TCPSyn)
		if !flood {
			flags = decode.TCPAck
		}
		if i%2 == 1 {
			proto, flags = 17, 0
		}
		*p = decode.Packet{WireLen: 60, HasFlow: true, TCPFlags: flags, NumIP: 1}
		p.Flow = decode.Tuple{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Proto: proto, IPVersion: 4}
		p.IP[0] = decode.IPLayer{Src: src, Dst: dst, IPVersion: 4}
		p.IPLen[0] = 46
	}
	return ps
}

// benchShard runs the packets through a shard with detection on (the
// daemon's default) and maxFlows slots; prefill fills the table with other
// flows first, so that every new flow evicts one.
func benchShard(b *testing.B, ps []decode.Packet, maxFlows int, prefill bool) {
	benchShardBatch(b, ps, maxFlows, prefill, 1)
}

// benchShardBatch is benchShard with the packets handed over batch at a
// time in engine.Worker.HandleBatch's passes (Prefetch, PrefetchEntry,
// Packet); batch 1 is frame by frame.
func benchShardBatch(b *testing.B, ps []decode.Packet, maxFlows int, prefill bool, batch int) {
	cfg := Config{MaxFlows: maxFlows, Detect: true, MaxHosts: 1 << 17}
	s, err := New(cfg, func([]Record) {})
	if err != nil {
		b.Fatal(err)
	}
	if prefill {
		fill := benchPackets(maxFlows, true)
		for i := range fill {
			fill[i].Flow.Dst[1], fill[i].IP[0].Dst[1] = 20, 20 // not the measured flows
			s.Packet(&fill[i], nil, 1)
		}
	}
	if !flood(ps) {
		for i := range ps { // warm up: the recurring flows are in
			s.Packet(&ps[i], nil, 1)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNanos()
	ts := int64(2)
	var hs [64]uint32
	var touched uint32
	for i := 0; i < b.N; i++ {
		k := i % len(ps)
		if batch > 1 && k%batch == 0 && k+batch <= len(ps) {
			for j := range batch {
				h, v := s.Prefetch(&ps[k+j])
				hs[j] = h
				touched += v
			}
			for j := range batch {
				touched += s.PrefetchEntry(&ps[k+j], hs[j])
			}
		}
		s.Packet(&ps[k], nil, ts)
		if k == len(ps)-1 {
			ts++
			if !prefill && s.Stats().Active > maxFlows-len(ps) {
				b.StopTimer()
				s, _ = New(cfg, func([]Record) {})
				b.StartTimer()
			}
		}
		if i&1023 == 1023 {
			s.Expire(ts)
		}
	}
	if touched == 1 {
		b.Log("") // keep the loads
	}
	// CPU time rather than wall time: the machines are shared.
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNanos returns the process's user and system CPU time.
func cpuNanos() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkFlood: every packet a new flow, into a table with room ("room":
// 2^21 slots, renewed before it fills) and into a full one ("full": 2^17
// slots, every new flow evicts the oldest).
func BenchmarkFlood(b *testing.B) {
	ps := benchPackets(1<<20, true)
	b.Run("room", func(b *testing.B) { benchShard(b, ps, 1<<21, false) })
	b.Run("full", func(b *testing.B) { benchShard(b, ps, 1<<17, true) })
	b.Run("room-batch32", func(b *testing.B) { benchShardBatch(b, ps, 1<<21, false, 32) })
	b.Run("full-batch32", func(b *testing.B) { benchShardBatch(b, ps, 1<<17, true, 32) })
}

// BenchmarkSteady: 65,536 recurring TCP and 65,536 UDP flows, alone in a
// table of 2^20 slots ("room") or among idle flows that fill a table of
// 2^18 ("full").
func BenchmarkSteady(b *testing.B) {
	ps := benchPackets(1<<17, false)
	b.Run("room", func(b *testing.B) { benchShard(b, ps, 1<<20, false) })
	b.Run("full", func(b *testing.B) { benchShard(b, ps, 1<<18, true) })
	b.Run("room-batch32", func(b *testing.B) { benchShardBatch(b, ps, 1<<20, false, 32) })
	b.Run("full-batch32", func(b *testing.B) { benchShardBatch(b, ps, 1<<18, true, 32) })
}

func flood(ps []decode.Packet) bool { return ps[0].Flow.SrcPort != ps[2].Flow.SrcPort-1 }
