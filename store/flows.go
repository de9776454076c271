// Flow history (FlowLog): every ended flow record, kept in the store's pebble
// DB under keys 0x20..0x2f.
//
// Records are partitioned by last_seen (FlowOptions.Partition, 1 h by
// default): a block holds records of one partition only, so that retention
// and the disk cap delete whole partitions with DeleteRange, never a scan.
// Keys (partition and times big-endian with the sign bit flipped, so that
// byte order is time order):
//
//	0x20 'n'                         next block sequence number (uvarint)
//	0x20 'p'                         partition length in ns (uvarint), fixed at creation
//	0x21 part maxLast seq [segno]    a block's (or segment's) summary: count, min/max
//	                                 last_seen, the protocols (bitmap), application
//	                                 protocols, the sorted distinct ports and addresses
//	                                 (version 2: ports and IPv4 addresses delta-coded)
//	0x22 part seq [segno]            the block (segment): its records in a compact
//	                                 binary encoding, compressed as one value (version
//	                                 2: the fields in streams, each record's app result
//	                                 against the previous one's, S2; version 1, still
//	                                 read: record after record, zstd)
//	0x23 part                        the partition's totals: bytes, records, values
//
// Every value is written with its summary and the partition's totals in one
// batch committed with pebble.Sync: what WriteFlows returned nil for is on
// disk, and a crash leaves every block whole or absent. The last block of a
// partition stays open until it holds BlockRecords records: its first
// records are a base value (0x22 part seq), each later WriteFlows adds a
// segment (0x22 part seq segno) with its own summary, and once the segments
// hold half as many records as the base (at least 8 segments) the base is
// rewritten with all of them and the segments deleted in the same batch. So
// small writes still make blocks of BlockRecords records, and each record is
// rewritten a few times rather than once per write (measured WAL bytes per
// record: TestFlowBytesPerRecord).
//
// Blocks are S2, not zstd: under a flood of new flows (every ended flow a
// one-packet flow with random ports) zstd was most of the write's CPU, and
// with the fields in streams S2 stores the flood in as many bytes as zstd
// did record after record (BenchmarkFlowWriteFlood); real captures take
// about 15 % more (TestFlowBytesPerRecord).
//
// Query walks summaries newest first (reverse key order is maxLast order),
// skips blocks whose summary rules the filter out, decompresses the others,
// and stops once it holds Limit records newer than anything the remaining
// blocks can contain. Order is (last_seen, block sequence, index in block),
// descending; the cursor is the last returned record's position in that order,
// so records written later never shift a page already returned.
//
// Threading: WriteFlows and Enforce serialise on a mutex; Query reads a pebble
// snapshot and may run concurrently with both. The FlowLog does not own the
// DB: Close stops writes, the DB's owner closes it after.

package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/netsentry/netsentry/flowtable"
)

// Flow history key prefixes (see the package comment of flows.go).
const (
	keyFlowMeta    = 0x20
	keyFlowSummary = 0x21
	keyFlowBlock   = 0x22
	keyFlowPart    = 0x23
)

const (
	defaultPartition    = time.Hour
	defaultBlockRecords = 512
	maxBlockRecords     = 1 << 14
	maxOpenTails        = 4
	partKeyBytes        = 9 + 3*8 // a partition totals key and value, at most
	// maxRecordBytes bounds one record's encoding (addresses, varints, the
	// app result with its 320-byte arena, an app label).
	maxRecordBytes = 1024
	maxAppLabel    = 255 // AppLabel bytes kept (names are a few bytes)
	// MaxFlowLimit is the largest FlowQuery.Limit.
	MaxFlowLimit = 1000
)

// ErrBadQuery is returned (wrapped) by Query and ParseFlowQuery for a query
// that cannot be answered: a limit outside 1..1000, end before start, a bad
// port, protocol or cursor. It has a BadRequest() bool method returning true,
// which httpd looks for (errors.As) to answer 400 rather than 500.
var ErrBadQuery error = badQuery{}

type badQuery struct{}

func (badQuery) Error() string { return "bad flow query" }

// BadRequest reports that the error is the query's fault.
func (badQuery) BadRequest() bool { return true }

// FlowOptions configure a FlowLog.
type FlowOptions struct {
	Retention    time.Duration // records whose partition ended longer ago are dropped by Enforce; 0: keep
	MaxDiskBytes int64         // cap on the flow history's bytes (keys and values); 0: no cap
	Logger       *slog.Logger  // nil: discard
	// Partition is the length of a partition, the unit that retention and
	// the cap delete; 0: 1 h. It is fixed when the history is created; a
	// different non-zero value later is an error.
	Partition time.Duration
	// BlockRecords is how many records a block holds at most; 0: 512.
	BlockRecords int
}

// FlowLog keeps ended flow records in time-partitioned compressed blocks in db
// (keys 0x20..0x2f). It is an engine.Sink.
type FlowLog struct {
	db     *pebble.DB
	opt    FlowOptions
	part   int64 // partition length, ns
	log    *slog.Logger
	mu     sync.Mutex
	sc     scratch     // under mu
	spare  []*blockEnc // encoders of finished tails, for new ones (under mu)
	closed bool
	seq    uint64 // next block sequence number
	// committed counts the bytes of the batches WriteFlows committed (what
	// went to the WAL): an open block is rewritten whole by each write.
	committed int64
	// Partitions dropped by retention and by the disk cap (under mu).
	droppedRet, droppedCap int64
	parts                  map[int64]*partStat
	tails                  map[int64]*tail // open last blocks, by partition
}

type partStat struct {
	bytes, records, blocks int64
}

// tail is a partition's open block: a base value holding its first records
// and segments after it, each written by one WriteFlows. Once the segments
// hold half as many records as the base (and at least minSegments were
// written), or the block is full, the base is rewritten with every record and
// the segments deleted: each record is rewritten a few times, whatever the
// size of the writes.
type tail struct {
	seq      uint64
	enc      *blockEnc // every record of the block, coded (flows_enc.go)
	n        int       // records in the block
	saved    int       // records stored (base and segments)
	baseN    int       // records in the stored base
	baseSum  []byte    // the base's summary key, nil before it is stored
	baseSize int64     // bytes of the base's keys and values
	segs     []segment
	nextSeg  uint16
}

