package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// A chunk holds the samples of one series in one chunk window. Layout:
//
//	byte    tsMode<<4 | valMode
//	uvarint n, the number of samples (1..maxChunkSamples)
//	varint  t0, the first timestamp (ms)
//	tsRegular: uvarint step (t_i = t0 + i*step)
//	valInt*:   byte scale k (| 0x80: valIntDelta entries unsigned, the
//	           deltas of a counter without reset), varint m0
//	           (v_i = m_i / 10^k), 4 bytes: the bucket widths of the value
//	           entries (fitWidths)
//	valXOR, valConst: 8 bytes, the first value's bits (little endian)
//	valLinear: byte scale k, varint m0, varint d (v_i = (m0 + i*d) / 10^k);
//	           the bit stream holds only tsDoD's timestamp entries
//	bit stream: for each sample after the first, its timestamp entry (tsDoD:
//	the delta for the second sample, then deltas of deltas) followed by its
//	value entry (valXOR: Gorilla XOR against the previous value; valIntDelta:
//	m_i - m_{i-1}; valIntDoD: the delta of that delta). Integers are written
//	with bitWriter.writeInt.
//
// The encoder tries every value mode that applies and keeps the smallest, so
// counters and decimal gauges take the integer paths and noisy floats XOR.
// Every mode is lossless: decoding yields the same float64 bits.
const (
	tsRegular = 0
	tsDoD     = 1

	valXOR      = 0
	valIntDelta = 1
	valIntDoD   = 2
	valConst    = 3

	maxChunkSamples = 1 << 16
	maxScale        = 8
	scaleUnsigned   = 0x80 // in the scale byte: deltas all >= 0, not zig-zagged
)

var pow10 = [maxScale + 1]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}

var errChunk = errors.New("corrupt chunk")

// toInts returns the values as integers m with m/10^k == v bit for bit, for
// the smallest k that works, or ok false.
func toInts(vs []float64, ms []int64) (out []int64, k int, ok bool) {
	for k = 0; k <= maxScale; k++ {
		out = ms[:0]
		ok = true
		p := pow10[k]
		for _, v := range vs {
			f := math.Round(v * p)
			if !(f > -(1<<53) && f < 1<<53) { // also NaN and Inf
				ok = false
				break
			}
			m := int64(f)
			back := float64(m)
			if k > 0 {
				back /= p
			}
			if math.Float64bits(back) != math.Float64bits(v) {
				ok = false
				break
			}
			out = append(out, m)
		}
		if ok {
			return out, k, true
		}
	}
	return ms[:0], 0, false
}

// encodeChunk encodes ts (strictly increasing) and vs (same length, >= 1).
func encodeChunk(ts []int64, vs []float64) []byte {
	n := len(ts)
	tsMode := byte(tsRegular)
	var step int64
	if n > 1 {
		step = ts[1] - ts[0]
		for i := 2; i < n; i++ {
			if ts[i]-ts[i-1] != step {
				tsMode = tsDoD
				break
			}
		}
		if step <= 0 || step > math.MaxInt32 {
			tsMode = tsDoD
		}
	}
	constant := true
	b0 := math.Float64bits(vs[0])
	for _, v := range vs[1:] {
		if math.Float64bits(v) != b0 {
			constant = false
			break
		}
	}
	if constant {
		return appendChunk(nil, ts, vs, nil, tsMode, step, valConst, 0)
	}
	// A straight line (a counter at a steady rate, as an idle host's time
	// counters are) in O(1): VictoriaMetrics' delta-const.
	if ms, k, ok := toInts(vs, make([]int64, n)); ok {
		d := ms[1] - ms[0]
		linear := true
		for i := 2; i < n && linear; i++ {
			linear = ms[i]-ms[i-1] == d
		}
		if linear {
			return appendLinear(ts, ms, tsMode, step, k)
		}
	}
	best := appendChunk(nil, ts, vs, nil, tsMode, step, valXOR, 0)
	if c := appendDecimal(appendChunkHeader(nil, ts, tsMode, step, valDecimal), ts, vs, tsMode, step); len(c) < len(best) {
		best = c
	}
	return best
}

