package flowtable

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"time"
	"unsafe"

	"github.com/netsentry/netsentry/decode"
)

// ScanConfig bounds a ScanTracker. Zero fields take their defaults.
type ScanConfig struct {
	// Window is the sliding window the counts cover (default 60 s, the
	// product description's port-scan rule).
	Window time.Duration
	// MaxSources bounds the source addresses tracked at once (default 65536).
	MaxSources int
	// ExactPorts is how many distinct destination ports, and separately
	// hosts, a source is tracked exactly for before it switches to a
	// HyperLogLog sketch (default 64, at most 4096).
	ExactPorts int
	// Seed is the hash seed of addresses and ports. Trackers whose windows
	// are merged (MergeSources) must share it; zero takes the process's
	// seed, drawn at random once per process (ProcessScanSeed), so every
	// shard of a sensor can merge with the others and hash floods still
	// cannot be precomputed.
	Seed uint64
}

// Scan tracker defaults and fixed shapes.
const (
	scanDefaultWindow  = 60 * time.Second
	scanDefaultSources = 65536
	scanDefaultExact   = 64
	scanMaxExact       = 4096
	scanMaxSources     = 1 << 28

	scanBuckets = 6               // buckets per Window
	scanSlots   = scanBuckets + 1 // plus the bucket that straddles now-Window
	scanSample  = 8               // random candidates per eviction
	// scanOpenShare: sources past probation may hold all but 1/scanOpenShare
	// of the table before they are evicted by sampled LRU, so that new
	// sources always have room to make a second connection.
	scanOpenShare = 4

	scanChunkBits = 9 // 512 slots: the slab's arrays are whole pages
	scanChunkSize = 1 << scanChunkBits
	scanChunkMask = scanChunkSize - 1

	scanSketchBlock = 64 // sketch sets per allocation: 224 KiB, whole pages

	kindPorts = 0
	kindHosts = 1
	scanKinds = 2

	scanNoEpoch = math.MinInt64
)

func (c ScanConfig) withDefaults() ScanConfig {
	if c.Window <= 0 {
		c.Window = scanDefaultWindow
	}
	if c.MaxSources <= 0 {
		c.MaxSources = scanDefaultSources
	}
	c.MaxSources = min(c.MaxSources, scanMaxSources)
	if c.ExactPorts <= 0 {
		c.ExactPorts = scanDefaultExact
	}
	c.ExactPorts = min(c.ExactPorts, scanMaxExact)
	return c
}

// scanMaxSketches is the size of the sketch pool: one sketch set per kind
// (ports, hosts) for MaxSources/16 sources, and at least two sets so that a
// source can always hold both.
func scanMaxSketches(maxSources int) int { return max(2, maxSources/8) }

// scanIndexSize is the final size of the open-addressing index: a power of
// two at least twice MaxSources.
func scanIndexSize(maxSources int) int {
	n := 1024
	for n < 2*maxSources {
		n *= 2
	}
	return n
}

// MaxBytes is the most memory a ScanTracker with this configuration holds,
// however many sources it sees:
//
//	MaxSources × (152 + 12 × ExactPorts + 56)   source slots, exact entries, Top's scratch
//	+ 8 × 2^⌈log2(2 × MaxSources)⌉              index (at least 8 KiB)
//	+ max(2, MaxSources/8) × (3,584 + 8)         HyperLogLog sets (7 buckets × 512 registers), owners, free list
//	+ 120 per 512 sources + 24 per 64 sets + 808 slab headers, the tracker
//
// With the defaults (65536 sources, 64 exact entries) that is 61.0 MiB for the
// sources, 1.0 MiB for the index and 28.1 MiB for the sketches: 90.1 MiB
// (94,453,568 bytes) per tracker; with MaxSources 4096, 5.6 MiB. The large
// arrays are whole pages at these settings, so the allocator adds little.
// Memory is taken as sources arrive (the index, 16 to 32 bytes per source, at
// once: no doubling), so a quiet shard holds little.
func (c ScanConfig) MaxBytes() int {
	c = c.withDefaults()
	chunks := (c.MaxSources + scanChunkSize - 1) / scanChunkSize
	perSource := int(unsafe.Sizeof(scanSource{})) + 8 + c.ExactPorts*(4+8) + int(unsafe.Sizeof(SourceStats{}))
	sketches := scanMaxSketches(c.MaxSources)
	blocks := (sketches + scanSketchBlock - 1) / scanSketchBlock
	return c.MaxSources*perSource +
		8*scanIndexSize(c.MaxSources) +
		sketches*(int(unsafe.Sizeof(scanSketch{}))+4+4) + // the set, its owner, its free-list entry
		blocks*int(unsafe.Sizeof([]scanSketch{})) +
		chunks*int(unsafe.Sizeof(scanChunk{})) +
		int(unsafe.Sizeof(ScanTracker{}))
}

