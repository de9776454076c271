package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configures a Store.
type Options struct {
	FS           vfs.FS        // nil: vfs.Default (tests: vfs.NewMem())
	Interval     time.Duration // sampling interval; timestamps are aligned to it (default 5 s)
	Retention    time.Duration // storage.retention_days (default 30 days)
	MaxDiskBytes int64         // storage.max_disk_mb << 20; 0: no cap
	// HeadBytes bounds the head buffers (the open window's samples, 16
	// bytes each); when they would pass it, the window so far is written
	// as chunks. 0: DefaultHeadBytes.
	HeadBytes int64
	Logger    *slog.Logger // nil: discard
}

// Defaults.
const (
	DefaultInterval  = 5 * time.Second
	DefaultRetention = 30 * 24 * time.Hour
	// PartitionSpan is the time span of one partition: retention and the
	// disk cap drop whole partitions.
	PartitionSpan = 2 * time.Hour
	// MaxInterval is the longest sampling interval.
	MaxInterval = 30 * time.Minute
	// DefaultHeadBytes is the head buffers' default bound: a 2 h window at
	// 5 s of about 360 series.
	DefaultHeadBytes = 8 << 20
	// chunkTarget is the number of samples a chunk window aims at.
	chunkTarget = 1440
)

// ErrOutOfOrder is returned by Append for a tick at or before the last one.
var ErrOutOfOrder = errors.New("tick out of order")

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("store closed")

// Keys, by first byte. Timestamps and partitions are int64 written big
// endian with the sign bit flipped, so that keys sort in time order.
const (
	keySeries = 0x01 // id -> canonical series key (appendSeriesKey)
	keyChunk  = 0x10 // partition, id, first T -> chunk (encodeChunk)
	// 0x14: format 2's hour rollups (rollup.go), deleted by the upgrade
	keyMember = 0x11 // partition -> bitset of the ids with samples in it
	keyHead   = 0x12 // T -> tick record: the samples of the open window
	keyMeta   = 0x7f // metaMagic, metaDirty, metaCut
	keyFlows  = 0x20 // first key of the flow history, the end of ours
)

var (
	metaMagic = []byte{keyMeta, 'M'} // magic + version
	metaDirty = []byte{keyMeta, 'D'} // present while open
	metaCut   = []byte{keyMeta, 'C'} // 8 bytes: every tick before it is chunked
)

// Format versions: 1 wrote chunks in the modes XOR, integer delta, integer
// delta of delta and constant; 2 adds the decimal mode (chunk_dec.go) and
// 2 h chunk windows at 5 s; 3 keeps the hour rollups inside the chunks
// (chunkRollupFlag) instead of records of their own (0x14). This build reads
// all three: an older store is upgraded in place when it opens (its marker
// says 3, its old chunks stay and are read as they are, its rollup records
// are deleted); a build that reads only older versions refuses a newer store
// with a clear error.
const (
	magic             = "netsentry-tsdb"
	formatVersion     = 3
	oldFormatVersions = 2 // the versions before formatVersion this build upgrades: 1..oldFormatVersions
)

func orderedInt(v int64) uint64  { return uint64(v) ^ 1<<63 }
func fromOrdered(u uint64) int64 { return int64(u ^ 1<<63) }

func appendInt(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, orderedInt(v))
}

func chunkKey(dst []byte, part int64, id uint64, t0 int64) []byte {
	dst = append(dst, keyChunk)
	dst = appendInt(dst, part)
	dst = binary.BigEndian.AppendUint64(dst, id)
	return appendInt(dst, t0)
}

func chunkPartPrefix(part int64) []byte { return appendInt([]byte{keyChunk}, part) }
func memberKey(part int64) []byte       { return appendInt([]byte{keyMember}, part) }
func headKey(t int64) []byte            { return appendInt([]byte{keyHead}, t) }
func seriesKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{keySeries}, id)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Store is a time-series store in one pebble database. See the package
// documentation for threading and lifetimes.
type Store struct {
	db        *pebble.DB
	dir       string
	opt       Options
	log       *slog.Logger
	interval  int64 // ms
	span      int64 // partition span, ms
	window    int64 // chunk window, ms; divides span
	recovered string
	closed    atomic.Bool

	appendMu sync.Mutex // held by Append and Close: Close never closes the database under an Append
	// Sync sharing (see Append): appendSeq counts Append's commits,
	// syncedSeq the last of them known synced; syncMu serialises the syncs
	// queries make. lastSync is Append's.
	appendSeq, syncedSeq atomic.Uint64
	syncMu               sync.Mutex
	lastSync             time.Time
	mu                   sync.RWMutex // guards what queries read: idx, parts, partList, series heads
	idx                  *index
	parts                map[int64][]uint64 // partition -> member bitset by id
	partList             []int64            // sorted partitions
	headWin              int64              // start of the open chunk window; noWin: none
	lastT                int64              // last tick appended
	cutEnd               int64              // every tick before it is chunked

	// Appender scratch, used by Append only.
	gen      uint64
	keyBuf   []byte
	rec      []byte
	staged   []staged
	newKeys  map[string]*series
	newOrder []*series
	// prevSeries is the series of each sample of the last tick committed
	// (nil: rejected), curSeries the tick's being appended (Append's
	// goroutine only).
	prevSeries, curSeries []*series
	roll                  rollupScratch // of rollupInChunk
	consts                []constEntry  // writeChunks's constant chunks
	constBuf              []byte        // writeChunks's constants record

	samples    atomic.Uint64
	chunks     atomic.Uint64
	droppedRet atomic.Uint64 // partitions dropped by retention
	droppedCap atomic.Uint64 // partitions dropped by the disk cap
	rejected   atomic.Uint64
	appendErr  atomic.Uint64
	enforceErr atomic.Uint64
	headAlloc  int64 // bytes of the head buffers' capacity (under mu)
}

