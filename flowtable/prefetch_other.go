//go:build !amd64 && !arm64

package flowtable

// prefetch does nothing where there is no prefetch instruction wrapper:
// the batch passes then only compute what they compute.
func prefetch(addr uintptr) {}

func prefetch3(a, b, c uintptr) {}

func prefetch4(a, b, c, d uintptr) {}