// SourceStats are one source address's counts over a window: connections it
// started, and the distinct destination ports and hosts they went to.
type SourceStats struct {
	Addr          decode.Addr
	IPVersion     uint8
	Connections   uint64
	DistinctPorts uint64
	DistinctHosts uint64
	// Approximate reports that DistinctPorts or DistinctHosts (or both) is a
	// HyperLogLog estimate, with a relative standard error of 4.6 %.
	Approximate bool
}

// ScanStats describe a ScanTracker's occupancy.
type ScanStats struct {
	// Sources is the number of source addresses held, including ones whose
	// window has emptied but that were not evicted yet.
	Sources int
	// Evicted counts sources dropped to make room: for a new source at
	// MaxSources, or to free a sketch (Recycled).
	Evicted uint64
	// Recycled counts the evictions that freed a HyperLogLog sketch for another
	// source when the sketch pool was exhausted.
	Recycled uint64
	// Approximate is the number of sources counting with sketches.
	Approximate int
}

// scanSource is one source's state, in a slab slot that never moves.
type scanSource struct {
	addr   decode.Addr
	lastEp int64             // bucket epoch of the last connection
	epochs [scanSlots]int64  // epoch each ring slot counts, scanNoEpoch when none
	conns  [scanSlots]uint32 // connections started per ring slot
	hash   uint32            // index hash of (addr, v)
	next   uint32            // free-list link (slot+1) while v == 0
	sketch [scanKinds]uint32 // sketch set number+1 per kind; 0: exact
	n      [scanKinds]uint16 // exact entries in use per kind
	mark   uint32            // scanChanges' mark (scanfeed.go): generation<<13 | list index+1
	// qprev, qnext link a source on probation (one connection so far) in
	// the probation queue, oldest first (slot+1, 0 at the ends).
	qprev, qnext uint32
	v            uint8 // IP version; 0 marks a free slot
	onProbation  bool
	_            [1]byte // to 144 bytes: a chunk's 512 slots are whole pages
}

// scanChunk holds scanChunkSize slots, their last activity (apart, so that
// eviction samples a compact array) and their exact entries: per slot,
// ExactPorts ports and ExactPorts hosts, each packed with the low byte of the
// bucket it was last seen in: (protocol<<16 | port)<<8 | bucket, and the
// host's 64-bit hash with its low byte replaced by the bucket.
type scanChunk struct {
	src   []scanSource
	last  []int64 // packet time of each slot's last connection
	ports []uint32
	hosts []uint64
}

// scanSketch is one kind's HyperLogLog sketches for one source, one per ring slot.
type scanSketch [scanSlots]hllRegs

