package flowtable

import "unsafe"

// hugeSlice is adviseHuge for a slice's backing array (huge_linux.go): call
// it on a large table just allocated, before it is written.
func hugeSlice[T any](s []T) {
	if len(s) > 0 {
		adviseHuge(unsafe.Pointer(&s[0]), uintptr(len(s))*unsafe.Sizeof(s[0]))
	}
}
