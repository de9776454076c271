package store

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func roundTrip(t *testing.T, ts []int64, vs []float64) []byte {
	t.Helper()
	c := encodeChunk(ts, vs)
	got, err := decodeChunk(c, math.MinInt64, math.MaxInt64, nil)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(got) != len(ts) {
		t.Fatalf("decoded %d points, want %d", len(got), len(ts))
	}
	for i := range ts {
		if got[i].T != ts[i] || math.Float64bits(got[i].V) != math.Float64bits(vs[i]) {
			t.Fatalf("point %d: got (%d, %x), want (%d, %x)", i, got[i].T, math.Float64bits(got[i].V), ts[i], math.Float64bits(vs[i]))
		}
	}
	// A window in the middle returns exactly the points inside it.
	if len(ts) > 4 {
		lo, hi := ts[1], ts[len(ts)-2]
		sub, err := decodeChunk(c, lo, hi, nil)
		if err != nil || len(sub) != len(ts)-2 || sub[0].T != lo || sub[len(sub)-1].T != hi {
			t.Fatalf("sub-range decode: %d points, err %v", len(sub), err)
		}
	}
	return c
}

func TestChunkShapes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	regular := func(n int, step int64) []int64 {
		ts := make([]int64, n)
		for i := range ts {
			ts[i] = 1_700_000_000_000 + int64(i)*step
		}
		return ts
	}
	irregular := func(n int) []int64 {
		ts := make([]int64, n)
		t := int64(-5000)
		for i := range ts {
			t += 1 + r.Int64N(20000)
			if i%97 == 0 {
				t += 1 << 40
			}
			ts[i] = t
		}
		return ts
	}
	fill := func(n int, f func(i int) float64) []float64 {
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = f(i)
		}
		return vs
	}
	specials := []float64{math.NaN(), math.Float64frombits(0x7ff0000000000001), math.Float64frombits(0xfff8000000000123),
		math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		1 << 53, -(1 << 53), 1<<53 + 2, 9007199254740991, -9007199254740991, 0.1, 1e-300}
	cases := []struct {
		name string
		vs   func(n int) []float64
	}{
		{"const", func(n int) []float64 { return fill(n, func(int) float64 { return 3 }) }},
		{"const NaN", func(n int) []float64 { return fill(n, func(int) float64 { return math.NaN() }) }},
		{"counter", func(n int) []float64 {
			c := 0.0
			return fill(n, func(int) float64 { c += float64(r.IntN(1000)); return c })
		}},
		{"linear", func(n int) []float64 { return fill(n, func(i int) float64 { return float64(i) * 1500 }) }},
		{"decimal", func(n int) []float64 {
			return fill(n, func(int) float64 { return math.Round(r.Float64()*10000) / 100 })
		}},
		{"negative decimal", func(n int) []float64 {
			return fill(n, func(int) float64 { return -math.Round(r.Float64()*1e8) / 1e6 })
		}},
		{"noise", func(n int) []float64 { return fill(n, func(int) float64 { return r.NormFloat64() }) }},
		{"bits", func(n int) []float64 {
			return fill(n, func(int) float64 { return math.Float64frombits(r.Uint64()) })
		}},
		{"specials", func(n int) []float64 { return fill(n, func(i int) float64 { return specials[i%len(specials)] }) }},
		{"ints and specials", func(n int) []float64 {
			return fill(n, func(i int) float64 {
				if i%50 == 49 {
					return specials[i%len(specials)]
				}
				return float64(i)
			})
		}},
		{"huge ints", func(n int) []float64 {
			return fill(n, func(i int) float64 { return float64(1<<52) + float64(i*i*1000) })
		}},
	}
	for _, c := range cases {
		for _, n := range []int{1, 2, 3, 720} {
			roundTrip(t, regular(n, 5000), c.vs(n))
			roundTrip(t, irregular(n), c.vs(n))
		}
		b := roundTrip(t, regular(720, 5000), c.vs(720))
		t.Logf("%-18s 720 regular samples: %5d bytes, %.3f bytes/sample, mode %#x", c.name, len(b), float64(len(b))/720, b[0])
	}
}

