package flowtable

import (
	"unsafe"

	"github.com/netsentry/netsentry/decode/app"
)

// Per-entry costs in bytes. TestTableCosts allocates each table full and
// checks the heap's growth against these figures (docs/memory.md).
const (
	// FlowBytes is one flow without detection: its slab entry (expiry-queue
	// links included) and its share of the hash index (a power of two of
	// 64-byte buckets, at least MaxFlows/4: 16 to 32 bytes).
	FlowBytes = EntrySize + 32
	// DetectBytes is one detection state and its free-list entry. A shard
	// holds Config.MaxDetect of them (MaxFlows/2 under a Budget).
	DetectBytes = int(unsafe.Sizeof(app.State{})) + 4
	// HostBytes is one host: its slab entry, its version byte and its share of the host index
	// (a power of two of 64-byte buckets, at least MaxHosts/4 of them: 16 to
	// 32 bytes, 24 stated; the budget counts the index's exact size,
	// hostTableBytes).
	HostBytes = int(unsafe.Sizeof(hostSlot{})) + 1 + 24
	// FragmentBytes is one fragment-table slot; the table is a power of two
	// of slots, at least twice MaxFragments.
	FragmentBytes = int(unsafe.Sizeof(fragSlot{}))
	// RecordBytes is one ended-flow record in a shard's batch or the
	// exporter's queue.
	RecordBytes = int(unsafe.Sizeof(Record{}))
	// EndBatch is how many ended flows a shard hands over at once.
	EndBatch = 256
	// shardFixedBytes covers a shard's small fixed parts: the Shard itself,
	// its protocol table and slice headers.
	shardFixedBytes = 64 << 10
	// HostCopyBytes is what one host costs the sensor's periodic snapshot:
	// the shard's copy and its share of the merged copy. The host share of
	// a budget holds the table and these copies.
	HostCopyBytes = 2 * int(unsafe.Sizeof(HostCounters{}))
	// ScanCopyBytes is the most one scan source costs the periodic snapshot:
	// its exported window (stats, exact ports and hosts, or a sketch per
	// kind) and its merged stats. The scan share holds the tracker and these.
	ScanCopyBytes = int(unsafe.Sizeof(SourceWindow{})) + 2*int(unsafe.Sizeof(SourceStats{})) +
		budgetExactPorts*(4+8) + 2*hllM + 4
	budgetExactPorts = 16
)

// flowTableBytes is the most a shard's flow slab and hash index hold for
// maxFlows flows: the slab's last chunk is cut to what maxFlows leaves, and
// the index is allocated once at its final size.
func flowTableBytes(maxFlows int) int {
	return (maxFlows+1)*EntrySize + int(unsafe.Sizeof(bucket{}))*bucketCount(maxFlows)
}

func detectTableBytes(maxDetect int) int { return maxDetect * DetectBytes }

func hostTableBytes(maxHosts int) int {
	return (maxHosts+1)*(int(unsafe.Sizeof(hostSlot{}))+1) + int(unsafe.Sizeof(hostBucket{}))*hostBuckets(maxHosts)
}

// fragSlots is the size of the fragment table for maxFragments (fragTable.init).
func fragSlots(maxFragments int) int {
	n := 64
	for n < 2*maxFragments {
		n <<= 1
	}
	return n
}

func fragTableBytes(maxFragments int) int { return fragSlots(maxFragments) * FragmentBytes }

// Budget is one memory budget split between the tables of every shard
// (flows, detection states, hosts, fragments, scan tracker, reassembly
// buffers, ended-flow batches) and the exporter's queue of ended flows.
// Every table is allocated at most to the size the budget gives it and
// never doubles past it, so the tables together hold at most TotalBytes,
// whatever the traffic; at their bounds flows are evicted, hosts overflow,
// scan sources are evicted and new flows go without detection, each
// counted in Stats.
//
// Of each shard's share: the reassembly buffers (256, fewer on a small
// share), the ended-flow batch and the fragment table (flows.max_fragments,
// at most a sixteenth) come first; the scan tracker gets a sixteenth (at
// most 65,536 sources), hosts an eighth, and flows, with their detection
// states when detection is on (one per two flows), the rest.
type Budget struct {
	Bytes  int64 // the budget split
	Shards int
	Detect bool
	// Per shard:
	MaxFlows, MaxDetect, MaxHosts, MaxFragments, ReassemblyBuffers int
	Scan                                                           ScanConfig
	// ExportBatches is the depth of the exporter's queue (EndBatch records
	// per batch), for all shards together.
	ExportBatches int
}

