//go:build !(cgo && (linux || darwin || freebsd))

package bpf

import "fmt"

// CompileFilter needs libpcap, hence cgo; this build has none.
func CompileFilter(expr string, link uint16, snaplen int) ([]Instruction, error) {
	return nil, fmt.Errorf("compile filter %q: built without cgo, no libpcap compiler: %w", expr, ErrNotSupported)
}
