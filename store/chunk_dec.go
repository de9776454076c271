package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The decimal value mode (valDecimal, chunk format 2). Every value is
// written as an integer mantissa m_i at a scale k shared by the chunk, and a
// residual r_i in the value's bits:
//
//	v_i = float64frombits(float64bits(float64(m_i) / 10^k) + r_i)
//
// (k = 0: float64(m_i)), so any float64 round-trips bit for bit; for
// integers and fixed-precision decimals every r_i is 0 and the residuals
// are not written, for sums of decimals that drifted by an ulp or two they
// are small. The mantissas are written as deltas (or deltas of deltas)
// divided by their greatest common divisor g (4096 for page counts, 1024
// for kB): the idea of VictoriaMetrics' decimal conversion and nearest-delta
// encoding, without its rounding. The entries are uvarints (zig-zagged),
// and the body is zstd-compressed when that is smaller, which codes the
// few distinct increments of a counter in a few bits each; entries that take
// few distinct values (a counter's usual increments) are written as indexes
// into a dictionary of them, which zstd's entropy coder takes down to about
// their entropy.
//
// Layout after the common header (mode byte, n, t0, step):
//
//	byte    flags: k (low 4 bits) | decDoD | decResidual | decZstd | decDict
//	varint  m_0
//	uvarint g (>= 1)
//	uvarint the body's length (uncompressed)
//	body:   tsDoD: n-1 timestamp entries (the delta, then deltas of deltas);
//	        n-1 mantissa entries ((m_i - m_{i-1})/g, or its delta of delta),
//	        each an index byte into a dictionary if decDict (uvarint size
//	        1..256, then the sorted distinct entries, each as the delta
//	        from the one before);
//	        decResidual: n residual entries (r_0 .. r_{n-1})
//	        every entry a zig-zagged uvarint; zstd-compressed if decZstd.
const (
	valDecimal = 4
	valLinear  = 5 // chunk.go: appendLinear

	decScaleMask = 0x0f
	decDoD       = 0x10
	decResidual  = 0x20
	decZstd      = 0x40
	decDict      = 0x80

	// maxDecBody bounds a body: three entries of at most 10 bytes a sample.
	maxDecBody = 30 * maxChunkSamples
)

// Chunk zstd coders, shared by every Store: EncodeAll and DecodeAll may be
// called concurrently. Small windows: a body is a few KiB.
var (
	chunkEnc = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(1<<17), zstd.WithEncoderCRC(false), zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		if err != nil {
			panic("BUG: chunk zstd encoder: " + err.Error())
		}
		return e
	})
	chunkDec = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(maxDecBody), zstd.WithDecoderMaxWindow(1<<20))
		if err != nil {
			panic("BUG: chunk zstd decoder: " + err.Error())
		}
		return d
	})
)

// decApprox is the float a mantissa stands for before its residual.
func decApprox(m int64, k int) float64 {
	f := float64(m)
	if k > 0 {
		f /= pow10[k]
	}
	return f
}

// decMantissas fills ms with the mantissas of vs at scale k and returns
// the residuals' cost estimate (bits) and whether every residual is 0.
func decMantissas(vs []float64, k int, ms []int64) (cost int, exact bool) {
	p := pow10[k]
	prev := int64(0)
	exact = true
	for i, v := range vs {
		m := prev
		if f := math.Round(v * p); f > -(1<<62) && f < 1<<62 { // also NaN and Inf
			m = int64(f)
		}
		ms[i] = m
		r := int64(math.Float64bits(v) - math.Float64bits(decApprox(m, k)))
		if r != 0 {
			exact = false
			cost += 2 + bits.Len64(zigzag(r))
		} else {
			cost++
		}
		if i > 0 {
			cost += bits.Len64(zigzag(m - prev))
		}
		prev = m
	}
	return cost, exact
}

