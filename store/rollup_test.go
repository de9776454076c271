package store

import (
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// naiveRollup is the oracle: each bucket computed from the raw points.
func naiveRollup(pts []Point, res, mint, maxt int64) []Aggregate {
	var out []Aggregate
	for _, p := range pts {
		b := p.T - ((p.T%res)+res)%res
		if b < mint || b > maxt {
			continue
		}
		if len(out) == 0 || out[len(out)-1].T != b {
			out = append(out, Aggregate{T: b, Min: math.NaN(), Max: math.NaN()})
		}
		a := &out[len(out)-1]
		if a.Count == 0 {
			a.Sum = p.V
		} else {
			a.Sum += p.V
		}
		a.Count++
		if !math.IsNaN(p.V) && (math.IsNaN(a.Min) || p.V < a.Min) {
			a.Min = p.V
		}
		if !math.IsNaN(p.V) && (math.IsNaN(a.Max) || p.V > a.Max) {
			a.Max = p.V
		}
	}
	return out
}

func sameFloat(a, b float64, exact bool) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if exact || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return a == b
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func TestRollups(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		exactSum bool // a bucket never spans chunk windows
	}{{DefaultInterval, true}, {time.Minute, true}, {time.Second, false}} {
		t.Run(c.interval.String(), func(t *testing.T) {
			s := openMem(t, vfs.NewMem(), Options{Interval: c.interval})
			defer s.Close()
			const n = 30
			ticks := int(9*time.Hour/c.interval) + 77 // ends inside an open window
			ingest(t, s, n, ticks, t0.Add(17*time.Minute), c.interval, 4)
			end := t0.Add(10 * time.Hour).UnixMilli()
			for _, rg := range [][2]int64{{math.MinInt64, math.MaxInt64}, {t0.Add(3*time.Hour + 30*time.Second).UnixMilli(), end - 4*3600e3 - 1}} {
				for ref := uint64(1); ref <= n; ref++ {
					pts, err := s.Points(ref, math.MinInt64, math.MaxInt64, nil)
					if err != nil {
						t.Fatal(err)
					}
					for _, res := range rollupRes {
						want := naiveRollup(pts, res.Milliseconds(), rg[0], rg[1])
						got, err := s.Rollup(ref, res, rg[0], rg[1], nil)
						if err != nil {
							t.Fatal(err)
						}
						if len(got) != len(want) {
							t.Fatalf("series %d %s: %d buckets, want %d", ref, res, len(got), len(want))
						}
						for i := range got {
							g, w := got[i], want[i]
							if g.T != w.T || g.Count != w.Count || !sameFloat(g.Min, w.Min, true) ||
								!sameFloat(g.Max, w.Max, true) || !sameFloat(g.Sum, w.Sum, c.exactSum) {
								t.Fatalf("series %d %s bucket %d: got %+v, want %+v", ref, res, i, g, w)
							}
						}
					}
				}
			}
			if _, err := s.Rollup(1, 5*time.Minute, 0, 1, nil); err == nil {
				t.Error("5m rollup: no error")
			}
		})
	}
}
