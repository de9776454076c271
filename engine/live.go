package engine

import (
	"errors"

	"github.com/netsentry/netsentry/flowtable"
)

// ErrNotSupported is returned by NewLive where live capture is not built
// (any OS but Linux).
var ErrNotSupported = errors.New("live capture is not supported on this platform")

// LiveConfig configures a live capture.
type LiveConfig struct {
	// Interfaces to capture on, all at once. Each gets Queues sockets in a
	// fan-out group; worker q reads queue q of every interface.
	Interfaces []string
	// Queues is the number of queues and workers; 0 = one per CPU the
	// process may run on.
	Queues int
	// CPUs lists the CPUs workers are pinned to (worker q on
	// CPUs[q%len(CPUs)]); empty = the CPUs the process may run on. A CPU
	// outside that set is an error.
	CPUs []int
	// Snaplen is the number of bytes kept of each frame (64 to 262144).
	Snaplen int
	// Filter is a tcpdump filter expression; empty captures everything.
	Filter string
	// RingMB is the ring memory of all queues of all interfaces together, MiB.
	RingMB int
	// BatchSize sizes the ring blocks (about that many mixed-size frames per block).
	BatchSize int
	// RetireMs is the block retire timeout: a partly filled block reaches
	// the worker after this (0: 50 ms).
	RetireMs int
	// Promisc puts the interfaces in promiscuous mode while capturing.
	Promisc bool
	// FanoutHash uses the kernel's PACKET_FANOUT_HASH instead of the eBPF
	// program (which is also the fallback when the program cannot load).
	FanoutHash bool
	// NewShard returns the flow-table shard of queue q; it is called once per
	// queue by NewLive.
	NewShard func(q int) (*flowtable.Shard, error)
	// Logf, if not nil, receives the few events worth a log line: the fan-out
	// fallback, an interface going down or coming back. Never per packet.
	Logf func(format string, args ...any)
}

// QueueStats are one queue's counters, summed over its interfaces. Packets
// and Bytes are frames the worker took from the ring; the Kernel fields are
// PACKET_STATISTICS, accumulated (the kernel resets them on each read):
// KernelPackets counts every frame the filter passed to the socket, the
// dropped ones included, KernelDrops the frames lost because the ring was
// full, Freezes the times the ring was full.
//
// While the capture runs the kernel figures are up to a second old. After
// Run returned, KernelPackets = Packets + KernelDrops exactly: the sockets
// stopped taking frames before their rings were walked for the last time
// and their statistics read (an interface removed while capturing, whose
// socket was re-opened, is the exception: its old ring is not walked).
type QueueStats struct {
	Queue         int
	CPU           int
	Packets       uint64
	Bytes         uint64
	KernelPackets uint64
	KernelDrops   uint64
	Freezes       uint64
	LinkDowns     uint64 // times an interface went down under this queue
	Reattached    uint64 // times a socket was re-opened on a re-created interface
}

// TotalStats sums per-queue stats (Queue and CPU are -1).
func TotalStats(qs []QueueStats) QueueStats {
	t := QueueStats{Queue: -1, CPU: -1}
	for _, q := range qs {
		t.Packets += q.Packets
		t.Bytes += q.Bytes
		t.KernelPackets += q.KernelPackets
		t.KernelDrops += q.KernelDrops
		t.Freezes += q.Freezes
		t.LinkDowns += q.LinkDowns
		t.Reattached += q.Reattached
	}
	return t
}
