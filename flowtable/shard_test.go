package flowtable

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/netsentry/netsentry/decode"
)

func addr(s string) (decode.Addr, uint8) {
	ip := netip.MustParseAddr(s)
	var a decode.Addr
	if ip.Is4() {
		b := ip.As4()
		copy(a[:], b[:])
		return a, 4
	}
	return ip.As16(), 6
}

// pkt builds a decoded packet of proto from src:sp to dst:dp.
func pkt(proto uint8, src string, sp uint16, dst string, dp uint16, flags uint8, n uint32) *decode.Packet {
	s, v := addr(src)
	d, _ := addr(dst)
	p := &decode.Packet{WireLen: n, HasFlow: true, TCPFlags: flags, NumIP: 1}
	p.Flow = decode.Tuple{Src: s, Dst: d, SrcPort: sp, DstPort: dp, Proto: proto, IPVersion: v}
	p.IP[0] = decode.IPLayer{Src: s, Dst: d, IPVersion: v}
	return p
}

type sink struct{ recs []Record }

func (s *sink) take(r []Record) { s.recs = append(s.recs, r...) }

func newShard(t *testing.T, cfg Config) (*Shard, *sink) {
	t.Helper()
	out := &sink{}
	s, err := New(cfg, out.take)
	if err != nil {
		t.Fatal(err)
	}
	return s, out
}

const sec = int64(time.Second)

func TestEntrySize(t *testing.T) {
	// The flow entry, expiry-queue links included, is documented as 152
	// bytes (docs/memory.md); the budget's per-flow cost builds on it. The
	// hot part is two cache lines, an index bucket one.
	if EntrySize != 152 {
		t.Fatalf("flow entry is %d bytes, want 152: update docs/memory.md if this is meant", EntrySize)
	}
	if n := unsafe.Sizeof(entry{}); n != 128 {
		t.Fatalf("hot flow entry is %d bytes, want 128 (two cache lines)", n)
	}
	if n := unsafe.Sizeof(bucket{}); n != 64 {
		t.Fatalf("index bucket is %d bytes, want 64 (one cache line)", n)
	}
}

