package store

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
// smallest of a few buckets, a prefix of ones ended by a zero naming the
// bucket: 0 (the value 0), 10+7 bits, 110+12, 1110+20, 11110+32, 11111+64.
var bucketBits = [...]uint8{7, 12, 20, 32}

func zigzag(x int64) uint64   { return uint64(x<<1) ^ uint64(x>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// bucketSize is the number of bits writeInt spends on x.
func bucketSize(x int64) int {
	if x == 0 {
		return 1
	}
	z := zigzag(x)
	for i, n := range bucketBits {
		if z < 1<<n {
			return i + 2 + int(n)
		}
	}
	return 5 + 64
}

func (w *bitWriter) writeInt(x int64) {
	if x == 0 {
		w.writeBit(false)
		return
	}
	z := zigzag(x)
	for i, n := range bucketBits {
		if z < 1<<n {
			// i+1 ones, then a zero.
			w.writeBits(1<<(i+2)-2, uint8(i+2))
			w.writeBits(z, n)
			return
		}
	}
	w.writeBits(0x1f, 5)
	w.writeBits(z, 64)
}

func (r *bitReader) readInt() int64 {
	ones := 0
	for ones < 5 && r.readBit() {
		ones++
	}
	if ones == 0 {
		return 0
	}
	if ones == 5 {
		return unzigzag(r.readBits(64))
	}
	return unzigzag(r.readBits(bucketBits[ones-1]))
}
