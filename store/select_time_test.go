package store

import (
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestSelectExactTime: Select, LabelNames and LabelValues return a series
// only if it has a sample inside [mint, maxt], not for sharing a partition
// with the range: from the head, from regular chunks and from irregular
// ones (a series that skipped ticks), and over whole partitions.
func TestSelectExactTime(t *testing.T) {
	const iv = 5 * time.Second
	s := openMem(t, vfs.NewMem(), Options{Interval: iv})
	defer func() { s.Close() }()
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * iv) }
	ms := func(i int) int64 { return at(i).UnixMilli() }
	// a: ticks 0-9 and 20-29 (irregular); b: ticks 100-110; c: every
	// tick 0-3000 (crosses partitions: 1440 ticks each).
	for i := 0; i <= 3000; i++ {
		smp := []Sample{{Name: "c", Value: float64(i)}}
		if i < 10 || (i >= 20 && i < 30) {
			smp = append(smp, Sample{Name: "a", Labels: []Label{{"k", "va"}}, Value: 1})
		}
		if i >= 100 && i <= 110 {
			smp = append(smp, Sample{Name: "b", Labels: []Label{{"k", "vb"}}, Value: 2})
		}
		if err := s.Append(at(i), smp); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		lo, hi int64
		want   []string
	}{
		{ms(10), ms(19), []string{"c"}},        // a's gap
		{ms(12), ms(18), []string{"c"}},        // inside the gap
		{ms(9), ms(19), []string{"a", "c"}},    // a's last sample before the gap
		{ms(15), ms(20), []string{"a", "c"}},   // a's first after it
		{ms(30), ms(99), []string{"c"}},        // between a and b
		{ms(30), ms(100), []string{"b", "c"}},  // b's first
		{ms(111), ms(2000), []string{"c"}},     // after b, into the next partition
		{ms(110), ms(110), []string{"b", "c"}}, // one instant
		{ms(3001), ms(4000), nil},              // after the last tick
		{ms(-100), ms(-1), nil},                // before the first
		{ms(-100), ms(5000), []string{"a", "b", "c"}},
		{ms(9) + 1, ms(10) - 1, nil}, // between two ticks
	}
	run := func(phase string) {
		for _, c := range cases {
			got, err := s.Select(nil, c.lo, c.hi)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, g := range got {
				names = append(names, g.Name)
			}
			slices.Sort(names)
			if !slices.Equal(names, c.want) {
				t.Errorf("%s: Select [%d, %d] ticks = %v, want %v", phase, (c.lo-ms(0))/5000, (c.hi-ms(0))/5000, names, c.want)
			}
			vals, err := s.LabelValues("k", nil, c.lo, c.hi)
			if err != nil {
				t.Fatal(err)
			}
			var wantVals []string
			for _, n := range c.want {
				if n != "c" {
					wantVals = append(wantVals, "v"+n)
				}
			}
			if !slices.Equal(vals, wantVals) {
				t.Errorf("%s: LabelValues [%d, %d] = %v, want %v", phase, c.lo, c.hi, vals, wantVals)
			}
		}
	}
	// Ticks 0-1439 are chunked (a closed window); the rest partly in the head.
	run("chunks and head")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openMem(t, s.opt.FS, Options{Interval: iv})
	run("after close (all chunked)")
}