// appendDecimal appends the decimal chunk of ts, vs (n >= 1) to dst.
func appendDecimal(dst []byte, ts []int64, vs []float64, tsMode byte, step int64) []byte {
	n := len(ts)
	ms := make([]int64, n)
	// The smallest scale that is exact, else the cheapest.
	k, bestCost, residual := -1, math.MaxInt, true
	for kk := 0; kk <= maxScale; kk++ {
		cost, exact := decMantissas(vs, kk, ms)
		if exact {
			k, residual = kk, false
			break
		}
		if cost < bestCost {
			k, bestCost = kk, cost
		}
	}
	if residual && k != maxScale {
		decMantissas(vs, k, ms) // ms holds the last scale tried
	}
	var g uint64
	for i := 1; i < n; i++ {
		d := ms[i] - ms[i-1]
		if d < 0 {
			d = -d
		}
		g = gcd(g, uint64(d))
	}
	if g == 0 || g > math.MaxInt64 {
		g = 1
	}
	// Deltas or deltas of deltas, whichever looks smaller.
	es := make([]int64, n)
	var dCost, ddCost int
	for i := 1; i < n; i++ {
		es[i] = (ms[i] - ms[i-1]) / int64(g)
		dCost += bits.Len64(zigzag(es[i]))
		if i > 1 {
			ddCost += bits.Len64(zigzag(es[i] - es[i-1]))
		} else {
			ddCost += bits.Len64(zigzag(es[i]))
		}
	}
	dod := ddCost < dCost
	if dod {
		for i := n - 1; i > 1; i-- {
			es[i] -= es[i-1]
		}
	}
	es = es[1:]
	dict := decDictionary(es)
	var best []byte
	// With a dictionary, only the dictionary: its entries are one byte.
	for _, useDict := range []bool{dict != nil} {
		body := make([]byte, 0, 3*n)
		if tsMode == tsDoD {
			var pd int64
			for i := 1; i < n; i++ {
				d := ts[i] - ts[i-1]
				if i == 1 {
					body = binary.AppendUvarint(body, zigzag(d))
				} else {
					body = binary.AppendUvarint(body, zigzag(d-pd))
				}
				pd = d
			}
		}
		if useDict {
			body = binary.AppendUvarint(body, uint64(len(dict)))
			prev := int64(0)
			for _, e := range dict {
				body = binary.AppendUvarint(body, zigzag(e-prev))
				prev = e
			}
			for _, e := range es {
				i, _ := slices.BinarySearch(dict, e)
				body = append(body, byte(i))
			}
		} else {
			for _, e := range es {
				body = binary.AppendUvarint(body, zigzag(e))
			}
		}
		if residual {
			for i, v := range vs {
				r := int64(math.Float64bits(v) - math.Float64bits(decApprox(ms[i], k)))
				body = binary.AppendUvarint(body, zigzag(r))
			}
		}
		flags := byte(k)
		if dod {
			flags |= decDoD
		}
		if residual {
			flags |= decResidual
		}
		if useDict {
			flags |= decDict
		}
		c := chunkEnc().EncodeAll(body, nil)
		if len(c) < len(body) {
			flags |= decZstd
		} else {
			c = body
		}
		out := append(dst[:len(dst):len(dst)], flags)
		out = binary.AppendVarint(out, ms[0])
		out = binary.AppendUvarint(out, g)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, c...)
		if best == nil || len(out) < len(best) {
			best = out
		}
	}
	return best
}