// ScanTracker counts, per source address, the connections it starts and the
// distinct destination ports and hosts they reach over a sliding window: the
// inputs of port-scan and host-sweep rules.
//
// Window: packet time is cut into buckets of Window/6. A source keeps a ring
// of 7 bucket slots: the 6 buckets lying wholly inside a window that ends in
// the current bucket, plus the one straddling its start. Snapshot(now) counts
// all 7, so every connection in [now-Window, now] is counted, and at most
// Window/6 of history just before now-Window may be too: counts never fall
// short of the window, and a 60 s rule sees at most 70 s.
//
// Distinct ports are (protocol, port) pairs of TCP, UDP, SCTP, ICMP and
// ICMPv6 (whose "port" is what decode puts in DstPort, the Community ID
// equivalent of the type); other protocols
// start connections and reach hosts but have no ports. Distinct hosts are
// (address, IP version) pairs, kept as a 56-bit seeded hash: exact up to hash
// collisions (probability below 3·10⁻¹⁴ among 64 hosts).
//
// Exact, then approximate: up to ExactPorts distinct ports (and, separately,
// hosts) a source keeps each value with the bucket it was last seen in,
// dropping values that left the window. One more distinct value switches that
// kind to HyperLogLog (hll.go: precision 9, 512 one-byte registers, relative
// standard error 1.04/sqrt(512) ≈ 4.6 %, 99.7 % of estimates within ±13.8 %):
// one sketch per ring slot, filled with the exact entries, merged over the
// window's slots at Snapshot. Such a source reports Approximate until it has
// been idle for a whole window, which empties it.
//
// Memory is bounded (ScanConfig.MaxBytes gives the figure, 90 MiB at the
// defaults): at MaxSources, a new source evicts the oldest source still on
// probation, that is with a single connection so far (a queue in arrival
// order), while the sources past probation hold at most 3/4 of the table;
// past that, or with no source on probation, it evicts the least recently
// active of 8 slots drawn at random (sampled LRU: the victim is, in
// expectation, older than 8/9 of the table, and a source idle past the
// window is as good as empty). So a flood of one-connection sources (random
// source addresses) churns through the probation queue, at no sampling
// cost, and does not evict the sources that connect again, such as
// scanners, whatever their pace; sources that connect again fill at most
// 3/4 of the table, and then age out by sampled LRU. Sketch sets come from
// a pool of MaxSources/8 (MaxSources/16 sources with both kinds
// approximate), and when it is exhausted the least recently active of 8
// random holders is evicted to free its set. Both count in Stats.
//
// Time is the packets' time, not the wall clock. A step forward of any size
// (years) empties every window. A step backward of at most Window is counted
// in the current bucket, as if it happened at the latest time seen. A larger
// step backward is taken for a clock reset (a new capture): every source is
// dropped and counting restarts at the new time.
//
// Threading: a ScanTracker belongs to one goroutine (a shard's worker); it
// takes no locks, and all its methods run there. Connection allocates nothing
// once the table and sketch pool have reached their bounds. Snapshot and Top
// return copies; Snapshot allocates only to grow dst.
type ScanTracker struct {
	cfg  ScanConfig
	bw   int64  // bucket width in ns
	now  int64  // latest packet time seen
	seed uint64 // hash seed: ScanConfig.Seed, else random per process so hash floods cannot be precomputed
	rng  uint64 // wyrand state for eviction sampling
	// v4 is addrHash's inner mix of every IPv4 address (upper words 0)
	// under seed v4seed: fmix64(v4seed ^ 4<<56). (The window and the
	// number of exact entries, which they replace in the struct, are read
	// from cfg.)
	v4, v4seed uint64

	chunks []scanChunk
	used   uint32 // slots handed out
	free   uint32 // head of the free-slot list (slot+1), 0 when empty
	live   int
	index  []uint64 // hash<<32 | slot+1 (scanIndexEntry); 0: empty
	mask   uint32
	// The probation queue: sources with one connection so far, oldest
	// first (slot+1, 0 when empty), and its length.
	qhead, qtail uint32
	nProbation   uint32
	started      bool

	skBlocks  [][]scanSketch // sets, scanSketchBlock per block
	skOwner   []uint32       // slot of the source holding each set
	nSketch   int            // sets allocated
	freeSk    []uint32
	maxSketch int
	approx    int
	evicted   uint64
	recycled  uint64

	merged  hllRegs
	scratch []SourceStats

	// The next eviction's victim, chosen ahead (evictOne), and its last
	// activity then; nextOK: next is set.
	next     uint32
	nextOK   bool
	nextLast int64
}

// NewScanTracker returns an empty tracker bounded by cfg.
func NewScanTracker(cfg ScanConfig) *ScanTracker {
	cfg = cfg.withDefaults()
	t := &ScanTracker{
		cfg:       cfg,
		bw:        max(1, int64(cfg.Window)/scanBuckets),
		seed:      cfg.seed(),
		rng:       rand.Uint64() | 1,
		maxSketch: scanMaxSketches(cfg.MaxSources),
	}
	t.v4seed = t.seed
	t.v4 = fmix64(t.seed ^ 4<<56)
	// The index is allocated at its final size: no doubling, no garbage;
	// pages no source hashed to cost nothing.
	n := scanIndexSize(cfg.MaxSources)
	t.index = make([]uint64, n)
	hugeSlice(t.index)
	t.mask = uint32(n - 1)
	t.chunks = make([]scanChunk, 0, (cfg.MaxSources+scanChunkSize-1)/scanChunkSize)
	t.skBlocks = make([][]scanSketch, 0, (t.maxSketch+scanSketchBlock-1)/scanSketchBlock)
	t.skOwner = make([]uint32, t.maxSketch)
	t.freeSk = make([]uint32, 0, t.maxSketch)
	return t
}

// Stats returns the tracker's occupancy and eviction counts.
func (t *ScanTracker) Stats() ScanStats {
	return ScanStats{Sources: t.live, Evicted: t.evicted, Recycled: t.recycled, Approximate: t.approx}
}

