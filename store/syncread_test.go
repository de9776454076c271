package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestSyncForRead: ticks appended faster than SyncEvery share WAL syncs,
// and a query syncs before it returns any of them, so what a query returned
// survives a crash that keeps only synced data (pebble's crashable MemFS:
// the clone holds exactly what was synced). The control half shows the
// clone really drops unsynced ticks, so the check can fail.
func TestSyncForRead(t *testing.T) {
	const n, ticks = 20, 400
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	interval := 5 * time.Second
	open := func(fs vfs.FS) *Store {
		t.Helper()
		s, err := Open("db", Options{FS: fs, Interval: interval, Retention: 365 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	count := func(s *Store) int {
		t.Helper()
		ss, err := s.Select([]Matcher{{MatchRegexp, MetricName, ".+"}}, start.UnixMilli(), start.Add(ticks*interval).UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		var pts []Point
		total := 0
		for _, si := range ss {
			pts, err = s.Points(si.Ref, start.UnixMilli(), start.Add(ticks*interval).UnixMilli(), pts[:0])
			if err != nil {
				t.Fatal(err)
			}
			total += len(pts)
		}
		return total
	}

	// Control: no query before the crash. The first Append syncs, the
	// next ones (well within SyncEvery) do not: the clone loses them.
	fs := vfs.NewCrashableMem()
	s := open(fs)
	began := time.Now()
	ingest(t, s, n, ticks, start, interval, 7)
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	if time.Since(began) < SyncEvery {
		c := open(crashed)
		if got := count(c); got >= n*ticks {
			t.Errorf("control: a crash right after %d fast ticks kept all %d samples: nothing was left unsynced, the check below cannot fail", ticks, got)
		} else {
			t.Logf("control: a crash with no query in between kept %d of %d samples", got, n*ticks)
		}
		c.Close()
	} else {
		t.Logf("control skipped: ingest took %v, longer than SyncEvery", time.Since(began))
	}
	s.Close()

	// A query, then the crash: everything it returned is in the clone.
	fs = vfs.NewCrashableMem()
	s = open(fs)
	ingest(t, s, n, ticks, start, interval, 7)
	seen := count(s)
	if seen != n*ticks {
		t.Fatalf("the live store returned %d samples, want %d", seen, n*ticks)
	}
	crashed = fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	c := open(crashed)
	defer c.Close()
	if got := count(c); got != seen {
		t.Fatalf("after a crash the store has %d samples; a query had returned %d before it", got, seen)
	}
	checkSeries(t, c, n, ticks, start, interval, 7, 0)
}