// appendLinear encodes samples m_i/10^k with m_i = m_0 + i*d: the header,
// byte k, varint m_0, varint d, and for irregular timestamps their entries.
func appendLinear(ts, ms []int64, tsMode byte, step int64, k int) []byte {
	dst := appendChunkHeader(nil, ts, tsMode, step, valLinear)
	dst = append(dst, byte(k))
	dst = binary.AppendVarint(dst, ms[0])
	dst = binary.AppendVarint(dst, ms[1]-ms[0])
	if tsMode != tsDoD {
		return dst
	}
	w := bitWriter{b: dst}
	var tDelta int64
	for i := 1; i < len(ts); i++ {
		writeTSEntry(&w, ts, i, &tDelta)
	}
	return w.b
}

// writeTSEntry writes tsDoD's entry of sample i >= 1: the delta for the
// second sample, then deltas of deltas (*tDelta: the previous delta).
func writeTSEntry(w *bitWriter, ts []int64, i int, tDelta *int64) {
	d := ts[i] - ts[i-1]
	if i == 1 {
		w.writeInt(d, &fixedWidths)
	} else {
		w.writeInt(d-*tDelta, &fixedWidths)
	}
	*tDelta = d
}

// appendChunkHeader appends the header every mode shares: mode byte,
// sample count, first timestamp, and the step of regular timestamps.
func appendChunkHeader(dst []byte, ts []int64, tsMode byte, step int64, valMode byte) []byte {
	dst = append(dst, tsMode<<4|valMode)
	dst = binary.AppendUvarint(dst, uint64(len(ts)))
	dst = binary.AppendVarint(dst, ts[0])
	if tsMode == tsRegular {
		dst = binary.AppendUvarint(dst, uint64(step))
	}
	return dst
}

func appendChunk(dst []byte, ts []int64, vs []float64, ms []int64, tsMode byte, step int64, valMode byte, k int) []byte {
	n := len(ts)
	dst = appendChunkHeader(dst, ts, tsMode, step, valMode)
	var ws widths
	unsigned := false
	switch valMode {
	case valIntDelta, valIntDoD:
		if valMode == valIntDelta {
			unsigned = true
			for i := 1; i < n && unsigned; i++ {
				unsigned = ms[i] >= ms[i-1]
			}
		}
		if unsigned {
			dst = append(dst, byte(k)|scaleUnsigned)
		} else {
			dst = append(dst, byte(k))
		}
		dst = binary.AppendVarint(dst, ms[0])
		ws = fitWidths(ms, valMode == valIntDoD, unsigned)
		dst = append(dst, ws[:]...)
	default:
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(vs[0]))
	}
	w := bitWriter{b: dst}
	var tDelta, mDelta int64
	prev := math.Float64bits(vs[0])
	lead, trail := uint8(0xff), uint8(0)
	for i := 1; i < n; i++ {
		if tsMode == tsDoD {
			writeTSEntry(&w, ts, i, &tDelta)
		}
		switch valMode {
		case valIntDelta:
			if unsigned {
				w.writeEntry(uint64(ms[i]-ms[i-1]), &ws)
			} else {
				w.writeInt(ms[i]-ms[i-1], &ws)
			}
		case valIntDoD:
			d := ms[i] - ms[i-1]
			if i == 1 {
				w.writeInt(d, &ws)
			} else {
				w.writeInt(d-mDelta, &ws)
			}
			mDelta = d
		case valXOR:
			cur := math.Float64bits(vs[i])
			x := cur ^ prev
			prev = cur
			if x == 0 {
				w.writeBit(false)
				continue
			}
			l := uint8(bits.LeadingZeros64(x))
			t := uint8(bits.TrailingZeros64(x))
			if l > 31 {
				l = 31
			}
			if lead != 0xff && l >= lead && t >= trail {
				w.writeBits(0b10, 2)
				w.writeBits(x>>trail, 64-lead-trail)
				continue
			}
			lead, trail = l, t
			sig := 64 - l - t
			w.writeBits(0b11, 2)
			w.writeBits(uint64(l), 5)
			w.writeBits(uint64(sig&63), 6) // 64 is written as 0
			w.writeBits(x>>t, sig)
		}
	}
	return w.b
}