// NewBudget splits bytes between the tables of nShards shards; detect says
// whether flows carry detection state, maxFragments is the configured bound
// of each shard's fragment table (0: 8192), which the budget may lower.
func NewBudget(bytes int64, nShards int, detect bool, maxFragments int) Budget {
	nShards = max(nShards, 1)
	if maxFragments <= 0 {
		maxFragments = DefaultConfig().MaxFragments
	}
	b := Budget{Bytes: bytes, Shards: nShards, Detect: detect}
	batch := EndBatch * RecordBytes
	b.ExportBatches = min(max(int(bytes/16)/batch-1-nShards, 4), 1024)
	share := int((bytes - int64(b.ExportBytes())) / int64(nShards))
	rest := share - shardFixedBytes - batch
	b.ReassemblyBuffers = 0
	if detect {
		b.ReassemblyBuffers = min(max(rest/64/app.PoolBytes(1), 16), 256)
		rest -= app.PoolBytes(b.ReassemblyBuffers)
	}
	b.MaxFragments = maxFragments
	for b.MaxFragments > 16 && fragTableBytes(b.MaxFragments) > share/16 {
		b.MaxFragments = fragSlots(b.MaxFragments) / 4 // the next smaller table
	}
	rest -= fragTableBytes(b.MaxFragments)
	b.Scan = ScanConfig{ExactPorts: budgetExactPorts}
	b.Scan.MaxSources = fit(256, scanDefaultSources, func(n int) bool {
		return scanShareBytes(ScanConfig{MaxSources: n, ExactPorts: budgetExactPorts}) <= share/16
	})
	rest -= scanShareBytes(b.Scan)
	b.MaxHosts = fit(1024, 1<<28, func(n int) bool { return hostShareBytes(n) <= share/8 })
	rest -= hostShareBytes(b.MaxHosts)
	b.MaxFlows = fit(1024, 1<<31, func(n int) bool { return b.flowBytes(n) <= rest })
	if detect {
		b.MaxDetect = max(b.MaxFlows/2, 1)
	}
	return b
}

// hostShareBytes is a host table of maxHosts and its snapshot copies.
func hostShareBytes(maxHosts int) int { return hostTableBytes(maxHosts) + maxHosts*HostCopyBytes }

// scanShareBytes is a scan tracker and its snapshot copies.
func scanShareBytes(c ScanConfig) int {
	c = c.withDefaults()
	return c.MaxBytes() + c.MaxSources*ScanCopyBytes
}

func (b Budget) flowBytes(maxFlows int) int {
	n := flowTableBytes(maxFlows)
	if b.Detect {
		n += detectTableBytes(max(maxFlows/2, 1))
	}
	return n
}

// fit returns the largest n in [lo, hi] for which ok holds (ok is monotone),
// or lo when none does.
func fit(lo, hi int, ok func(int) bool) int {
	if !ok(lo) {
		return lo
	}
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if ok(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// ShardBytes is the most one shard's tables, and the copies of its hosts
// and scan sources that the periodic snapshot makes, hold under b.
func (b Budget) ShardBytes() int {
	n := shardFixedBytes + EndBatch*RecordBytes + flowTableBytes(b.MaxFlows) +
		hostShareBytes(b.MaxHosts) + fragTableBytes(b.MaxFragments) + scanShareBytes(b.Scan)
	if b.Detect {
		n += detectTableBytes(b.MaxDetect) + app.PoolBytes(b.ReassemblyBuffers)
	}
	return n
}

// ExportBytes is the most the exporter's batches hold: engine.Exporter makes
// a new batch only when its free list is empty, so every batch is then in
// the queue, with the writer, or being filled by one of the shards.
func (b Budget) ExportBytes() int {
	return (b.ExportBatches + 1 + b.Shards) * EndBatch * RecordBytes
}

// TotalBytes is the most all tables and the exporter's queue hold together.
func (b Budget) TotalBytes() int64 {
	return int64(b.Shards)*int64(b.ShardBytes()) + int64(b.ExportBytes())
}

// Apply sets the bounds of c from b (c's timeouts and detection choices are
// kept; Detect is b's).
func (b Budget) Apply(c *Config) {
	c.MaxFlows, c.MaxHosts, c.MaxFragments = b.MaxFlows, b.MaxHosts, b.MaxFragments
	c.Detect, c.MaxDetect = b.Detect, b.MaxDetect
	c.ReassemblyBuffers = max(b.ReassemblyBuffers, 1)
	c.Scan.MaxSources, c.Scan.ExactPorts = b.Scan.MaxSources, b.Scan.ExactPorts
}

// PerFlowBytes is what one more flow slot costs under b: FlowBytes, plus
// half a DetectBytes with detection (the budget keeps one detection state
// per two flows).
func (b Budget) PerFlowBytes() int {
	if b.Detect {
		return FlowBytes + DetectBytes/2
	}
	return FlowBytes
}
