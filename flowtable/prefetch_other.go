//go:build !amd64 && !arm64

package flowtable

// prefetch does nothing where there is no prefetch instruction wrapper:
// the batch passes then only compute what they compute.
func prefetch(addr uintptr) {}
