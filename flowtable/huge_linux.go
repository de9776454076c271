package flowtable

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks for transparent huge pages under the whole 2 MiB pages of
// the size bytes at p (a large table on the Go heap, not yet touched): a
// flow index probed at random costs a TLB miss per lookup on 4 KiB pages,
// and a page fault per first touch. Advice only: with THP off, or memory
// the runtime already used, nothing changes.
func adviseHuge(p unsafe.Pointer, size uintptr) {
	const huge = 2 << 20
	lo := (uintptr(p) + huge - 1) &^ (huge - 1)
	hi := (uintptr(p) + size) &^ (huge - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, lo-uintptr(p))), hi-lo), unix.MADV_HUGEPAGE)
}
