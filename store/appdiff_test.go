package store

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// refAppendAppDiff is appendAppDiff as first written (each equal run found
// by firstDiff from its start): the format's reference.
func refAppendAppDiff(b, prev, cur []byte) []byte {
	if len(prev) != len(cur) || len(cur) == 0 {
		return appendAppWhole(b, cur)
	}
	if bytes.Equal(prev, cur) {
		return append(b, appSame)
	}
	start := len(b)
	b = append(b, appDiff)
	for i := 0; i < len(cur); {
		j := firstDiff(prev, cur, i)
		k := j
		for k < len(cur) && cur[k] != prev[k] {
			k++
		}
		b = binary.AppendUvarint(b, uint64(j-i))
		b = binary.AppendUvarint(b, uint64(k-j))
		b = append(b, cur[j:k]...)
		i = k
	}
	if len(b)-start > 1+varintLen(uint64(len(cur)))+len(cur) {
		return appendAppWhole(b[:start], cur)
	}
	return b
}

// TestAppendAppDiffSameBytes: appendAppDiff codes what the reference
// does, and readAppDiff reads it back, for results that differ in a few
// runs anywhere (first and last bytes too), in many, in none, and in
// length.
func TestAppendAppDiffSameBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for it := range 20000 {
		n := 1 + r.IntN(430)
		if it%3 == 0 {
			n = 107 // a flood result's length
		}
		prev := make([]byte, n)
		for i := range prev {
			prev[i] = byte(r.Uint32())
		}
		cur := append([]byte(nil), prev...)
		switch it % 5 {
		case 0: // the same
		case 1: // scattered
			for range r.IntN(n) + 1 {
				cur[r.IntN(n)]++
			}
		case 2: // the ends
			cur[0]++
			cur[n-1]++
		case 3: // a length change
			cur = append(cur, 1)
		default: // a few runs
			for range 1 + r.IntN(3) {
				at := r.IntN(n)
				for k := at; k < min(n, at+1+r.IntN(9)); k++ {
					cur[k] ^= 0x5a
				}
			}
		}
		pre := []byte{9, 9}
		want := refAppendAppDiff(append([]byte(nil), pre...), prev, cur)
		got := appendAppDiff(append([]byte(nil), pre...), prev, cur)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d (n %d): %x\nwant %x", it, n, got, want)
		}
		rd := &rd{b: got[len(pre):]}
		if back := readAppDiff(rd, prev, nil); rd.bad || !bytes.Equal(back, cur) {
			t.Fatalf("case %d: read back %x (bad %v), want %x", it, back, rd.bad, cur)
		}
	}
}