// Connection records a connection started by src (IP version v) to dst,
// destination port dport, IP protocol proto, at packet time ts (Unix ns). It
// is called once per new flow, by the owner of the flow table.
func (t *ScanTracker) Connection(src *decode.Addr, v uint8, dst *decode.Addr, dport uint16, proto uint8, ts int64) {
	t.connection(src, v, dst, dport, proto, ts)
}

// connection is Connection, returning the source's slot.
func (t *ScanTracker) connection(src *decode.Addr, v uint8, dst *decode.Addr, dport uint16, proto uint8, ts int64) uint32 {
	if v, ok := t.upcoming(); ok {
		// A new source would evict v: its index entry (unindex) starts
		// loading now, beside the lookup's own probe. Its slot was
		// prefetched by the previous eviction.
		prefetch(uintptr(unsafe.Pointer(&t.index[t.at(v).hash&t.mask])))
	}
	ts = t.clock(ts)
	e := floorDiv(ts, t.bw)
	i := t.lookup(src, v, e)
	s := t.at(i)
	if e-s.lastEp > scanBuckets || e < s.lastEp {
		t.empty(s) // idle for a window: nothing of it is left
	}
	c := &t.chunks[i>>scanChunkBits]
	c.last[i&scanChunkMask] = ts
	s.lastEp = e
	k := slotOf(e)
	if s.epochs[k] != e {
		s.epochs[k] = e
		s.conns[k] = 0
		for _, n := range s.sketch {
			if n != 0 {
				t.sketch(n - 1)[k].reset()
			}
		}
	}
	s.conns[k]++

	off := int(i&scanChunkMask) * t.cfg.ExactPorts
	e8 := uint8(e)

	ported := hasPorts(proto)
	port := uint32(proto)<<16 | uint32(dport)
	if n := s.sketch[kindPorts]; n != 0 {
		if ported {
			t.sketch(n - 1)[k].add(t.portHash(port))
		}
	} else {
		ents := c.ports[off : off+t.cfg.ExactPorts]
		n, found := scanExact(ents, int(s.n[kindPorts]), port<<8, e8, ported)
		s.n[kindPorts] = uint16(n)
		if ported && !found {
			if n < t.cfg.ExactPorts {
				ents[n] = port<<8 | uint32(e8)
				s.n[kindPorts]++
			} else {
				t.toSketch(i, s, kindPorts, e)[k].add(t.portHash(port))
			}
		}
	}

	host := t.addrHash(dst, v) &^ 0xff // the low byte holds the bucket in exact entries
	if n := s.sketch[kindHosts]; n != 0 {
		t.sketch(n - 1)[k].add(host)
	} else {
		ents := c.hosts[off : off+t.cfg.ExactPorts]
		n, found := scanExact(ents, int(s.n[kindHosts]), host, e8, true)
		s.n[kindHosts] = uint16(n)
		if !found {
			if n < t.cfg.ExactPorts {
				ents[n] = host | uint64(e8)
				s.n[kindHosts]++
			} else {
				t.toSketch(i, s, kindHosts, e)[k].add(host)
			}
		}
	}
	return i
}

// scanExact drops the entries of ents[:n] whose bucket left the window
// ending at bucket e8 (an epoch's low byte: entries are at most 12 buckets
// apart, see lookup), refreshes val's bucket when look is set and val (whose
// low byte is zero) is present, and returns the new n and whether val was found.
func scanExact[V uint32 | uint64](ents []V, n int, val V, e8 uint8, look bool) (int, bool) {
	found := false
	for j := 0; j < n; {
		ent := ents[j]
		if e8-uint8(ent) > scanBuckets {
			n--
			ents[j] = ents[n]
			continue
		}
		if look && ent&^0xff == val {
			ents[j] = val | V(e8)
			found = true
		}
		j++
	}
	return n, found
}

// scanCount counts the entries of ents inside the window ending at bucket e8.
func scanCount[V uint32 | uint64](ents []V, e8 uint8) uint64 {
	var n uint64
	for _, ent := range ents {
		if e8-uint8(ent) <= scanBuckets {
			n++
		}
	}
	return n
}