// segment is a stored segment of an open block.
type segment struct {
	sumKey, valKey []byte
	size           int64
}

// minSegments is how many segments an open block gathers at least before
// its base is rewritten.
const minSegments = 8

// OpenFlowLog opens the flow history in db, creating it if absent.
func OpenFlowLog(db *pebble.DB, opt FlowOptions) (*FlowLog, error) {
	if opt.BlockRecords == 0 {
		opt.BlockRecords = defaultBlockRecords
	}
	if opt.BlockRecords < 1 || opt.BlockRecords > maxBlockRecords {
		return nil, fmt.Errorf("open flow log: block records %d outside 1..%d", opt.BlockRecords, maxBlockRecords)
	}
	if opt.Partition < 0 || opt.Retention < 0 || opt.MaxDiskBytes < 0 {
		return nil, errors.New("open flow log: negative partition, retention or disk cap")
	}
	f := &FlowLog{db: db, opt: opt, log: opt.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	stored, err := getUvarint(db, []byte{keyFlowMeta, 'p'})
	if err != nil {
		return nil, fmt.Errorf("open flow log: %w", err)
	}
	switch {
	case stored == 0:
		f.part = int64(opt.Partition)
		if f.part == 0 {
			f.part = int64(defaultPartition)
		}
		if err := db.Set([]byte{keyFlowMeta, 'p'}, binary.AppendUvarint(nil, uint64(f.part)), pebble.Sync); err != nil {
			return nil, fmt.Errorf("open flow log: %w", err)
		}
	case stored > math.MaxInt64:
		return nil, errors.New("open flow log: stored partition length out of range")
	case opt.Partition != 0 && int64(opt.Partition) != int64(stored):
		return nil, fmt.Errorf("open flow log: partition %v differs from the stored %v", opt.Partition, time.Duration(stored))
	default:
		f.part = int64(stored)
	}
	if err := f.load(); err != nil {
		return nil, fmt.Errorf("open flow log: %w", err)
	}
	return f, nil
}

// load reads the sequence number and the partitions' totals, and forgets
// the open tails (new records start new blocks).
func (f *FlowLog) load() error {
	seq, err := getUvarint(f.db, []byte{keyFlowMeta, 'n'})
	if err != nil {
		return err
	}
	f.seq = seq
	f.parts = map[int64]*partStat{}
	f.tails = map[int64]*tail{}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyFlowPart}, UpperBound: []byte{keyFlowPart + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 9 {
			it.Close()
			return fmt.Errorf("read partition key %x: bad length", k)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		var ps partStat
		r := rd{b: v}
		ps.bytes, ps.records, ps.blocks = int64(r.uvarint()), int64(r.uvarint()), int64(r.uvarint())
		if r.bad {
			it.Close()
			return fmt.Errorf("read partition totals %x: malformed", k)
		}
		f.parts[unflip(k[1:])] = &ps
	}
	return it.Close()
}

func getUvarint(db *pebble.DB, key []byte) (uint64, error) {
	v, c, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	x, n := binary.Uvarint(v)
	c.Close()
	if n <= 0 {
		return 0, fmt.Errorf("read %x: malformed", key)
	}
	return x, nil
}

// Name returns "store", the sink's name in the exporter's counters.
func (f *FlowLog) Name() string { return "store" }

// Close stops further writes; it does not close the DB.
func (f *FlowLog) Close() error {
	f.mu.Lock()
	f.closed = true
	f.tails = map[int64]*tail{}
	f.mu.Unlock()
	return nil
}

// WriteFlows stores recs (it keeps no reference to them). When it returns
// nil the records are synced to pebble's WAL.
func (f *FlowLog) WriteFlows(recs []flowtable.Record) error {
	if len(recs) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("write flows: flow log closed")
	}
	b := f.db.NewBatch()
	defer b.Close()
	touched := map[int64]*tail{}
	dirty := map[int64]struct{}{}
	var t *tail // the tail of partition p, the last record's
	var p int64
	for i := range recs {
		r := &recs[i]
		if q := flowFloorDiv(r.Last, f.part); t == nil || q != p {
			p, t = q, f.tails[q]
			if t == nil {
				t = f.newTail(p, touched)
			}
			touched[p] = t
		}
		t.enc.add(r, t.n == t.saved, f.opt.BlockRecords)
		t.n++
		if t.n == f.opt.BlockRecords {
			if err := f.putTail(b, p, t, dirty); err != nil {
				f.reset()
				return fmt.Errorf("write flows: %w", err)
			}
			delete(f.tails, p)
			delete(touched, p)
			f.release(t)
			t = nil
		}
	}
	for p, t := range touched {
		if err := f.putTail(b, p, t, dirty); err != nil {
			f.reset()
			return fmt.Errorf("write flows: %w", err)
		}
	}
	err := b.Set([]byte{keyFlowMeta, 'n'}, binary.AppendUvarint(nil, f.seq), nil)
	for p := range dirty {
		ps := f.parts[p]
		v := binary.AppendUvarint(nil, uint64(ps.bytes))
		v = binary.AppendUvarint(v, uint64(ps.records))
		v = binary.AppendUvarint(v, uint64(ps.blocks))
		err = errors.Join(err, b.Set(partKey(keyFlowPart, p), v, nil))
	}
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	if err != nil {
		f.reset()
		return fmt.Errorf("write flows: %w", err)
	}
	f.committed += int64(b.Len())
	return nil
}

// release keeps the encoder of a tail that is done for the next one.
func (f *FlowLog) release(t *tail) {
	if len(f.spare)+len(f.tails) < maxOpenTails {
		t.enc.reset()
		f.spare = append(f.spare, t.enc)
	}
	t.enc = nil
}

