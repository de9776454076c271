package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestHeadBound: with a small HeadBytes the head buffers never hold more
// than it (the window so far is written as chunks instead), and every
// sample still reads back bit for bit, before and after a reopen.
func TestHeadBound(t *testing.T) {
	fs := vfs.NewMem()
	const n, ticks, bound = 100, 3000, 64 << 10
	opt := Options{Interval: 5 * time.Second, HeadBytes: bound}
	s := openMem(t, fs, opt)
	gens := make([]*genSeries, n)
	for i := range gens {
		gens[i] = newGen(9, i)
	}
	smp := make([]Sample, n)
	peak := int64(0)
	for j := 0; j < ticks; j++ {
		for i, g := range gens {
			smp[i] = Sample{Name: g.name, Labels: g.labels, Value: g.next()}
		}
		if err := s.Append(t0.Add(time.Duration(j)*5*time.Second), smp); err != nil {
			t.Fatal(err)
		}
		s.mu.RLock()
		var held int64
		for _, sr := range s.idx.byID {
			held += int64(cap(sr.ts))*8 + int64(cap(sr.vs))*8
		}
		s.mu.RUnlock()
		if held > bound {
			t.Fatalf("tick %d: head buffers hold %d bytes, bound %d", j, held, bound)
		}
		peak = max(peak, held)
	}
	t.Logf("head peak %d bytes of %d; %d chunks written", peak, bound, s.Stats().Chunks)
	checkSeries(t, s, n, ticks, t0, 5*time.Second, 9, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openMem(t, fs, opt)
	defer s.Close()
	checkSeries(t, s, n, ticks, t0, 5*time.Second, 9, 0)
}