type staged struct {
	s *series
	v float64
}

const noWin = math.MinInt64

// Open opens (creating if missing) the store in dir. A directory that is not
// a store, or a damaged one, is an error naming what is wrong (never a
// panic). After an unclean close it opens and Recovered() says what it
// recovered.
func Open(dir string, opt Options) (*Store, error) {
	if opt.FS == nil {
		opt.FS = vfs.Default
	}
	if opt.Interval == 0 {
		opt.Interval = DefaultInterval
	}
	if opt.Retention == 0 {
		opt.Retention = DefaultRetention
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.HeadBytes == 0 {
		opt.HeadBytes = DefaultHeadBytes
	}
	if opt.Interval < time.Millisecond || opt.Interval > MaxInterval {
		return nil, fmt.Errorf("open store %s: interval %s out of range [1ms, %s]", dir, opt.Interval, MaxInterval)
	}
	if opt.Retention < 0 || opt.MaxDiskBytes < 0 || opt.HeadBytes < 0 {
		return nil, fmt.Errorf("open store %s: negative retention, disk cap or head bound", dir)
	}
	fs := opt.FS
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create store directory %s: %w", dir, err)
	}
	ls, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("list store directory %s: %w", dir, err)
	}
	ls = slices.DeleteFunc(ls, func(n string) bool { return n == "lost+found" })
	fresh := len(ls) == 0
	if !fresh {
		desc, err := peek(dir, fs)
		if err != nil {
			return nil, fmt.Errorf("open store %s: not a store: %w", dir, err)
		}
		if !desc.Exists {
			return nil, fmt.Errorf("open store %s: not a store: the directory holds %d files but no database", dir, len(ls))
		}
	}
	// A sensor's store is small and written in ticks: a small block cache
	// and small memtables keep pebble's memory to about 8 MiB (the memory
	// test counts it in the store's overhead, docs/memory.md).
	cache := pebble.NewCache(pebbleCacheBytes)
	defer cache.Unref()
	popt := &pebble.Options{
		FS:                          fs,
		ErrorIfNotExists:            !fresh,
		Logger:                      pebbleLogger{opt.Logger},
		Cache:                       cache,
		MemTableSize:                pebbleMemTableBytes,
		MemTableStopWritesThreshold: pebbleMemTables,
		// Compact L0 at 8 files rather than 4: the flow history's
		// blocks are written once and in key order, and half the
		// L0-to-base compactions cut what pebble rewrites by about a
		// third under a flood of new flows (BenchmarkFlowWriteFlood).
		L0CompactionThreshold: 8,
		L0StopWritesThreshold: 32,
	}
	popt.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionGood })
	// 32 KiB data blocks rather than 4: zstd compresses a block at a time,
	// and a block of 4 KiB holds one partition's chunks of only a hundred
	// series; at 32 KiB the store of a day of real host metrics is about 8 %
	// smaller (bench/store), and reading 24 h of a series decompresses 12
	// such blocks, well under a millisecond.
	for i := range popt.Levels {
		popt.Levels[i].BlockSize = pebbleBlockBytes
	}
	popt.Experimental.SpanPolicyFunc = flowSpans
	db, err := openPebble(dir, popt)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{
		db:       db,
		dir:      dir,
		opt:      opt,
		log:      opt.Logger,
		interval: opt.Interval.Milliseconds(),
		span:     PartitionSpan.Milliseconds(),
		idx:      newIndex(),
		parts:    map[int64][]uint64{},
		headWin:  noWin,
		lastT:    math.MinInt64,
		cutEnd:   math.MinInt64,
		newKeys:  map[string]*series{},
	}
	s.window = chunkWindow(s.span, s.interval)
	if err := s.load(fresh); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

// flowSpans cuts every table pebble writes (flushes and compactions) at
// the flow history's key prefixes (0x20 to 0x24), one span each, the rest
// of the key space before and after being one span: a flush's new blocks
// (0x22, appended after every block before them) and their summaries
// (0x21, likewise) then land in tables of their own instead of one table
// from the first new summary to the last new block, whose bounds hold the
// whole history's blocks and made every compaction out of L0 rewrite them
// all. Under a flood of new flows this cut pebble's bytes written per WAL
// byte from 4.0 to 2.7 and its compaction CPU by a quarter
// (BenchmarkFlowWriteFlood, TestFlowTablesSplitByPrefix). The policy
// itself is pebble's default.
func flowSpans(start []byte) (pebble.SpanPolicy, []byte, error) {
	switch {
	case len(start) == 0 || start[0] < keyFlowMeta:
		return pebble.SpanPolicy{}, []byte{keyFlowMeta}, nil
	case start[0] <= keyFlowPart:
		return pebble.SpanPolicy{}, []byte{start[0] + 1}, nil
	}
	return pebble.SpanPolicy{}, nil, nil
}