// reset brings the in-memory state back to what is on disk after a failed
// write.
func (f *FlowLog) reset() {
	if err := f.load(); err != nil {
		f.log.Error("flow log: reload after a failed write", "err", err)
	}
}

// newTail opens a block for partition p. With maxOpenTails open, it forgets
// the oldest that the current batch has not touched (it stays stored, short).
func (f *FlowLog) newTail(p int64, touched map[int64]*tail) *tail {
	if len(f.tails) >= maxOpenTails {
		oldest, found := int64(math.MaxInt64), false
		for q := range f.tails {
			if _, ok := touched[q]; !ok && q <= oldest {
				oldest, found = q, true
			}
		}
		if found {
			delete(f.tails, oldest)
		}
	}
	t := &tail{seq: f.seq}
	if n := len(f.spare); n > 0 {
		t.enc, f.spare = f.spare[n-1], f.spare[:n-1]
	} else {
		t.enc = &blockEnc{recs: make([]sumRec, 0, f.opt.BlockRecords)}
	}
	f.seq++
	f.tails[p] = t
	return t
}

// putTail adds to b the tail's records written since the last put: as a
// segment, or as a new base holding every record when it is time to
// consolidate (see tail). It updates the partition's totals in memory.
func (f *FlowLog) putTail(b *pebble.Batch, p int64, t *tail, dirty map[int64]struct{}) error {
	fresh := t.n - t.saved
	if fresh == 0 {
		return nil
	}
	ps := f.parts[p]
	if ps == nil {
		ps = &partStat{bytes: partKeyBytes}
		f.parts[p] = ps
	}
	dirty[p] = struct{}{}
	ps.records += int64(fresh)
	segRecs := t.n - t.baseN
	if t.baseN > 0 && t.n < f.opt.BlockRecords && (len(t.segs)+1 < minSegments || 2*segRecs < t.baseN) {
		val := f.value(t.enc, t.saved)
		_, maxLast := recRange(t.enc.recs[t.saved:])
		vkey := binary.BigEndian.AppendUint16(append(partKey(keyFlowBlock, p), be64(t.seq)...), t.nextSeg)
		skey := binary.BigEndian.AppendUint16(append(append(partKey(keyFlowSummary, p), flip(maxLast)...), be64(t.seq)...), t.nextSeg)
		sum := f.summarize(t.seq, t.enc, t.saved)
		if err := errors.Join(b.Set(vkey, val, nil), b.Set(skey, sum, nil)); err != nil {
			return err
		}
		size := int64(len(vkey) + len(val) + len(skey) + len(sum))
		t.segs = append(t.segs, segment{skey, vkey, size})
		t.nextSeg++
		t.saved = t.n
		ps.bytes += size
		ps.blocks++
		return nil
	}
	val := f.value(t.enc, 0)
	_, maxLast := recRange(t.enc.recs)
	vkey := append(partKey(keyFlowBlock, p), be64(t.seq)...)
	skey := append(append(partKey(keyFlowSummary, p), flip(maxLast)...), be64(t.seq)...)
	sum := f.summarize(t.seq, t.enc, 0)
	var err error
	if t.baseSum != nil && !bytes.Equal(t.baseSum, skey) {
		err = b.Delete(t.baseSum, nil)
	}
	for _, sg := range t.segs {
		err = errors.Join(err, b.Delete(sg.sumKey, nil), b.Delete(sg.valKey, nil))
		ps.bytes -= sg.size
		ps.blocks--
	}
	if err = errors.Join(err, b.Set(vkey, val, nil), b.Set(skey, sum, nil)); err != nil {
		return err
	}
	size := int64(len(vkey) + len(val) + len(skey) + len(sum))
	if t.baseSum == nil {
		ps.blocks++
	}
	ps.bytes += size - t.baseSize
	t.baseSum, t.baseSize, t.baseN, t.saved, t.segs = skey, size, t.n, t.n, t.segs[:0]
	return nil
}

// Block value versions: 1 (records one after the other, the app result
// whole, zstd) and 2 (a codec byte, then the records' fields in streams;
// see encodeBlock). This build writes 2 and reads both.
const (
	blockV1 = 1
	blockV2 = 2
	// codecs of a version 2 block
	codecZstd = 1
	codecS2   = 2
)

// The flow history's zstd coders, made at first use and shared by every
// FlowLog (EncodeAll and DecodeAll may be called concurrently): this
// build writes S2, so the encoder serves the benchmarks' comparison alone
// and the decoder a history written before block version 2.
var (
	flowEnc = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			panic("BUG: flow zstd encoder: " + err.Error())
		}
		return e
	})
	flowDec = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(maxBlockRecords*maxRecordBytes))
		if err != nil {
			panic("BUG: flow zstd decoder: " + err.Error())
		}
		return d
	})
)

// FlowMemoryBytes is what a FlowLog with blocks of blockRecords records (0:
// the default) holds at most besides query results: the encoders of its
// open blocks and of the ones kept for reuse (maxOpenTails in all: each
// record's streams, grown to at most streamMax a record, its summary
// fields and application name; the app results and first-record codes of
// two records), and the scratch space of one put (the whole and the
// compressed value, together within 2*maxRecordBytes a record) and of its
// summary. A write whose records span more than maxOpenTails partitions
// opens one more block per partition while it runs; reading a history
// written before block version 2 adds a zstd decoder of about a block's
// size.
func FlowMemoryBytes(blockRecords int) int64 {
	if blockRecords == 0 {
		blockRecords = defaultBlockRecords
	}
	n := int64(blockRecords)
	perRec := int64(streamMaxSum) + int64(unsafe.Sizeof(sumRec{})) + int64(unsafe.Sizeof(""))
	tails := maxOpenTails * (n*perRec + 4*int64(streamMax[stApp]) + 2*binary.MaxVarintLen64)
	enc := 2 * n * maxRecordBytes
	sum := n*(2*4+2*4+2*16+4*8+2) + 8<<10 + 2*2*smallPorts // address lists and their sort's, delta lists, the port set and list, app indexes
	return tails + enc + sum
}

