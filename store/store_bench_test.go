package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// BenchmarkAppend1000 appends ticks of 1000 generated series.
func BenchmarkAppend1000(b *testing.B) {
	s := openMem(b, vfs.NewMem(), Options{})
	defer s.Close()
	const n = 1000
	gens := make([]*genSeries, n)
	for i := range gens {
		gens[i] = newGen(1, i)
	}
	smp := make([]Sample, n)
	b.ReportAllocs()
	b.ResetTimer()
	for j := 0; j < b.N; j++ {
		for i, g := range gens {
			smp[i] = Sample{Name: g.name, Labels: g.labels, Value: g.next()}
		}
		if err := s.Append(t0.Add(time.Duration(j)*DefaultInterval), smp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
}

// BenchmarkPoints24h reads 24 h of one series at 5 s (17280 samples) out of
// 100 series; the target is under 10 ms.
func BenchmarkPoints24h(b *testing.B) {
	s := openMem(b, vfs.NewMem(), Options{})
	defer s.Close()
	ticks := int(25 * time.Hour / DefaultInterval)
	ingest(b, s, 100, ticks, t0, DefaultInterval, 2)
	mint, maxt := t0.Add(time.Hour).UnixMilli(), t0.Add(25*time.Hour).UnixMilli()-1
	var pts []Point
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		pts, err = s.Points(uint64(i%100)+1, mint, maxt, pts[:0])
		if err != nil || len(pts) != 17280 {
			b.Fatalf("%d points, %v", len(pts), err)
		}
	}
}

// BenchmarkRollup30d reads the hour rollups of 30 days of one series at 5 s
// (518,400 samples, 720 buckets) out of 10 generated series.
func BenchmarkRollup30d(b *testing.B) {
	s := openMem(b, vfs.NewMem(), Options{})
	defer s.Close()
	ticks := int(30 * 24 * time.Hour / DefaultInterval)
	ingest(b, s, 10, ticks, t0, DefaultInterval, 2)
	mint, maxt := t0.UnixMilli(), t0.Add(30*24*time.Hour).UnixMilli()-1
	var aggs []Aggregate
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		aggs, err = s.Rollup(uint64(i%10)+1, time.Hour, mint, maxt, aggs[:0])
		if err != nil || len(aggs) != 720 {
			b.Fatalf("%d buckets, %v", len(aggs), err)
		}
	}
}