func TestCommunityID(t *testing.T) {
	// Published Community ID v1 vectors (community-id-spec and its ports).
	for _, tc := range []struct {
		proto    uint8
		src, dst string
		sp, dp   uint16
		want     string
	}{
		{6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
		{6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
		{17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="},
		{6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="},
		{132, "192.168.170.8", "192.168.170.56", 7, 80, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ="},
		{132, "192.168.170.56", "192.168.170.8", 80, 7, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ="},
		{1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="},
		{58, "3ffe:501:0:1802:260:97ff:feb6:7ff0", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0, "1:bnQKq8A2r//dWnkRW2EYcMhShjc="},
	} {
		s, v := addr(tc.src)
		d, _ := addr(tc.dst)
		r := Record{Src: s, Dst: d, SrcPort: tc.sp, DstPort: tc.dp, Proto: tc.proto, IPVersion: v}
		if got := string(r.AppendCommunityID(nil, 0)); got != tc.want {
			t.Errorf("%d %s:%d -> %s:%d: got %s, want %s", tc.proto, tc.src, tc.sp, tc.dst, tc.dp, got, tc.want)
		}
	}
}

func TestTCPLifecycle(t *testing.T) {
	s, out := newShard(t, Config{Linger: 2 * time.Second, IdleTimeout: 100 * time.Second})
	c, srv := "10.0.0.1", "10.0.0.2"
	steps := []struct {
		p     *decode.Packet
		state State
	}{
		{pkt(6, c, 40000, srv, 80, decode.TCPSyn, 74), StateSynSent},
		{pkt(6, srv, 80, c, 40000, decode.TCPSyn|decode.TCPAck, 74), StateSynSent}, // half open until the ACK
		{pkt(6, c, 40000, srv, 80, decode.TCPAck, 66), StateEstablished},
		{pkt(6, c, 40000, srv, 80, decode.TCPAck|decode.TCPPsh, 500), StateEstablished},
		{pkt(6, srv, 80, c, 40000, decode.TCPFin|decode.TCPAck, 66), StateFinWait},
		{pkt(6, c, 40000, srv, 80, decode.TCPFin|decode.TCPAck, 66), StateClosed},
		{pkt(6, srv, 80, c, 40000, decode.TCPAck, 66), StateClosed},
	}
	for i, st := range steps {
		s.Packet(st.p, nil, int64(i)*sec/10)
		recs := s.Snapshot(nil, false)
		if len(recs) != 1 || recs[0].State != st.state {
			t.Fatalf("step %d: state %v, want %v", i, recs, st.state)
		}
	}
	s.Expire(1 * sec) // linger not over yet
	if len(out.recs) != 0 {
		t.Fatalf("exported during linger: %+v", out.recs)
	}
	s.Expire(3 * sec)
	if len(out.recs) != 1 {
		t.Fatalf("want 1 record after linger, got %d", len(out.recs))
	}
	r := out.recs[0]
	src, _ := addr(c)
	if r.Src != src || r.SrcPort != 40000 || r.End != EndFin || r.State != StateClosed {
		t.Errorf("record %+v: want initiator %s:40000, end fin, state CLOSED", r, c)
	}
	if r.PacketsTx != 4 || r.PacketsRx != 3 || r.BytesTx != 74+66+500+66 || r.BytesRx != 74+66+66 {
		t.Errorf("counters tx %d/%d rx %d/%d", r.PacketsTx, r.BytesTx, r.PacketsRx, r.BytesRx)
	}
	if r.FlagsTx != decode.TCPSyn|decode.TCPAck|decode.TCPPsh|decode.TCPFin || r.FlagsRx != decode.TCPSyn|decode.TCPAck|decode.TCPFin {
		t.Errorf("flags tx %x rx %x", r.FlagsTx, r.FlagsRx)
	}
	if s.Stats().Active != 0 {
		t.Errorf("%d flows still active", s.Stats().Active)
	}
}

func TestSynAckFirstNamesTheClient(t *testing.T) {
	s, out := newShard(t, Config{})
	s.Packet(pkt(6, "192.150.187.43", 80, "141.142.228.5", 59856, decode.TCPSyn|decode.TCPAck, 60), nil, 0)
	s.Packet(pkt(6, "141.142.228.5", 59856, "192.150.187.43", 80, decode.TCPSyn, 60), nil, 1)
	s.Flush(EndEndOfCapture)
	if len(out.recs) != 1 {
		t.Fatalf("got %d records", len(out.recs))
	}
	r := out.recs[0]
	if r.SrcPort != 59856 || r.End != EndEndOfCapture || r.PacketsTx != 1 || r.PacketsRx != 1 {
		t.Errorf("record %+v: want the SYN sender as initiator", r)
	}
}

func TestResetAndReuse(t *testing.T) {
	s, out := newShard(t, Config{Linger: time.Second})
	s.Packet(pkt(6, "10.0.0.1", 1000, "10.0.0.2", 22, decode.TCPSyn, 60), nil, 0)
	s.Packet(pkt(6, "10.0.0.2", 22, "10.0.0.1", 1000, decode.TCPRst|decode.TCPAck, 60), nil, sec/10)
	// A new SYN on the same 4-tuple during the linger starts a new record.
	s.Packet(pkt(6, "10.0.0.1", 1000, "10.0.0.2", 22, decode.TCPSyn, 60), nil, sec/5)
	if len(out.recs) != 0 {
		s.Expire(sec / 5)
	}
	s.Expire(sec / 5)
	if len(out.recs) != 1 || out.recs[0].End != EndRst || out.recs[0].PacketsTx+out.recs[0].PacketsRx != 2 {
		t.Fatalf("after reuse: %+v, want the reset connection ended with rst", out.recs)
	}
	s.Flush(EndShutdown)
	if len(out.recs) != 2 || out.recs[1].End != EndShutdown || out.recs[1].State != StateSynSent {
		t.Fatalf("after flush: %+v", out.recs)
	}
}

func TestIdleAndActiveTimeouts(t *testing.T) {
	s, out := newShard(t, Config{UDPIdleTimeout: 10 * time.Second, ActiveTimeout: 30 * time.Second})
	// A UDP flow with a packet every 5 s for 70 s: never idle, cut by the active timeout.
	for i := int64(0); i <= 14; i++ {
		s.Packet(pkt(17, "10.1.0.1", 5353, "10.1.0.2", 53, 0, 100), nil, i*5*sec)
		s.Expire(i * 5 * sec)
	}
	// A second UDP flow that goes idle.
	s.Packet(pkt(17, "10.1.0.3", 5000, "10.1.0.4", 123, 0, 90), nil, 70*sec)
	s.Expire(79 * sec)
	if n := len(out.recs); n != 2 {
		t.Fatalf("before idle: %d records (%+v), want the 2 active cuts", n, out.recs)
	}
	for _, r := range out.recs {
		if r.End != EndActive || r.PacketsTx != 6 {
			t.Errorf("active cut %+v: want 6 packets, end active", r)
		}
	}
	s.Expire(81 * sec)
	var idle int
	for _, r := range out.recs {
		if r.End == EndIdle {
			idle++
		}
	}
	if idle != 2 {
		t.Errorf("idle records: %d, want 2 (%+v)", idle, out.recs)
	}
	var pkts uint64
	for _, r := range out.recs {
		pkts += r.PacketsTx + r.PacketsRx
	}
	if pkts != 16 {
		t.Errorf("records hold %d packets, want all 16", pkts)
	}
}

func TestEvictionAtBound(t *testing.T) {
	s, out := newShard(t, Config{MaxFlows: 100})
	for i := range 150 {
		p := pkt(17, "10.2.0.1", uint16(10000+i), "10.2.0.2", 53, 0, 80)
		s.Packet(p, nil, int64(i)*sec/100)
	}
	st := s.Stats()
	if st.Active != 100 || st.FlowsEvicted != 50 {
		t.Fatalf("active %d evicted %d, want 100 and 50", st.Active, st.FlowsEvicted)
	}
	// The evicted ones are the oldest.
	for i, r := range out.recs {
		if r.End != EndEviction || r.SrcPort != uint16(10000+i) {
			t.Fatalf("eviction %d: %+v, want port %d", i, r, 10000+i)
		}
	}
	s.Flush(EndEndOfCapture)
	if len(out.recs) != 150 {
		t.Errorf("%d records in all, want 150 (nothing dropped)", len(out.recs))
	}
}

func TestGrowKeepsFlows(t *testing.T) {
	s, out := newShard(t, Config{})
	const n = 20000
	for round := range 2 {
		for i := range n {
			p := pkt(6, "10.3.0.1", uint16(i), "10.3.0.2", 443, decode.TCPAck, 60)
			s.Packet(p, nil, int64(round))
		}
	}
	if st := s.Stats(); st.Active != n || st.FlowsCreated != n {
		t.Fatalf("active %d created %d, want %d", st.Active, st.FlowsCreated, n)
	}
	s.Flush(EndEndOfCapture)
	for _, r := range out.recs {
		if r.PacketsTx != 2 {
			t.Fatalf("flow %d has %d packets, want 2", r.SrcPort, r.PacketsTx)
		}
	}
}

func TestHostBound(t *testing.T) {
	s, _ := newShard(t, Config{MaxHosts: 1024})
	for i := range 5000 {
		src := netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}).String()
		s.Packet(pkt(17, src, 1, "10.255.0.1", 2, 0, 60), nil, 0)
	}
	if n := s.HostCount(); n != 1024 {
		t.Errorf("hosts %d, want the bound 1024", n)
	}
	s.Flush(EndEndOfCapture)
	if s.Stats().HostsOverflow == 0 {
		t.Error("overflow not counted")
	}
}

// TestHostSnapshotOpenFlows: open flows count for their hosts in a
// snapshot, and the counts do not change when the flows end.
func TestHostSnapshotOpenFlows(t *testing.T) {
	s, _ := newShard(t, Config{})
	s.Packet(pkt(6, "10.0.0.1", 1, "10.0.0.2", 80, decode.TCPSyn, 60), nil, 0)
	s.Packet(pkt(6, "10.0.0.2", 80, "10.0.0.1", 1, decode.TCPSyn|decode.TCPAck, 70), nil, 1)
	s.Packet(pkt(17, "10.0.0.1", 5, "10.0.0.3", 53, 0, 100), nil, 2)
	want := map[string][4]uint64{"10.0.0.1": {2, 160, 1, 70}, "10.0.0.2": {1, 70, 1, 60}, "10.0.0.3": {0, 0, 1, 100}}
	check := func(when string) {
		got := map[string][4]uint64{}
		for _, h := range s.HostSnapshot(nil) {
			got[IP(&h.Addr, h.IPVersion).String()] = [4]uint64{h.PacketsTx, h.BytesTx, h.PacketsRx, h.BytesRx}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", when, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: host %s %v, want %v", when, k, got[k], v)
			}
		}
	}
	check("open")
	s.Flush(EndEndOfCapture)
	check("ended")
}

func TestPacketAllocs(t *testing.T) {
	s, _ := newShard(t, Config{})
	ps := []*decode.Packet{
		pkt(6, "10.0.0.1", 1, "10.0.0.2", 2, decode.TCPAck, 60),
		pkt(6, "10.0.0.2", 2, "10.0.0.1", 1, decode.TCPAck, 1500),
		pkt(17, "2001:db8::1", 53, "2001:db8::2", 5353, 0, 90),
		// A whole connection, reused each round: every step of the TCP
		// state machine and of conn_state's endpoint states.
		pkt(6, "10.0.0.3", 3, "10.0.0.4", 443, decode.TCPSyn, 60),
		pkt(6, "10.0.0.4", 443, "10.0.0.3", 3, decode.TCPSyn|decode.TCPAck, 60),
		pkt(6, "10.0.0.3", 3, "10.0.0.4", 443, decode.TCPAck, 60),
		pkt(6, "10.0.0.3", 3, "10.0.0.4", 443, decode.TCPFin|decode.TCPAck, 60),
		pkt(6, "10.0.0.4", 443, "10.0.0.3", 3, decode.TCPFin|decode.TCPAck, 60),
		pkt(6, "10.0.0.4", 443, "10.0.0.3", 3, decode.TCPRst, 60),
	}
	var ts int64
	n := testing.AllocsPerRun(1000, func() {
		for _, p := range ps {
			ts++
			s.Packet(p, nil, ts)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per packet batch, want 0", n)
	}
}

func BenchmarkPacket(b *testing.B) {
	s, _ := New(Config{}, nil)
	var ps []*decode.Packet
	for i := range 100000 {
		ps = append(ps, pkt(6, "10.0.0.1", uint16(i), netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String(), 443, decode.TCPAck, 600))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Packet(ps[i%len(ps)], nil, int64(i))
	}
}

// TestGuessKeptApart: a bare SYN to port 443 is named HTTPS by its port
// only; the record marks the guess, and the protocol distribution keeps it
// apart from TLS that a ClientHello showed.
func TestGuessKeptApart(t *testing.T) {
	for _, detect := range []bool{true, false} {
		s, out := newShard(t, Config{Detect: detect})
		s.Packet(pkt(6, "10.0.0.1", 40000, "10.0.0.2", 443, decode.TCPSyn, 74), nil, sec)
		snap := s.Snapshot(nil, false)
		if len(snap) != 1 || snap[0].AppName() != "HTTPS" || !snap[0].AppGuess() {
			t.Fatalf("detect %v: light snapshot %q guess %v, want HTTPS guessed", detect, snap[0].AppName(), snap[0].AppGuess())
		}
		ps := s.ProtocolSnapshot()
		if len(ps) != 1 || ps[0] != (ProtoStat{Name: "HTTPS", Guess: true, Flows: 1, Packets: 1, Bytes: 74}) {
			t.Errorf("detect %v: open protocols %+v, want one guessed HTTPS row", detect, ps)
		}
		s.Flush(EndEndOfCapture)
		r := out.recs[0]
		j := string(r.AppendJSON(nil, nil))
		for _, want := range []string{`"application_protocol":"HTTPS"`, `"app":{"guess":true}`, `"conn_state":"S0"`, `"state":"SYN_SENT"`} {
			if !strings.Contains(j, want) {
				t.Errorf("detect %v: record %s lacks %s", detect, j, want)
			}
		}
		ps = s.ProtocolSnapshot()
		if len(ps) != 1 || ps[0] != (ProtoStat{Name: "HTTPS", Guess: true, Flows: 1, Packets: 1, Bytes: 74}) {
			t.Errorf("detect %v: ended protocols %+v, want one guessed HTTPS row", detect, ps)
		}
		m := MergeProtocols(ps, []ProtoStat{{Name: "HTTPS", Flows: 2, Packets: 20, Bytes: 2000}}, ps)
		if len(m) != 2 || m[0] != (ProtoStat{Name: "HTTPS", Flows: 2, Packets: 20, Bytes: 2000}) ||
			m[1] != (ProtoStat{Name: "HTTPS", Guess: true, Flows: 2, Packets: 2, Bytes: 148}) {
			t.Errorf("merged %+v: want detected and guessed HTTPS apart", m)
		}
	}
}

// TestHostSnapshotEmpty: a shard that saw no packet has no hosts (and its
// snapshot appends nothing to what dst held).
func TestHostSnapshotEmpty(t *testing.T) {
	s, err := New(Config{MaxFlows: 1024, MaxHosts: 1024}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := []HostCounters{{IPVersion: 4}}
	if got := s.HostSnapshot(dst); len(got) != 1 || got[0].IPVersion != 4 {
		t.Fatalf("empty shard: HostSnapshot gave %v", got)
	}
}

// TestHostIndex: the host index (IPv4 addresses held in its ways, other
// addresses by hash) finds every host it created again, never two slots
// for one address, and stops creating at its bound, checked against a map.
func TestHostIndex(t *testing.T) {
	const max = 5000
	type key struct {
		a decode.Addr
		v uint8
	}
	var h Hosts
	h.init(max)
	r := rand.New(rand.NewPCG(3, 4))
	seen := map[key]uint32{}
	var order []key
	for n := range 3 * max {
		var k key
		switch {
		case n%7 == 0: // an IPv4 address's bytes as version 6: another host
			k.a, k.v = decode.Addr{10, 0, byte(r.IntN(40)), byte(r.Uint32())}, 6
		case r.IntN(3) == 0:
			k.v = 6
			for i := range k.a {
				k.a[i] = byte(r.Uint32())
			}
			k.a[15] = byte(r.IntN(4))
		default:
			k.a, k.v = decode.Addr{10, 0, byte(r.IntN(40)), byte(r.Uint32())}, 4
		}
		j := h.lookup(&k.a, k.v)
		if old, ok := seen[k]; ok {
			if j != old {
				t.Fatalf("%v: slot %d, was %d", k, j, old)
			}
			continue
		}
		if len(seen) >= max {
			if j != 0 {
				t.Fatalf("host %d created past the bound %d", len(seen)+1, max)
			}
			continue
		}
		if j == 0 {
			t.Fatalf("host %d not created below the bound", len(seen)+1)
		}
		if sl := h.at(j); sl.Addr != k.a || h.vers[j] != k.v {
			t.Fatalf("slot %d holds %v v%d, want %v", j, sl.Addr, h.vers[j], k)
		}
		seen[k] = j
		order = append(order, k)
	}
	if h.Len() != max {
		t.Fatalf("%d hosts, want %d", h.Len(), max)
	}
	for _, k := range order {
		if j := h.lookup(&k.a, k.v); j != seen[k] {
			t.Fatalf("%v: found slot %d, want %d", k, j, seen[k])
		}
	}
}

// TestEndSwap: with SetEndSwap the shard hands over its batch and goes on
// in the buffer it gets back, one too small replaced. 1,000 UDP flows from
// distinct ports into a table of 100: the 900 evicted ones come in flow
// order (the oldest first), then the rest at the flush, each once.
func TestEndSwap(t *testing.T) {
	s, err := New(Config{MaxFlows: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []Record
	spares := 0
	s.SetEndSwap(func(full []Record) []Record {
		got = append(got, full...)
		if cap(full) < s.EndBuffer() {
			t.Fatalf("batch capacity %d under %d", cap(full), s.EndBuffer())
		}
		for i := range full {
			full[i] = Record{PacketsTx: 1 << 40} // the caller owns it now
		}
		if spares++; spares%3 == 0 {
			return make([]Record, 0, 8) // too small: the shard makes its own
		}
		return make([]Record, 3, s.EndBuffer()+5)
	})
	const flows = 1000
	for i := range flows {
		p := pkt(17, "10.2.0.1", uint16(10000+i), "10.2.0.2", 53, 0, 80)
		s.Packet(p, nil, int64(i)*sec/1000)
	}
	s.Flush(EndEndOfCapture)
	if len(got) != flows || spares < 3 {
		t.Fatalf("%d records in %d batches, want %d", len(got), spares, flows)
	}
	for i, r := range got {
		if r.SrcPort != uint16(10000+i) || r.PacketsTx != 1 || r.BytesTx != 80 {
			t.Fatalf("record %d: port %d, %d packets %d bytes; want port %d, 1 packet of 80 bytes", i, r.SrcPort, r.PacketsTx, r.BytesTx, 10000+i)
		}
		if want := EndEviction; i >= flows-100 {
			if r.End != EndEndOfCapture {
				t.Fatalf("record %d ended %v, want end of capture", i, r.End)
			}
		} else if r.End != want {
			t.Fatalf("record %d ended %v, want eviction", i, r.End)
		}
	}
}

// TestIndexGrows: the index in use starts at indexStart buckets and doubles
// as flows come (at 4 flows a bucket), up to its final size; after every
// step of inserts and removals (flows reset and expired) each open flow is
// found under its key and each removed one is not, so no flow is lost or
// duplicated by a doubling.
func TestIndexGrows(t *testing.T) {
	s, _ := newShard(t, Config{MaxFlows: 1 << 16, Linger: time.Second})
	if len(s.index) != indexStart || len(s.indexMem) != bucketCount(1<<16) {
		t.Fatalf("index starts at %d of %d buckets, want %d of %d", len(s.index), len(s.indexMem), indexStart, bucketCount(1<<16))
	}
	rng := rand.New(rand.NewPCG(7, 8))
	open := map[uint16]bool{}
	maxActive := 0
	ts := int64(1e9)
	check := func(step int) {
		t.Helper()
		var k Key
		for port := range uint16(60000) {
			p := pkt(6, "10.4.0.1", port, "10.4.0.2", 443, decode.TCPAck, 60)
			makeKey(&p.Flow, 0, 0, &k)
			i := s.find(&k, k.hash())
			if open[port] != (i != 0) || (i != 0 && s.slot(i).key != k) {
				t.Fatalf("step %d: port %d open %v, found slot %d", step, port, open[port], i)
			}
		}
		// Never more than 4 flows a bucket; doubled only once 4 a bucket
		// were held (it never shrinks).
		if st := s.Stats(); st.Active != len(open) || 4*len(s.index) < st.Active || (len(s.index) > indexStart && 2*len(s.index) > maxActive) {
			t.Fatalf("step %d: %d flows (at most %d) in %d buckets, %d expected open", step, st.Active, maxActive, len(s.index), len(open))
		}
	}
	for step := range 12 {
		for range 5000 {
			port := uint16(rng.IntN(60000))
			if open[port] && rng.IntN(4) == 0 {
				s.Packet(pkt(6, "10.4.0.1", port, "10.4.0.2", 443, decode.TCPRst, 60), nil, ts)
			} else {
				s.Packet(pkt(6, "10.4.0.1", port, "10.4.0.2", 443, decode.TCPAck, 60), nil, ts)
				open[port] = true
			}
			maxActive = max(maxActive, s.Stats().Active)
			ts += 1000
		}
		// Reset flows linger a second, then end.
		ts += 2e9
		s.Expire(ts)
		for port := range open {
			var k Key
			p := pkt(6, "10.4.0.1", port, "10.4.0.2", 443, decode.TCPAck, 60)
			makeKey(&p.Flow, 0, 0, &k)
			if i := s.find(&k, k.hash()); i == 0 || s.slot(i).state == StateReset {
				delete(open, port)
			}
		}
		check(step)
	}
	if len(s.index) <= indexStart {
		t.Fatalf("the index never grew: %d buckets for %d flows", len(s.index), len(open))
	}
}
