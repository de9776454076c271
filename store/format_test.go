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

// expandConsts rewrites, in b, the constants record at key k (value v) as
// the per-series constant chunks formats 1 and 2 wrote, encoded by enc.
func expandConsts(t *testing.T, b *pebble.Batch, k, v []byte, enc func(ts []int64, vs []float64) []byte) {
	t.Helper()
	part, t0 := fromOrdered(beUint64(k[1:9])), fromOrdered(beUint64(k[17:25]))
	err := walkConsts(v, func(e constEntry) bool {
		ts, vs := make([]int64, e.n), make([]float64, e.n)
		for i := range ts {
			ts[i], vs[i] = t0+int64(i)*e.step, math.Float64frombits(e.v)
		}
		b.Set(chunkKey(nil, part, e.id, t0), enc(ts, vs), nil)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Delete(append([]byte(nil), k...), nil)
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
		if beUint64(it.Key()[9:17]) == 0 {
			expandConsts(t, b, it.Key(), v, legacyChunk)
			continue
		}
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

// TestOpenUpgradesVersion2: a store of format version 2 (hour rollups in
// records of their own, chunks without them) opens, is marked version 3,
// loses the old rollup records, and answers Rollup from its old chunks and
// its new ones alike, equal to the aggregates of its samples.
func TestOpenUpgradesVersion2(t *testing.T) {
	fs := vfs.NewMem()
	const n, ticks = 12, 2500
	s := openMem(t, fs, Options{})
	ingest(t, s, n, ticks, t0, DefaultInterval, 6)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open("/db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyChunk}, UpperBound: []byte{keyChunk + 1}})
	b := db.NewBatch()
	stripped := 0
	for it.First(); it.Valid(); it.Next() {
		v, _ := it.ValueAndErr()
		if beUint64(it.Key()[9:17]) == 0 {
			expandConsts(t, b, it.Key(), v, encodeChunk)
			continue
		}
		if v[0]&chunkRollupFlag == 0 {
			continue
		}
		pts, err := decodeChunk(v, math.MinInt64, math.MaxInt64, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts, vs := make([]int64, len(pts)), make([]float64, len(pts))
		for i, p := range pts {
			ts[i], vs[i] = p.T, p.V
		}
		k := append([]byte(nil), it.Key()...)
		b.Set(k, encodeChunk(ts, vs), nil)
		// A version 2 rollup record beside it: partition, id, resolution, T.
		rk := append([]byte{keyRollup}, k[1:17]...)
		rk = append(append(rk, storedRollup), k[17:]...)
		b.Set(rk, []byte{1, 2, 3}, nil)
		stripped++
	}
	it.Close()
	b.Set(metaMagic, append([]byte(magic), 2), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if stripped < n {
		t.Fatalf("%d chunks with rollups to strip", stripped)
	}

	s = openMem(t, fs, Options{})
	m, _, err := s.get(metaMagic)
	if err != nil || m[len(magic)] != formatVersion {
		t.Fatalf("marker after upgrade %q, %v", m, err)
	}
	ri, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyRollup}, UpperBound: []byte{keyRollup + 1}})
	if err != nil {
		t.Fatal(err)
	}
	if ri.First() {
		t.Errorf("version 2 rollup record %x left after the upgrade", ri.Key())
	}
	ri.Close()
	// New ticks in new chunks (with rollups) after the old ones.
	gens := make([]*genSeries, n)
	for i := range gens {
		gens[i] = newGen(6, i)
		for range ticks {
			gens[i].next()
		}
	}
	smp := make([]Sample, n)
	for j := ticks; j < ticks+3000; j++ {
		for i, g := range gens {
			smp[i] = Sample{Name: g.name, Labels: g.labels, Value: g.next()}
		}
		if err := s.Append(t0.Add(time.Duration(j)*DefaultInterval), smp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openMem(t, fs, Options{})
	defer s.Close()
	checkSeries(t, s, n, ticks+3000, t0, DefaultInterval, 6, 0)
	for ref := uint64(1); ref <= n; ref++ {
		pts, err := s.Points(ref, math.MinInt64, math.MaxInt64, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveRollup(pts, time.Hour.Milliseconds(), math.MinInt64, math.MaxInt64)
		got, err := s.Rollup(ref, time.Hour, math.MinInt64, math.MaxInt64, nil)
		if err != nil || len(got) != len(want) {
			t.Fatalf("series %d: %d hour buckets, want %d, %v", ref, len(got), len(want), err)
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.T != w.T || g.Count != w.Count || !sameFloat(g.Min, w.Min, true) || !sameFloat(g.Max, w.Max, true) || !sameFloat(g.Sum, w.Sum, false) {
				// Sum within rounding: the Close cut a window in two
				// chunks, whose bucket parts are summed apart.
				t.Fatalf("series %d bucket %d: %+v, want %+v", ref, i, g, w)
			}
		}
	}
}
