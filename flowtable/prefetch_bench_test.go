package flowtable

import (
	"testing"
	"unsafe"
)

var prefetchBuf [1 << 12]byte

// BenchmarkPrefetch: the cost of asking for 4 cached lines, in four calls
// of prefetch ("1x4") or one of prefetch4 ("4x1"), beside the loop alone.
func BenchmarkPrefetch(b *testing.B) {
	p := uintptr(unsafe.Pointer(&prefetchBuf[0]))
	b.Run("none", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p ^= uintptr(i & 64)
		}
	})
	b.Run("1x4", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			q := p + uintptr(i&64)
			prefetch(q)
			prefetch(q + 128)
			prefetch(q + 256)
			prefetch(q + 384)
		}
	})
	b.Run("4x1", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			q := p + uintptr(i&64)
			prefetch4(q, q+128, q+256, q+384)
		}
	})
}
