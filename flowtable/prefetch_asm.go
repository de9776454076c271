//go:build amd64 || arm64

package flowtable

// prefetch asks the CPU to bring the cache line at addr in, without waiting
// for it (PREFETCHT0, PRFM PLDL1KEEP): the batch passes (Shard.Prefetch,
// Shard.PrefetchEntry) start the misses of 32 frames at once instead of
// stalling on each. It never faults, whatever addr is.
//
//go:noescape
func prefetch(addr uintptr)

// prefetch3 and prefetch4 are prefetch of three and four lines in one
// call: an assembly call is not inlined, and costs about 1.7 ns beside
// about 1 ns per line (BenchmarkPrefetch, 2026-12: four calls 9.5 ns, one
// call of four lines 4.3 ns), so the lines one step needs go in one call.
//
//go:noescape
func prefetch3(a, b, c uintptr)

//go:noescape
func prefetch4(a, b, c, d uintptr)
