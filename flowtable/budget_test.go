package flowtable

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// heapInuse is the heap's in-use spans after two collections: what the
// tables hold, page-rounded as the allocator rounds them.
func heapInuse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// feeder builds packets for fill without allocating.
type feeder struct {
	p       decode.Packet
	payload []byte
	ts      int64
}

// send accounts one packet from src:sport to dst:dport (IPv4 numbers);
// UDP, with payload when f.payload is set.
func (f *feeder) send(s *Shard, src, dst uint32, sport, dport uint16) {
	p := &f.p
	*p = decode.Packet{WireLen: 64, HasFlow: true, NumIP: 1}
	var a, b decode.Addr
	binary.BigEndian.PutUint32(a[:], src)
	binary.BigEndian.PutUint32(b[:], dst)
	p.Flow = decode.Tuple{Src: a, Dst: b, SrcPort: sport, DstPort: dport, Proto: 17, IPVersion: 4}
	p.IP[0] = decode.IPLayer{Src: a, Dst: b, IPVersion: 4}
	p.PayloadLen = uint32(len(f.payload))
	f.ts += 1000
	s.Packet(p, f.payload, f.ts)
}

// fragment accounts a non-first IPv4 fragment with identification id: it is
// held in the fragment table until its first fragment comes.
func (f *feeder) fragment(s *Shard, id uint32) {
	p := &f.p
	*p = decode.Packet{WireLen: 64, NumIP: 1, IsFragment: true, NeedPorts: true, FragID: id, FragProto: 17, FragOffset: 64, FragDataLen: 24, MoreFragments: true}
	var a, b decode.Addr
	binary.BigEndian.PutUint32(a[:], 0xc6120001)
	binary.BigEndian.PutUint32(b[:], 0xc6130001)
	p.IP[0] = decode.IPLayer{Src: a, Dst: b, IPVersion: 4}
	f.ts += 1000
	s.Packet(p, nil, f.ts)
}

// fillWorst drives every table of s to its bound, the worst case for
// memory: scan sources that count with sketches (more distinct ports and
// hosts than ExactPorts) and sources that fill their exact entries, more distinct hosts than MaxHosts, more flows
// with payload than MaxFlows (so every detection state is taken), and more
// pending datagrams than MaxFragments.
func fillWorst(s *Shard, f *feeder) {
	c := s.Config()
	// A sixteenth of the sources take the whole sketch pool (two sets each),
	// the others fill their exact entries.
	for i := range c.Scan.MaxSources {
		n := c.Scan.ExactPorts
		if i < (scanMaxSketches(c.Scan.MaxSources)+1)/2 {
			n += 4
		}
		for j := range n {
			f.send(s, 0xc6120000+uint32(i), 0xc6130000+uint32(j), 1000, uint16(2000+j))
		}
	}
	for i := range c.MaxHosts + 1000 {
		f.send(s, 0x0a000000+uint32(i), 0xc6130001, 1000, 53)
	}
	for i := range c.MaxFlows + c.MaxFlows/2 {
		f.send(s, 0xc6120001, 0xc6130001, uint16(i), uint16(i>>16)+1)
	}
	for i := range 2 * c.MaxFragments {
		f.fragment(s, uint32(i))
	}
}

// tableHeap is the heap a shard with cfg holds once fillWorst ran.
func tableHeap(t *testing.T, cfg Config, payload []byte) int64 {
	t.Helper()
	before := heapInuse()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fillWorst(s, &feeder{payload: payload})
	grown := heapInuse() - before
	runtime.KeepAlive(s)
	return grown
}