// The store's memory (MemoryBytes): pebble's block cache and memtables
// (at most pebbleMemTables, one written while the other is flushed), and the
// chunk zstd coders (measured 4.4 MiB: encoder and decoder, shared by every
// Store).
const (
	pebbleCacheBytes    = 2 << 20
	pebbleMemTableBytes = 2 << 20
	pebbleMemTables     = 2
	pebbleBlockBytes    = 32 << 10
	chunkCoderBytes     = 5 << 20
)

// MemoryBytes is what a Store opened with HeadBytes headBytes (0: the
// default) and the flow history in its database (a FlowLog with the
// default block size) hold at most besides query results: pebble's block
// cache and memtables, the head buffers, the chunk coders, and
// FlowMemoryBytes.
func MemoryBytes(headBytes int64) int64 {
	if headBytes == 0 {
		headBytes = DefaultHeadBytes
	}
	return pebbleCacheBytes + pebbleMemTables*pebbleMemTableBytes + headBytes + chunkCoderBytes + FlowMemoryBytes(0)
}

// chunkWindow is the largest divisor of span that holds about chunkTarget
// intervals (span itself when one interval is long).
func chunkWindow(span, interval int64) int64 {
	k := span / (chunkTarget * interval)
	if k < 1 {
		k = 1
	}
	for span%k != 0 {
		k--
	}
	return span / k
}

func peek(dir string, fs vfs.FS) (desc *pebble.DBDesc, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("peek: %v", r)
		}
	}()
	return pebble.Peek(dir, fs)
}

func openPebble(dir string, o *pebble.Options) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open database: %v", r)
		}
	}()
	return pebble.Open(dir, o)
}

// pebbleLogger sends pebble's log to slog. Fatalf panics: pebble does not
// expect it to return.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}

func (s *Store) get(key []byte) ([]byte, bool, error) {
	v, c, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := slices.Clone(v)
	c.Close()
	return out, true, nil
}

// load checks the format marker and rebuilds the in-memory state: series
// index, partitions, and the head from its tick records.
func (s *Store) load(fresh bool) error {
	m, ok, err := s.get(metaMagic)
	if err != nil {
		return fmt.Errorf("read format marker: %w", err)
	}
	switch {
	case !ok && fresh:
		v := append([]byte(magic), formatVersion)
		if err := s.db.Set(metaMagic, v, pebble.Sync); err != nil {
			return fmt.Errorf("write format marker: %w", err)
		}
	case !ok:
		return errors.New("not a netsentry store: no format marker")
	case len(m) != len(magic)+1 || string(m[:len(magic)]) != magic:
		return fmt.Errorf("not a netsentry store: bad format marker %q", m)
	case m[len(magic)] >= 1 && m[len(magic)] <= oldFormatVersions:
		// Formats 1 and 2 kept the hour rollups as records of their own;
		// this build reads them from the chunks (or computes them from an
		// old chunk without one), so the records go with the upgrade.
		b := s.db.NewBatch()
		err := b.DeleteRange([]byte{keyRollup}, []byte{keyRollup + 1}, nil)
		if err == nil {
			err = b.Set(metaMagic, append([]byte(magic), formatVersion), nil)
		}
		if err == nil {
			err = b.Commit(pebble.Sync)
		}
		b.Close()
		if err != nil {
			return fmt.Errorf("upgrade format: %w", err)
		}
		s.log.Info("store format upgraded", "dir", s.dir, "from", m[len(magic)], "to", formatVersion)
	case m[len(magic)] != formatVersion:
		return fmt.Errorf("store format version %d, this build reads 1 to %d", m[len(magic)], formatVersion)
	}
	_, dirty, err := s.get(metaDirty)
	if err != nil {
		return fmt.Errorf("read clean-close marker: %w", err)
	}
	if c, ok, err := s.get(metaCut); err != nil {
		return fmt.Errorf("read cut marker: %w", err)
	} else if ok {
		if len(c) != 8 {
			return errors.New("corrupt cut marker")
		}
		s.cutEnd = fromOrdered(binary.BigEndian.Uint64(c))
	}

	// Series index.
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keySeries}, UpperBound: []byte{keySeries + 1}})
	if err != nil {
		return fmt.Errorf("read series index: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("read series index: %w", err)
		}
		if len(k) != 9 || binary.BigEndian.Uint64(k[1:]) != uint64(len(s.idx.byID)+1) {
			it.Close()
			return fmt.Errorf("corrupt series index at key %x", k)
		}
		name, labels, err := parseSeriesKey(v)
		if err != nil {
			it.Close()
			return fmt.Errorf("read series %d: %w", len(s.idx.byID)+1, err)
		}
		sr := &series{id: uint64(len(s.idx.byID) + 1), name: name, labels: labels}
		s.idx.add(sr, string(v))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("read series index: %w", err)
	}

	// Partitions.
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyMember}, UpperBound: []byte{keyMember + 1}})
	if err != nil {
		return fmt.Errorf("read partitions: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("read partitions: %w", err)
		}
		if len(k) != 9 || len(v)%8 != 0 {
			it.Close()
			return fmt.Errorf("corrupt partition record %x", k)
		}
		p := fromOrdered(binary.BigEndian.Uint64(k[1:]))
		bs := make([]uint64, len(v)/8)
		for i := range bs {
			bs[i] = binary.LittleEndian.Uint64(v[8*i:])
		}
		s.parts[p] = bs
		s.partList = append(s.partList, p)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("read partitions: %w", err)
	}

	// Head: the tick records of the open window.
	ticks, samples, first, last, err := s.loadHead()
	if err != nil {
		return err
	}
	for _, sr := range s.idx.byID {
		s.headAlloc += int64(cap(sr.ts)+cap(sr.vs)) * headSampleBytes / 2
	}
	if s.cutEnd != math.MinInt64 && s.lastT < s.cutEnd-1 {
		s.lastT = s.cutEnd - 1
	}
	if dirty {
		if ticks == 0 {
			s.recovered = fmt.Sprintf("unclean shutdown: %d series, %d partitions, no unchunked samples to replay",
				len(s.idx.byID), len(s.partList))
		} else {
			s.recovered = fmt.Sprintf("unclean shutdown: replayed %d ticks (%d samples, %s to %s) of %d series, %d partitions",
				ticks, samples, time.UnixMilli(first).UTC().Format(time.RFC3339), time.UnixMilli(last).UTC().Format(time.RFC3339),
				len(s.idx.byID), len(s.partList))
		}
		s.log.Warn("store recovered", "dir", s.dir, "what", s.recovered)
	}
	if err := s.db.Set(metaDirty, nil, pebble.Sync); err != nil {
		return fmt.Errorf("write clean-close marker: %w", err)
	}
	return nil
}

