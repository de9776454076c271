package store

import (
	"math"
	"math/bits"
)

// bitWriter appends bits, most significant first, to a byte slice.
type bitWriter struct {
	b    []byte
	free uint8 // unused low bits in the last byte of b
}

func (w *bitWriter) writeBit(on bool) {
	if w.free == 0 {
		w.b = append(w.b, 0)
		w.free = 8
	}
	w.free--
	if on {
		w.b[len(w.b)-1] |= 1 << w.free
	}
}

// writeBits writes the low n bits of v (n <= 64).
func (w *bitWriter) writeBits(v uint64, n uint8) {
	for n > 0 {
		if w.free == 0 {
			w.b = append(w.b, 0)
			w.free = 8
		}
		take := n
		if take > w.free {
			take = w.free
		}
		n -= take
		chunk := byte((v >> n) & (1<<take - 1))
		w.free -= take
		w.b[len(w.b)-1] |= chunk << w.free
	}
}

// bitReader reads what bitWriter wrote; reading past the end sets bad and
// yields zeros, so a decoder checks bad once per sample.
type bitReader struct {
	b   []byte
	pos uint64 // bit position
	bad bool
}

func (r *bitReader) readBit() bool {
	i := r.pos >> 3
	if i >= uint64(len(r.b)) {
		r.bad = true
		return false
	}
	bit := r.b[i]>>(7-r.pos&7)&1 == 1
	r.pos++
	return bit
}

func (r *bitReader) readBits(n uint8) uint64 {
	var v uint64
	for n > 0 {
		i := r.pos >> 3
		if i >= uint64(len(r.b)) {
			r.bad = true
			return 0
		}
		avail := 8 - uint8(r.pos&7)
		take := n
		if take > avail {
			take = avail
		}
		cur := uint64(r.b[i]>>(avail-take)) & (1<<take - 1)
		v = v<<take | cur
		n -= take
		r.pos += uint64(take)
	}
	return v
}

// Signed integers (deltas, deltas of deltas) are written zig-zagged in the
// smallest of four buckets of widths w[0] < w[1] < w[2] < w[3] bits, after a
// prefix naming the bucket: 0 is the value 0, then 10, 110, 1110, 1111. The
// last width holds every value of the stream. Timestamps use fixedWidths;
// integer values use widths fitted to each chunk (fitWidths).
type widths [4]uint8

var fixedWidths = widths{7, 14, 32, 64}

var (
	prefixCode = [4]uint64{0b10, 0b110, 0b1110, 0b1111}
	prefixBits = [4]uint8{2, 3, 4, 4}
)

func zigzag(x int64) uint64   { return uint64(x<<1) ^ uint64(x>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func (w *bitWriter) writeInt(x int64, ws *widths) { w.writeEntry(zigzag(x), ws) }

// writeEntry writes z in the first bucket that holds it (the last always
// does: its width covers the stream).
func (w *bitWriter) writeEntry(z uint64, ws *widths) {
	if z == 0 {
		w.writeBit(false)
		return
	}
	n := uint8(bits.Len64(z))
	for i, wi := range ws {
		if n <= wi || i == 3 {
			w.writeBits(prefixCode[i], prefixBits[i])
			w.writeBits(z, wi)
			return
		}
	}
}

func (r *bitReader) readInt(ws *widths) int64 { return unzigzag(r.readEntry(ws)) }

func (r *bitReader) readEntry(ws *widths) uint64 {
	ones := 0
	for ones < 4 && r.readBit() {
		ones++
	}
	if ones == 0 {
		return 0
	}
	return r.readBits(ws[ones-1])
}

// fitWidths chooses the bucket widths that encode xs in the fewest bits, by
// dynamic programming over the histogram of the entries' bit lengths
// (zig-zagged unless unsigned).
func fitWidths(xs []int64, delta2, unsigned bool) widths {
	var count [65]int
	prev, prevD := int64(0), int64(0)
	for i, x := range xs {
		e := x - prev
		if delta2 && i > 1 {
			e, prevD = e-prevD, e
		} else if delta2 {
			prevD = e
		}
		prev = x
		if i == 0 {
			continue
		}
		if unsigned {
			count[bits.Len64(uint64(e))]++
		} else {
			count[bits.Len64(zigzag(e))]++
		}
	}
	maxLen := 1
	for l := 64; l > 0; l-- {
		if count[l] > 0 {
			maxLen = l
			break
		}
	}
	// cum[l] = entries of length 1..l.
	var cum [65]int
	for l := 1; l <= 64; l++ {
		cum[l] = cum[l-1] + count[l]
	}
	// best[j][w]: the fewest bits for the entries of length <= w with
	// buckets 0..j, bucket j of width w.
	const inf = math.MaxInt
	var best [4][65]int
	var from [4][65]uint8
	for j := 0; j < 4; j++ {
		for w := 1; w <= maxLen; w++ {
			best[j][w] = inf
			if j == 0 {
				best[0][w] = cum[w] * int(prefixBits[0]+uint8(w))
				continue
			}
			for p := j; p < w; p++ { // bucket j-1 has width p
				if best[j-1][p] == inf {
					continue
				}
				c := best[j-1][p] + (cum[w]-cum[p])*int(prefixBits[j]+uint8(w))
				if c < best[j][w] {
					best[j][w], from[j][w] = c, uint8(p)
				}
			}
		}
	}
	// The cheapest number of buckets; unused ones repeat the last width.
	j := 0
	for k := 1; k < 4; k++ {
		if best[k][maxLen] < best[j][maxLen] {
			j = k
		}
	}
	var ws widths
	w := uint8(maxLen)
	for k := j; k >= 0; k-- {
		ws[k] = w
		w = from[k][w]
	}
	for k := j + 1; k < 4; k++ {
		ws[k] = uint8(maxLen)
	}
	return ws
}
