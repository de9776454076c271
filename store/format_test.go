package store

import (
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// legacyChunk encodes as format version 1 did: constant, XOR, or integer
// deltas or deltas of deltas, the smallest.
func legacyChunk(ts []int64, vs []float64) []byte {
	tsMode, step := byte(tsDoD), int64(0)
	if len(ts) > 1 {
		step = ts[1] - ts[0]
		tsMode = tsRegular
		for i := 2; i < len(ts); i++ {
			if ts[i]-ts[i-1] != step {
				tsMode = tsDoD
			}
		}
	}
	best := appendChunk(nil, ts, vs, nil, tsMode, step, valXOR, 0)
	if ms, k, ok := toInts(vs, nil); ok {
		for _, mode := range []byte{valIntDelta, valIntDoD} {
			if c := appendChunk(nil, ts, vs, ms, tsMode, step, mode, k); len(c) < len(best) {
				best = c
			}
		}
	}
	return best
}

// TestChunkLegacyModes: chunks in version 1's modes still decode bit for bit.
func TestChunkLegacyModes(t *testing.T) {
	ts := make([]int64, 720)
	for i := range ts {
		ts[i] = 1_700_000_000_000 + int64(i)*5000
	}
	for i := range 10 {
		g := newGen(3, i)
		vs := make([]float64, len(ts))
		for j := range vs {
			vs[j] = g.next()
		}
		c := legacyChunk(ts, vs)
		if c[0]&15 == valDecimal {
			t.Fatal("legacy encoder wrote the decimal mode")
		}
		got, err := decodeChunk(c, math.MinInt64, math.MaxInt64, nil)
		if err != nil || len(got) != len(ts) {
			t.Fatalf("%s: %d points, %v", g.name, len(got), err)
		}
		for j := range got {
			if got[j].T != ts[j] || math.Float64bits(got[j].V) != math.Float64bits(vs[j]) {
				t.Fatalf("%s point %d differs", g.name, j)
			}
		}
	}
}

// TestOpenUpgradesVersion1: a store of format version 1 (its chunks in the
// old modes) opens, is marked version 2, reads back bit for bit and takes
// new ticks.
func TestOpenUpgradesVersion1(t *testing.T) {
	fs := vfs.NewMem()
	const n, ticks = 20, 1500
	s := openMem(t, fs, Options{Interval: 10 * time.Second})
	ingest(t, s, n, ticks, t0, 10*time.Second, 4)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open("/db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyChunk}, UpperBound: []byte{keyChunk + 1}})
	b := db.NewBatch()
	rewritten := 0
	for it.First(); it.Valid(); it.Next() {
		v, _ := it.ValueAndErr()
		pts, err := decodeChunk(v, math.MinInt64, math.MaxInt64, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts, vs := make([]int64, len(pts)), make([]float64, len(pts))
		for i, p := range pts {
			ts[i], vs[i] = p.T, p.V
		}
		b.Set(append([]byte(nil), it.Key()...), legacyChunk(ts, vs), nil)
		rewritten++
	}
	it.Close()
	b.Set(metaMagic, append([]byte(magic), 1), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if rewritten == 0 {
		t.Fatal("no chunks to rewrite")
	}

	s = openMem(t, fs, Options{Interval: 10 * time.Second})
	checkSeries(t, s, n, ticks, t0, 10*time.Second, 4, 0)
	m, _, err := s.get(metaMagic)
	if err != nil || m[len(magic)] != formatVersion {
		t.Fatalf("marker after upgrade %q, %v", m, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The upgraded store takes more ticks (in the new modes) and reads the
	// old and the new.
	s = openMem(t, fs, Options{Interval: 10 * time.Second})
	defer s.Close()
	gens := make([]*genSeries, n)
	for i := range gens {
		gens[i] = newGen(4, i)
		for range ticks {
			gens[i].next()
		}
	}
	smp := make([]Sample, n)
	for j := ticks; j < ticks+800; j++ {
		for i, g := range gens {
			smp[i] = Sample{Name: g.name, Labels: g.labels, Value: g.next()}
		}
		if err := s.Append(t0.Add(time.Duration(j)*10*time.Second), smp); err != nil {
			t.Fatal(err)
		}
	}
	checkSeries(t, s, n, ticks+800, t0, 10*time.Second, 4, 0)
}