func (s *Store) loadHead() (ticks, samples int, first, last int64, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyHead}, UpperBound: []byte{keyHead + 1}})
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("read head: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("read head: %w", err)
		}
		if len(k) != 9 {
			return 0, 0, 0, 0, fmt.Errorf("corrupt head key %x", k)
		}
		t := fromOrdered(binary.BigEndian.Uint64(k[1:]))
		n, l := binary.Uvarint(v)
		if l <= 0 || n > uint64(len(v)) {
			return 0, 0, 0, 0, fmt.Errorf("corrupt head record at %d", t)
		}
		v = v[l:]
		for range n {
			id, l := binary.Uvarint(v)
			if l <= 0 || len(v) < l+8 {
				return 0, 0, 0, 0, fmt.Errorf("corrupt head record at %d", t)
			}
			sr := s.idx.get(id)
			if sr == nil {
				return 0, 0, 0, 0, fmt.Errorf("head record at %d names unknown series %d", t, id)
			}
			sr.ts = append(sr.ts, t)
			sr.vs = append(sr.vs, math.Float64frombits(binary.LittleEndian.Uint64(v[l:])))
			v = v[l+8:]
		}
		if ticks == 0 {
			first = t
			s.headWin = floorDiv(t, s.window) * s.window
		}
		last = t
		s.lastT = t
		ticks++
		samples += int(n)
	}
	return ticks, samples, first, last, nil
}

// Close writes the open window's samples as chunks, marks the store cleanly
// closed and closes the database.
func (s *Store) Close() error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	if s.closed.Load() {
		return nil
	}
	err := s.seal()
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if derr := s.db.Delete(metaDirty, pebble.Sync); err == nil {
		err = derr
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close store %s: %w", s.dir, err)
	}
	return nil
}

// Recovered says what Open recovered after an unclean close; "" after a
// clean one.
func (s *Store) Recovered() string { return s.recovered }

// DB is the pebble database, for the flow history sharing it (keys
// 0x20..0x2f). It is closed by Close.
func (s *Store) DB() *pebble.DB { return s.db }

// Append stores one tick: every sample shares ts (aligned down to Interval).
// Samples are buffered per series and written as compressed chunks. Append
// syncs its commit to the pebble WAL when the last sync is at least
// SyncEvery old, so at the sensor's interval (1 s and more) every tick is
// synced before Append returns; ticks appended faster (a backfill, the
// benchmark) share one sync, and a query that would read a tick not yet
// synced syncs first (syncForRead): what a query returned is durable. A
// series given twice in one tick keeps its last value.
// Samples with an empty name or bad labels are skipped and counted in
// Stats.Rejected. Append is meant for one goroutine (the tick loop); calls
// from several are serialized.
func (s *Store) Append(ts time.Time, samples []Sample) error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	err := s.appendTick(ts, samples)
	if err != nil {
		s.appendErr.Add(1)
	}
	return err
}

