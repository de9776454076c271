package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Constant chunks. Most host metrics hold still for hours (totals, limits,
// counts that rarely move): on a day of real /proc readings 91 % of the
// chunks were constant, each a key and 19 bytes of value of its own, and
// their keys and headers were about half the store. So a chunk whose
// samples are all one value at regular timestamps is not written under its
// series' key: it is an entry in the constants record of its partition and
// first timestamp, key chunkKey(partition, 0, t0) (series ids start at 1),
// inside the partition's chunk range, so retention and the disk cap drop it
// with the partition. Readers merge the entries of a series with its chunks
// in time order (eachChunk), as constant chunks rebuilt from the entry.
//
// A constants record: uvarint count, then per entry, by increasing id:
//
//	uvarint the id after the previous entry's (the first: after 0)
//	byte    flags: bit 0: n and step follow (else the previous entry's;
//	        the first entry has them), bits 1-2: the value's mode
//	        (constRaw: 8 bytes, little endian; constInt: zig-zag varint m
//	        with float64(m) the value bit for bit; constSame: the previous
//	        entry's value)
//	uvarint n (1..maxChunkSamples), uvarint step (ms; > 0 when n > 1)
//	the value
const (
	constRaw  = 0
	constInt  = 1
	constSame = 2
)

// constEntry is one series' constant chunk: n samples of bits v from t0
// every step.
type constEntry struct {
	id   uint64
	t0   int64
	n    int
	step int64
	v    uint64
}

// constKey is the key of the constants record of chunks from t0.
func constKey(dst []byte, part, t0 int64) []byte { return chunkKey(dst, part, 0, t0) }

// asConst reports whether chunk c (just encoded) is a constant chunk with
// regular timestamps, and its entry.
func asConst(c []byte, id uint64) (constEntry, bool) {
	if c[0] != tsRegular<<4|valConst {
		return constEntry{}, false
	}
	h, err := parseChunkHeader(c)
	if err != nil {
		panic("BUG: a chunk just encoded does not parse: " + err.Error())
	}
	return constEntry{id: id, t0: h.t0, n: h.n, step: h.step, v: h.v0}, true
}

// encodeConsts appends the constants record of es (increasing ids) to dst.
func encodeConsts(dst []byte, es []constEntry) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(es)))
	var prev constEntry
	for i, e := range es {
		dst = binary.AppendUvarint(dst, e.id-prev.id-1)
		var flags byte
		if i == 0 || e.n != prev.n || e.step != prev.step {
			flags |= 1
		}
		mode := byte(constRaw)
		f := math.Float64frombits(e.v)
		m := int64(0)
		switch {
		case i > 0 && e.v == prev.v:
			mode = constSame
		case f > -(1<<53) && f < 1<<53 && math.Float64bits(float64(int64(f))) == e.v:
			m, mode = int64(f), constInt
		}
		dst = append(dst, flags|mode<<1)
		if flags&1 != 0 {
			dst = binary.AppendUvarint(dst, uint64(e.n))
			dst = binary.AppendUvarint(dst, uint64(e.step))
		}
		switch mode {
		case constRaw:
			dst = binary.LittleEndian.AppendUint64(dst, e.v)
		case constInt:
			dst = binary.AppendVarint(dst, m)
		}
		prev = e
	}
	return dst
}