func TestBucketInts(t *testing.T) {
	vals := []int64{0, 1, -1, 63, -64, 64, -65, 2047, -2048, 2048, 1<<19 - 1, -1 << 19, 1 << 19,
		1<<31 - 1, -1 << 31, 1 << 31, math.MaxInt64, math.MinInt64}
	for _, ws := range []widths{fixedWidths, {1, 2, 3, 64}, {5, 9, 40, 64}} {
		var w bitWriter
		for _, v := range vals {
			w.writeInt(v, &ws)
		}
		r := bitReader{b: w.b}
		for _, v := range vals {
			if got := r.readInt(&ws); got != v || r.bad {
				t.Fatalf("widths %v: read %d, want %d (bad %v)", ws, got, v, r.bad)
			}
		}
	}
	// fitWidths on lengths that cluster picks widths that cover them.
	xs := []int64{0}
	for i := 0; i < 1000; i++ {
		xs = append(xs, xs[len(xs)-1]+int64(i%7)*100+int64(i%3))
	}
	ws := fitWidths(xs, false, false)
	if ws[3] < 11 || ws[0] > ws[1] || ws[1] > ws[2] || ws[2] > ws[3] {
		t.Fatalf("fitWidths: %v", ws)
	}
}

func FuzzChunk(f *testing.F) {
	f.Add(encodeChunk([]int64{1, 2, 3}, []float64{1, 2, 4}))
	f.Add(encodeChunk([]int64{1, 5, 6, 100}, []float64{1.5, math.NaN(), 3, 0.25}))
	f.Add(encodeChunk([]int64{1, 2, 3}, []float64{0.01, 0.02, 0.05}))
	f.Add(encodeChunk([]int64{10}, []float64{7}))
	// Decimal chunks: with a dictionary, with residuals, deltas of deltas,
	// irregular timestamps.
	dts, dvs := make([]int64, 64), make([]float64, 64)
	for i := range dts {
		dts[i], dvs[i] = int64(i)*5000, float64(i%3*4096+i*8192)
	}
	f.Add(encodeChunk(dts, dvs))
	for i := range dvs {
		dvs[i] = 0.1 * float64(i) // sums that drift: residuals
	}
	f.Add(encodeChunk(dts, dvs))
	for i := range dts {
		dts[i] += int64(i * i)
		dvs[i] = float64(i * i * 3)
	}
	f.Add(encodeChunk(dts, dvs))
	f.Add([]byte{0x10, 0xff, 0xff, 0x03, 0, 0})
	// Linear chunks, regular and not.
	for i := range dts {
		dts[i], dvs[i] = int64(i)*5000, float64(1e9+i*4096)
	}
	f.Add(encodeChunk(dts, dvs))
	dts[9]++
	f.Add(encodeChunk(dts, dvs))
	// Chunks with their hour rollup (format 3).
	var sc rollupScratch
	for i := range dts {
		dts[i], dvs[i] = int64(i)*120_000, float64(i*i)
	}
	f.Add(withRollup(encodeChunk(dts, dvs), dts, dvs, &sc))
	dvs[3], dvs[40] = math.NaN(), math.Inf(1)
	f.Add(withRollup(encodeChunk(dts, dvs), dts, dvs, &sc))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := parseChunkHeader(b); err == nil && h.rollup != nil {
			hour := time.Hour.Milliseconds()
			aggs, err := decodeRollup(h.rollup, hour, h.t0, h.n, math.MinInt64, math.MaxInt64, nil)
			if err == nil {
				n := uint64(0)
				for i, a := range aggs {
					n += a.Count
					if a.Count == 0 || a.T%hour != 0 || (i > 0 && a.T <= aggs[i-1].T) {
						t.Fatalf("rollup decoded to %+v", aggs)
					}
				}
				if n != uint64(h.n) {
					t.Fatalf("rollup counts %d samples, the chunk %d", n, h.n)
				}
			}
		}
		pts, err := decodeChunk(b, math.MinInt64, math.MaxInt64, nil)
		if err == nil {
			if len(pts) == 0 || len(pts) > maxChunkSamples {
				t.Fatalf("decoded %d points without error", len(pts))
			}
			// What decodes re-encodes to a chunk that decodes the same,
			// when its timestamps are increasing (the encoder's contract).
			ts := make([]int64, len(pts))
			vs := make([]float64, len(pts))
			for i, p := range pts {
				if i > 0 && p.T <= pts[i-1].T {
					return
				}
				ts[i], vs[i] = p.T, p.V
			}
			again, err := decodeChunk(encodeChunk(ts, vs), math.MinInt64, math.MaxInt64, nil)
			if err != nil || len(again) != len(pts) {
				t.Fatalf("re-encode: %d points, %v", len(again), err)
			}
			for i := range pts {
				if again[i].T != pts[i].T || math.Float64bits(again[i].V) != math.Float64bits(pts[i].V) {
					t.Fatalf("re-encode point %d differs", i)
				}
			}
			// With its rollup: the samples still decode, and the rollup
			// is their aggregates bit for bit.
			if ts[len(ts)-1]-ts[0] < 1<<50 {
				checkChunkRollup(t, ts, vs)
			}
		}
	})
}

