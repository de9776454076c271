package bpf

import (
	"fmt"
)

// Fanout is the loaded fan-out program for one fan-out group.
type Fanout struct {
	objs fanoutObjects
	n    int
}

// LoadFanout loads the fan-out program for a group of nqueues queues.
func LoadFanout(nqueues int) (*Fanout, error) {
	if nqueues < 1 {
		return nil, fmt.Errorf("load fanout program: %d queues", nqueues)
	}
	spec, err := loadFanout()
	if err != nil {
		return nil, fmt.Errorf("load fanout spec: %w", err)
	}
	if err := spec.Variables[fanoutVarNqueues].Set(uint32(nqueues)); err != nil {
		return nil, fmt.Errorf("set fanout queue count: %w", err)
	}
	f := &Fanout{n: nqueues}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("load fanout program: %w", err)
	}
	return f, nil
}

// FD is the program's file descriptor, for setsockopt(PACKET_FANOUT_DATA).
func (f *Fanout) FD() int { return f.objs.Fanout.FD() }

// Queues is the number of queues the program spreads frames over.
func (f *Fanout) Queues() int { return f.n }

// Queue runs the program on one Ethernet frame (BPF_PROG_TEST_RUN) and
// returns the queue it picks. It is for tests and diagnostics: a syscall
// per call.
func (f *Fanout) Queue(frame []byte) (int, error) {
	ret, _, err := f.objs.Fanout.Test(frame)
	if err != nil {
		return 0, fmt.Errorf("run fanout program: %w", err)
	}
	return int(ret), nil
}

// Close releases the program and its map.
func (f *Fanout) Close() error {
	if err := f.objs.Close(); err != nil {
		return fmt.Errorf("close fanout program: %w", err)
	}
	return nil
}
