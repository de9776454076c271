package store

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func cpuSeconds(t testing.TB) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// dirBytes is the sum of the sizes of the files in dir.
func dirBytes(t testing.TB, fs vfs.FS, dir string) int64 {
	ls, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, name := range ls {
		fi, err := fs.Stat(fs.PathJoin(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() {
			n += fi.Size()
		}
	}
	return n
}

// weekCase writes a week of n generated series (fixed seed) every interval,
// reads every sample back bit for bit, and reports bytes per sample on disk
// after a full compaction and ingest CPU seconds per million samples.
func weekCase(t *testing.T, n int, interval, length time.Duration) {
	fs := vfs.NewMem()
	s := openMem(t, fs, Options{Interval: interval})
	ticks := int(length / interval)
	// End on a window's first tick so the last full window is chunked.
	ticks++
	before := cpuSeconds(t)
	ingest(t, s, n, ticks, t0, interval, 7)
	cpu := cpuSeconds(t) - before
	samples := float64(n) * float64(ticks)
	checkSeries(t, s, n, ticks, t0, interval, 7, 0)
	if err := s.DB().Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	// Chunk bytes per sample by kind of series, before pebble's compression.
	var kindBytes, kindSamples [genKinds]float64
	kindOf := map[string]int{}
	for i := 0; i < genKinds*2; i++ {
		g := newGen(7, i)
		kindOf[g.name] = g.kind
	}
	it, err := s.DB().NewIter(&pebble.IterOptions{LowerBound: []byte{keyChunk}, UpperBound: []byte{keyChunk + 1}})
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		v, _ := it.ValueAndErr()
		if beUint64(it.Key()[9:]) == 0 {
			// A constants record: its bytes shared among its entries.
			var es []constEntry
			if err := walkConsts(v, func(e constEntry) bool { es = append(es, e); return true }); err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				k := kindOf[s.idx.get(e.id).name]
				kindBytes[k] += float64(len(v)) / float64(len(es))
				kindSamples[k] += float64(e.n)
			}
			continue
		}
		sr := s.idx.get(beUint64(it.Key()[9:]))
		h, err := parseChunkHeader(v)
		if err != nil {
			t.Fatal(err)
		}
		k := kindOf[sr.name]
		kindBytes[k] += float64(len(v))
		kindSamples[k] += float64(h.n)
	}
	it.Close()
	for k := range genKinds {
		t.Logf("  %-36s chunks %.3f bytes/sample", newGen(7, []int{0, 4, 6, 8, 9}[k]).name, kindBytes[k]/kindSamples[k])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	size := dirBytes(t, fs, "/db")
	var sst, wal int64
	ls, _ := fs.List("/db")
	for _, name := range ls {
		fi, _ := fs.Stat("/db/" + name)
		switch {
		case strings.HasSuffix(name, ".sst"):
			sst += fi.Size()
		case strings.HasSuffix(name, ".log"):
			wal += fi.Size()
		}
	}
	t.Logf("  tables %d bytes (%.3f bytes/sample), WAL files %d bytes (pebble keeps recycled logs; bounded, not per sample)",
		sst, float64(sst)/samples, wal)
	t.Logf("%s, %d series every %s: %.0f samples, %d bytes on disk after compaction: %.3f bytes/sample; ingest %.3f CPU s per million samples",
		length, n, interval, samples, size, float64(size)/samples, cpu/(samples/1e6))
	s = openMem(t, fs, Options{Interval: interval})
	checkSeries(t, s, n, ticks, t0, interval, 7, 0)
	s.Close()
}

func TestRoundTripWeek(t *testing.T) {
	weekCase(t, 1000, time.Minute, 7*24*time.Hour)
}

// TestRoundTripDefaultInterval is the same at the default 5 s, for a day.
func TestRoundTripDefaultInterval(t *testing.T) {
	weekCase(t, 1000, DefaultInterval, 24*time.Hour)
}