// blockCodec is the codec this build writes (a variable for the
// benchmarks' comparison).
var blockCodec byte = codecS2

// Streams of a version 2 block: the fields of every record, stream by
// stream, so that the codec finds the constant fields (flags, versions,
// destination, counters of one-packet flows) as long runs and the random
// ones (source addresses, ports) side by side.
const (
	stFlags = iota // flags byte, IP version, protocol, tunnel, state, conn state, end, TCP flags ×2 (9 bytes), VLAN, inner VLAN (uvarints)
	stAddr         // source and destination, 4 bytes each if flags&1, else 16
	stPorts        // source and destination port, big-endian
	stCount        // packets, bytes, IP bytes, each Tx then Rx (uvarints)
	stTime         // Last minus the previous record's Last, Last minus First (varints)
	stApp          // app result (appendAppDiff)
	stLabel        // app label: length, bytes
	numStreams
)

// Summary versions: 1 (ports and IPv4 addresses as sorted 2- and 4-byte
// entries), 2 (the same sorted lists as uvarint deltas after their byte
// length). This build writes 2 and reads both.
const (
	summaryV1 = 1
	summaryV2 = 2
)

// decode16 is a 16-byte address as a record holds it.
type decode16 = [16]byte

// scratch is the FlowLog's reused buffers for the values and summaries
// of puts (under mu).
type scratch struct {
	raw, val, sum []byte
	deltas        []byte
	appIdx        []uint16
	ports         []uint16        // a short segment's ports (smallPorts)
	portSet       [1 << 10]uint64 // a bit per port, zero between calls
	ip4, tmp4     []uint32
	ip16          []decode16
}

// summary is a decoded block summary; its slices alias the value.
type summary struct {
	seq              uint64
	count            int
	minLast, maxLast int64
	protos           []byte // 32 bytes
	apps             [][]byte
	// ports and ip4 are sorted 2- and 4-byte entries (version 1) or
	// uvarint deltas (delta set, version 2); ip16 is sorted 16-byte entries.
	ports, ip4 []byte
	ip16       []byte
	delta      bool
}

func decodeSummary(v []byte) (summary, error) {
	var s summary
	if len(v) == 0 || (v[0] != summaryV1 && v[0] != summaryV2) {
		return s, errors.New("decode block summary: unknown version")
	}
	s.delta = v[0] == summaryV2
	r := rd{b: v[1:]}
	s.seq = r.uvarint()
	s.count = int(min(r.uvarint(), maxBlockRecords+1))
	s.minLast, s.maxLast = r.varint(), r.varint()
	s.protos = r.bytes(32)
	n := r.uvarint()
	if n > uint64(len(r.b)) { // each name takes at least its length byte
		r.bad = true
	}
	for i := uint64(0); i < n && !r.bad; i++ {
		s.apps = append(s.apps, r.bytes(r.len()))
	}
	if s.delta {
		s.ports = r.bytes(r.len())
		s.ip4 = r.bytes(r.len())
	} else {
		s.ports = r.bytes(r.len() * 2)
		s.ip4 = r.bytes(r.len() * 4)
	}
	s.ip16 = r.bytes(r.len() * 16)
	if r.bad || len(r.b) != 0 || s.count < 1 || s.count > maxBlockRecords || s.minLast > s.maxLast {
		return summary{}, errors.New("decode block summary: malformed")
	}
	return s, nil
}

// hasDelta reports whether the sorted list of uvarint deltas l holds x (a
// malformed list holds everything: the block is read, not skipped).
func hasDelta(l []byte, x uint64) bool {
	var v uint64
	for len(l) > 0 {
		d, n := binary.Uvarint(l)
		if n <= 0 {
			return true
		}
		v += d
		if v >= x {
			return v == x
		}
		l = l[n:]
	}
	return false
}

// has reports whether the sorted list of w-byte entries l holds x.
func has(l []byte, w int, x []byte) bool {
	n := len(l) / w
	i := sort.Search(n, func(i int) bool { return bytes.Compare(l[i*w:i*w+w], x) >= 0 })
	return i < n && bytes.Equal(l[i*w:i*w+w], x)
}

// App result codes in a version 2 record: the bytes of the previous
// record's result again, this result whole (length, bytes), or this result
// as the previous one's with some runs replaced (same length: pairs of
// equal-run and replaced-run lengths, each replaced run's bytes after its
// length, until the end). A flood of short flows has results that differ
// in their ports alone: a dozen bytes instead of ninety.
const (
	appSame  = 0
	appWhole = 1
	appDiff  = 2
)

func appendAppDiff(b, prev, cur []byte) []byte {
	if len(prev) != len(cur) || len(cur) == 0 {
		return appendAppWhole(b, cur)
	}
	// The runs: equal bytes up to j, different ones up to k, from i on;
	// the first difference found word by word (a flood's results differ
	// in their first words, the ports), not by comparing them whole first.
	n := len(cur)
	j := firstDiffWords(prev, cur, 0)
	if j == n {
		return append(b, appSame)
	}
	start := len(b)
	b = append(b, appDiff)
	for i := 0; ; {
		k := j + 1
		for k < n && cur[k] != prev[k] {
			k++
		}
		b = binary.AppendUvarint(b, uint64(j-i))
		b = binary.AppendUvarint(b, uint64(k-j))
		b = append(b, cur[j:k]...)
		if i = k; i == n {
			break
		}
		if j = firstDiffWords(prev, cur, i); j == n {
			b = binary.AppendUvarint(b, uint64(n-i))
			b = append(b, 0)
			break
		}
	}
	if len(b)-start > 1+varintLen(uint64(len(cur)))+len(cur) {
		// scattered changes: whole is shorter (and within streamMax)
		return appendAppWhole(b[:start], cur)
	}
	return b
}

// firstDiffWords is firstDiff for a and b whose next difference is likely
// near: word by word from i for up to 64 bytes, then firstDiff (whose
// vectorised compare of the rest pays off for a long equal run).
func firstDiffWords(a, b []byte, i int) int {
	n := len(a)
	b = b[:n]
	for end := min(n, i+64); i+8 <= end; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)>>3
		}
	}
	return firstDiff(a, b, i)
}

