package flowtable

import (
	"testing"
	"unsafe"
)

// TestDetectSlabLines checks that every detection state of a shard's slab
// starts on a cache line (app.State is a whole number of lines, the
// TestStateLayout of decode/app), so a DNS message of an open flow touches
// one line of its state, for a small table and the budget's chunks.
func TestDetectSlabLines(t *testing.T) {
	for _, n := range []int{1, 3, 70, chunkSize + 5} {
		cfg := DefaultConfig()
		cfg.Detect, cfg.MaxFlows, cfg.MaxDetect = true, n, n
		s, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		var e entry
		for i := range n {
			if !s.takeApp(&e) {
				t.Fatalf("max %d: state %d not taken", n, i)
			}
			if a := uintptr(unsafe.Pointer(s.app(e.det))); a%64 != 0 {
				t.Fatalf("max %d: state %d at %#x, not on a cache line", n, i, a)
			}
		}
	}
}