// toSketch switches source i's kind to a HyperLogLog set filled from its
// exact entries (all inside the window: scanExact just ran) and returns the set.
func (t *ScanTracker) toSketch(i uint32, s *scanSource, kind int, e int64) *scanSketch {
	n := t.acquire(i)
	sk := t.sketch(n)
	t.skOwner[n] = i
	for k := range sk {
		sk[k].reset()
	}
	c := &t.chunks[i>>scanChunkBits]
	off := int(i&scanChunkMask) * t.cfg.ExactPorts
	e8 := uint8(e)
	if kind == kindPorts {
		for _, ent := range c.ports[off : off+int(s.n[kind])] {
			sk[slotOf(e-int64(e8-uint8(ent)))].add(t.portHash(ent >> 8))
		}
	} else {
		for _, ent := range c.hosts[off : off+int(s.n[kind])] {
			sk[slotOf(e-int64(e8-uint8(ent)))].add(ent &^ 0xff)
		}
	}
	if s.sketch == [scanKinds]uint32{} {
		t.approx++
	}
	s.sketch[kind] = n + 1
	s.n[kind] = 0
	return sk
}

// acquire returns a free sketch set for source owner, recycling the set of
// the least recently active of scanSample random holders when the pool is
// exhausted.
func (t *ScanTracker) acquire(owner uint32) uint32 {
	if l := len(t.freeSk); l > 0 {
		n := t.freeSk[l-1]
		t.freeSk = t.freeSk[:l-1]
		return n
	}
	if t.nSketch < t.maxSketch {
		if t.nSketch%scanSketchBlock == 0 {
			t.skBlocks = append(t.skBlocks, make([]scanSketch, min(scanSketchBlock, t.maxSketch-t.nSketch)))
		}
		t.nSketch++
		return uint32(t.nSketch - 1)
	}
	victim, found := uint32(0), false
	for range scanSample {
		o := t.skOwner[t.randN(t.nSketch)]
		if o != owner && (!found || *t.lastOf(o) < *t.lastOf(victim)) {
			victim, found = o, true
		}
	}
	if !found { // every draw hit owner's own set: take the first other holder
		for _, o := range t.skOwner {
			if o != owner {
				victim, found = o, true
				break
			}
		}
	}
	if !found {
		panic("BUG: scan sketch pool held by one source")
	}
	t.remove(victim)
	t.evicted++
	t.recycled++
	n := t.freeSk[len(t.freeSk)-1]
	t.freeSk = t.freeSk[:len(t.freeSk)-1]
	return n
}

// clock applies the time rules of ScanTracker to ts and returns the time to
// count it at.
func (t *ScanTracker) clock(ts int64) int64 {
	if !t.started || ts >= t.now {
		t.now, t.started = ts, true
		return ts
	}
	if t.now-ts <= int64(t.cfg.Window) {
		return t.now
	}
	t.reset()
	t.now = ts
	return ts
}

// reset drops every source, keeping the memory.
func (t *ScanTracker) reset() {
	clear(t.index)
	t.nextOK = false
	t.used, t.live, t.free, t.approx = 0, 0, 0, 0
	t.qhead, t.qtail, t.nProbation = 0, 0, 0
	t.freeSk = t.freeSk[:0]
	for n := range t.nSketch {
		t.freeSk = append(t.freeSk, uint32(n))
	}
}

func (t *ScanTracker) sketch(n uint32) *scanSketch {
	return &t.skBlocks[n/scanSketchBlock][n%scanSketchBlock]
}

func (t *ScanTracker) lastOf(i uint32) *int64 {
	return &t.chunks[i>>scanChunkBits].last[i&scanChunkMask]
}

func (t *ScanTracker) at(i uint32) *scanSource {
	return &t.chunks[i>>scanChunkBits].src[i&scanChunkMask]
}

// lookup returns the slot of (src, v), creating it at bucket e. A source's
// exact entries are pruned to the window at each of its connections and the
// source is emptied when it comes back after a window of silence, so its
// entries never lie more than 6 buckets behind lastEp; Snapshot reads only
// sources whose lastEp is within 6 buckets of its own. Entries therefore
// differ from any bucket compared with by at most 12, and a byte holds them.
func (t *ScanTracker) lookup(src *decode.Addr, v uint8, e int64) uint32 {
	h := uint32(t.addrHash(src, v) >> 32)
	for p := h & t.mask; ; p = (p + 1) & t.mask {
		x := t.index[p]
		if x == 0 {
			break
		}
		if j := uint32(x); uint32(x>>32) == h {
			if s := t.at(j - 1); s.v == v && s.addr == *src {
				if s.onProbation {
					t.unqueue(j-1, s) // its second connection
				}
				return j - 1
			}
		}
	}
	i := t.newSlot()
	s := t.at(i)
	// Field by field: a whole-struct assignment builds the value on the
	// stack and copies it over. next is the free-list link, unused while
	// v != 0; enqueue sets qprev, qnext and onProbation.
	s.addr, s.hash, s.v, s.lastEp = *src, h, v, e
	for k := range s.epochs {
		s.epochs[k] = scanNoEpoch
	}
	s.conns = [scanSlots]uint32{}
	s.sketch, s.mark = [scanKinds]uint32{}, 0
	s.n = [scanKinds]uint16{}
	t.enqueue(i, s)
	if 2*(t.live+1) > len(t.index) {
		t.grow()
	}
	t.insert(i, h)
	t.live++
	return i
}

