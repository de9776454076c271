package flowtable

import (
	"math/rand/v2"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// BenchmarkScanFlood is the scan tracker alone under bench-live's flood:
// every connection from a random 16-bit host part of 198.18.0.0/16 to
// random ports of 198.19.0.1, TCP and UDP alternately, ~0.27 M
// connections/s, into the tracker memory_limit_mb 256 gives one shard
// (6,734 sources, 16 exact entries: 65,536 sources churn through it, so
// nearly every connection evicts one). "direct": Connection per
// connection; "shard": through a shard's deferred batch (scanPending) as
// the flow table feeds it.
func BenchmarkScanFlood(b *testing.B) {
	var cfg Config
	NewBudget(256<<20, 1, true, 0).Apply(&cfg)
	const n = 1 << 20
	r := rand.New(rand.NewPCG(1, 2))
	srcs := make([]decode.Addr, n)
	ports := make([]uint16, n)
	for i := range srcs {
		srcs[i] = decode.Addr{198, 18, byte(r.Uint32()), byte(r.Uint32())}
		ports[i] = uint16(r.Uint32())
	}
	dst := decode.Addr{198, 19, 0, 1}
	tr := NewScanTracker(cfg.Scan)
	ts := scanT0
	conn := func(i int) {
		ts += 3700
		tr.Connection(&srcs[i%n], 4, &dst, ports[i%n], 6+11*uint8(i&1), ts)
	}
	for i := range n / 4 {
		conn(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNanos()
	for i := range b.N {
		conn(i)
	}
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
	if st := tr.Stats(); st.Evicted == 0 {
		b.Fatalf("stats %+v: no churn", st)
	}
}
