package flowtable

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendRFC3339Nano compares the fast formatter with package time's
// RFC3339Nano on edge instants and a million random ones across the whole
// int64 range.
func TestAppendRFC3339Nano(t *testing.T) {
	edges := []int64{0, 1, -1, 999999999, 1e9, -1e9, 1e9 + 500, 951782400e9, 951868800e9 - 1, // leap day 2000
		1<<63 - 1, -1 << 63, -1<<63 + 1, 1767225600e9 + 120e6, 4107542400e9 + 1000, -2208988800e9} // 1900
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1_000_000; i++ {
		edges = append(edges, int64(r.Uint64()))
	}
	for _, ns := range edges {
		want := time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
		if got := string(AppendRFC3339Nano(nil, ns)); got != want {
			t.Fatalf("AppendRFC3339Nano(%d) = %q, time formats %q", ns, got, want)
		}
	}
}

func FuzzAppendRFC3339Nano(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(-1 << 63))
	f.Fuzz(func(t *testing.T, ns int64) {
		want := time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
		if got := string(AppendRFC3339Nano(nil, ns)); got != want {
			t.Fatalf("AppendRFC3339Nano(%d) = %q, time formats %q", ns, got, want)
		}
	})
}

func BenchmarkAppendRFC3339Nano(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.Run("fast", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			buf = AppendRFC3339Nano(buf[:0], 1767225600e9+int64(i)*1234567)
		}
	})
	b.Run("time", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			buf = time.Unix(0, 1767225600e9+int64(i)*1234567).UTC().AppendFormat(buf[:0], time.RFC3339Nano)
		}
	})
}
