package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Aggregate summarizes the samples of one series in [T, T+resolution).
// Min and Max ignore NaN (they are NaN only when every sample is); Sum is the
// plain sum in time order, so one NaN makes it NaN.
type Aggregate struct {
	T             int64 // bucket start, Unix ms, a multiple of the resolution
	Count         uint64
	Min, Max, Sum float64
}

// The rollup resolutions Rollup answers. Hour rollups are written for every
// chunk when its window closes (about 4 values per 720 samples); minute
// rollups are computed from the chunks when asked (stored, they cost a
// quarter more disk at 5 s, and decoding a week of raw samples takes a few
// ms). A resolution not above the interval is computed from the samples too.
var rollupRes = [...]time.Duration{time.Minute, time.Hour}

// storedRollup is the index in rollupRes of the stored resolution.
const storedRollup = 1

const keyRollup = 0x14 // partition, id, resolution index, window's first T -> encodeRollup

func rollupKey(dst []byte, part int64, id uint64, res byte, t0 int64) []byte {
	dst = append(dst, keyRollup)
	dst = appendInt(dst, part)
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = append(dst, res)
	return appendInt(dst, t0)
}

func rollupPartPrefix(part int64) []byte { return appendInt([]byte{keyRollup}, part) }

func (a *Aggregate) add(v float64) {
	if a.Count == 0 {
		a.Min, a.Max, a.Sum = v, v, v
		a.Count = 1
		return
	}
	a.Count++
	a.Sum += v
	if v < a.Min || math.IsNaN(a.Min) {
		a.Min = v
	}
	if v > a.Max || math.IsNaN(a.Max) {
		a.Max = v
	}
}

// merge folds b, a later part of the same bucket, into a.
func (a *Aggregate) merge(b Aggregate) {
	a.Count += b.Count
	a.Sum += b.Sum
	if b.Min < a.Min || math.IsNaN(a.Min) {
		a.Min = b.Min
	}
	if b.Max > a.Max || math.IsNaN(a.Max) {
		a.Max = b.Max
	}
}

// aggregate appends the aggregates of samples ts, vs (time order) at
// resolution res (ms) with bucket starts in [mint, maxt].
func aggregate(ts []int64, vs []float64, res, mint, maxt int64, dst []Aggregate) []Aggregate {
	first := len(dst)
	for i, t := range ts {
		b := floorDiv(t, res) * res
		if b < mint || b > maxt {
			continue
		}
		if len(dst) == first || dst[len(dst)-1].T != b {
			dst = append(dst, Aggregate{T: b})
		}
		dst[len(dst)-1].add(vs[i])
	}
	return dst
}

// encodeRollup writes aggregates (at least one, increasing T): uvarint
// count of buckets, then per bucket varint T (the first; then the delta from
// the previous), uvarint Count, a flags byte, Min's bits, Max's bits unless
// flag 1 (Max is Min), Sum's bits unless flag 2 (Sum is Min*Count). A window
// holds one or two hour buckets, so there is nothing for a delta code to win;
// the flags make a constant series' rollup 13 bytes.
func encodeRollup(aggs []Aggregate) []byte {
	out := binary.AppendUvarint(nil, uint64(len(aggs)))
	prev := int64(0)
	for i, a := range aggs {
		if i == 0 {
			out = binary.AppendVarint(out, a.T)
		} else {
			out = binary.AppendVarint(out, a.T-prev)
		}
		prev = a.T
		out = binary.AppendUvarint(out, a.Count)
		mn, mx, sm := math.Float64bits(a.Min), math.Float64bits(a.Max), math.Float64bits(a.Sum)
		var flags byte
		if mx == mn {
			flags |= 1
		}
		if sm == math.Float64bits(a.Min*float64(a.Count)) {
			flags |= 2
		}
		out = append(out, flags)
		out = binary.LittleEndian.AppendUint64(out, mn)
		if flags&1 == 0 {
			out = binary.LittleEndian.AppendUint64(out, mx)
		}
		if flags&2 == 0 {
			out = binary.LittleEndian.AppendUint64(out, sm)
		}
	}
	return out
}

