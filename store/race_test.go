package store

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestConcurrentQueries runs queries while ticks are appended (and windows
// cut, and partitions dropped): every answer is whole ticks, in order,
// without duplicates, with the values that were appended. Run with -race.
func TestConcurrentQueries(t *testing.T) {
	const interval = 10 * time.Second
	s := openMem(t, vfs.NewMem(), Options{Interval: interval, Retention: 3 * time.Hour})
	defer s.Close()
	const n = 10
	value := func(i int, k int64) float64 { return float64(k)*10 + float64(i) }
	var appended, rounds atomic.Int64
	appended.Store(-1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pts []Point
			for {
				select {
				case <-done:
					return
				default:
				}
				floor := appended.Load() // ticks up to here must be visible
				ss, err := s.Select([]Matcher{{MatchRegexp, "i", ".+"}}, math.MinInt64, math.MaxInt64)
				if err != nil {
					t.Error(err)
					return
				}
				for _, si := range ss {
					i := int(si.Ref - 1)
					pts, err = s.Points(si.Ref, math.MinInt64, math.MaxInt64, pts[:0])
					if err != nil {
						t.Error(err)
						return
					}
					for j, p := range pts {
						k := (p.T - t0.UnixMilli()) / interval.Milliseconds()
						if p.V != value(i, k) || (j > 0 && p.T != pts[j-1].T+interval.Milliseconds()) {
							t.Errorf("series %d point %d: (%d, %v) after %v", i, j, p.T, p.V, pts[max(j-1, 0)])
							return
						}
					}
					if len(pts) == 0 || (pts[len(pts)-1].T-t0.UnixMilli())/interval.Milliseconds() < floor {
						t.Errorf("series %d: last point before tick %d", i, floor)
						return
					}
					if _, err := s.Rollup(si.Ref, time.Hour, math.MinInt64, math.MaxInt64, nil); err != nil {
						t.Error(err)
						return
					}
				}
				s.Stats()
				rounds.Add(1)
				time.Sleep(2 * time.Millisecond) // leave the appender a core
			}
		}()
	}
	smp := make([]Sample, n)
	for k := int64(0); k < 2500; k++ {
		for i := range smp {
			smp[i] = Sample{Name: "m", Labels: []Label{{"i", string(rune('a' + i))}}, Value: value(i, k)}
		}
		if err := s.Append(t0.Add(time.Duration(k)*interval), smp); err != nil {
			t.Fatal(err)
		}
		appended.Store(k)
		if k%25 == 0 {
			time.Sleep(time.Millisecond) // let readers in between cuts too
		}
	}
	close(done)
	wg.Wait()
	if rounds.Load() < 20 {
		t.Errorf("only %d query rounds ran", rounds.Load())
	}
	if s.Stats().PartitionsDropped == 0 {
		t.Error("no partition dropped during the test")
	}
}