// newSlot returns an unused slot: a freed one, a new one below MaxSources,
// else the slot of an evicted source.
func (t *ScanTracker) newSlot() uint32 {
	if t.free == 0 {
		if int(t.used) < t.cfg.MaxSources {
			i := t.used
			if int(i>>scanChunkBits) >= len(t.chunks) {
				t.addChunk()
			}
			t.used++
			return i
		}
		t.evictOne()
	}
	i := t.free - 1
	t.free = t.at(i).next
	return i
}

func (t *ScanTracker) addChunk() {
	n := min(scanChunkSize, t.cfg.MaxSources-len(t.chunks)*scanChunkSize)
	e := n * t.cfg.ExactPorts
	t.chunks = append(t.chunks, scanChunk{
		src:   make([]scanSource, n),
		last:  make([]int64, n),
		ports: make([]uint32, e),
		hosts: make([]uint64, e),
	})
}

// evictOne evicts a source to make room. It runs only with the table
// full, when every slot below used is live.
//
// The oldest source on probation (one connection so far: under a flood of
// new sources, nearly all of them) goes first, as long as the sources past
// probation hold at most scanProtected of the table; else the least
// recently active of scanSample random sources (sampled LRU).
//
// Either victim is known one eviction ahead, so that its slot can be on its
// way to the cache (prefetch) by the time it is taken over. The sampled
// candidates are drawn then and the least recent of them chosen: activity
// only makes a source more recent, so the choice still holds at the next
// eviction if the chosen source's own last activity has not moved: it is
// then the least recently active of its candidates as they are now. If it
// moved (or the slot was freed), the victim is chosen afresh.
func (t *ScanTracker) evictOne() {
	if t.probationFirst() {
		t.remove(t.qhead - 1)
		t.evicted++
		if t.probationFirst() {
			t.prefetchSlot(t.qhead - 1)
		}
		return
	}
	victim := t.next
	if t.nextOK {
		if s := t.at(victim); s.v == 0 || *t.lastOf(victim) != t.nextLast {
			t.nextOK = false
		}
	}
	if !t.nextOK {
		victim = t.pickVictim()
	}
	t.remove(victim)
	t.evicted++
	t.next, t.nextOK = t.pickVictim(), true
	t.nextLast = *t.lastOf(t.next)
	t.prefetchSlot(t.next)
}

// probationFirst reports that the next eviction takes the oldest source on
// probation.
func (t *ScanTracker) probationFirst() bool {
	return t.qhead != 0 && t.live-int(t.nProbation) <= t.cfg.MaxSources-t.cfg.MaxSources/scanOpenShare
}

// upcoming returns the source a new one would evict, when the table is full
// and it is known.
func (t *ScanTracker) upcoming() (uint32, bool) {
	if t.free != 0 || int(t.used) < t.cfg.MaxSources {
		return 0, false
	}
	if t.probationFirst() {
		return t.qhead - 1, true
	}
	return t.next, t.nextOK
}

// enqueue puts the new source s (slot i) at the tail of the probation queue.
func (t *ScanTracker) enqueue(i uint32, s *scanSource) {
	s.qprev, s.qnext, s.onProbation = t.qtail, 0, true
	if t.qtail != 0 {
		t.at(t.qtail - 1).qnext = i + 1
	} else {
		t.qhead = i + 1
	}
	t.qtail = i + 1
	t.nProbation++
}

// unqueue takes source s (slot i) off the probation queue.
func (t *ScanTracker) unqueue(i uint32, s *scanSource) {
	if s.qprev != 0 {
		t.at(s.qprev - 1).qnext = s.qnext
	} else {
		t.qhead = s.qnext
	}
	if s.qnext != 0 {
		t.at(s.qnext - 1).qprev = s.qprev
	} else {
		t.qtail = s.qprev
	}
	s.qprev, s.qnext, s.onProbation = 0, 0, false
	t.nProbation--
}

