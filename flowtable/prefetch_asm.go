//go:build amd64 || arm64

package flowtable

// prefetch asks the CPU to bring the cache line at addr in, without waiting
// for it (PREFETCHT0, PRFM PLDL1KEEP): the batch passes (Shard.Prefetch,
// Shard.PrefetchEntry) start the misses of 32 frames at once instead of
// stalling on each. It never faults, whatever addr is.
//
//go:noescape
func prefetch(addr uintptr)
