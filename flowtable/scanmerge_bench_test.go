package flowtable

import (
	"encoding/binary"
	"testing"
)

// benchScanShards returns n trackers (the shard defaults: 8192 sources, 16
// exact entries) full of sources, each source's connections spread over all
// of them, one in 8 sources scanning 200 ports.
func benchScanShards(n int) []*ScanTracker {
	trs := make([]*ScanTracker, n)
	for i := range trs {
		trs[i] = NewScanTracker(ScanConfig{MaxSources: 8192, ExactPorts: 16, Seed: 9})
	}
	dst, _ := addr("10.0.0.1")
	for s := range 8000 {
		src, _ := addr("10.0.0.0")
		binary.BigEndian.PutUint32(src[:4], 0x0a100000+uint32(s))
		ports := 4
		if s%8 == 0 {
			ports = 200
		}
		for p := range ports {
			trs[p%n].Connection(&src, 4, &dst, uint16(p), 6, scanT0)
		}
	}
	return trs
}

func BenchmarkScanExport(b *testing.B) {
	tr := benchScanShards(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		tr.Export(scanT0, nil)
	}
}

func BenchmarkMergeSources4(b *testing.B) {
	trs := benchScanShards(4)
	parts := make([][]SourceWindow, len(trs))
	for i, tr := range trs {
		parts[i] = tr.Export(scanT0, nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		MergeSources(parts...)
	}
}
