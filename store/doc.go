// Package store keeps the sensor's history on the box: a time-series store
// (this file's neighbours store.go, series.go, chunk*.go, retention.go) and
// the flow history (flows.go), in one pebble database.
//
// # Time series
//
// A series is a metric name and a bounded, sorted label set, interned to a
// numeric id (1, 2, ...) in a persisted series index; label postings are kept
// in memory and rebuilt from that index at Open. Every Append is one tick:
// all its samples share one timestamp, aligned down to Options.Interval.
// Samples are buffered per series for one chunk window (about 1440
// intervals, a divisor of the partition span: the whole 2 h partition at
// 5 s) and then written as one compressed chunk per series: regular
// timestamps cost nothing per sample, irregular ones a delta of delta;
// values are Gorilla XOR or decimal (integer mantissas at a shared scale
// with exact bit residuals, deltas divided by their gcd, a dictionary for
// repeating increments, zstd), whichever is smaller (chunk.go,
// chunk_dec.go). A clean Close writes the open window as chunks too. Chunks live under time-partitioned keys (PartitionSpan, 2 h), so
// retention and the disk cap drop whole partitions with a DeleteRange and a
// compaction, never a scan.
//
// Constant chunks (one value at regular timestamps, most of a host's
// series most of the time) are not written under their series' key: each
// is an entry in its partition's constants record for that first timestamp
// (consts.go), so a series that holds still costs a few bytes per window,
// not a key and a chunk header; readers merge the entries with the chunks.
//
// Rollups: every chunk that is not constant carries the hour rollup (count,
// min, max, sum per hour) of its samples after its header; Rollup answers
// hour buckets from those, from constant chunks (computed), and from the
// head, and minute buckets from the chunks (see rollup.go for why minute
// rollups are not stored). Format 2 stored hour rollups as records of their
// own, and every constant chunk under its own key: a day of 327 real host
// series took 203 KB in format 2 and 112 KB in format 3 with 32 KiB table
// blocks (bench/store, the same data). An upgrade to format 3 deletes the
// old rollup records; old chunks are read as they are.
//
// The disk cap (Options.MaxDiskBytes) bounds the time series' tables plus the
// write-ahead log; it is checked when a window closes, after a flush, and
// never drops the partition being written.
//
// # Durability
//
// Each Append writes its tick's raw samples as one head record in one pebble
// batch; when a window closes, its chunks are written and its head records
// deleted in the same batch. The batch is committed with pebble.Sync when
// Append's last sync is at least SyncEvery (250 ms) old: at the sensor's
// interval (default 5 s) every tick is synced before Append returns. Ticks
// appended faster than that (a backfill, bench-store) share a sync: their
// commits reach the WAL in order, so a crash keeps a prefix of them, and a
// query that could read a tick not yet synced syncs the WAL first. Queries
// read chunks and the in-memory head. Open replays the head records, so
// nothing a query returned is lost by kill -9 or power loss; a
// marker key tells a clean Close from a crash, and Recovered says what was
// replayed. A directory that is not a store (no pebble database, no or a
// wrong format marker, a version this build does not read) is an error.
//
// # Keys
//
// 0x01..0x1f: time series (series index 0x01, chunks 0x10 with the
// constants records under series id 0, partition members 0x11, head records
// 0x12; format 2's rollups were 0x14; see store.go). 0x20..0x2f: flow history.
// 0x30..0x3f: the remote send queue (package store/remote, through DB). 0x7f:
// store metadata (format marker, clean-close marker, cut marker).
//
// # Threading and lifetimes
//
// Append is called from one goroutine (the sensor's tick loop; concurrent
// calls, and Close, are serialized with it);
// it also applies retention and the disk cap when a window closes. Select,
// Points, Rollup, LabelNames, LabelValues and Stats may be called from any goroutine,
// concurrently with Append; they see whole ticks only. Results are copies the
// caller owns. Close waits for running queries, marks the store cleanly
// closed and closes the database (DB() included: close the flow history
// first); after Close, calls return ErrClosed.
package store
