package bpf

import "errors"

// ErrNotSupported is returned where the OS or the build cannot do what is asked
// (eBPF off Linux, filter compilation without cgo).
var ErrNotSupported = errors.New("not supported on this platform")