// firstDiff returns the first index from i on where a and b (of one
// length) differ, or their length: a result's unchanged tail (the arena's
// strings) is one vectorised comparison, not a loop over its words.
func firstDiff(a, b []byte, i int) int {
	n := len(a)
	if n-i > 16 && bytes.Equal(a[i:], b[i:]) {
		return n
	}
	for i+32 <= n && bytes.Equal(a[i:i+32], b[i:i+32]) {
		i += 32
	}
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)>>3
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

func appendAppWhole(b, cur []byte) []byte {
	b = append(b, appWhole)
	b = binary.AppendUvarint(b, uint64(len(cur)))
	return append(b, cur...)
}

// readAppDiff reads an app result coded by appendAppDiff into buf, given
// the previous record's result prev (which may alias buf), and returns it.
func readAppDiff(r *rd, prev, buf []byte) []byte {
	switch r.byte() {
	case appSame:
		if len(prev) == 0 {
			r.bad = true
		}
		return append(buf[:0], prev...)
	case appWhole:
		return append(buf[:0], r.bytes(r.len())...)
	case appDiff:
		if len(prev) == 0 {
			r.bad = true
			return buf[:0]
		}
		out := append(buf[:0], prev...)
		for i := 0; i < len(out) && !r.bad; {
			eq := r.uvarint()
			if eq > uint64(len(out)-i) {
				r.bad = true
				break
			}
			i += int(eq)
			n := r.uvarint()
			if n > uint64(len(out)-i) || (eq == 0 && n == 0) {
				r.bad = true
				break
			}
			copy(out[i:], r.bytes(int(n)))
			i += int(n)
		}
		return out
	}
	r.bad = true
	return buf[:0]
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeBlock decodes a stored block (or segment) value into its records,
// appended to dst, and returns the index in its block of the first. Garbage
// is an error, never a panic.
func (f *FlowLog) decodeBlock(v []byte, dst []flowtable.Record) ([]flowtable.Record, int, error) {
	if len(v) < 2 || (v[0] != blockV1 && v[0] != blockV2) {
		return dst, 0, errors.New("decode flow block: unknown version")
	}
	v2 := v[0] == blockV2
	h := rd{b: v[1:]}
	codec := byte(codecZstd)
	if v2 {
		codec = h.byte()
	}
	n, start := h.uvarint(), h.uvarint()
	if h.bad || n == 0 || n > maxBlockRecords || start >= maxBlockRecords {
		return dst, 0, errors.New("decode flow block: bad record count")
	}
	var raw []byte
	var err error
	switch codec {
	case codecZstd:
		raw, err = flowDec().DecodeAll(h.b, nil)
	case codecS2:
		var l int
		if l, err = s2.DecodedLen(h.b); err == nil {
			if l > int(n)*maxRecordBytes {
				return dst, 0, errors.New("decode flow block: longer than its records can be")
			}
			raw, err = s2.Decode(nil, h.b)
		}
	default:
		err = errors.New("unknown codec")
	}
	if err != nil {
		return dst, 0, fmt.Errorf("decode flow block: %w", err)
	}
	if len(raw) > int(n)*maxRecordBytes {
		return dst, 0, errors.New("decode flow block: longer than its records can be")
	}
	if v2 {
		dst, err = decodeV2(raw, int(n), dst)
	} else {
		dst, err = decodeV1(raw, int(n), dst)
	}
	if err != nil {
		return dst, 0, err
	}
	return dst, int(start), nil
}

// decodeV1 decodes the n records of a version 1 block, one after the
// other.
func decodeV1(raw []byte, n int, dst []flowtable.Record) ([]flowtable.Record, error) {
	r := rd{b: raw}
	var prev int64
	for range n {
		var x flowtable.Record
		fl := r.byte()
		x.IPVersion = r.byte()
		al := 16
		if fl&1 != 0 {
			al = 4
		}
		copy(x.Src[:], r.bytes(al))
		copy(x.Dst[:], r.bytes(al))
		x.SrcPort, x.DstPort = r.u16(), r.u16()
		x.VLAN, x.InnerVLAN = uint16(r.uvarint()), uint16(r.uvarint())
		h := r.bytes(7)
		if r.bad {
			break
		}
		x.Proto, x.Tunnel, x.State, x.ConnState, x.End, x.FlagsTx, x.FlagsRx = h[0], 0, flowtable.State(h[2]),
			flowtable.ConnState(h[3]), flowtable.EndReason(h[4]), h[5], h[6]
		setUint8(&x.Tunnel, h[1])
		x.PacketsTx, x.PacketsRx, x.BytesTx, x.BytesRx = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
		if fl&4 != 0 {
			x.IPBytesTx, x.IPBytesRx = r.uvarint(), r.uvarint()
		}
		x.Last = prev + r.varint()
		x.First = x.Last - r.varint()
		prev = x.Last
		if r.bad {
			break
		}
		rest, err := x.App.DecodeResult(r.b)
		if err != nil {
			return dst, fmt.Errorf("decode flow block: %w", err)
		}
		r.b = rest
		x.AppLabel = string(r.bytes(r.len()))
		x.AppLabelGuess = fl&2 != 0
		if r.bad || fl > 7 {
			break
		}
		dst = append(dst, x)
	}
	if r.bad || len(r.b) != 0 {
		return dst, errors.New("decode flow block: malformed record")
	}
	return dst, nil
}

// decodeV2 decodes the n records of a version 2 block from its streams.
func decodeV2(raw []byte, n int, dst []flowtable.Record) ([]flowtable.Record, error) {
	h := rd{b: raw}
	var st [numStreams]rd
	var lens [numStreams]int
	for i := range lens {
		lens[i] = h.len()
	}
	for i := range st {
		st[i].b = h.bytes(lens[i])
	}
	if h.bad || len(h.b) != 0 {
		return dst, errors.New("decode flow block: malformed streams")
	}
	fr, ar, pr, cr, tr, apr, lr := &st[stFlags], &st[stAddr], &st[stPorts], &st[stCount], &st[stTime], &st[stApp], &st[stLabel]
	var prev int64
	var prevApp, curApp []byte
	bad := false
	for range n {
		var x flowtable.Record
		h := fr.bytes(9)
		if fr.bad || h[0] > 3 {
			bad = true
			break
		}
		fl := h[0]
		x.IPVersion, x.Proto = h[1], h[2]
		setUint8(&x.Tunnel, h[3])
		x.State, x.ConnState, x.End, x.FlagsTx, x.FlagsRx = flowtable.State(h[4]), flowtable.ConnState(h[5]), flowtable.EndReason(h[6]), h[7], h[8]
		x.VLAN, x.InnerVLAN = uint16(fr.uvarint()), uint16(fr.uvarint())
		al := 16
		if fl&1 != 0 {
			al = 4
		}
		copy(x.Src[:], ar.bytes(al))
		copy(x.Dst[:], ar.bytes(al))
		x.SrcPort, x.DstPort = pr.u16(), pr.u16()
		x.PacketsTx, x.PacketsRx, x.BytesTx, x.BytesRx = cr.uvarint(), cr.uvarint(), cr.uvarint(), cr.uvarint()
		x.IPBytesTx, x.IPBytesRx = cr.uvarint(), cr.uvarint()
		x.Last = prev + tr.varint()
		x.First = x.Last - tr.varint()
		prev = x.Last
		curApp = readAppDiff(apr, prevApp, curApp)
		if apr.bad {
			bad = true
			break
		}
		rest, err := x.App.DecodeResult(curApp)
		if err == nil && len(rest) != 0 {
			err = errors.New("app result longer than its content")
		}
		if err != nil {
			return dst, fmt.Errorf("decode flow block: %w", err)
		}
		prevApp, curApp = curApp, prevApp
		x.AppLabel = string(lr.bytes(lr.len()))
		x.AppLabelGuess = fl&2 != 0
		dst = append(dst, x)
	}
	for i := range st {
		if st[i].bad || len(st[i].b) != 0 {
			bad = true
		}
	}
	if bad {
		return dst, errors.New("decode flow block: malformed record")
	}
	return dst, nil
}

// rd reads the flow encodings; a read past the end sets bad and returns
// zeros.
type rd struct {
	b   []byte
	bad bool
}

func (r *rd) byte() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *rd) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *rd) u16() uint16 {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *rd) uvarint() uint64 {
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *rd) varint() int64 {
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return x
}

