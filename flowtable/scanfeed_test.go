package flowtable

import (
	"math/rand/v2"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// TestScanChanges: after each batch ScanChanges reports exactly the sources
// that started a connection in it, each once, with the counts Snapshot
// reports for them (the tracker's own figures are the oracle here for the
// per-source query, which only re-reads them).
func TestScanChanges(t *testing.T) {
	s, err := New(Config{MaxFlows: 1 << 14}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.TrackScanChanges()
	rng := rand.New(rand.NewPCG(1, 2))
	ts := int64(1_700_000_000_000_000_000)
	var p decode.Packet
	var got []SourceStats
	for batch := range 40 {
		touched := map[decode.Addr]bool{}
		for range 300 {
			src := decode.Addr{10, 0, 0, byte(rng.IntN(20))}
			if batch == 7 {
				src[3] = 99 // one source alone
			}
			synPacket(&p, src, decode.Addr{10, 1, byte(rng.IntN(4)), 1}, uint16(rng.IntN(60000)+1), uint16(rng.IntN(2000)+1))
			s.Packet(&p, nil, ts)
			touched[src] = true
			ts += int64(rng.IntN(50_000_000))
		}
		got = s.ScanChanges(got[:0])
		if len(got) != len(touched) {
			t.Fatalf("batch %d: %d sources reported, %d started connections", batch, len(got), len(touched))
		}
		snap := map[decode.Addr]SourceStats{}
		for _, st := range s.ScanSnapshot(nil) {
			snap[st.Addr] = st
		}
		for _, st := range got {
			if !touched[st.Addr] {
				t.Fatalf("batch %d: %v reported, not touched", batch, st.Addr)
			}
			delete(touched, st.Addr)
			if st != snap[st.Addr] {
				t.Fatalf("batch %d: %+v, snapshot says %+v", batch, st, snap[st.Addr])
			}
		}
		if len(touched) != 0 {
			t.Fatalf("batch %d: reported twice or missing: %v", batch, touched)
		}
	}
	if got = s.ScanChanges(got[:0]); len(got) != 0 {
		t.Fatalf("an idle batch reported %d sources", len(got))
	}
	// Steady state allocates nothing.
	src := decode.Addr{10, 0, 0, 1}
	allocs := testing.AllocsPerRun(100, func() {
		synPacket(&p, src, decode.Addr{10, 1, 0, 1}, uint16(rng.IntN(60000)+1), 80)
		s.Packet(&p, nil, ts)
		got = s.ScanChanges(got[:0])
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per packet and batch", allocs)
	}
}

// TestScanChangesCap: a batch with more than MaxScanChanges sources reports
// MaxScanChanges and counts the rest.
// TestMarkScanChanges: with marking off, connections leave no mark (a batch
// reports nothing); turned on again, the next batch reports its sources.
func TestMarkScanChanges(t *testing.T) {
	s, err := New(Config{MaxFlows: 1 << 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.TrackScanChanges()
	ts := int64(1_700_000_000_000_000_000)
	var p decode.Packet
	batch := func(port uint16) {
		for i := range 5 {
			synPacket(&p, decode.Addr{10, 0, 0, byte(1 + i)}, decode.Addr{10, 1, 0, 1}, 40000+port, port)
			s.Packet(&p, nil, ts)
			ts += 1000
		}
	}
	s.MarkScanChanges(false)
	batch(80)
	if got := s.ScanChanges(nil); len(got) != 0 {
		t.Fatalf("marking off: %d sources reported", len(got))
	}
	s.MarkScanChanges(true)
	batch(81)
	if got := s.ScanChanges(nil); len(got) != 5 || got[0].Connections != 2 {
		t.Fatalf("marking on: %+v, want 5 sources of 2 connections", got)
	}
}

func TestScanChangesCap(t *testing.T) {
	s, err := New(Config{MaxFlows: 1 << 14, Scan: ScanConfig{MaxSources: 1 << 14}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.TrackScanChanges()
	var p decode.Packet
	ts := int64(1_700_000_000_000_000_000)
	for i := range MaxScanChanges + 100 {
		synPacket(&p, decode.Addr{10, 2, byte(i >> 8), byte(i)}, decode.Addr{10, 1, 0, 1}, 1000, 80)
		s.Packet(&p, nil, ts)
	}
	if got := s.ScanChanges(nil); len(got) != MaxScanChanges || s.ScanChangesDropped() != 100 {
		t.Fatalf("%d reported, %d dropped; want %d and 100", len(got), s.ScanChangesDropped(), MaxScanChanges)
	}
}

func synPacket(p *decode.Packet, src, dst decode.Addr, sport, dport uint16) {
	*p = decode.Packet{}
	p.HasFlow = true
	p.NumIP = 1
	p.IP[0] = decode.IPLayer{Src: src, Dst: dst, IPVersion: 4}
	p.Flow = decode.Tuple{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Proto: 6, IPVersion: 4}
	p.TCPFlags = decode.TCPSyn
	p.WireLen = 60
}

// TestScanChangesChurn: sources evicted and created again within a batch
// (300 sources through a tracker of 64) leave several marks; ScanChanges
// still reports each source that started a connection in the batch and is
// still held (the oracle: the batch's sources and the snapshot after it)
// exactly once, with the snapshot's counts. With more marks than
// MaxScanChanges in a batch, what it reports is still a subset, each once.
func TestScanChangesChurn(t *testing.T) {
	for _, perBatch := range []int{500, 3 * MaxScanChanges} {
		s, err := New(Config{MaxFlows: 1 << 16, Scan: ScanConfig{MaxSources: 64, ExactPorts: 4}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.TrackScanChanges()
		rng := rand.New(rand.NewPCG(3, 4))
		ts := int64(1_700_000_000_000_000_000)
		var p decode.Packet
		var got []SourceStats
		for batch := range 30 {
			touched := map[decode.Addr]bool{}
			for range perBatch {
				src := decode.Addr{10, 3, 0, byte(rng.IntN(300))}
				if rng.IntN(2) == 0 {
					src = decode.Addr{10, 3, 1, byte(rng.IntN(8))} // recurring: promoted, kept
				}
				synPacket(&p, src, decode.Addr{10, 1, 0, 1}, uint16(rng.IntN(60000)+1), uint16(rng.IntN(100)+1))
				s.Packet(&p, nil, ts)
				touched[src] = true
				ts += 1000
			}
			dropped := s.ScanChangesDropped()
			got = s.ScanChanges(got[:0])
			snap := map[decode.Addr]SourceStats{}
			for _, st := range s.ScanSnapshot(nil) {
				snap[st.Addr] = st
			}
			want := 0
			for a := range touched {
				if _, ok := snap[a]; ok {
					want++
				}
			}
			seen := map[decode.Addr]bool{}
			for _, st := range got {
				if !touched[st.Addr] || seen[st.Addr] {
					t.Fatalf("%d per batch, batch %d: %v reported twice or not touched", perBatch, batch, st.Addr)
				}
				seen[st.Addr] = true
				if st != snap[st.Addr] {
					t.Fatalf("%d per batch, batch %d: %+v, snapshot says %+v", perBatch, batch, st, snap[st.Addr])
				}
			}
			if perBatch < MaxScanChanges && (len(got) != want || dropped != 0) {
				t.Fatalf("%d per batch, batch %d: %d reported, %d held sources started connections, %d dropped", perBatch, batch, len(got), want, dropped)
			}
		}
		if st := s.Stats(); st.ScanEvicted == 0 {
			t.Fatalf("%d per batch: no eviction: %+v", perBatch, st)
		}
	}
}