// decodeRollup appends the aggregates of b with mint <= T <= maxt to dst.
func decodeRollup(b []byte, mint, maxt int64, dst []Aggregate) ([]Aggregate, error) {
	bad := func(what string) ([]Aggregate, error) {
		return dst, fmt.Errorf("%w: rollup %s", errChunk, what)
	}
	n, l := binary.Uvarint(b)
	if l <= 0 || n < 1 || n > maxChunkSamples {
		return bad("bucket count")
	}
	b = b[l:]
	t := int64(0)
	for i := uint64(0); i < n; i++ {
		d, l := binary.Varint(b)
		if l <= 0 || (i > 0 && d <= 0) {
			return bad("time")
		}
		t += d
		b = b[l:]
		var a Aggregate
		a.T = t
		if a.Count, l = binary.Uvarint(b); l <= 0 || a.Count == 0 {
			return bad("count")
		}
		b = b[l:]
		if len(b) < 9 {
			return bad("truncated")
		}
		flags := b[0]
		if flags > 3 {
			return bad("flags")
		}
		a.Min = math.Float64frombits(binary.LittleEndian.Uint64(b[1:]))
		b = b[9:]
		a.Max = a.Min
		if flags&1 == 0 {
			if len(b) < 8 {
				return bad("truncated")
			}
			a.Max = math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
		}
		a.Sum = a.Min * float64(a.Count)
		if flags&2 == 0 {
			if len(b) < 8 {
				return bad("truncated")
			}
			a.Sum = math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
		}
		if t >= mint && t <= maxt {
			dst = append(dst, a)
		}
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return dst, nil
}

// storesRollups reports whether hour rollups are written: when an hour
// holds more than one sample, always with MaxInterval.
func (s *Store) storesRollups() bool {
	return rollupRes[storedRollup].Milliseconds() > s.interval
}

// Rollup appends to dst the aggregates of series ref at resolution res
// (time.Minute or time.Hour) for the buckets that start in [mint, maxt] (ms),
// in time order. Hour buckets of closed windows are read from their rollup
// records, the open window's are computed from the head; minute buckets are
// computed from the samples.
func (s *Store) Rollup(ref uint64, res time.Duration, mint, maxt int64, dst []Aggregate) ([]Aggregate, error) {
	ri := slices.Index(rollupRes[:], res)
	if ri < 0 {
		return dst, fmt.Errorf("read rollup: resolution %s not kept (1m, 1h)", res)
	}
	r := res.Milliseconds()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return dst, fmt.Errorf("read rollup: %w", ErrClosed)
	}
	if err := s.syncForRead(); err != nil {
		return dst, fmt.Errorf("read rollup: %w", err)
	}
	sr := s.idx.get(ref)
	if sr == nil || mint > maxt {
		return dst, nil
	}
	if ri != storedRollup || !s.storesRollups() {
		hi := maxt
		if hi < math.MaxInt64-r {
			hi += r - 1
		} else {
			hi = math.MaxInt64
		}
		pts, err := s.points(sr, mint, hi, nil)
		if err != nil {
			return dst, fmt.Errorf("read rollup: %w", err)
		}
		ts, vs := make([]int64, len(pts)), make([]float64, len(pts))
		for i, p := range pts {
			ts[i], vs[i] = p.T, p.V
		}
		return aggregate(ts, vs, r, mint, maxt, dst), nil
	}
	start := len(dst)
	lo, hi := floorDiv(mint, s.span), floorDiv(maxt, s.span)
	i, _ := slices.BinarySearch(s.partList, lo)
	var it *pebble.Iterator
	var kb []byte
	for ; i < len(s.partList) && s.partList[i] <= hi; i++ {
		p := s.partList[i]
		if !bitHas(s.parts[p], ref) {
			continue
		}
		if it == nil {
			var err error
			it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: rollupPartPrefix(lo), UpperBound: rollupPartPrefix(hi + 1)})
			if err != nil {
				return dst, fmt.Errorf("read rollup: %w", err)
			}
			defer it.Close()
		}
		kb = rollupKey(kb[:0], p, ref, byte(ri), p*s.span)
		prefix := kb[:18]
		for ok := it.SeekGE(kb); ok; ok = it.Next() {
			k := it.Key()
			if len(k) != 26 || string(k[:18]) != string(prefix) {
				break
			}
			if fromOrdered(binary.BigEndian.Uint64(k[18:])) > maxt {
				break
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return dst, fmt.Errorf("read rollup: %w", err)
			}
			if dst, err = decodeRollup(v, mint, maxt, dst); err != nil {
				return dst, fmt.Errorf("read rollup of series %d: %w", ref, err)
			}
		}
		if err := it.Error(); err != nil {
			return dst, fmt.Errorf("read rollup: %w", err)
		}
	}
	dst = aggregate(sr.ts, sr.vs, r, mint, maxt, dst)
	// A bucket longer than a chunk window comes in parts: merge them.
	out := dst[:start]
	for _, a := range dst[start:] {
		if n := len(out); n > start && out[n-1].T == a.T {
			out[n-1].merge(a)
			continue
		}
		out = append(out, a)
	}
	return out, nil
}