// pickVictim returns the least recently active of scanSample random sources.
// Each 64-bit draw gives two candidates (its halves, scaled to [0, used)),
// and the draws do not wait on each other (wyrand: the state only adds a
// constant), so the candidates' loads all start at once.
func (t *ScanTracker) pickVictim() uint32 {
	n := uint64(t.used)
	victim := uint32(0)
	oldest := int64(math.MaxInt64)
	for range scanSample / 2 {
		r := t.rand64()
		for _, j := range [2]uint32{uint32((r & 0xffffffff) * n >> 32), uint32((r >> 32) * n >> 32)} {
			if l := *t.lastOf(j); l < oldest {
				victim, oldest = j, l
			}
		}
	}
	return victim
}

// prefetchSource starts loading the lines of slot i that counting it reads
// (its scanSource and its exact entries; ScanChanges).
func (t *ScanTracker) prefetchSource(i uint32) {
	if i < t.used {
		t.prefetchSlot(i)
	}
}

// indexAddr is the address of (src, v)'s home entry in the index (batch
// pass 2 prefetches it for a new flow).
func (t *ScanTracker) indexAddr(src *decode.Addr, v uint8) uintptr {
	h := uint32(t.addrHash(src, v) >> 32)
	return uintptr(unsafe.Pointer(&t.index[h&t.mask]))
}

// prefetchSlot starts loading the lines of slot i that a new source in it
// writes, and that counting an existing one reads: its scanSource (three
// lines) and the first lines of its exact entries (a source with more than
// 16 ports or 8 hosts reads further). Two calls (prefetch4).
func (t *ScanTracker) prefetchSlot(i uint32) {
	s := uintptr(unsafe.Pointer(t.at(i)))
	c := &t.chunks[i>>scanChunkBits]
	off := int(i&scanChunkMask) * t.cfg.ExactPorts // exact is at least 1
	prefetch4(s, s+64, s+unsafe.Sizeof(scanSource{})-1, uintptr(unsafe.Pointer(&c.ports[off])))
	prefetch(uintptr(unsafe.Pointer(&c.hosts[off])))
}

// remove drops source i, returning its slot and sketch sets to their free lists.
func (t *ScanTracker) remove(i uint32) {
	s := t.at(i)
	if s.onProbation {
		t.unqueue(i, s)
	}
	t.unindex(i, s.hash)
	t.release(s)
	s.v = 0
	s.next = t.free
	t.free = i + 1
	t.live--
}

// empty clears a source's window, as if it had just appeared.
func (t *ScanTracker) empty(s *scanSource) {
	t.release(s)
	s.conns = [scanSlots]uint32{}
	for k := range s.epochs {
		s.epochs[k] = scanNoEpoch
	}
}

// release returns s's sketch sets to the pool and its kinds to exact counting.
func (t *ScanTracker) release(s *scanSource) {
	if s.sketch != [scanKinds]uint32{} {
		t.approx--
	}
	for kind, n := range s.sketch {
		if n != 0 {
			t.freeSk = append(t.freeSk, n-1)
		}
		s.sketch[kind] = 0
	}
	s.n = [scanKinds]uint16{}
}

func (t *ScanTracker) insert(i, h uint32) {
	p := h & t.mask
	for t.index[p] != 0 {
		p = (p + 1) & t.mask
	}
	t.index[p] = scanIndexEntry(i, h)
}

// scanIndexEntry is slot i's index entry: its hash beside slot+1, so that
// probing and deletion compare and move entries without reading the slots.
func scanIndexEntry(i, h uint32) uint64 { return uint64(h)<<32 | uint64(i+1) }

// unindex deletes slot i from the linear-probing index by backward shift, so
// no tombstones accumulate under churn.
func (t *ScanTracker) unindex(i, h uint32) {
	p := h & t.mask
	for uint32(t.index[p]) != i+1 {
		p = (p + 1) & t.mask
	}
	for q := p; ; {
		q = (q + 1) & t.mask
		j := t.index[q]
		if j == 0 {
			t.index[p] = 0
			return
		}
		home := uint32(j>>32) & t.mask
		// The entry at q may fill the hole at p unless its home lies
		// cyclically in (p, q].
		if (p < q && (home <= p || home > q)) || (p > q && home <= p && home > q) {
			t.index[p] = j
			p = q
		}
	}
}

func (t *ScanTracker) grow() {
	n := 2 * len(t.index)
	t.index = make([]uint64, n)
	hugeSlice(t.index)
	t.mask = uint32(n - 1)
	for i := range t.used {
		if s := t.at(i); s.v != 0 {
			t.insert(i, s.hash)
		}
	}
}

