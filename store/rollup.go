package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
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

// The rollup resolutions Rollup answers. Hour rollups are stored inside
// every chunk that is not constant or linear (rollupInChunk, about 20 bytes
// for a counter's two hours, TestRollupInChunk); a constant or linear
// chunk's are computed from it, which is as cheap as reading them. Minute rollups are computed from the
// chunks when asked (stored, they cost a quarter more disk at 5 s, and
// decoding a week of raw samples takes a few ms). A resolution not above the
// interval is computed from the samples too.
//
// Format version 2 stored the hour rollups as records of their own (key
// 0x14: partition, id, resolution, first T): on a day of real host metrics
// (bench/store) the store without them was 139 KB instead of 203, for data
// the chunk beside them already held. Version 3 keeps them in the chunk and
// an upgrade deletes the old records.
var rollupRes = [...]time.Duration{time.Minute, time.Hour}

// storedRollup is the index in rollupRes of the stored resolution.
const storedRollup = 1

// keyRollup is the first byte of format 2's rollup records (upgrade only).
const keyRollup = 0x14

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

// aggregatePoints is aggregate over points.
func aggregatePoints(pts []Point, res, mint, maxt int64, dst []Aggregate) []Aggregate {
	first := len(dst)
	for _, p := range pts {
		b := floorDiv(p.T, res) * res
		if b < mint || b > maxt {
			continue
		}
		if len(dst) == first || dst[len(dst)-1].T != b {
			dst = append(dst, Aggregate{T: b})
		}
		dst[len(dst)-1].add(p.V)
	}
	return dst
}

// The rollup inside a chunk (after the chunk header, flagged by
// chunkRollupFlag in the mode byte) encodes the hour aggregates of the
// chunk's samples:
//
//	uvarint nb, the number of buckets (1..n)
//	byte    k: the decimal scale of the integer fields (0..maxScale), or
//	        noScale when none is
//	per bucket:
//	  uvarint the bucket's index after the previous one's (the first: after
//	          floor(t0/res) - 1), so 0, 1 for two consecutive hours
//	  uvarint Count, except in the last bucket (n minus the others)
//	  byte    flags: bits 0-1 Min, 2-3 Max, 4-5 Sum; each rawField (the
//	          float's 8 bytes, little endian), intField (an integer m with
//	          m/10^k the value bit for bit) or sameField (Max: equal to Min;
//	          Sum: Min added Count times, the sum of a constant bucket)
//	  Min intField: varint m - the previous bucket's Max integer (0 for the
//	                first bucket or after a raw Max): a counter's next hour
//	                starts where the last ended
//	  Max intField: uvarint m - Min's m (Min is then an intField)
//	  Sum intField: varint m - Min's m * Count (Min is then an intField)
//	  Sum nearField: the same m, the integer nearest Sum * 10^k, then
//	                uvarint the XOR of Sum's bits and m/10^k's: a float sum of
//	                decimals drifts from the decimal sum in its last bits
//
// so a counter's two hours take about 20 bytes and a bucket of a constant
// stretch 2, against 26 bytes of key and 34 of value in format 2.
const (
	rawField  = 0
	intField  = 1
	sameField = 2
	nearField = 3 // Sum only
	noScale   = 0xff
	// sumIntLimit bounds |Min's m| for an integer Sum: m*Count must not
	// overflow (Count <= maxChunkSamples = 2^16).
	sumIntLimit = 1 << 46
)

// toInt returns m with m/10^k == v bit for bit.
func toInt(v float64, k int) (int64, bool) {
	f := math.Round(v * pow10[k])
	if !(f > -(1<<53) && f < 1<<53) {
		return 0, false
	}
	m := int64(f)
	if fromInt(m, k) != math.Float64bits(v) {
		return 0, false
	}
	return m, true
}

func fromInt(m int64, k int) uint64 {
	f := float64(m)
	if k > 0 {
		f /= pow10[k]
	}
	return math.Float64bits(f)
}

