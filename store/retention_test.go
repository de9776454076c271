package store

import (
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestRetentionDropsExpiredPartitions(t *testing.T) {
	const interval = time.Minute
	const retention = 7 * time.Hour
	span := PartitionSpan.Milliseconds()
	fs := vfs.NewMem()
	s := openMem(t, fs, Options{Interval: interval, Retention: retention})
	defer s.Close()
	// 30 h of ticks; the last tick opens a new chunk window (windows are 2 h
	// at 1 min), so retention last ran at that tick.
	start := t0.Add(30 * time.Minute)
	ticks := int(30*time.Hour/interval) - 30 + 1
	const n = 20
	ingest(t, s, n, ticks, start, interval, 3)
	now := start.Add(time.Duration(ticks-1) * interval).UnixMilli()
	if now%span != 0 {
		t.Fatalf("test setup: last tick %d is not a partition start", now)
	}
	cutoff := now - retention.Milliseconds()
	// Oracle: a partition [p*span, (p+1)*span) is expired when it ends at
	// or before the cutoff.
	first := start.UnixMilli() / span
	wantDropped := 0
	var wantKept []int64
	for p := first; p <= now/span; p++ {
		if (p+1)*span <= cutoff {
			wantDropped++
		} else {
			wantKept = append(wantKept, p)
		}
	}
	st := s.Stats()
	if st.PartitionsDropped != uint64(wantDropped) || st.DroppedRetention != uint64(wantDropped) || st.DroppedDiskCap != 0 {
		t.Errorf("dropped %d partitions (%d by retention, %d by the disk cap), want %d by retention",
			st.PartitionsDropped, st.DroppedRetention, st.DroppedDiskCap, wantDropped)
	}
	s.mu.RLock()
	got := append([]int64(nil), s.partList...)
	s.mu.RUnlock()
	if len(got) != len(wantKept) {
		t.Fatalf("partitions %v, want %v", got, wantKept)
	}
	for i := range got {
		if got[i] != wantKept[i] {
			t.Fatalf("partitions %v, want %v", got, wantKept)
		}
	}
	// Points returns nothing before the first kept partition and every
	// sample from it on.
	keptFrom := wantKept[0] * span
	from := int((keptFrom - start.UnixMilli()) / interval.Milliseconds())
	for ref := uint64(1); ref <= n; ref++ {
		pts, err := s.Points(ref, math.MinInt64, keptFrom-1, nil)
		if err != nil || len(pts) != 0 {
			t.Fatalf("series %d: %d expired points returned (err %v)", ref, len(pts), err)
		}
	}
	checkSeries(t, s, n, ticks, start, interval, 3, from)
	// Nothing of the dropped partitions is left in the database.
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if (k[0] == keyChunk || k[0] == keyMember || k[0] == keyRollup) && fromOrdered(beUint64(k[1:9])) < wantKept[0] {
			t.Fatalf("key %x of a dropped partition is still there", k)
		}
	}
	// Select no longer sees the series in the dropped range.
	ss, err := s.Select(nil, start.UnixMilli(), keptFrom-1)
	if err != nil || len(ss) != 0 {
		t.Fatalf("select over the dropped range: %d series, %v", len(ss), err)
	}
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

func TestDiskCap(t *testing.T) {
	const interval = 10 * time.Second
	const limit = 12 << 20
	fs := vfs.NewMem()
	s := openMem(t, fs, Options{Interval: interval, MaxDiskBytes: limit})
	defer s.Close()
	// 200 series, about a third noisy floats (~8 bytes a sample), 4 days:
	// far more than the cap.
	const n = 200
	ticks := int(96 * time.Hour / interval)
	gens := make([]*genSeries, n)
	for i := range gens {
		gens[i] = newGen(5, i)
	}
	smp := make([]Sample, n)
	maxSeen := int64(0)
	for j := 0; j < ticks; j++ {
		for i, g := range gens {
			smp[i] = Sample{Name: g.name, Labels: g.labels, Value: g.next()}
		}
		if err := s.Append(t0.Add(time.Duration(j)*interval), smp); err != nil {
			t.Fatal(err)
		}
		if j%360 == 1 { // just after each cut (windows are 1 h at 10 s)
			st := s.Stats()
			if st.SeriesBytes > maxSeen {
				maxSeen = st.SeriesBytes
			}
			if b := s.capBytes(); b > limit {
				t.Fatalf("tick %d: series tables and WAL %d bytes over the %d cap", j, b, limit)
			}
		}
	}
	st := s.Stats()
	if st.PartitionsDropped == 0 || st.DroppedDiskCap != st.PartitionsDropped {
		t.Fatalf("dropped %d partitions, %d by the disk cap; series tables %d bytes", st.PartitionsDropped, st.DroppedDiskCap, st.SeriesBytes)
	}
	// pebble deletes the tables a compaction or a drop made obsolete on a
	// goroutine of its own: on a loaded machine they can still be there,
	// so the directory is given a few seconds to lose them.
	total := dirBytes(t, fs, "/db")
	for deadline := time.Now().Add(5 * time.Second); total > limit+1<<20 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		total = dirBytes(t, fs, "/db")
	}
	if testing.Verbose() || total > limit+1<<20 {
		ls, _ := fs.List("/db")
		for _, n := range ls {
			fi, _ := fs.Stat("/db/" + n)
			t.Log(n, fi.Size())
		}
	}
	t.Logf("cap %d: series tables at most %d bytes after a cut, whole directory %d bytes, %d partitions dropped, %d kept",
		limit, maxSeen, total, st.PartitionsDropped, st.Partitions)
	// The whole directory adds at most the manifest, options and markers, and
	// what the last window wrote since the cut.
	if total > limit+1<<20 {
		t.Errorf("directory %d bytes, cap %d", total, limit)
	}
	// The kept partitions are the newest ones, and their samples are whole.
	s.mu.RLock()
	parts := append([]int64(nil), s.partList...)
	s.mu.RUnlock()
	span := PartitionSpan.Milliseconds()
	last := t0.Add(time.Duration(ticks-1) * interval).UnixMilli()
	for i, p := range parts {
		if p != last/span-int64(len(parts)-1-i) {
			t.Fatalf("kept partitions %v are not the newest", parts)
		}
	}
	from := int((parts[0]*span - t0.UnixMilli()) / interval.Milliseconds())
	checkSeries(t, s, n, ticks, t0, interval, 5, from)
}
