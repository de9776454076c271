package flowtable

import (
	"syscall"
	"unsafe"
)

// hugePages asks the kernel to back the n bytes at p with transparent huge
// pages (madvise MADV_HUGEPAGE; with the common THP setting "madvise"
// nothing else gets them). The flow, host and scan tables are read at
// random: with 4 KiB pages nearly every access of a large table also misses
// the TLB, and a page walk (in a VM a nested one) costs as much as the miss
// itself. Call it on a table just allocated, before it is written, so that
// its pages are faulted in huge. Only the 2 MiB pages wholly inside the
// range are affected; an error (no THP, a kernel that refuses) is ignored:
// the table works the same on small pages.
func hugePages(p unsafe.Pointer, n uintptr) {
	const huge = 2 << 20
	if n < huge {
		return
	}
	lo := (uintptr(p) + huge - 1) &^ (huge - 1)
	hi := (uintptr(p) + n) &^ (huge - 1)
	if hi <= lo {
		return
	}
	syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_HUGEPAGE)
}

// hugeSlice is hugePages for a slice's backing array.
func hugeSlice[T any](s []T) {
	if len(s) > 0 {
		hugePages(unsafe.Pointer(&s[0]), uintptr(len(s))*unsafe.Sizeof(s[0]))
	}
}