// varintLen is the length of x as a uvarint.
func varintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// constSum is the Sum of count samples of value v, as add computes it.
func constSum(v float64, count uint64) float64 {
	s := v
	for i := uint64(1); i < count; i++ {
		s += v
	}
	return s
}

// encodeRollup appends the rollup of aggs (at least one bucket, increasing
// T, resolution res ms, counts summing to the chunk's n; t0 is the chunk's
// first timestamp) to dst.
func encodeRollup(dst []byte, aggs []Aggregate, res, t0 int64) []byte {
	// The smallest scale at which every finite Min and Max is an integer.
	k := noScale
	for kk := 0; kk <= maxScale && k == noScale; kk++ {
		ok := true
		for _, a := range aggs {
			if _, ok1 := toInt(a.Min, kk); !ok1 {
				ok = false
				break
			}
			if _, ok1 := toInt(a.Max, kk); !ok1 {
				ok = false
				break
			}
		}
		if ok {
			k = kk
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(aggs)))
	dst = append(dst, byte(k))
	prevIdx := floorDiv(t0, res) - 1
	prevMax := int64(0)
	for i, a := range aggs {
		idx := a.T / res
		dst = binary.AppendUvarint(dst, uint64(idx-prevIdx-1))
		prevIdx = idx
		if i < len(aggs)-1 {
			dst = binary.AppendUvarint(dst, a.Count)
		}
		var mi, ma, su int64
		var sumXOR uint64
		minMode, maxMode, sumMode := byte(rawField), byte(rawField), byte(rawField)
		if k != noScale {
			mi, _ = toInt(a.Min, k)
			ma, _ = toInt(a.Max, k)
			minMode, maxMode = intField, intField
			if mi > -sumIntLimit && mi < sumIntLimit {
				if m, ok := toInt(a.Sum, k); ok {
					su, sumMode = m, intField
				} else if f := math.Round(a.Sum * pow10[k]); f > -(1<<53) && f < 1<<53 {
					// Near: worth it when the XOR is shorter than the raw
					// bits with the integer.
					m := int64(f)
					x := math.Float64bits(a.Sum) ^ fromInt(m, k)
					if varintLen(zigzag(m-mi*int64(a.Count)))+varintLen(x) < 8 {
						su, sumXOR, sumMode = m, x, nearField
					}
				}
			}
		}
		if math.Float64bits(a.Max) == math.Float64bits(a.Min) {
			maxMode = sameField
		}
		if math.Float64bits(a.Sum) == math.Float64bits(constSum(a.Min, a.Count)) && maxMode == sameField {
			sumMode = sameField
		}
		dst = append(dst, minMode|maxMode<<2|sumMode<<4)
		if minMode == intField {
			dst = binary.AppendVarint(dst, mi-prevMax)
		} else {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.Min))
		}
		switch maxMode {
		case intField:
			dst = binary.AppendUvarint(dst, uint64(ma-mi))
		case rawField:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.Max))
		}
		switch sumMode {
		case intField:
			dst = binary.AppendVarint(dst, su-mi*int64(a.Count))
		case nearField:
			dst = binary.AppendVarint(dst, su-mi*int64(a.Count))
			dst = binary.AppendUvarint(dst, sumXOR)
		case rawField:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.Sum))
		}
		prevMax = 0
		if minMode == intField {
			prevMax = mi
			if maxMode == intField {
				prevMax = ma
			}
		}
	}
	return dst
}

