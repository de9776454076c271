//go:build !linux

package bpf

// Fanout is the loaded fan-out program; eBPF needs Linux.
type Fanout struct{}

// LoadFanout returns ErrNotSupported on this OS.
func LoadFanout(nqueues int) (*Fanout, error) { return nil, ErrNotSupported }

// FD returns -1.
func (f *Fanout) FD() int { return -1 }

// Queues returns 0.
func (f *Fanout) Queues() int { return 0 }

// Queue returns ErrNotSupported.
func (f *Fanout) Queue(frame []byte) (int, error) { return 0, ErrNotSupported }

// Close does nothing.
func (f *Fanout) Close() error { return nil }