// checkChunkRollup encodes ts, vs as a chunk with its rollup and checks that
// the samples decode bit for bit and the rollup equals their aggregates (the
// definition: Count, Min, Max, and Sum added in time order). It returns the
// rollup's size.
func checkChunkRollup(t testing.TB, ts []int64, vs []float64) int {
	t.Helper()
	hour := time.Hour.Milliseconds()
	var sc rollupScratch
	c := withRollup(encodeChunk(ts, vs), ts, vs, &sc)
	pts, err := decodeChunk(c, math.MinInt64, math.MaxInt64, nil)
	if err != nil || len(pts) != len(ts) {
		t.Fatalf("chunk with rollup: %d points, %v", len(pts), err)
	}
	for i, p := range pts {
		if p.T != ts[i] || math.Float64bits(p.V) != math.Float64bits(vs[i]) {
			t.Fatalf("chunk with rollup: point %d is %v, want %d %v", i, p, ts[i], vs[i])
		}
	}
	h, err := parseChunkHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	// The oracle: a plain fold over the samples.
	var want []Aggregate
	for i, tt := range ts {
		b := tt / hour * hour
		if tt < 0 && tt%hour != 0 {
			b -= hour
		}
		if len(want) == 0 || want[len(want)-1].T != b {
			want = append(want, Aggregate{T: b, Min: vs[i], Max: vs[i], Sum: vs[i], Count: 1})
			continue
		}
		a := &want[len(want)-1]
		a.Count++
		a.Sum += vs[i]
		if vs[i] < a.Min || math.IsNaN(a.Min) {
			a.Min = vs[i]
		}
		if vs[i] > a.Max || math.IsNaN(a.Max) {
			a.Max = vs[i]
		}
	}
	if h.rollup == nil {
		if h.valMode != valConst && h.valMode != valLinear {
			t.Fatal("no rollup in a chunk that is not constant or linear")
		}
		return 0
	}
	got, err := decodeRollup(h.rollup, hour, h.t0, h.n, math.MinInt64, math.MaxInt64, nil)
	if err != nil || len(got) != len(want) {
		t.Fatalf("rollup: %d buckets, want %d, %v", len(got), len(want), err)
	}
	same := func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
	for i := range got {
		g, w := got[i], want[i]
		if g.T != w.T || g.Count != w.Count || !same(g.Min, w.Min) || !same(g.Max, w.Max) || !same(g.Sum, w.Sum) {
			t.Fatalf("rollup bucket %d: %+v, want %+v", i, g, w)
		}
	}
	return len(h.rollup)
}

