package store

import (
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var t0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func openMem(t testing.TB, fs vfs.FS, opt Options) *Store {
	t.Helper()
	opt.FS = fs
	s, err := Open("/db", opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ingest appends ticks ticks of n generated series every interval from start
// and returns the generators' seed for checkSeries.
func ingest(t testing.TB, s *Store, n, ticks int, start time.Time, interval time.Duration, seed uint64) {
	t.Helper()
	gens := make([]*genSeries, n)
	for i := range gens {
		gens[i] = newGen(seed, i)
	}
	smp := make([]Sample, n)
	for j := 0; j < ticks; j++ {
		for i, g := range gens {
			smp[i] = Sample{Name: g.name, Labels: g.labels, Value: g.next()}
		}
		if err := s.Append(start.Add(time.Duration(j)*interval), smp); err != nil {
			t.Fatalf("append tick %d: %v", j, err)
		}
	}
}

// checkSeries regenerates series and compares what the store returns for
// [from, to) ticks bit for bit (NaN payloads included).
func checkSeries(t testing.TB, s *Store, n, ticks int, start time.Time, interval time.Duration, seed uint64, from int) {
	t.Helper()
	var pts []Point
	for i := 0; i < n; i++ {
		g := newGen(seed, i)
		ms := []Matcher{{MatchEqual, MetricName, g.name}}
		for _, l := range g.labels {
			ms = append(ms, Matcher{MatchEqual, l.Name, l.Value})
		}
		got, err := s.Select(ms, start.UnixMilli(), start.Add(time.Duration(ticks)*interval).UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("series %d: select got %d series", i, len(got))
		}
		mint := start.Add(time.Duration(from) * interval).UnixMilli()
		pts, err = s.Points(got[0].Ref, mint, math.MaxInt64, pts[:0])
		if err != nil {
			t.Fatalf("series %d: %v", i, err)
		}
		if len(pts) != ticks-from {
			t.Fatalf("series %d: got %d points, want %d", i, len(pts), ticks-from)
		}
		for j := 0; j < ticks; j++ {
			v := g.next()
			if j < from {
				continue
			}
			p := pts[j-from]
			wt := start.Add(time.Duration(j) * interval).UnixMilli()
			if p.T != wt || math.Float64bits(p.V) != math.Float64bits(v) {
				t.Fatalf("series %d point %d: got (%d, %x), want (%d, %x)", i, j, p.T, math.Float64bits(p.V), wt, math.Float64bits(v))
			}
		}
	}
}

func TestRoundTripSmall(t *testing.T) {
	for _, name := range []string{"mem", "dir"} {
		t.Run(name, func(t *testing.T) {
			var fs vfs.FS = vfs.NewMem()
			dir := "/db"
			if name == "dir" {
				fs, dir = vfs.Default, t.TempDir()
			}
			s, err := Open(dir, Options{FS: fs, Interval: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			const n, ticks = 50, 2000 // crosses chunk windows and partitions
			ingest(t, s, n, ticks, t0, 10*time.Second, 1)
			checkSeries(t, s, n, ticks, t0, 10*time.Second, 1, 0)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, Options{FS: fs, Interval: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if r := s.Recovered(); r != "" {
				t.Errorf("Recovered after a clean close = %q", r)
			}
			checkSeries(t, s, n, ticks, t0, 10*time.Second, 1, 0)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