// TestTableCosts measures each table's cost per entry: two shards that
// differ only in that table's bound, filled to their bounds, and the heap
// they hold, divided by the difference in entries. The measured figure must
// be within the stated cost and at least 85 % of it (a cost stated far too
// high would shrink the tables for nothing).
func TestTableCosts(t *testing.T) {
	small := Config{MaxFlows: 1024, MaxHosts: 1024, MaxFragments: 16, ReassemblyBuffers: 1,
		Scan: ScanConfig{MaxSources: 256, ExactPorts: 16}}
	const n = 1 << 16
	payload := []byte("not a protocol anyone detects....")
	for _, tc := range []struct {
		name    string
		big     func(c *Config)
		detect  bool
		entries int // entries added by big
		stated  int
	}{
		{"flows", func(c *Config) { c.MaxFlows = n }, false, n - 1024, FlowBytes},
		{"detection", func(c *Config) { c.MaxDetect = n }, true, n - 1024, DetectBytes},
		{"hosts", func(c *Config) { c.MaxHosts = n }, false, n - 1024, HostBytes},
		{"fragments", func(c *Config) { c.MaxFragments = n }, false, fragSlots(n) - fragSlots(16), FragmentBytes},
		{"scan", func(c *Config) { c.Scan.MaxSources = 4096 }, false, 4096 - 256,
			(ScanConfig{MaxSources: 4096, ExactPorts: 16}.MaxBytes() - ScanConfig{MaxSources: 256, ExactPorts: 16}.MaxBytes()) / (4096 - 256)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := small, small
			if tc.detect {
				a.MaxFlows, b.MaxFlows = n, n
				a.MaxDetect, b.MaxDetect = 1024, 1024
				a.Detect, b.Detect = true, true
			}
			tc.big(&b)
			var pl []byte
			if tc.detect {
				pl = payload
			}
			h0, h1 := tableHeap(t, a, pl), tableHeap(t, b, pl)
			per := float64(h1-h0) / float64(tc.entries)
			t.Logf("%s: %.1f bytes per entry measured, %d stated", tc.name, per, tc.stated)
			// The heap moves by a few hundred bytes between two readings for
			// reasons of the runtime's own (one measurement in CI read 456.1
			// for 456): allow 0.5 % above the stated cost.
			if per > 1.005*float64(tc.stated) || per < 0.85*float64(tc.stated) {
				t.Errorf("%s: %.1f bytes per entry, stated %d", tc.name, per, tc.stated)
			}
		})
	}
}

// TestBudgetHolds fills every table of the shards of 64 MiB budgets (and a
// 256 MiB one with detection) to their bounds and checks the heap they hold against
// Budget.TotalBytes (the exporter's queue, not built here, left out), and
// that the bounds were reached and counted.
func TestBudgetHolds(t *testing.T) {
	for _, mb := range []int64{64, 256} {
		for _, detect := range []bool{false, true} {
			if mb == 256 && !detect {
				continue // the slowest to fill, and the live test covers it
			}
			t.Run(fmt.Sprintf("%dMiB/detect=%v", mb, detect), func(t *testing.T) {
				b := NewBudget(mb<<20, 2, detect, 8192)
				limit := b.TotalBytes() - int64(b.ExportBytes())
				if b.TotalBytes() > mb<<20 {
					t.Fatalf("budget of %d bytes totals %d", mb<<20, b.TotalBytes())
				}
				var pl []byte
				if detect {
					pl = []byte("not a protocol anyone detects....")
				}
				before := heapInuse()
				var shards []*Shard
				for range b.Shards {
					var c Config
					b.Apply(&c)
					s, err := New(c, nil)
					if err != nil {
						t.Fatal(err)
					}
					fillWorst(s, &feeder{payload: pl})
					shards = append(shards, s)
				}
				grown := heapInuse() - before
				t.Logf("%+v: heap %.1f MiB, tables' bound %.1f MiB, %d bytes per flow", b,
					float64(grown)/(1<<20), float64(limit)/(1<<20), b.PerFlowBytes())
				if grown > limit {
					t.Errorf("tables hold %d bytes, over their bound of %d", grown, limit)
				}
				if grown < limit*85/100 {
					t.Errorf("tables hold %d bytes, under 85 %% of their bound of %d: the filling missed a table", grown, limit)
				}
				for _, s := range shards {
					st := s.Stats()
					sc := s.scan.Stats()
					if st.Active != b.MaxFlows || st.FlowsEvicted == 0 || s.HostCount() != b.MaxHosts || st.HostsOverflow == 0 ||
						sc.Sources != b.Scan.MaxSources || s.scan.nSketch != s.scan.maxSketch || st.ScanEvicted == 0 || st.FragEvicted == 0 {
						t.Errorf("bounds not reached or not counted: %+v, hosts %d, scan %+v", st, s.HostCount(), sc)
					}
					if detect && (int(s.appsUsed) != b.MaxDetect || st.DetectSkipped == 0) {
						t.Errorf("%d detection states used of %d, %d flows skipped", s.appsUsed, b.MaxDetect, st.DetectSkipped)
					}
				}
				runtime.KeepAlive(shards)
			})
		}
	}
}