// len reads a length no larger than what is left.
func (r *rd) len() int {
	x := r.uvarint()
	if x > uint64(len(r.b)) {
		r.bad = true
		return -1
	}
	return int(x)
}

// FlowQuery selects stored flow records.
type FlowQuery struct {
	Start, End  time.Time  // by the record's last_seen, both inclusive; zero: open
	IP          netip.Addr // source or destination; invalid: any
	Port        int        // source or destination; -1: any
	Protocol    string     // "TCP", "UDP", ... or the IP protocol number; "": any
	AppProtocol string     // application_protocol (case-insensitive); "": any
	Limit       int        // 1..1000
	Cursor      string     // from the previous page; "": first page
}

// pos is a record's place in the order: newest first by last_seen, then
// by block sequence and index, descending.
type pos struct {
	last int64
	seq  uint64
	idx  uint32
}

func (a pos) less(b pos) bool {
	if a.last != b.last {
		return a.last < b.last
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.idx < b.idx
}

var cursorEnc = base64.RawURLEncoding

func encodeCursor(p pos) string {
	b := []byte{1}
	b = binary.BigEndian.AppendUint64(b, uint64(p.last))
	b = binary.BigEndian.AppendUint64(b, p.seq)
	b = binary.BigEndian.AppendUint32(b, p.idx)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return cursorEnc.EncodeToString(b)
}

func decodeCursor(s string) (pos, error) {
	b, err := cursorEnc.DecodeString(s)
	if err != nil || len(b) != 25 || b[0] != 1 || crc32.ChecksumIEEE(b[:21]) != binary.BigEndian.Uint32(b[21:]) {
		return pos{}, fmt.Errorf("decode cursor: %w", ErrBadQuery)
	}
	return pos{last: int64(binary.BigEndian.Uint64(b[1:])), seq: binary.BigEndian.Uint64(b[9:]), idx: binary.BigEndian.Uint32(b[17:])}, nil
}

// plan is a validated FlowQuery.
type plan struct {
	lo, hi  int64 // last_seen bounds, inclusive
	ip      netip.Addr
	ip4     bool
	ipb     []byte
	port    int
	portb   [2]byte
	proto   int // -1: any
	app     string
	limit   int
	cursor  pos
	hasCurs bool
}

func makePlan(q FlowQuery) (plan, error) {
	p := plan{lo: math.MinInt64, hi: math.MaxInt64, port: q.Port, proto: -1, app: q.AppProtocol, limit: q.Limit}
	if q.Limit < 1 || q.Limit > MaxFlowLimit {
		return p, fmt.Errorf("limit %d outside 1..%d: %w", q.Limit, MaxFlowLimit, ErrBadQuery)
	}
	if !q.Start.IsZero() {
		p.lo = q.Start.UnixNano()
	}
	if !q.End.IsZero() {
		p.hi = q.End.UnixNano()
	}
	if p.lo > p.hi {
		return p, fmt.Errorf("end before start: %w", ErrBadQuery)
	}
	if q.Port < -1 || q.Port > 65535 {
		return p, fmt.Errorf("port %d outside 0..65535: %w", q.Port, ErrBadQuery)
	}
	binary.BigEndian.PutUint16(p.portb[:], uint16(q.Port))
	if q.IP.IsValid() {
		p.ip = q.IP.Unmap()
		p.ip4 = p.ip.Is4()
		p.ipb = p.ip.AsSlice()
	}
	if q.Protocol != "" {
		if n, err := strconv.ParseUint(q.Protocol, 10, 8); err == nil {
			p.proto = int(n)
		} else {
			for i := range 256 {
				if strings.EqualFold(flowtable.ProtoName(uint8(i)), q.Protocol) {
					p.proto = i
					break
				}
			}
			if p.proto < 0 {
				return p, fmt.Errorf("unknown protocol %q: %w", q.Protocol, ErrBadQuery)
			}
		}
	}
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return p, err
		}
		p.cursor, p.hasCurs = c, true
	}
	return p, nil
}