func (s *Store) appendTick(ts time.Time, samples []Sample) error {
	if s.closed.Load() {
		return fmt.Errorf("append tick: %w", ErrClosed)
	}
	t := floorDiv(ts.UnixMilli(), s.interval) * s.interval
	if t <= s.lastT || t < s.cutEnd {
		return fmt.Errorf("append tick %s: %w", time.UnixMilli(t).UTC().Format(time.RFC3339Nano), ErrOutOfOrder)
	}
	win := floorDiv(t, s.window) * s.window
	part := floorDiv(t, s.span)
	cut := s.headWin != noWin && win != s.headWin

	b := s.db.NewBatchWithSize(64 + 16*len(samples))
	defer b.Close()
	var nchunks uint64
	if cut {
		var err error
		if nchunks, err = s.writeChunks(b, t, s.headWin+s.window); err != nil {
			return fmt.Errorf("append tick: %w", err)
		}
	}

	s.gen++
	s.staged = s.staged[:0]
	s.newOrder = s.newOrder[:0]
	clear(s.newKeys)
	nextID := uint64(len(s.idx.byID)) + 1
	members := s.parts[part]
	membersChanged := false
	cur := s.curSeries[:0]
	for i := range samples {
		smp := &samples[i]
		// The sensor sends the same series in the same order every tick:
		// the series at this place in the last tick, if it is this one,
		// saves the checks, the key and the map lookup.
		if i < len(s.prevSeries) {
			if sr := s.prevSeries[i]; sr != nil && sr.name == smp.Name && slices.Equal(sr.labels, smp.Labels) {
				cur = append(cur, sr)
				s.stage(sr, smp.Value, &members, &membersChanged)
				continue
			}
		}
		cur = append(cur, nil)
		if smp.Name == "" {
			s.rejected.Add(1)
			continue
		}
		labels := smp.Labels
		sorted, err := checkLabels(labels)
		if err != nil {
			s.rejected.Add(1)
			continue
		}
		if !sorted {
			labels = slices.Clone(labels)
			slices.SortFunc(labels, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
		}
		s.keyBuf = appendSeriesKey(s.keyBuf[:0], smp.Name, labels)
		sr := s.idx.byKey[string(s.keyBuf)]
		if sr == nil {
			sr = s.newKeys[string(s.keyBuf)]
		}
		if sr == nil {
			sr = &series{id: nextID, name: strings.Clone(smp.Name), labels: cloneLabels(labels)}
			nextID++
			key := string(s.keyBuf)
			s.newKeys[key] = sr
			s.newOrder = append(s.newOrder, sr)
			if err := b.Set(seriesKey(sr.id), s.keyBuf, nil); err != nil {
				return fmt.Errorf("append tick: write series: %w", err)
			}
		}
		cur[i] = sr
		s.stage(sr, smp.Value, &members, &membersChanged)
	}
	s.curSeries = cur
	if membersChanged {
		v := make([]byte, 0, 8*len(members))
		for _, w := range members {
			v = binary.LittleEndian.AppendUint64(v, w)
		}
		if err := b.Set(memberKey(part), v, nil); err != nil {
			return fmt.Errorf("append tick: write partition: %w", err)
		}
	}
	s.rec = binary.AppendUvarint(s.rec[:0], uint64(len(s.staged)))
	for _, st := range s.staged {
		s.rec = binary.AppendUvarint(s.rec, st.s.id)
		s.rec = binary.LittleEndian.AppendUint64(s.rec, math.Float64bits(st.v))
	}
	if err := b.Set(headKey(t), s.rec, nil); err != nil {
		return fmt.Errorf("append tick: write head: %w", err)
	}

	// A cut moves samples from the head buffers to chunks: queries must not
	// see both, so the lock is held across the commit. Otherwise queries
	// read the buffers, which change only below.
	if cut {
		s.mu.Lock()
	}
	now := time.Now()
	sync := now.Sub(s.lastSync) >= SyncEvery
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		if cut {
			s.mu.Unlock()
		}
		s.prevSeries = s.prevSeries[:0] // its new series are not interned
		return fmt.Errorf("append tick: commit: %w", err)
	}
	// Counted before the tick is published (s.mu below): a query that sees
	// it sees the count.
	seq := s.appendSeq.Add(1)
	if sync {
		s.lastSync = now
		s.markSynced(seq)
	}
	s.prevSeries, s.curSeries = s.curSeries, s.prevSeries
	if !cut {
		s.mu.Lock()
	}
	if cut {
		s.resetHead()
		s.cutEnd = s.headWin + s.window
		s.headWin = noWin
	}
	for _, sr := range s.newOrder {
		s.idx.add(sr, string(appendSeriesKey(s.keyBuf[:0], sr.name, sr.labels)))
	}
	full := false
	for _, st := range s.staged {
		if cap(st.s.ts) == 0 {
			// Sized once (the buffers do not grow): a window's worth, or
			// the series' share of HeadBytes if that is less.
			n := s.headCap()
			st.s.ts, st.s.vs = make([]int64, 0, n), make([]float64, 0, n)
			s.headAlloc += int64(n) * headSampleBytes
		}
		st.s.ts = append(st.s.ts, t)
		st.s.vs = append(st.s.vs, st.v)
		full = full || len(st.s.ts) == cap(st.s.ts)
	}
	if s.headWin == noWin {
		s.headWin = win
	}
	if membersChanged {
		if _, ok := s.parts[part]; !ok {
			i, _ := slices.BinarySearch(s.partList, part)
			s.partList = slices.Insert(s.partList, i, part)
		}
		s.parts[part] = members
	}
	s.lastT = t
	s.mu.Unlock()
	s.samples.Add(uint64(len(s.staged)))
	s.chunks.Add(nchunks)
	if cut {
		if err := s.enforce(t); err != nil {
			s.enforceErr.Add(1)
			s.log.Error("store retention", "err", err)
		}
	}
	if full || s.headAlloc > s.opt.HeadBytes {
		// The head's memory bound: the window so far becomes chunks (the
		// tick itself is stored already).
		if err := s.seal(); err != nil {
			s.log.Error("store: seal head at its memory bound", "err", err)
		}
	}
	return nil
}