// TestDetectionBudget checks the degraded mode: flows without payload take
// no detection state; past MaxDetect flows with payload, new ones go
// without detection (counted) and are reported by their port guess; a
// state comes back when its flow ends.
func TestDetectionBudget(t *testing.T) {
	s, out := newShard(t, Config{MaxFlows: 100, MaxDetect: 10, Detect: true})
	for i := range 50 { // SYNs: no payload, no state
		s.Packet(pkt(6, "10.3.0.1", uint16(20000+i), "10.3.0.2", 443, decode.TCPSyn, 60), nil, sec)
	}
	if s.appsUsed != 0 || s.Stats().DetectSkipped != 0 {
		t.Fatalf("SYNs took %d detection states, skipped %d", s.appsUsed, s.Stats().DetectSkipped)
	}
	query := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1}
	for i := range 15 { // DNS queries: 10 detected, 5 by port guess
		p := pkt(17, "10.3.0.1", uint16(30000+i), "10.3.0.3", 53, 0, 80)
		p.PayloadLen = uint32(len(query))
		s.Packet(p, query, 2*sec)
	}
	if st := s.Stats(); s.appsUsed != 10 || st.DetectSkipped != 5 {
		t.Fatalf("%d states used, %d skipped; want 10 and 5", s.appsUsed, st.DetectSkipped)
	}
	s.Flush(EndEndOfCapture)
	detected, guessed := 0, 0
	for _, r := range out.recs {
		if r.Proto != 17 {
			continue
		}
		switch {
		case !r.App.Guess && bytes.Contains(r.App.AppendJSON(nil), []byte(`"example.com"`)):
			detected++
		case r.App.Guess && r.AppName() == "DNS":
			guessed++
		default:
			t.Errorf("flow %d: %+v", r.SrcPort, r.App)
		}
	}
	if detected != 10 || guessed != 5 {
		t.Errorf("%d flows detected, %d by port guess; want 10 and 5", detected, guessed)
	}
	if len(s.appsFree) != 10 {
		t.Errorf("%d states back on the free list after the flush, want 10", len(s.appsFree))
	}
}

// TestChurnAllocs: at its bounds a shard allocates nothing per packet, with
// new flows evicting old ones, taking and returning detection states, and
// going without detection when none is free.
func TestChurnAllocs(t *testing.T) {
	for _, maxDetect := range []int{256, 1024} {
		s, err := New(Config{MaxFlows: 1024, MaxHosts: 1024, MaxDetect: maxDetect, Detect: true, ReassemblyBuffers: 4}, nil)
		if err != nil {
			t.Fatal(err)
		}
		f := &feeder{payload: []byte("GET / HTTP/1.1\r\nHost: a")} // an unfinished request holds a reassembly buffer
		port := 0
		next := func() {
			port++
			f.send(s, 0xc6120000+uint32(port%4000), 0xc6130001, uint16(port), 80)
		}
		for range 20000 {
			next()
		}
		if a := testing.AllocsPerRun(10000, next); a != 0 {
			t.Errorf("MaxDetect %d: %v allocations per packet at the bounds, want 0", maxDetect, a)
		}
		if st := s.Stats(); st.FlowsEvicted == 0 || (maxDetect < 1024) != (st.DetectSkipped > 0) {
			t.Errorf("MaxDetect %d: %+v", maxDetect, st)
		}
	}
}
