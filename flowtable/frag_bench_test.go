package flowtable

import (
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// BenchmarkFragments: datagrams of a tiny first fragment and the rest, out
// of order, and of two overlapping fragments, per frame.
func BenchmarkFragments(b *testing.B) {
	s, _ := New(Config{}, nil)
	syn := synSegment()
	data := make([]byte, 100)
	var frames [][]byte
	for id := uint32(1); id <= 1024; id++ {
		frames = append(frames,
			fragFrame(id%2 == 0, id, 8, false, syn[8:]), fragFrame(id%2 == 0, id, 0, true, syn[:8]),
			fragFrame(id%2 == 0, id+4096, 0, true, append(syn[:20:20], data[:44]...)), fragFrame(id%2 == 0, id+4096, 40, false, data))
	}
	ps := make([]decode.Packet, len(frames))
	for i, f := range frames {
		decode.Parse(f, uint32(len(f)), decode.LinkRaw, &ps[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(frames)
		s.Packet(&ps[j], frames[j], int64(i))
	}
}