// stage adds the tick's value v of sr (the last one wins if a tick names a
// series twice) and sr to the partition's members.
func (s *Store) stage(sr *series, v float64, members *[]uint64, changed *bool) {
	if sr.tickGen == s.gen {
		s.staged[sr.tickIdx].v = v
		return
	}
	sr.tickGen, sr.tickIdx = s.gen, len(s.staged)
	s.staged = append(s.staged, staged{sr, v})
	if !bitHas(*members, sr.id) {
		if !*changed {
			*members = slices.Clone(*members)
			*changed = true
		}
		*members = bitSet(*members, sr.id)
	}
}

// headSampleBytes is what a buffered sample costs: its timestamp and value.
const headSampleBytes = 16

// headCap is the capacity of a series' head buffers: a window's worth, or
// the series' share of HeadBytes among the interned series if less (at
// least 16 samples).
func (s *Store) headCap() int {
	n := s.window/s.interval + 1
	if share := s.opt.HeadBytes / headSampleBytes / int64(max(len(s.idx.byID), 1)); share < n {
		n = max(share, 16)
	}
	return int(n)
}

// resetHead empties the head buffers once they are chunked: those of the
// size headCap gives now are kept, the others (and those of series that
// had no samples) are released; s.mu is locked.
func (s *Store) resetHead() {
	c := s.headCap()
	s.headAlloc = 0
	for _, sr := range s.idx.byID {
		if len(sr.ts) == 0 || cap(sr.ts) != c || cap(sr.vs) != c {
			sr.ts, sr.vs = nil, nil
			continue
		}
		sr.ts, sr.vs = sr.ts[:0], sr.vs[:0]
		s.headAlloc += int64(c) * headSampleBytes
	}
}

// writeChunks adds to b the chunks (with their rollups) of the head buffers, the
// deletion of the head records before headEnd and the cut marker cutEnd.
func (s *Store) writeChunks(b *pebble.Batch, headEnd, cutEnd int64) (uint64, error) {
	var nchunks uint64
	for _, sr := range s.idx.byID {
		if len(sr.ts) == 0 {
			continue
		}
		c := encodeChunk(sr.ts, sr.vs)
		nchunks++
		if e, ok := asConst(c, sr.id); ok {
			s.consts = append(s.consts, e)
			continue
		}
		k := chunkKey(nil, floorDiv(sr.ts[0], s.span), sr.id, sr.ts[0])
		if err := b.Set(k, s.rollupInChunk(c, sr.ts, sr.vs), nil); err != nil {
			return 0, fmt.Errorf("write chunk: %w", err)
		}
	}
	var err error
	s.constBuf, err = writeConsts(b, s.span, s.consts, s.constBuf)
	s.consts = s.consts[:0]
	if err != nil {
		return 0, err
	}
	if err := b.DeleteRange([]byte{keyHead}, headKey(headEnd), nil); err != nil {
		return 0, fmt.Errorf("delete head: %w", err)
	}
	if err := b.Set(metaCut, appendInt(nil, cutEnd), nil); err != nil {
		return 0, fmt.Errorf("write cut marker: %w", err)
	}
	return nchunks, nil
}

