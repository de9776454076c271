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

// encodeRollup writes aggregates (at least one, increasing T) as four
// length-prefixed chunks: count, min, max, sum, each over the bucket starts.
func encodeRollup(aggs []Aggregate) []byte {
	ts := make([]int64, len(aggs))
	vs := make([]float64, len(aggs))
	for i, a := range aggs {
		ts[i] = a.T
	}
	var out []byte
	for f := 0; f < 4; f++ {
		for i, a := range aggs {
			vs[i] = [4]float64{float64(a.Count), a.Min, a.Max, a.Sum}[f]
		}
		c := encodeChunk(ts, vs)
		out = binary.AppendUvarint(out, uint64(len(c)))
		out = append(out, c...)
	}
	return out
}

// decodeRollup appends the aggregates of b with mint <= T <= maxt to dst.
func decodeRollup(b []byte, mint, maxt int64, dst []Aggregate) ([]Aggregate, error) {
	var fields [4][]Point
	for f := range fields {
		n, l := binary.Uvarint(b)
		if l <= 0 || n > uint64(len(b)-l) {
			return dst, fmt.Errorf("%w: bad rollup field %d", errChunk, f)
		}
		var err error
		if fields[f], err = decodeChunk(b[l:l+int(n)], mint, maxt, nil); err != nil {
			return dst, fmt.Errorf("rollup field %d: %w", f, err)
		}
		b = b[l+int(n):]
	}
	for f := 1; f < 4; f++ {
		if len(fields[f]) != len(fields[0]) {
			return dst, fmt.Errorf("%w: rollup fields differ in length", errChunk)
		}
	}
	for i, p := range fields[0] {
		c := p.V
		if !(c >= 1 && c <= 1<<32) || c != math.Trunc(c) {
			return dst, fmt.Errorf("%w: bad rollup count", errChunk)
		}
		for f := 1; f < 4; f++ {
			if fields[f][i].T != p.T {
				return dst, fmt.Errorf("%w: rollup fields differ in time", errChunk)
			}
		}
		dst = append(dst, Aggregate{T: p.T, Count: uint64(c), Min: fields[1][i].V, Max: fields[2][i].V, Sum: fields[3][i].V})
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
