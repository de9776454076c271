//go:build !linux

package flowtable

import "unsafe"

func adviseHuge(p unsafe.Pointer, size uintptr) {}