// TestRollupInChunk: the hour rollup inside a chunk decodes to its samples'
// aggregates bit for bit for every value shape, and is small for the common
// ones (a counter's two hours, a decimal gauge): format 2 spent 26 bytes of
// key and about 57 of value on the two hours of a counter.
func TestRollupInChunk(t *testing.T) {
	const n = 1440
	ts := make([]int64, n)
	start := int64(1_793_577_600_000) // 2026-11-02T00:00Z, an hour boundary
	for i := range ts {
		ts[i] = start + int64(i)*5000
	}
	rng := rand.New(rand.NewPCG(7, 8))
	shapes := []struct {
		name    string
		val     func(i int) float64
		maxSize int // bytes of rollup; 0: no bound
	}{
		{"counter", func(i int) float64 { return float64(12_345_678_901 + i*i*977 + i*31) }, 40},
		{"counter with reset", func(i int) float64 { return float64((i % 1000) * 4096) }, 32},
		{"decimal gauge", func(i int) float64 { return float64(rng.IntN(400)) / 100 }, 24},
		{"cpu seconds", func(i int) float64 { return float64(3_000_000+i*197) / 100 }, 0},
		{"cpu seconds, wobbling", func(i int) float64 { return float64(3_000_000+i*197+i%3) / 100 }, 0},
		{"noisy float", func(i int) float64 { return rng.Float64() * 1e3 }, 0},
		{"negative", func(i int) float64 { return -float64(rng.IntN(1 << 20)) }, 0},
		{"huge integers", func(i int) float64 { return float64(1<<52 + i) }, 0},
		{"above 2^53", func(i int) float64 { return 1e300 * float64(i+1) }, 0},
		{"constant hour, then a step", func(i int) float64 { return float64(5 + i/720) }, 0},
		{"NaN and Inf", func(i int) float64 {
			switch i % 97 {
			case 3:
				return math.NaN()
			case 5:
				return math.Inf(-1)
			}
			return float64(i)
		}, 0},
		{"all NaN but one", func(i int) float64 {
			if i == 700 {
				return 1
			}
			return math.NaN()
		}, 0},
		{"negative zero", func(i int) float64 { return math.Copysign(0, float64(i%2*2-1)) }, 0},
	}
	for _, sh := range shapes {
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = sh.val(i)
		}
		size := checkChunkRollup(t, ts, vs)
		t.Logf("%s: rollup %d bytes", sh.name, size)
		if sh.maxSize > 0 && size > sh.maxSize {
			t.Errorf("%s: rollup of %d bytes, want <= %d", sh.name, size, sh.maxSize)
		}
	}
	// Irregular timestamps across three hours, and a single sample.
	its := []int64{start - 1, start + 5, start + 3_600_000, start + 7_300_000, start + 7_300_001}
	checkChunkRollup(t, its, []float64{1, 2.5, 3, -4, 1e-9})
	checkChunkRollup(t, []int64{start + 17}, []float64{42})
	checkChunkRollup(t, []int64{-3_600_001, -5, 0, 3}, []float64{1, 2, 3, 4})
}

// TestLinearChunk: values on a straight line (an idle host's time counters)
// take a chunk of constant size, at any decimal scale and slope, with
// regular or irregular timestamps, and decode bit for bit.
func TestLinearChunk(t *testing.T) {
	const n = 1440
	for _, c := range []struct {
		name string
		v    func(i int) float64
	}{
		{"bytes", func(i int) float64 { return float64(81_234_567_890 + i*4096) }},
		{"cpu seconds", func(i int) float64 { return float64(12_345_678+i*500) / 100 }},
		{"falling", func(i int) float64 { return float64(1_000_000 - i*3) }},
		{"tenths", func(i int) float64 { return float64(i) / 10 }},
	} {
		for _, regular := range []bool{true, false} {
			ts, vs := make([]int64, n), make([]float64, n)
			for i := range ts {
				ts[i] = 1_793_577_600_000 + int64(i)*5000
				if !regular && i%100 == 7 {
					ts[i] += 3
				}
				vs[i] = c.v(i)
			}
			b := roundTrip(t, ts, vs)
			if b[0]&15 != valLinear {
				t.Errorf("%s (regular %v): mode %#x, want linear", c.name, regular, b[0])
			}
			if regular && len(b) > 24 {
				t.Errorf("%s: %d bytes, want <= 24", c.name, len(b))
			}
			checkChunkRollup(t, ts, vs)
		}
	}
	// Not on a line by one ulp of a decimal: not linear.
	ts, vs := make([]int64, 100), make([]float64, 100)
	for i := range ts {
		ts[i], vs[i] = int64(i)*1000, float64(i)*0.1 // 0.1*3 is not 3/10
	}
	if b := roundTrip(t, ts, vs); b[0]&15 == valLinear {
		t.Errorf("float products taken as a line")
	}
	// A line whose end overflows what a float64 holds is refused.
	bad := append(appendChunkHeader(nil, make([]int64, 10000), tsRegular, 1000, valLinear), 0)
	bad = binary.AppendVarint(bad, 1<<52)
	bad = binary.AppendVarint(bad, 1<<40)
	if _, err := decodeChunk(bad, math.MinInt64, math.MaxInt64, nil); err == nil {
		t.Error("a line past 2^53 decoded")
	}
}
