package flowtable

import (
	"math/rand/v2"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// TestScanFloodKeepsScanners: a flood of one-connection sources (random
// 16-bit host parts of 198.18.0.0/16, 7 connections in 8) churns through a
// tracker of 1,024 sources, beside 50 scanners probing random ports at
// about one connection per 2.4 ms each, which is slower than the table
// turns over (about 1.2 ms). The flood is evicted from the probation queue,
// so the scanners' counts stay whole: their connections in the window,
// counted naively beside the tracker, are what Snapshot reports for them,
// but for connections lost before a scanner's second one. (Sampled LRU
// alone keeps about 1 % of them here.) The probation queue stays consistent
// throughout.
func TestScanFloodKeepsScanners(t *testing.T) {
	tr := newScanTracker(ScanConfig{MaxSources: 1024, ExactPorts: 16})
	r := rand.New(rand.NewPCG(9, 10))
	dst := decode.Addr{198, 19, 0, 1}
	ts := scanT0
	const n = 400_000
	truth := map[decode.Addr]uint64{}
	for i := range n {
		ts += 3000
		var src decode.Addr
		if r.IntN(8) == 0 {
			k := r.IntN(50)
			src = decode.Addr{172, 16, 0, byte(k)}
			truth[src]++
		} else {
			src = decode.Addr{198, 18, byte(r.Uint32()), byte(r.Uint32())}
		}
		tr.Connection(&src, 4, &dst, uint16(r.Uint32()), 6+11*uint8(i&1), ts)
		if i%50_000 == 0 {
			checkProbation(t, tr)
		}
	}
	checkProbation(t, tr)
	st := tr.Stats()
	if st.Sources != 1024 || st.Evicted < n/2 {
		t.Fatalf("stats %+v: want a full table churning", st)
	}
	var got, want uint64
	for _, s := range tr.Snapshot(ts, nil) { // 1.2 s of packet time: all in the window
		if s.Addr[0] != 172 {
			continue
		}
		got += s.Connections
		if s.Connections > truth[s.Addr] {
			t.Fatalf("scanner %v: %d connections counted, %d made", s.Addr, s.Connections, truth[s.Addr])
		}
	}
	for _, c := range truth {
		want += c
	}
	if got < want*97/100 {
		t.Fatalf("scanners' connections: %d counted of %d made", got, want)
	}
}

// checkProbation checks the probation queue: it links, in both directions,
// exactly the live sources marked on probation, and nProbation counts them.
func checkProbation(t *testing.T, tr *ScanTracker) {
	t.Helper()
	marked := 0
	for i := range tr.used {
		if s := tr.at(i); s.onProbation {
			if s.v == 0 {
				t.Fatalf("free slot %d on probation", i)
			}
			marked++
		}
	}
	n, prev := 0, uint32(0)
	for q := tr.qhead; q != 0; q = tr.at(q - 1).qnext {
		s := tr.at(q - 1)
		if !s.onProbation || s.qprev != prev {
			t.Fatalf("queue entry %d: on probation %v, back link %d, want %d", q-1, s.onProbation, s.qprev, prev)
		}
		prev = q
		if n++; n > int(tr.used) {
			t.Fatal("probation queue loops")
		}
	}
	if prev != tr.qtail || n != marked || n != int(tr.nProbation) {
		t.Fatalf("queue of %d (tail %d, want %d), %d marked, nProbation %d", n, prev, tr.qtail, marked, tr.nProbation)
	}
}
