//go:build !linux

package flowtable

// hugeSlice does nothing off Linux (see huge_linux.go).
func hugeSlice[T any](s []T) {}