// chunkHeader is the decoded fixed part of a chunk.
type chunkHeader struct {
	tsMode, valMode byte
	n               int
	t0, step        int64
	k               int
	m0              int64
	ws              widths
	unsigned        bool // valIntDelta entries are not zig-zagged
	v0              uint64
	body            []byte // the bit stream
	rollup          []byte // the hour rollup (decodeRollup), nil if none
	d               int64  // valLinear: the slope
}

// linearEnd returns m0 + (n-1)*d, or false when it overflows.
func linearEnd(m0, d int64, n int) (int64, bool) {
	hi, lo := bits.Mul64(uint64(max(d, -d)), uint64(n-1))
	if hi != 0 || lo > 1<<62 {
		return 0, false
	}
	if d < 0 {
		return m0 - int64(lo), true
	}
	return m0 + int64(lo), true
}

// chunkRollupFlag in the mode byte: the header is followed by uvarint L and
// L bytes of hour rollup (format 3, rollup.go).
const chunkRollupFlag = 0x80

func parseChunkHeader(b []byte) (chunkHeader, error) {
	var h chunkHeader
	if len(b) < 1 {
		return h, fmt.Errorf("%w: empty", errChunk)
	}
	hasRollup := b[0]&chunkRollupFlag != 0
	h.tsMode, h.valMode = b[0]&^chunkRollupFlag>>4, b[0]&15
	if h.tsMode > tsDoD || h.valMode > valLinear || (hasRollup && (h.valMode == valConst || h.valMode == valLinear)) {
		return h, fmt.Errorf("%w: unknown mode %#x", errChunk, b[0])
	}
	b = b[1:]
	n, l := binary.Uvarint(b)
	if l <= 0 || n < 1 || n > maxChunkSamples {
		return h, fmt.Errorf("%w: bad sample count", errChunk)
	}
	h.n = int(n)
	b = b[l:]
	if h.t0, l = binary.Varint(b); l <= 0 {
		return h, fmt.Errorf("%w: bad first timestamp", errChunk)
	}
	b = b[l:]
	if h.tsMode == tsRegular {
		s, l := binary.Uvarint(b)
		if l <= 0 || s > math.MaxInt32 || (s == 0 && n > 1) {
			return h, fmt.Errorf("%w: bad step", errChunk)
		}
		h.step = int64(s)
		b = b[l:]
	}
	if hasRollup {
		rl, l := binary.Uvarint(b)
		if l <= 0 || rl < 3 || rl > uint64(len(b)-l) {
			return h, fmt.Errorf("%w: bad rollup length", errChunk)
		}
		h.rollup = b[l : l+int(rl)]
		b = b[l+int(rl):]
	}
	switch h.valMode {
	case valDecimal:
		// Parsed by decodeDecimal.
	case valLinear:
		if len(b) < 1 || b[0] > maxScale {
			return h, fmt.Errorf("%w: bad scale", errChunk)
		}
		h.k = int(b[0])
		b = b[1:]
		if h.m0, l = binary.Varint(b); l <= 0 {
			return h, fmt.Errorf("%w: bad first value", errChunk)
		}
		b = b[l:]
		if h.d, l = binary.Varint(b); l <= 0 {
			return h, fmt.Errorf("%w: bad slope", errChunk)
		}
		b = b[l:]
		// The last value must be an integer a float64 holds exactly.
		if hi, ok := linearEnd(h.m0, h.d, h.n); !ok || hi <= -(1<<53) || hi >= 1<<53 || h.m0 <= -(1<<53) || h.m0 >= 1<<53 {
			return h, fmt.Errorf("%w: line out of range", errChunk)
		}
	case valIntDelta, valIntDoD:
		if len(b) < 1 {
			return h, fmt.Errorf("%w: no scale", errChunk)
		}
		h.unsigned = b[0]&scaleUnsigned != 0
		h.k = int(b[0] &^ scaleUnsigned)
		if h.k > maxScale || (h.unsigned && h.valMode != valIntDelta) {
			return h, fmt.Errorf("%w: bad scale %#x", errChunk, b[0])
		}
		if h.m0, l = binary.Varint(b[1:]); l <= 0 {
			return h, fmt.Errorf("%w: bad first value", errChunk)
		}
		b = b[1+l:]
		if len(b) < 4 {
			return h, fmt.Errorf("%w: short widths", errChunk)
		}
		for i := range h.ws {
			if b[i] < 1 || b[i] > 64 {
				return h, fmt.Errorf("%w: bad width %d", errChunk, b[i])
			}
			h.ws[i] = b[i]
		}
		b = b[4:]
	default:
		if len(b) < 8 {
			return h, fmt.Errorf("%w: short first value", errChunk)
		}
		h.v0 = binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	h.body = b
	return h, nil
}

// decodeChunk appends the samples of chunk b with mint <= T <= maxt to dst.
func decodeChunk(b []byte, mint, maxt int64, dst []Point) ([]Point, error) {
	h, err := parseChunkHeader(b)
	if err != nil {
		return dst, err
	}
	if h.valMode == valDecimal {
		return decodeDecimal(&h, mint, maxt, dst)
	}
	r := bitReader{b: h.body}
	t := h.t0
	p := pow10[h.k]
	m := h.m0
	val := func() float64 {
		if h.valMode == valIntDelta || h.valMode == valIntDoD || h.valMode == valLinear {
			f := float64(m)
			if h.k > 0 {
				f /= p
			}
			return f
		}
		return math.Float64frombits(h.v0)
	}
	v := val()
	if t >= mint && t <= maxt {
		dst = append(dst, Point{T: t, V: v})
	}
	var tDelta, mDelta int64
	cur := h.v0
	lead, trail := uint8(0xff), uint8(0)
	for i := 1; i < h.n; i++ {
		switch h.tsMode {
		case tsRegular:
			t += h.step
		case tsDoD:
			if i == 1 {
				tDelta = r.readInt(&fixedWidths)
			} else {
				tDelta += r.readInt(&fixedWidths)
			}
			t += tDelta
		}
		switch h.valMode {
		case valLinear:
			m += h.d
			v = val()
		case valIntDelta:
			if h.unsigned {
				m += int64(r.readEntry(&h.ws))
			} else {
				m += r.readInt(&h.ws)
			}
			v = val()
		case valIntDoD:
			if i == 1 {
				mDelta = r.readInt(&h.ws)
			} else {
				mDelta += r.readInt(&h.ws)
			}
			m += mDelta
			v = val()
		case valXOR:
			if r.readBit() {
				if r.readBit() {
					l := uint8(r.readBits(5))
					sig := uint8(r.readBits(6))
					if sig == 0 {
						sig = 64
					}
					if l+sig > 64 {
						return dst, fmt.Errorf("%w: bad xor window", errChunk)
					}
					lead, trail = l, 64-l-sig
				} else if lead == 0xff {
					return dst, fmt.Errorf("%w: xor reuse before window", errChunk)
				}
				cur ^= r.readBits(64-lead-trail) << trail
			}
			v = math.Float64frombits(cur)
		}
		if r.bad {
			return dst, fmt.Errorf("%w: truncated at sample %d of %d", errChunk, i, h.n)
		}
		if t > maxt {
			break
		}
		if t >= mint {
			dst = append(dst, Point{T: t, V: v})
		}
	}
	return dst, nil
}