// decodeRollup appends the aggregates of the rollup b of a chunk of n
// samples from t0 (resolution res ms) with mint <= T <= maxt to dst.
func decodeRollup(b []byte, res, t0 int64, n int, mint, maxt int64, dst []Aggregate) ([]Aggregate, error) {
	bad := func(what string) ([]Aggregate, error) {
		return dst, fmt.Errorf("%w: rollup %s", errChunk, what)
	}
	nb, l := binary.Uvarint(b)
	if l <= 0 || nb < 1 || nb > uint64(n) {
		return bad("bucket count")
	}
	b = b[l:]
	if len(b) < 1 || (b[0] > maxScale && b[0] != noScale) {
		return bad("scale")
	}
	k := int(b[0])
	b = b[1:]
	idx := floorDiv(t0, res) - 1
	prevMax := int64(0)
	left := uint64(n)
	u := func() (uint64, bool) {
		x, l := binary.Uvarint(b)
		if l <= 0 {
			return 0, false
		}
		b = b[l:]
		return x, true
	}
	sv := func() (int64, bool) {
		x, l := binary.Varint(b)
		if l <= 0 {
			return 0, false
		}
		b = b[l:]
		return x, true
	}
	raw := func() (float64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		x := binary.LittleEndian.Uint64(b)
		b = b[8:]
		return math.Float64frombits(x), true
	}
	for i := uint64(0); i < nb; i++ {
		d, ok := u()
		if !ok || int64(d) < 0 || int64(d) > math.MaxInt64/res-idx-1 {
			return bad("bucket index")
		}
		idx += int64(d) + 1
		var a Aggregate
		a.T = idx * res
		if i < nb-1 {
			if a.Count, ok = u(); !ok || a.Count == 0 || a.Count >= left {
				return bad("count")
			}
		} else {
			a.Count = left
		}
		left -= a.Count
		if len(b) < 1 {
			return bad("truncated")
		}
		flags := b[0]
		b = b[1:]
		minMode, maxMode, sumMode := flags&3, flags>>2&3, flags>>4&3
		if flags>>6 != 0 || minMode > intField || maxMode > sameField ||
			((maxMode == intField || sumMode == intField || sumMode == nearField) && minMode != intField) ||
			(minMode == intField && k == noScale) || (sumMode == sameField && maxMode != sameField) {
			return bad("flags")
		}
		var mi, ma int64
		if minMode == intField {
			x, ok := sv()
			if !ok {
				return bad("min")
			}
			mi = prevMax + x
			a.Min = math.Float64frombits(fromInt(mi, k))
		} else if a.Min, ok = raw(); !ok {
			return bad("min")
		}
		switch maxMode {
		case intField:
			x, ok := u()
			if !ok || x > 1<<54 {
				return bad("max")
			}
			ma = mi + int64(x)
			a.Max = math.Float64frombits(fromInt(ma, k))
		case rawField:
			if a.Max, ok = raw(); !ok {
				return bad("max")
			}
		default:
			a.Max = a.Min
		}
		switch sumMode {
		case intField, nearField:
			x, ok := sv()
			if !ok || mi <= -sumIntLimit || mi >= sumIntLimit {
				return bad("sum")
			}
			bits := fromInt(mi*int64(a.Count)+x, k)
			if sumMode == nearField {
				d, ok := u()
				if !ok {
					return bad("sum")
				}
				bits ^= d
			}
			a.Sum = math.Float64frombits(bits)
		case rawField:
			if a.Sum, ok = raw(); !ok {
				return bad("sum")
			}
		default:
			a.Sum = constSum(a.Min, a.Count)
		}
		prevMax = 0
		if minMode == intField {
			prevMax = mi
			if maxMode == intField {
				prevMax = ma
			}
		}
		if a.T >= mint && a.T <= maxt {
			dst = append(dst, a)
		}
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return dst, nil
}

// storesRollups reports whether chunks carry hour rollups: when an hour
// holds more than one sample, always with MaxInterval.
func (s *Store) storesRollups() bool {
	return rollupRes[storedRollup].Milliseconds() > s.interval
}

// rollupScratch is the reused memory of withRollup.
type rollupScratch struct {
	aggs []Aggregate
	buf  []byte
}

// rollupInChunk returns chunk c of samples ts, vs as writeChunks stores it:
// with its hour rollup (withRollup) when hours hold several samples.
func (s *Store) rollupInChunk(c []byte, ts []int64, vs []float64) []byte {
	if !s.storesRollups() {
		return c
	}
	return withRollup(c, ts, vs, &s.roll)
}

// withRollup returns chunk c of samples ts, vs with the hour rollup of the
// samples inserted after its header (format 3), or c itself for a constant
// or linear chunk, whose rollup is computed when read (its samples decode
// without a bit stream).
func withRollup(c []byte, ts []int64, vs []float64, sc *rollupScratch) []byte {
	if m := c[0] & 15; m == valConst || m == valLinear {
		return c
	}
	h, err := parseChunkHeader(c)
	if err != nil {
		panic("BUG: a chunk just encoded does not parse: " + err.Error())
	}
	res := rollupRes[storedRollup].Milliseconds()
	sc.aggs = aggregate(ts, vs, res, math.MinInt64, math.MaxInt64, sc.aggs[:0])
	sc.buf = encodeRollup(sc.buf[:0], sc.aggs, res, ts[0])
	// After the header every mode shares (appendChunkHeader).
	hdr := 1
	_, l := binary.Uvarint(c[hdr:])
	hdr += l
	_, l = binary.Varint(c[hdr:])
	hdr += l
	if h.tsMode == tsRegular {
		_, l = binary.Uvarint(c[hdr:])
		hdr += l
	}
	out := make([]byte, 0, len(c)+len(sc.buf)+binary.MaxVarintLen32)
	out = append(out, c[0]|chunkRollupFlag)
	out = append(out, c[1:hdr]...)
	out = binary.AppendUvarint(out, uint64(len(sc.buf)))
	out = append(out, sc.buf...)
	return append(out, c[hdr:]...)
}

// Rollup appends to dst the aggregates of series ref at resolution res
// (time.Minute or time.Hour) for the buckets that start in [mint, maxt] (ms),
// in time order. Hour buckets are read from the rollups inside the chunks
// (computed from a chunk without one: a constant chunk, or one of format
// 2), the open window's are computed from the head; minute buckets are
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
	// The samples of the buckets that start in [mint, maxt].
	hi := maxt
	if hi < math.MaxInt64-r {
		hi += r - 1
	} else {
		hi = math.MaxInt64
	}
	if ri != storedRollup || !s.storesRollups() {
		pts, err := s.points(sr, mint, hi, nil)
		if err != nil {
			return dst, fmt.Errorf("read rollup: %w", err)
		}
		return aggregatePoints(pts, r, mint, maxt, dst), nil
	}
	start := len(dst)
	lo, phi := floorDiv(mint, s.span), floorDiv(hi, s.span)
	i, _ := slices.BinarySearch(s.partList, lo)
	var it *pebble.Iterator
	var w chunkWalk
	var pts []Point
	for ; i < len(s.partList) && s.partList[i] <= phi; i++ {
		p := s.partList[i]
		if !bitHas(s.parts[p], ref) {
			continue
		}
		if it == nil {
			var err error
			it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: chunkPartPrefix(lo), UpperBound: chunkPartPrefix(phi + 1)})
			if err != nil {
				return dst, fmt.Errorf("read rollup: %w", err)
			}
			defer it.Close()
		}
		err := s.eachChunk(it, &w, p, ref, hi, func(t0 int64, v []byte) (bool, error) {
			h, err := parseChunkHeader(v)
			if err == nil && h.rollup != nil {
				dst, err = decodeRollup(h.rollup, r, h.t0, h.n, mint, maxt, dst)
			} else if err == nil {
				pts, err = decodeChunk(v, math.MinInt64, math.MaxInt64, pts[:0])
				dst = aggregatePoints(pts, r, mint, maxt, dst)
			}
			if err != nil {
				return false, fmt.Errorf("read rollup of series %d, chunk at %d: %w", ref, t0, err)
			}
			return true, nil
		})
		if err != nil {
			return dst, err
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