// decDictionary returns the sorted distinct values of es when there are at
// most 256 of them and they repeat (fewer than a quarter of the entries),
// else nil.
func decDictionary(es []int64) []int64 {
	if len(es) < 16 {
		return nil
	}
	seen := make(map[int64]struct{}, 64)
	for _, e := range es {
		seen[e] = struct{}{}
		if len(seen) > 256 || len(seen) > len(es)/4 {
			return nil
		}
	}
	dict := make([]int64, 0, len(seen))
	for e := range seen {
		dict = append(dict, e)
	}
	slices.Sort(dict)
	return dict
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// decHeader is the decimal mode's part of a chunk header.
type decHeader struct {
	flags   byte
	m0      int64
	g       int64
	bodyLen int
}

func parseDecHeader(b []byte) (decHeader, []byte, error) {
	var d decHeader
	if len(b) < 1 {
		return d, nil, fmt.Errorf("%w: no decimal flags", errChunk)
	}
	d.flags = b[0]
	if int(d.flags&decScaleMask) > maxScale {
		return d, nil, fmt.Errorf("%w: bad decimal flags %#x", errChunk, d.flags)
	}
	b = b[1:]
	var l int
	if d.m0, l = binary.Varint(b); l <= 0 {
		return d, nil, fmt.Errorf("%w: bad first mantissa", errChunk)
	}
	b = b[l:]
	g, l := binary.Uvarint(b)
	if l <= 0 || g < 1 || g > math.MaxInt64 {
		return d, nil, fmt.Errorf("%w: bad divisor", errChunk)
	}
	d.g = int64(g)
	b = b[l:]
	bl, l := binary.Uvarint(b)
	if l <= 0 || bl > maxDecBody {
		return d, nil, fmt.Errorf("%w: bad body length", errChunk)
	}
	d.bodyLen = int(bl)
	return d, b[l:], nil
}

// decodeDecimal appends the samples of a decimal chunk (header h, h.body
// after the decimal header) with mint <= T <= maxt to dst.
func decodeDecimal(h *chunkHeader, mint, maxt int64, dst []Point) ([]Point, error) {
	d, rest, err := parseDecHeader(h.body)
	if err != nil {
		return dst, err
	}
	body := rest
	if d.flags&decZstd != 0 {
		body, err = chunkDec().DecodeAll(rest, make([]byte, 0, d.bodyLen))
		if err != nil {
			return dst, fmt.Errorf("%w: body: %v", errChunk, err)
		}
	}
	if len(body) != d.bodyLen {
		return dst, fmt.Errorf("%w: body of %d bytes, header says %d", errChunk, len(body), d.bodyLen)
	}
	n := h.n
	k := int(d.flags & decScaleMask)
	entry := func() (int64, bool) {
		u, l := binary.Uvarint(body)
		if l <= 0 {
			return 0, false
		}
		body = body[l:]
		return unzigzag(u), true
	}
	start := len(dst)
	// Timestamps and mantissas first; residuals, which follow them, are
	// added in a second pass.
	t, m := h.t0, d.m0
	var tDelta, mDelta int64
	var tsBody []byte
	if h.tsMode == tsDoD {
		tsBody = body
		// Skip the timestamp entries: they are read beside the mantissas.
		for i := 1; i < n; i++ {
			if _, ok := entry(); !ok {
				return dst[:start], fmt.Errorf("%w: truncated timestamps", errChunk)
			}
		}
	}
	tsEntry := func() (int64, bool) {
		u, l := binary.Uvarint(tsBody)
		if l <= 0 {
			return 0, false
		}
		tsBody = tsBody[l:]
		return unzigzag(u), true
	}
	var dict []int64
	if d.flags&decDict != 0 {
		u, l := binary.Uvarint(body)
		if l <= 0 || u < 1 || u > 256 {
			return dst, fmt.Errorf("%w: bad dictionary size", errChunk)
		}
		body = body[l:]
		dict = make([]int64, u)
		prev := int64(0)
		for i := range dict {
			e, ok := entry()
			if !ok {
				return dst, fmt.Errorf("%w: truncated dictionary", errChunk)
			}
			prev += e
			dict[i] = prev
		}
	}
	first, last := -1, -1
	prevT := t
	for i := 0; i < n; i++ {
		if i > 0 {
			switch h.tsMode {
			case tsRegular:
				t += h.step
			case tsDoD:
				e, ok := tsEntry()
				if !ok {
					return dst[:start], fmt.Errorf("%w: truncated timestamps", errChunk)
				}
				if i == 1 {
					tDelta = e
				} else {
					tDelta += e
				}
				t += tDelta
				if t <= prevT {
					return dst[:start], fmt.Errorf("%w: timestamps not increasing at sample %d", errChunk, i)
				}
				prevT = t
			}
			var e int64
			if dict != nil {
				if len(body) == 0 || int(body[0]) >= len(dict) {
					return dst[:start], fmt.Errorf("%w: bad dictionary entry at sample %d of %d", errChunk, i, n)
				}
				e = dict[body[0]]
				body = body[1:]
			} else {
				var ok bool
				if e, ok = entry(); !ok {
					return dst[:start], fmt.Errorf("%w: truncated at sample %d of %d", errChunk, i, n)
				}
			}
			if d.flags&decDoD != 0 && i > 1 {
				mDelta += e * d.g
			} else {
				mDelta = e * d.g
			}
			m += mDelta
		}
		if t >= mint && t <= maxt {
			if first < 0 {
				first = i
			}
			last = i
			dst = append(dst, Point{T: t, V: decApprox(m, k)})
		}
	}
	if d.flags&decResidual != 0 {
		for i := 0; i < n; i++ {
			r, ok := entry()
			if !ok {
				return dst[:start], fmt.Errorf("%w: truncated residuals", errChunk)
			}
			if i >= first && i <= last && first >= 0 {
				p := &dst[start+i-first]
				p.V = math.Float64frombits(math.Float64bits(p.V) + uint64(r))
			}
		}
	}
	if len(body) != 0 {
		return dst[:start], fmt.Errorf("%w: %d trailing bytes", errChunk, len(body))
	}
	return dst, nil
}
