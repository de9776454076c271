package store

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestConstRecord: a constants record decodes to its entries, every value
// mode and n/step change included.
func TestConstRecord(t *testing.T) {
	es := []constEntry{
		{id: 1, n: 1440, step: 5000, v: math.Float64bits(16_384_000_000)},
		{id: 2, n: 1440, step: 5000, v: math.Float64bits(16_384_000_000)},
		{id: 9, n: 1440, step: 5000, v: math.Float64bits(0.25)},
		{id: 10, n: 7, step: 60000, v: math.Float64bits(-3)},
		{id: 1 << 40, n: 1, step: 0, v: math.Float64bits(math.NaN()) | 5},
		{id: 1<<40 + 1, n: 1, step: 0, v: math.Float64bits(math.Copysign(0, -1))},
		{id: 1<<40 + 2, n: 65536, step: math.MaxInt32, v: math.Float64bits(1 << 53)},
	}
	b := encodeConsts(nil, es)
	var got []constEntry
	if err := walkConsts(b, func(e constEntry) bool { got = append(got, e); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, es) {
		t.Fatalf("decoded %+v\nwant    %+v", got, es)
	}
	t.Logf("%d entries in %d bytes", len(es), len(b))
	// Stopping early, and damaged records.
	n := 0
	if err := walkConsts(b, func(constEntry) bool { n++; return n < 3 }); err != nil || n != 3 {
		t.Errorf("stopped after %d entries, %v", n, err)
	}
	for _, bad := range [][]byte{nil, {0}, {1}, {1, 0, 0x01, 0, 0}, {1, 0, 0x04, 1, 1}, b[:len(b)-1], append(slices.Clone(b), 0)} {
		if err := walkConsts(bad, func(constEntry) bool { return true }); err == nil {
			t.Errorf("record %x: no error", bad)
		}
	}
}

// FuzzConstRecord: no input panics, and what decodes re-encodes to a record
// that decodes the same.
func FuzzConstRecord(f *testing.F) {
	f.Add(encodeConsts(nil, []constEntry{{id: 1, n: 3, step: 5, v: 7}, {id: 4, n: 3, step: 5, v: math.Float64bits(2)}}))
	f.Add([]byte{1, 0, 1, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var es []constEntry
		if err := walkConsts(b, func(e constEntry) bool { es = append(es, e); return true }); err != nil {
			return
		}
		var again []constEntry
		if err := walkConsts(encodeConsts(nil, es), func(e constEntry) bool { again = append(again, e); return true }); err != nil || !slices.Equal(es, again) {
			t.Fatalf("re-encoded %+v to %+v, %v", es, again, err)
		}
	})
}

// TestConstantChunksInterleaved: series whose windows alternate between
// constant and moving, chunked in parts by a small head bound, read back
// bit for bit in time order (Points, Select's time filter, Rollup) against
// the values appended, and after a reopen.
func TestConstantChunksInterleaved(t *testing.T) {
	fs := vfs.NewMem()
	const n = 6
	interval := 10 * time.Second
	s := openMem(t, fs, Options{Interval: interval, HeadBytes: 64 << 10})
	ticks := int(11 * time.Hour / interval)
	want := make([][]Point, n)
	smp := make([]Sample, n)
	for j := 0; j < ticks; j++ {
		at := t0.Add(time.Duration(j) * interval)
		hour := j * int(interval) / int(time.Hour)
		for i := range smp {
			v := float64(100*i + hour) // constant within the hour
			if (hour+i)%3 == 0 {
				v += float64(j%7) * 0.5 // moving
			}
			if i == 5 && hour%2 == 1 {
				v = math.NaN()
			}
			smp[i] = Sample{Name: "m", Labels: []Label{{Name: "i", Value: string(rune('a' + i))}}, Value: v}
			want[i] = append(want[i], Point{T: at.UnixMilli(), V: v})
		}
		if err := s.Append(at, smp); err != nil {
			t.Fatal(err)
		}
	}
	check := func() {
		t.Helper()
		infos, err := s.Select([]Matcher{{MatchEqual, MetricName, "m"}}, math.MinInt64, math.MaxInt64)
		if err != nil || len(infos) != n {
			t.Fatalf("select: %d series, %v", len(infos), err)
		}
		for _, in := range infos {
			i := int(in.Labels[0].Value[0] - 'a')
			got, err := s.Points(in.Ref, math.MinInt64, math.MaxInt64, nil)
			if err != nil || len(got) != len(want[i]) {
				t.Fatalf("series %d: %d points, want %d, %v", i, len(got), len(want[i]), err)
			}
			for j := range got {
				if got[j].T != want[i][j].T || math.Float64bits(got[j].V) != math.Float64bits(want[i][j].V) {
					t.Fatalf("series %d point %d: %v, want %v", i, j, got[j], want[i][j])
				}
			}
			// A range inside one constant stretch: Select finds the series
			// there, and Points returns exactly that stretch.
			lo, hi := t0.Add(4*time.Hour+7*time.Minute).UnixMilli(), t0.Add(4*time.Hour+9*time.Minute).UnixMilli()
			sel, err := s.Select([]Matcher{{MatchEqual, MetricName, "m"}, {MatchEqual, "i", in.Labels[0].Value}}, lo, hi)
			if err != nil || len(sel) != 1 {
				t.Fatalf("series %d: select in [%d, %d]: %v, %v", i, lo, hi, sel, err)
			}
			part, _ := s.Points(in.Ref, lo, hi, nil)
			if len(part) != 13 || part[0].T != lo || part[12].T != hi {
				t.Fatalf("series %d: %d points in [%d, %d]: %v", i, len(part), lo, hi, part)
			}
			aggs, err := s.Rollup(in.Ref, time.Hour, math.MinInt64, math.MaxInt64, nil)
			if err != nil || len(aggs) != 11 {
				t.Fatalf("series %d: %d hour buckets, %v", i, len(aggs), err)
			}
			for h, a := range aggs {
				w := naiveRollup(want[i][h*360:(h+1)*360], time.Hour.Milliseconds(), math.MinInt64, math.MaxInt64)
				if len(w) != 1 || a.T != w[0].T || a.Count != w[0].Count || !sameFloat(a.Min, w[0].Min, true) || !sameFloat(a.Max, w[0].Max, true) || !sameFloat(a.Sum, w[0].Sum, false) {
					t.Fatalf("series %d hour %d: %+v, want %+v", i, h, a, w)
				}
			}
		}
	}
	check()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openMem(t, fs, Options{Interval: interval, HeadBytes: 64 << 10})
	defer s.Close()
	check()
	// The constant stretches went to constants records.
	st := s.DB()
	it, _ := st.NewIter(nil)
	records := 0
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); k[0] == keyChunk && beUint64(k[9:17]) == 0 {
			records++
		}
	}
	it.Close()
	if records == 0 {
		t.Error("no constants record written")
	}
}