// seal writes the open window's samples as chunks (a clean Close): a day
// that ends mid-window is stored compressed, not as raw tick records. The
// next Append in the same window starts a second chunk of it.
func (s *Store) seal() error {
	if s.headWin == noWin {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	n, err := s.writeChunks(b, s.lastT+1, s.lastT+1)
	if err != nil {
		return fmt.Errorf("seal head: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("seal head: commit: %w", err)
	}
	s.resetHead()
	s.cutEnd = s.lastT + 1
	s.headWin = noWin
	s.chunks.Add(n)
	return nil
}

func cloneLabels(ls []Label) []Label {
	out := make([]Label, len(ls))
	for i, l := range ls {
		out[i] = Label{strings.Clone(l.Name), strings.Clone(l.Value)}
	}
	return out
}

func bitHas(bs []uint64, id uint64) bool {
	w := id >> 6
	return w < uint64(len(bs)) && bs[w]&(1<<(id&63)) != 0
}

func bitSet(bs []uint64, id uint64) []uint64 {
	w := int(id >> 6)
	for len(bs) <= w {
		bs = append(bs, 0)
	}
	bs[w] |= 1 << (id & 63)
	return bs
}

// Select returns the series that have samples in [mint, maxt] (ms) and match
// every matcher, in the order they were first appended. Time is exact: a
// series is returned only if it has a sample inside the range (partitions
// inside the range say so by their members; at its edges, chunk headers and
// the head do).
func (s *Store) Select(matchers []Matcher, mint, maxt int64) ([]SeriesInfo, error) {
	var out []SeriesInfo
	err := s.selectSeries(matchers, mint, maxt, func(sr *series) { out = append(out, sr.info()) })
	return out, err
}

// SyncEvery is how old Append's last WAL sync must be for Append to sync
// again (see Append).
const SyncEvery = 250 * time.Millisecond

func (s *Store) markSynced(seq uint64) {
	s.syncMu.Lock()
	if seq > s.syncedSeq.Load() {
		s.syncedSeq.Store(seq)
	}
	s.syncMu.Unlock()
}

// syncForRead makes every tick a query can see durable: called with s.mu
// read-held (no tick is published meanwhile), it syncs the WAL if a commit
// that may be visible was not synced.
func (s *Store) syncForRead() error {
	seq := s.appendSeq.Load()
	if seq <= s.syncedSeq.Load() {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if seq <= s.syncedSeq.Load() {
		return nil
	}
	// A log-only record committed with Sync syncs the WAL up to it, and
	// so every commit before it.
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("sync the store's log before a read: %w", err)
	}
	s.syncedSeq.Store(seq)
	return nil
}

func (s *Store) selectSeries(matchers []Matcher, mint, maxt int64, fn func(*series)) error {
	ms, err := compileMatchers(matchers)
	if err != nil {
		return fmt.Errorf("select series: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return fmt.Errorf("select series: %w", ErrClosed)
	}
	if err := s.syncForRead(); err != nil {
		return fmt.Errorf("select series: %w", err)
	}
	if mint > maxt {
		return nil
	}
	var sets [][]uint64
	var setParts []int64
	lo, hi := floorDiv(mint, s.span), floorDiv(maxt, s.span)
	i, _ := slices.BinarySearch(s.partList, lo)
	for ; i < len(s.partList) && s.partList[i] <= hi; i++ {
		sets = append(sets, s.parts[s.partList[i]])
		setParts = append(setParts, s.partList[i])
	}
	if len(sets) == 0 {
		return nil
	}
	var tc timeCheck
	defer tc.close()
	var checkErr error
	check := func(sr *series) {
		if checkErr != nil {
			return
		}
		for i := range ms {
			if !ms[i].matches(sr.label(ms[i].Name)) {
				return
			}
		}
		for j, bs := range sets {
			if !bitHas(bs, sr.id) {
				continue
			}
			// A partition inside [mint, maxt] holds a sample of each of
			// its members; at the range's edges the samples are looked at.
			p := setParts[j]
			if p*s.span >= mint && (p+1)*s.span-1 <= maxt {
				fn(sr)
				return
			}
			ok, err := s.hasSamples(&tc, sr, p, max(mint, p*s.span), min(maxt, (p+1)*s.span-1))
			if err != nil {
				checkErr = fmt.Errorf("select series: series %d: %w", sr.id, err)
				return
			}
			if ok {
				fn(sr)
				return
			}
		}
	}
	ids, all := s.idx.candidates(ms)
	if all {
		for _, sr := range s.idx.byID {
			check(sr)
		}
		return checkErr
	}
	for _, id := range ids {
		check(s.idx.get(id))
	}
	return checkErr
}

// timeCheck is the iterator hasSamples reuses over one selectSeries.
type timeCheck struct {
	it *pebble.Iterator
	w  chunkWalk
}

func (tc *timeCheck) close() {
	if tc.it != nil {
		tc.it.Close()
	}
}

// hasSamples says whether sr has a sample in [lo, hi], a range inside
// partition p: from the head buffers, then from the chunk headers (the
// timestamps of an irregular chunk are decoded). s.mu is read-locked.
func (s *Store) hasSamples(tc *timeCheck, sr *series, p, lo, hi int64) (bool, error) {
	if i, _ := slices.BinarySearch(sr.ts, lo); i < len(sr.ts) && sr.ts[i] <= hi {
		return true, nil
	}
	if tc.it == nil {
		var err error
		if tc.it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyChunk}, UpperBound: []byte{keyChunk + 1}}); err != nil {
			return false, err
		}
	}
	found := false
	err := s.eachChunk(tc.it, &tc.w, p, sr.id, hi, func(t0 int64, v []byte) (bool, error) {
		h, err := parseChunkHeader(v)
		if err != nil {
			return false, fmt.Errorf("chunk at %d: %w", t0, err)
		}
		if h.tsMode == tsRegular {
			// Samples at t0 + i*step, i < n: the first at or after lo.
			i := int64(0)
			if lo > h.t0 {
				i = (lo - h.t0 + h.step - 1) / max(h.step, 1)
			}
			found = i < int64(h.n) && h.t0+i*h.step <= hi
			return !found, nil
		}
		pts, err := decodeChunk(v, lo, hi, nil)
		if err != nil {
			return false, fmt.Errorf("chunk at %d: %w", t0, err)
		}
		found = len(pts) > 0
		return !found, nil
	})
	return found, err
}