// skip reports that no record of the block with summary s can match.
func (p *plan) skip(s *summary) bool {
	if s.minLast > p.hi || s.maxLast < p.lo {
		return true
	}
	if p.hasCurs && s.minLast > p.cursor.last {
		return true
	}
	if p.proto >= 0 && s.protos[p.proto>>3]&(1<<(p.proto&7)) == 0 {
		return true
	}
	if p.app != "" && !slices.ContainsFunc(s.apps, func(a []byte) bool { return strings.EqualFold(string(a), p.app) }) {
		return true
	}
	if s.delta {
		if p.port >= 0 && !hasDelta(s.ports, uint64(p.port)) {
			return true
		}
		if p.ip.IsValid() && p.ip4 {
			return !hasDelta(s.ip4, uint64(binary.BigEndian.Uint32(p.ipb)))
		}
	} else {
		if p.port >= 0 && !has(s.ports, 2, p.portb[:]) {
			return true
		}
		if p.ip.IsValid() && p.ip4 {
			return !has(s.ip4, 4, p.ipb)
		}
	}
	return p.ip.IsValid() && !p.ip4 && !has(s.ip16, 16, p.ipb)
}

// match reports whether r passes the filters (not the cursor).
func (p *plan) match(r *flowtable.Record) bool {
	if r.Last < p.lo || r.Last > p.hi {
		return false
	}
	if p.proto >= 0 && int(r.Proto) != p.proto {
		return false
	}
	if p.port >= 0 && int(r.SrcPort) != p.port && int(r.DstPort) != p.port {
		return false
	}
	if p.ip.IsValid() && flowtable.IP(&r.Src, r.IPVersion) != p.ip && flowtable.IP(&r.Dst, r.IPVersion) != p.ip {
		return false
	}
	return p.app == "" || strings.EqualFold(r.AppName(), p.app)
}

type hit struct {
	p pos
	r flowtable.Record
}

// Query returns matching records newest first (by last_seen, then by the
// order they were stored in, newest first), and the cursor of the next page
// ("" when none). A bad query is an error wrapping ErrBadQuery.
//
// Cost: Query reads the summaries of blocks from the newest allowed
// last_seen down, decompresses only blocks whose summary admits the filter,
// and stops once it holds Limit records newer than any block left. An
// unfiltered page reads about Limit/BlockRecords+1 blocks; a selective filter
// reads summaries (a few kB per block) until Limit matches or the start of
// the range, decompressing only the blocks that hold a match.
func (f *FlowLog) Query(q FlowQuery) (recs []flowtable.Record, next string, err error) {
	p, err := makePlan(q)
	if err != nil {
		return nil, "", fmt.Errorf("query flows: %w", err)
	}
	top := p.hi
	if p.hasCurs {
		top = min(top, p.cursor.last)
	}
	snap := f.db.NewSnapshot()
	defer snap.Close()
	lower := partKey(keyFlowSummary, flowFloorDiv(p.lo, f.part))
	upper := []byte{keyFlowSummary + 1}
	if top < math.MaxInt64 {
		upper = partKey(keyFlowSummary, flowFloorDiv(top, f.part)+1)
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, "", fmt.Errorf("query flows: %w", err)
	}
	defer it.Close()
	var hits []hit // sorted, at most limit, between blocks
	var buf []flowtable.Record
	var full bool // hits holds limit records, the oldest at kth
	var kth pos
	for it.Last(); it.Valid(); it.Prev() {
		k := it.Key()
		if len(k) != 1+8+8+8 && len(k) != 1+8+8+8+2 {
			return nil, "", fmt.Errorf("query flows: bad summary key %x", k)
		}
		maxLast, seq := unflip(k[9:17]), binary.BigEndian.Uint64(k[17:25])
		if maxLast < p.lo {
			break
		}
		if full && (pos{maxLast, seq, math.MaxUint32}).less(kth) {
			break
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, "", fmt.Errorf("query flows: %w", err)
		}
		s, err := decodeSummary(v)
		if err != nil {
			return nil, "", fmt.Errorf("query flows: block %d: %w", seq, err)
		}
		if p.skip(&s) {
			continue
		}
		bv, c, err := snap.Get(blockKey(k))
		if err != nil {
			return nil, "", fmt.Errorf("query flows: block %d: %w", seq, err)
		}
		var start int
		buf, start, err = f.decodeBlock(bv, buf[:0])
		c.Close()
		if err != nil {
			return nil, "", fmt.Errorf("query flows: block %d: %w", seq, err)
		}
		added := false
		for i := range buf {
			r := &buf[i]
			ps := pos{r.Last, seq, uint32(start + i)}
			if !p.match(r) || (p.hasCurs && !ps.less(p.cursor)) {
				continue
			}
			if full && ps.less(kth) {
				continue
			}
			hits = append(hits, hit{ps, *r})
			added = true
		}
		if added {
			sort.Slice(hits, func(i, j int) bool { return hits[j].p.less(hits[i].p) })
			hits = hits[:min(len(hits), p.limit)]
			if full = len(hits) == p.limit; full {
				kth = hits[p.limit-1].p
			}
		}
	}
	if err := it.Error(); err != nil {
		return nil, "", fmt.Errorf("query flows: %w", err)
	}
	recs = make([]flowtable.Record, len(hits))
	for i := range hits {
		recs[i] = hits[i].r
	}
	if len(hits) == p.limit {
		next = encodeCursor(hits[len(hits)-1].p)
	}
	return recs, next, nil
}