// addrHash is a seeded 64-bit hash of (a, v): a bijection of IPv4 addresses.
// For an IPv4 address (whose upper words are 0) the inner mix depends on
// the seed alone and is taken from v4, unless the seed was changed since.
func (t *ScanTracker) addrHash(a *decode.Addr, v uint8) uint64 {
	w0 := binary.LittleEndian.Uint64(a[0:8])
	w1 := binary.LittleEndian.Uint64(a[8:16])
	if w1 == 0 && v == 4 && t.v4seed == t.seed {
		return fmix64(w0 ^ t.v4) // an IPv4 address: the inner mix is the seed's
	}
	return fmix64(w0 ^ fmix64(w1^t.seed^uint64(v)<<56))
}

func (t *ScanTracker) portHash(p uint32) uint64 { return fmix64(uint64(p) ^ t.seed ^ hashM1) }

// rand64 returns a pseudo-random 64-bit number (wyrand).
func (t *ScanTracker) rand64() uint64 {
	t.rng += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(t.rng, t.rng^0xe7037ed1a0b428db)
	return hi ^ lo
}

// randN returns a pseudo-random number in [0, n).
func (t *ScanTracker) randN(n int) uint32 {
	return uint32((t.rand64() & 0xffffffff) * uint64(n) >> 32)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func slotOf(e int64) int {
	k := e % scanSlots
	if k < 0 {
		k += scanSlots
	}
	return int(k)
}

// Snapshot appends to dst, in no particular order, the counts of every source
// with a connection in the window ending at now (see ScanTracker for the
// window's bounds) and returns the extended slice.
func (t *ScanTracker) Snapshot(now int64, dst []SourceStats) []SourceStats {
	e := floorDiv(now, t.bw)
	for i := range t.used {
		s := t.at(i)
		if s.v == 0 || s.lastEp < e-scanBuckets || s.lastEp > e+scanBuckets {
			continue
		}
		var conns uint64
		for k, ep := range s.epochs {
			if ep <= e && ep >= e-scanBuckets {
				conns += uint64(s.conns[k])
			}
		}
		if conns == 0 {
			continue
		}
		c := &t.chunks[i>>scanChunkBits]
		off := int(i&scanChunkMask) * t.cfg.ExactPorts
		st := SourceStats{Addr: s.addr, IPVersion: s.v, Connections: conns}
		st.DistinctPorts = t.distinct(s, kindPorts, e, scanCount(c.ports[off:off+int(s.n[kindPorts])], uint8(e)))
		st.DistinctHosts = t.distinct(s, kindHosts, e, scanCount(c.hosts[off:off+int(s.n[kindHosts])], uint8(e)))
		st.Approximate = s.sketch != [scanKinds]uint32{}
		dst = append(dst, st)
	}
	return dst
}

// distinct returns s's distinct values of kind in the window ending at
// bucket e: the merged estimate of its sketches, else exact, its count of
// exact entries there.
func (t *ScanTracker) distinct(s *scanSource, kind int, e int64, exact uint64) uint64 {
	n := s.sketch[kind]
	if n == 0 {
		return exact
	}
	sk := t.sketch(n - 1)
	t.merged.reset()
	for k, ep := range s.epochs {
		if ep <= e && ep >= e-scanBuckets {
			t.merged.merge(&sk[k])
		}
	}
	return uint64(math.Round(t.merged.estimate()))
}

// Top returns the n sources with the most connections, distinct ports or
// distinct hosts (by: "connections", "ports" or "hosts") in the window ending
// at now, largest first; ties go to more connections, then the lower
// address. It returns nil for an unknown by.
func (t *ScanTracker) Top(now int64, n int, by string) []SourceStats {
	var key func(*SourceStats) uint64
	switch by {
	case "connections":
		key = func(s *SourceStats) uint64 { return s.Connections }
	case "ports":
		key = func(s *SourceStats) uint64 { return s.DistinctPorts }
	case "hosts":
		key = func(s *SourceStats) uint64 { return s.DistinctHosts }
	default:
		return nil
	}
	if n <= 0 {
		return nil
	}
	if cap(t.scratch) < t.live {
		t.scratch = make([]SourceStats, 0, t.live)
	}
	all := t.Snapshot(now, t.scratch[:0])
	t.scratch = all[:0]
	slices.SortFunc(all, func(a, b SourceStats) int {
		if c := cmp.Compare(key(&b), key(&a)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Connections, a.Connections); c != 0 {
			return c
		}
		if c := bytes.Compare(a.Addr[:], b.Addr[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.IPVersion, b.IPVersion)
	})
	return slices.Clone(all[:min(n, len(all))])
}