// Points appends to dst the samples of series ref in [mint, maxt] (ms), in
// time order. An unknown ref has no samples.
func (s *Store) Points(ref uint64, mint, maxt int64, dst []Point) ([]Point, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return dst, fmt.Errorf("read points: %w", ErrClosed)
	}
	if err := s.syncForRead(); err != nil {
		return dst, fmt.Errorf("read points: %w", err)
	}
	sr := s.idx.get(ref)
	if sr == nil || mint > maxt {
		return dst, nil
	}
	dst, err := s.points(sr, mint, maxt, dst)
	if err != nil {
		return dst, fmt.Errorf("read points of series %d: %w", ref, err)
	}
	return dst, nil
}

// points appends the samples of sr in [mint, maxt]; s.mu is read-locked.
func (s *Store) points(sr *series, mint, maxt int64, dst []Point) ([]Point, error) {
	ref := sr.id
	lo, hi := floorDiv(mint, s.span), floorDiv(maxt, s.span)
	i, _ := slices.BinarySearch(s.partList, lo)
	var it *pebble.Iterator
	var w chunkWalk
	for ; i < len(s.partList) && s.partList[i] <= hi; i++ {
		p := s.partList[i]
		if !bitHas(s.parts[p], ref) {
			continue
		}
		if it == nil {
			var err error
			it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: chunkPartPrefix(lo), UpperBound: chunkPartPrefix(hi + 1)})
			if err != nil {
				return dst, err
			}
			defer it.Close()
		}
		// From the partition's start: a chunk written under another
		// Interval (another window) may start before mint's window.
		err := s.eachChunk(it, &w, p, ref, maxt, func(t0 int64, v []byte) (bool, error) {
			var err error
			if dst, err = decodeChunk(v, mint, maxt, dst); err != nil {
				return false, fmt.Errorf("chunk at %d: %w", t0, err)
			}
			return true, nil
		})
		if err != nil {
			return dst, err
		}
	}
	for j, t := range sr.ts {
		if t >= mint && t <= maxt {
			dst = append(dst, Point{T: t, V: sr.vs[j]})
		}
	}
	return dst, nil
}

// LabelNames returns the sorted label names, __name__ included, of the series
// Select would return.
func (s *Store) LabelNames(matchers []Matcher, mint, maxt int64) ([]string, error) {
	seen := map[string]struct{}{}
	err := s.selectSeries(matchers, mint, maxt, func(sr *series) {
		seen[MetricName] = struct{}{}
		for _, l := range sr.labels {
			seen[l.Name] = struct{}{}
		}
	})
	if err != nil {
		return nil, err
	}
	return sortedKeys(seen), nil
}

// LabelValues returns the sorted non-empty values of label name among the
// series Select would return.
func (s *Store) LabelValues(name string, matchers []Matcher, mint, maxt int64) ([]string, error) {
	seen := map[string]struct{}{}
	err := s.selectSeries(matchers, mint, maxt, func(sr *series) {
		if v := sr.label(name); v != "" {
			seen[v] = struct{}{}
		}
	})
	if err != nil {
		return nil, err
	}
	return sortedKeys(seen), nil
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Stats are counters for /metrics and the bench.
type Stats struct {
	DiskBytes         int64  // every file of the database (WAL, tables, flows included)
	SeriesBytes       int64  // tables holding the time series (estimate)
	Series            int    // interned series
	Partitions        int    // partitions holding data
	Samples           uint64 // samples appended since Open
	Chunks            uint64 // chunks written since Open
	PartitionsDropped uint64 // by retention or the disk cap, since Open
	DroppedRetention  uint64 // of which by retention
	DroppedDiskCap    uint64 // of which by the disk cap
	Rejected          uint64 // samples skipped: empty name, bad labels
	AppendErrors      uint64 // Append calls that returned an error (out of order, closed, a failed commit)
	EnforceErrors     uint64 // failed retention or disk-cap passes
	Compactions       int64  // pebble compactions since Open (the whole database)
}

// Stats returns the current counters.
func (s *Store) Stats() Stats {
	st := Stats{
		Samples:          s.samples.Load(),
		Chunks:           s.chunks.Load(),
		DroppedRetention: s.droppedRet.Load(),
		DroppedDiskCap:   s.droppedCap.Load(),
		Rejected:         s.rejected.Load(),
		AppendErrors:     s.appendErr.Load(),
		EnforceErrors:    s.enforceErr.Load(),
	}
	st.PartitionsDropped = st.DroppedRetention + st.DroppedDiskCap
	s.mu.RLock()
	defer s.mu.RUnlock()
	st.Series = len(s.idx.byID)
	st.Partitions = len(s.partList)
	if !s.closed.Load() {
		m := s.db.Metrics()
		st.DiskBytes = int64(m.DiskSpaceUsage())
		st.Compactions = m.Compact.Count
		st.SeriesBytes = s.seriesBytes()
	}
	return st
}

func (s *Store) seriesBytes() int64 {
	n, err := s.db.EstimateDiskUsage([]byte{keySeries}, []byte{keyFlows})
	if err != nil {
		return 0
	}
	return int64(n)
}