// Enforce applies retention and the disk cap: it deletes, with DeleteRange,
// every partition that ended at or before now minus the retention, then the
// oldest partitions while the history's bytes exceed MaxDiskBytes, and
// compacts the deleted ranges so their space is given back.
func (f *FlowLog) Enforce(now time.Time) error {
	lo, hi, err := f.drop(now)
	if err != nil || lo == hi {
		return err
	}
	for _, pre := range []byte{keyFlowSummary, keyFlowBlock, keyFlowPart} {
		if err := f.db.Compact(context.Background(), partKey(pre, lo), partKey(pre, hi), false); err != nil {
			return fmt.Errorf("compact dropped flow partitions: %w", err)
		}
	}
	return nil
}

// drop deletes the partitions that Enforce must drop, [lo, hi).
func (f *FlowLog) drop(now time.Time) (lo, hi int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := make([]int64, 0, len(f.parts))
	var total int64
	for p, st := range f.parts {
		ps = append(ps, p)
		total += st.bytes
	}
	slices.Sort(ps)
	drop := 0
	if f.opt.Retention > 0 {
		cut := now.Add(-f.opt.Retention).UnixNano()
		for drop < len(ps) && (ps[drop]+1) <= flowFloorDiv(cut, f.part) {
			total -= f.parts[ps[drop]].bytes
			drop++
		}
	}
	byRetention := drop
	if f.opt.MaxDiskBytes > 0 {
		for drop < len(ps) && total > f.opt.MaxDiskBytes {
			total -= f.parts[ps[drop]].bytes
			drop++
		}
	}
	if drop == 0 {
		return 0, 0, nil
	}
	lo, hi = ps[0], ps[drop-1]+1
	b := f.db.NewBatch()
	defer b.Close()
	for _, pre := range []byte{keyFlowSummary, keyFlowBlock, keyFlowPart} {
		if err := b.DeleteRange(partKey(pre, lo), partKey(pre, hi), nil); err != nil {
			return 0, 0, fmt.Errorf("enforce flow retention: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, 0, fmt.Errorf("enforce flow retention: %w", err)
	}
	f.droppedRet += int64(byRetention)
	f.droppedCap += int64(drop - byRetention)
	var freed, recs int64
	for _, p := range ps[:drop] {
		freed += f.parts[p].bytes
		recs += f.parts[p].records
		delete(f.parts, p)
		delete(f.tails, p)
	}
	f.log.Info("flow history: partitions dropped", "partitions", drop, "records", recs, "bytes", freed,
		"oldest_kept", time.Unix(0, hi*f.part).UTC())
	return lo, hi, nil
}

// FlowStats are the flow history's totals.
type FlowStats struct {
	Partitions int
	Blocks     int64 // block and segment values
	Records    int64
	Bytes      int64 // keys and values stored (what MaxDiskBytes caps)
	// Committed is the bytes of the write batches committed since open
	// (WAL bytes); see the flows.go comment for why it exceeds Bytes.
	Committed int64
	// Partitions dropped since open, by retention and by the disk cap.
	DroppedRetention, DroppedDiskCap int64
}

// Stats returns the history's totals.
func (f *FlowLog) Stats() FlowStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FlowStats{Partitions: len(f.parts), Committed: f.committed, DroppedRetention: f.droppedRet, DroppedDiskCap: f.droppedCap}
	for _, p := range f.parts {
		s.Blocks += p.blocks
		s.Records += p.records
		s.Bytes += p.bytes
	}
	return s
}

func flowFloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func flip(v int64) []byte { return be64(uint64(v) ^ 1<<63) }

func unflip(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ 1<<63) }

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// blockKey returns the key of the block (or segment) whose summary key is
// k.
func blockKey(k []byte) []byte {
	return append(append([]byte{keyFlowBlock}, k[1:9]...), k[17:]...)
}

func partKey(prefix byte, p int64) []byte { return append([]byte{prefix}, flip(p)...) }

// setUint8 sets a uint8-based field whose type the store does not import
// (decode.Tunnel).
func setUint8[T ~uint8](p *T, v uint8) { *p = T(v) }

var _ io.Closer = (*FlowLog)(nil)

// ParseFlowQuery reads the query parameters of GET /api/v1/network/flows
// (start, end, ip, port, protocol, application_protocol, limit, cursor)
// through get, which returns "" for a missing parameter. Times are RFC 3339
// or Unix seconds (with a fraction, as Prometheus takes them); limit defaults
// to 100. Errors wrap ErrBadQuery.
func ParseFlowQuery(get func(name string) string) (FlowQuery, error) {
	q := FlowQuery{Port: -1, Limit: 100, Protocol: get("protocol"), AppProtocol: get("application_protocol"), Cursor: get("cursor")}
	var err error
	if q.Start, err = parseFlowTime(get("start")); err != nil {
		return q, fmt.Errorf("parse start: %w", err)
	}
	if q.End, err = parseFlowTime(get("end")); err != nil {
		return q, fmt.Errorf("parse end: %w", err)
	}
	if v := get("ip"); v != "" {
		if q.IP, err = netip.ParseAddr(v); err != nil {
			return q, fmt.Errorf("parse ip: %w", ErrBadQuery)
		}
	}
	if v := get("port"); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return q, fmt.Errorf("parse port: %w", ErrBadQuery)
		}
		q.Port = int(n)
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxFlowLimit {
			return q, fmt.Errorf("parse limit: not in 1..%d: %w", MaxFlowLimit, ErrBadQuery)
		}
		q.Limit = n
	}
	if _, err := makePlan(q); err != nil {
		return q, err
	}
	return q, nil
}

func parseFlowTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || f < -9e9 || f > 9e9 { // within int64 nanoseconds
			return time.Time{}, ErrBadQuery
		}
		s, frac := math.Modf(f)
		return time.Unix(int64(s), int64(math.Round(frac*1e9))).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1678 || t.Year() > 2261 {
		return time.Time{}, ErrBadQuery
	}
	return t, nil
}