// walkConsts calls fn for every entry of constants record b (t0 unset), in
// increasing id order, until fn returns false.
func walkConsts(b []byte, fn func(e constEntry) bool) error {
	bad := func(what string) error { return fmt.Errorf("%w: constants record: %s", errChunk, what) }
	cnt, l := binary.Uvarint(b)
	if l <= 0 || cnt < 1 || cnt > uint64(len(b)) {
		return bad("entry count")
	}
	b = b[l:]
	var prev constEntry
	for i := uint64(0); i < cnt; i++ {
		d, l := binary.Uvarint(b)
		if l <= 0 || d >= math.MaxUint64-prev.id {
			return bad("id")
		}
		b = b[l:]
		e := prev
		e.id = prev.id + d + 1
		if len(b) < 1 {
			return bad("truncated")
		}
		flags := b[0]
		b = b[1:]
		mode := flags >> 1
		if flags>>3 != 0 || mode > constSame || (i == 0 && (flags&1 == 0 || mode == constSame)) {
			return bad("flags")
		}
		if flags&1 != 0 {
			n, l := binary.Uvarint(b)
			if l <= 0 || n < 1 || n > maxChunkSamples {
				return bad("sample count")
			}
			b = b[l:]
			step, l := binary.Uvarint(b)
			if l <= 0 || step > math.MaxInt32 || (step == 0 && n > 1) {
				return bad("step")
			}
			b = b[l:]
			e.n, e.step = int(n), int64(step)
		}
		switch mode {
		case constRaw:
			if len(b) < 8 {
				return bad("truncated value")
			}
			e.v = binary.LittleEndian.Uint64(b)
			b = b[8:]
		case constInt:
			m, l := binary.Varint(b)
			if l <= 0 || m <= -(1<<53) || m >= 1<<53 {
				return bad("value")
			}
			b = b[l:]
			e.v = math.Float64bits(float64(m))
		}
		if !fn(e) {
			return nil
		}
		prev = e
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return nil
}

// appendConstChunk appends the constant chunk of e, as encodeChunk writes it.
func appendConstChunk(dst []byte, e constEntry) []byte {
	dst = append(dst, tsRegular<<4|valConst)
	dst = binary.AppendUvarint(dst, uint64(e.n))
	dst = binary.AppendVarint(dst, e.t0)
	dst = binary.AppendUvarint(dst, uint64(e.step))
	return binary.LittleEndian.AppendUint64(dst, e.v)
}

// writeConsts adds to b the constants records of es (any order; sorted
// here by t0, then id).
func writeConsts(b *pebble.Batch, span int64, es []constEntry, buf []byte) ([]byte, error) {
	slices.SortFunc(es, func(x, y constEntry) int {
		if c := cmp.Compare(x.t0, y.t0); c != 0 {
			return c
		}
		return cmp.Compare(x.id, y.id)
	})
	var kb []byte
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && es[j].t0 == es[i].t0 {
			j++
		}
		buf = encodeConsts(buf[:0], es[i:j])
		kb = constKey(kb[:0], floorDiv(es[i].t0, span), es[i].t0)
		if err := b.Set(kb, buf, nil); err != nil {
			return buf, fmt.Errorf("write constants: %w", err)
		}
		i = j
	}
	return buf, nil
}

// chunkWalk is the reused memory of eachChunk.
type chunkWalk struct {
	kb     []byte
	consts []constEntry
	buf    []byte
}

// eachChunk calls fn, in time order, for every chunk of series ref in
// partition p that starts at or before hi: those under its key, and its
// constant chunks (rebuilt from the constants records; v is valid only
// during the call) merged between them, until fn returns false. it ranges
// over partition p's chunk keys at least.
func (s *Store) eachChunk(it *pebble.Iterator, w *chunkWalk, p int64, ref uint64, hi int64, fn func(t0 int64, v []byte) (bool, error)) error {
	w.consts = w.consts[:0]
	w.kb = constKey(w.kb[:0], p, p*s.span)
	err := scanChunkKeys(it, w.kb, hi, func(t0 int64, v []byte) (bool, error) {
		err := walkConsts(v, func(e constEntry) bool {
			if e.id == ref {
				e.t0 = t0
				w.consts = append(w.consts, e)
			}
			return e.id < ref
		})
		if err != nil {
			return false, fmt.Errorf("constants at %d: %w", t0, err)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	next := 0
	emitConsts := func(before int64) (bool, error) {
		for ; next < len(w.consts) && w.consts[next].t0 < before; next++ {
			w.buf = appendConstChunk(w.buf[:0], w.consts[next])
			if more, err := fn(w.consts[next].t0, w.buf); err != nil || !more {
				return false, err
			}
		}
		return true, nil
	}
	w.kb = chunkKey(w.kb[:0], p, ref, p*s.span)
	stopped := false
	err = scanChunkKeys(it, w.kb, hi, func(t0 int64, v []byte) (bool, error) {
		more, err := emitConsts(t0)
		if err == nil && more {
			more, err = fn(t0, v)
		}
		stopped = !more
		return more, err
	})
	if err != nil || stopped {
		return err
	}
	_, err = emitConsts(math.MaxInt64)
	return err
}

// scanChunkKeys calls fn for the chunk keys from kb (a chunk key) with
// kb's partition and series id and a first timestamp up to hi, in order,
// until fn returns false.
func scanChunkKeys(it *pebble.Iterator, kb []byte, hi int64, fn func(t0 int64, v []byte) (bool, error)) error {
	prefix := string(kb[:17])
	for ok := it.SeekGE(kb); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 25 || string(k[:17]) != prefix {
			break
		}
		t0 := fromOrdered(binary.BigEndian.Uint64(k[17:]))
		if t0 > hi {
			break
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if more, err := fn(t0, v); err != nil || !more {
			return err
		}
	}
	return it.Error()
}
