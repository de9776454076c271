package flowtable

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/netsentry/netsentry/internal/testcorpus"

	"github.com/netsentry/netsentry/decode"
)

const (
	scanSec = int64(time.Second)
	scanT0  = 1_700_000_000 * scanSec // a packet time, Unix ns
)

// scanConn is one connection fed to a tracker in the tests.
type scanConn struct {
	src, dst string
	port     uint16
	proto    uint8
	at       int64 // offset from scanT0
}

func feed(tr *ScanTracker, conns []scanConn) {
	for _, c := range conns {
		s, v := addr(c.src)
		d, _ := addr(c.dst)
		tr.Connection(&s, v, &d, c.port, c.proto, scanT0+c.at)
	}
}

// bySource indexes a snapshot by source address text.
func bySource(ss []SourceStats) map[string]SourceStats {
	m := make(map[string]SourceStats, len(ss))
	for _, s := range ss {
		m[IP(&s.Addr, s.IPVersion).String()] = s
	}
	return m
}

// newScanTracker returns a tracker with a fixed hash seed, so that the
// approximate counts the tests check are reproducible.
func newScanTracker(cfg ScanConfig) *ScanTracker {
	tr := NewScanTracker(cfg)
	tr.seed, tr.rng = 0x243f6a8885a308d3, 0x13198a2e03707345
	return tr
}

// within3SE reports whether est is within 3 HyperLogLog standard errors of n.
func within3SE(est uint64, n int) bool {
	return math.Abs(float64(est)-float64(n)) <= 3*hllStdErr*float64(n)
}

func TestScanExactCounts(t *testing.T) {
	many := func(n int, proto uint8) []scanConn {
		var cs []scanConn
		for i := range n {
			cs = append(cs, scanConn{"10.0.0.1", "10.0.0.2", uint16(1000 + i), proto, int64(i) * scanSec / 10})
		}
		return cs
	}
	cases := []struct {
		name  string
		conns []scanConn
		want  map[string]SourceStats // Addr and IPVersion ignored
	}{
		{
			name:  "one connection",
			conns: []scanConn{{"10.0.0.1", "10.0.0.2", 80, 6, 0}},
			want:  map[string]SourceStats{"10.0.0.1": {Connections: 1, DistinctPorts: 1, DistinctHosts: 1}},
		},
		{
			name: "repeats count as connections, not as ports or hosts",
			conns: []scanConn{
				{"10.0.0.1", "10.0.0.2", 80, 6, 0},
				{"10.0.0.1", "10.0.0.2", 80, 6, scanSec},
				{"10.0.0.1", "10.0.0.2", 80, 6, 2 * scanSec},
			},
			want: map[string]SourceStats{"10.0.0.1": {Connections: 3, DistinctPorts: 1, DistinctHosts: 1}},
		},
		{
			name: "the same port over TCP and UDP is two ports",
			conns: []scanConn{
				{"10.0.0.1", "10.0.0.2", 53, 6, 0},
				{"10.0.0.1", "10.0.0.2", 53, 17, 0},
				{"10.0.0.1", "10.0.0.3", 53, 17, 0},
			},
			want: map[string]SourceStats{"10.0.0.1": {Connections: 3, DistinctPorts: 2, DistinctHosts: 2}},
		},
		{
			name: "a protocol without ports reaches hosts only",
			conns: []scanConn{
				{"10.0.0.1", "10.0.0.2", 0, 47, 0},
				{"10.0.0.1", "10.0.0.3", 0, 47, 0},
				{"10.0.0.1", "10.0.0.3", 443, 6, 0},
			},
			want: map[string]SourceStats{"10.0.0.1": {Connections: 3, DistinctPorts: 1, DistinctHosts: 2}},
		},
		{
			name: "a host sweep",
			conns: []scanConn{
				{"10.0.0.1", "10.0.1.1", 22, 6, 0},
				{"10.0.0.1", "10.0.1.2", 22, 6, scanSec},
				{"10.0.0.1", "10.0.1.3", 22, 6, 2 * scanSec},
				{"10.0.0.1", "10.0.1.4", 22, 6, 3 * scanSec},
			},
			want: map[string]SourceStats{"10.0.0.1": {Connections: 4, DistinctPorts: 1, DistinctHosts: 4}},
		},
		{
			name: "sources are kept apart, IPv6 too",
			conns: []scanConn{
				{"10.0.0.1", "10.0.0.9", 80, 6, 0},
				{"10.0.0.2", "10.0.0.9", 80, 6, 0},
				{"10.0.0.2", "10.0.0.9", 81, 6, 0},
				{"2001:db8::1", "2001:db8::9", 80, 6, 0},
				{"2001:db8::1", "2001:db8::a", 80, 6, 0},
				{"a00:1::", "10.0.0.9", 80, 6, 0}, // the 16 bytes of 10.0.0.1, as IPv6
			},
			want: map[string]SourceStats{
				"10.0.0.1":    {Connections: 1, DistinctPorts: 1, DistinctHosts: 1},
				"10.0.0.2":    {Connections: 2, DistinctPorts: 2, DistinctHosts: 1},
				"2001:db8::1": {Connections: 2, DistinctPorts: 1, DistinctHosts: 2},
				"a00:1::":     {Connections: 1, DistinctPorts: 1, DistinctHosts: 1},
			},
		},
		{
			name:  "64 distinct ports stay exact",
			conns: many(64, 6),
			want:  map[string]SourceStats{"10.0.0.1": {Connections: 64, DistinctPorts: 64, DistinctHosts: 1}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newScanTracker(ScanConfig{})
			feed(tr, c.conns)
			got := bySource(tr.Snapshot(scanT0+c.conns[len(c.conns)-1].at, nil))
			if len(got) != len(c.want) {
				t.Fatalf("%d sources, want %d: %+v", len(got), len(c.want), got)
			}
			for src, w := range c.want {
				g, ok := got[src]
				if !ok {
					t.Fatalf("source %s missing", src)
				}
				if g.Connections != w.Connections || g.DistinctPorts != w.DistinctPorts ||
					g.DistinctHosts != w.DistinctHosts || g.Approximate {
					t.Errorf("%s: got %d connections, %d ports, %d hosts (approximate %v); want %d, %d, %d, exact",
						src, g.Connections, g.DistinctPorts, g.DistinctHosts, g.Approximate,
						w.Connections, w.DistinctPorts, w.DistinctHosts)
				}
			}
			if st := tr.Stats(); st.Sources != len(c.want) || st.Approximate != 0 || st.Evicted != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// scanModel is the oracle for TestScanAgainstModel: every connection kept in
// a list, counted by brute force under the documented rules (packet time
// clamped to the latest seen; a window ending at now covers the buckets of
// Window/6 from the one holding now-Window to the one holding now).
type scanModel struct {
	bw, now int64
	started bool
	events  []scanModelEvent
}

type scanModelEvent struct {
	src       decode.Addr
	v         uint8
	dst       decode.Addr
	port      uint32
	hasPort   bool
	ts, epoch int64
}

func (m *scanModel) add(src, dst decode.Addr, v uint8, port uint16, proto uint8, ts int64) {
	if !m.started || ts > m.now {
		m.now, m.started = ts, true
	}
	m.events = append(m.events, scanModelEvent{src, v, dst, uint32(proto)<<16 | uint32(port), hasPorts(proto), m.now, m.now / m.bw})
}

func (m *scanModel) snapshot(now int64) map[string]SourceStats {
	e := now / m.bw
	type key struct {
		a decode.Addr
		v uint8
	}
	out := map[key]*SourceStats{}
	ports := map[key]map[uint32]bool{}
	hosts := map[key]map[decode.Addr]bool{}
	for _, ev := range m.events {
		if ev.epoch > e || ev.epoch < e-scanBuckets {
			continue
		}
		k := key{ev.src, ev.v}
		if out[k] == nil {
			out[k] = &SourceStats{Addr: ev.src, IPVersion: ev.v}
			ports[k], hosts[k] = map[uint32]bool{}, map[decode.Addr]bool{}
		}
		out[k].Connections++
		if ev.hasPort {
			ports[k][ev.port] = true
		}
		hosts[k][ev.dst] = true
	}
	res := map[string]SourceStats{}
	for k, s := range out {
		s.DistinctPorts, s.DistinctHosts = uint64(len(ports[k])), uint64(len(hosts[k]))
		res[IP(&s.Addr, s.IPVersion).String()] = *s
	}
	return res
}

// TestScanAgainstModel drives a tracker and a brute-force model with the same
// random connections (few enough distinct values per source to stay exact),
// with time moving forward in small and large steps and sometimes slightly
// back, and compares every snapshot, also at times ahead of the last packet.
func TestScanAgainstModel(t *testing.T) {
	const window = 60 * time.Second
	tr := newScanTracker(ScanConfig{Window: window})
	m := &scanModel{bw: int64(window) / scanBuckets}
	rng := rand.New(rand.NewPCG(3, 4))
	srcs := make([]decode.Addr, 20)
	for i := range srcs {
		srcs[i], _ = addr("192.168.1." + itoa(i+1))
	}
	dsts := make([]decode.Addr, 30)
	for i := range dsts {
		dsts[i], _ = addr("10.1.0." + itoa(i+1))
	}
	protos := []uint8{6, 6, 6, 17, 1, 47}
	m.now = scanT0
	for step := range 20000 {
		ts := m.now // the latest time seen; steps back stay within a window
		switch r := rng.IntN(100); {
		case r < 80:
			ts += rng.Int64N(scanSec / 2)
		case r < 90:
			ts -= rng.Int64N(int64(window)) // counted at the latest time seen
		case r < 98:
			ts += rng.Int64N(int64(window))
		default:
			ts += 2 * int64(window)
		}
		src, dst := srcs[rng.IntN(len(srcs))], dsts[rng.IntN(len(dsts))]
		port, proto := uint16(8000+rng.IntN(40)), protos[rng.IntN(len(protos))]
		tr.Connection(&src, 4, &dst, port, proto, ts)
		m.add(src, dst, 4, port, proto, ts)
		if step%97 != 0 {
			continue
		}
		now := m.now + rng.Int64N(int64(window)*3/2)
		got, want := bySource(tr.Snapshot(now, nil)), m.snapshot(now)
		if len(got) != len(want) {
			t.Fatalf("step %d: %d sources, model %d", step, len(got), len(want))
		}
		for k, w := range want {
			g := got[k]
			if g.Approximate || g.Connections != w.Connections || g.DistinctPorts != w.DistinctPorts || g.DistinctHosts != w.DistinctHosts {
				t.Fatalf("step %d, %s: got %+v, model %+v", step, k, g, w)
			}
		}
	}
}

func TestScanWindowForgets(t *testing.T) {
	const window = 60 * time.Second
	bw := int64(window) / scanBuckets
	tr := newScanTracker(ScanConfig{Window: window, ExactPorts: 16})
	src, _ := addr("10.0.0.1")
	host, _ := addr("10.0.0.2")
	for p := range 100 { // 100 ports: approximate
		tr.Connection(&src, 4, &host, uint16(p), 6, scanT0)
	}
	if st := tr.Stats(); st.Approximate != 1 {
		t.Fatalf("stats %+v, want one approximate source", st)
	}
	// Everything in [now-Window, now] is counted.
	if ss := tr.Snapshot(scanT0+int64(window), nil); len(ss) != 1 || ss[0].Connections != 100 || !ss[0].Approximate {
		t.Fatalf("a window after, snapshot = %+v, want the 100 connections", ss)
	}
	// At most Window/6 more: a window and a bucket later nothing is left.
	if ss := tr.Snapshot(scanT0+int64(window)+bw, nil); len(ss) != 0 {
		t.Fatalf("a window and a bucket later, snapshot = %+v, want none", ss)
	}
	if top := tr.Top(scanT0+int64(window)+bw, 5, "ports"); len(top) != 0 {
		t.Fatalf("top = %+v", top)
	}
	// The source comes back: it starts afresh, exact, and gives its sketch back.
	tr.Connection(&src, 4, &host, 443, 6, scanT0+int64(window)+bw)
	ss := tr.Snapshot(scanT0+int64(window)+bw, nil)
	if len(ss) != 1 || ss[0].Connections != 1 || ss[0].DistinctPorts != 1 || ss[0].DistinctHosts != 1 || ss[0].Approximate {
		t.Fatalf("after a quiet window, snapshot = %+v, want one exact connection", ss)
	}
	if st := tr.Stats(); st.Approximate != 0 || st.Sources != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestScanSlidesByBucket checks that old buckets leave the window one at a
// time while new ones count: one connection per bucket, to a new port each.
func TestScanSlidesByBucket(t *testing.T) {
	const window = 60 * time.Second
	bw := int64(window) / scanBuckets
	tr := newScanTracker(ScanConfig{Window: window})
	src, _ := addr("10.0.0.1")
	host, _ := addr("10.0.0.2")
	for b := range int64(20) {
		now := scanT0 + b*bw
		tr.Connection(&src, 4, &host, uint16(b), 6, now)
		ss := tr.Snapshot(now, nil)
		want := uint64(min(b+1, scanSlots))
		if len(ss) != 1 || ss[0].Connections != want || ss[0].DistinctPorts != want {
			t.Fatalf("bucket %d: snapshot %+v, want %d connections and ports", b, ss, want)
		}
	}
}

func TestScanApproximate(t *testing.T) {
	cases := []struct {
		name         string
		ports, hosts int
		spread       time.Duration // connections spread evenly over this time
	}{
		{"1000 ports to one host", 1000, 1, 2 * time.Second},
		{"1000 hosts on one port", 1, 1000, 2 * time.Second},
		{"50000 ports over 30 s", 50000, 1, 30 * time.Second},
		{"50000 hosts over 50 s", 1, 50000, 50 * time.Second},
		{"50000 ports and hosts", 50000, 50000, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newScanTracker(ScanConfig{})
			src, _ := addr("10.0.0.1")
			n := max(c.ports, c.hosts)
			var now int64
			for i := range n {
				var dst decode.Addr
				dst[0], dst[1] = 10, 9
				binary.BigEndian.PutUint16(dst[2:4], uint16(i%c.hosts))
				now = scanT0 + int64(c.spread)*int64(i)/int64(n)
				tr.Connection(&src, 4, &dst, uint16(i%c.ports), 6, now)
			}
			ss := tr.Snapshot(now, nil)
			if len(ss) != 1 {
				t.Fatalf("snapshot %+v", ss)
			}
			s := ss[0]
			t.Logf("ports %d (true %d, error %+.2f%%), hosts %d (true %d, error %+.2f%%)",
				s.DistinctPorts, c.ports, 100*(float64(s.DistinctPorts)/float64(c.ports)-1),
				s.DistinctHosts, c.hosts, 100*(float64(s.DistinctHosts)/float64(c.hosts)-1))
			if !s.Approximate || s.Connections != uint64(n) {
				t.Errorf("approximate %v, %d connections; want approximate, %d", s.Approximate, s.Connections, n)
			}
			if !within3SE(s.DistinctPorts, c.ports) || !within3SE(s.DistinctHosts, c.hosts) {
				t.Errorf("ports %d (true %d), hosts %d (true %d): beyond 3 standard errors (%.1f%%)",
					s.DistinctPorts, c.ports, s.DistinctHosts, c.hosts, 300*hllStdErr)
			}
			// A kind that stayed under the bound is exact.
			if c.ports == 1 && s.DistinctPorts != 1 || c.hosts == 1 && s.DistinctHosts != 1 {
				t.Errorf("the exact kind drifted: ports %d, hosts %d", s.DistinctPorts, s.DistinctHosts)
			}
		})
	}
}

// TestScanSwitchKeepsWindow checks that the exact entries handed to the
// sketches keep their buckets: ports seen early leave the window on time
// after the switch.
func TestScanSwitchKeepsWindow(t *testing.T) {
	const window = 60 * time.Second
	bw := int64(window) / scanBuckets
	tr := newScanTracker(ScanConfig{Window: window, ExactPorts: 64})
	src, _ := addr("10.0.0.1")
	host, _ := addr("10.0.0.2")
	for p := range 60 { // exact, in bucket 0
		tr.Connection(&src, 4, &host, uint16(p), 6, scanT0)
	}
	for p := range 940 { // the switch happens here, in bucket 3
		tr.Connection(&src, 4, &host, uint16(1000+p), 6, scanT0+3*bw)
	}
	s := tr.Snapshot(scanT0+3*bw, nil)[0]
	if !s.Approximate || !within3SE(s.DistinctPorts, 1000) {
		t.Fatalf("with both groups: %+v, want ~1000 ports", s)
	}
	s = tr.Snapshot(scanT0+(scanSlots+1)*bw, nil)[0] // bucket 0 has left, bucket 3 not
	if s.Connections != 940 || !within3SE(s.DistinctPorts, 940) {
		t.Fatalf("after the first group left: %+v, want 940 connections, ~940 ports", s)
	}
}

func TestScanTimeJumps(t *testing.T) {
	const window = 60 * time.Second
	a, _ := addr("10.0.0.1")
	b, _ := addr("10.0.0.2")
	host, _ := addr("10.9.9.9")

	t.Run("years forward empty every window", func(t *testing.T) {
		tr := newScanTracker(ScanConfig{Window: window, ExactPorts: 8})
		for p := range 50 {
			tr.Connection(&a, 4, &host, uint16(p), 6, scanT0)
		}
		later := scanT0 + 10*365*24*int64(time.Hour)
		tr.Connection(&b, 4, &host, 80, 6, later)
		ss := tr.Snapshot(later, nil)
		if len(ss) != 1 || ss[0].Addr != b || ss[0].Connections != 1 {
			t.Fatalf("ten years later: %+v, want b's one connection", ss)
		}
		tr.Connection(&a, 4, &host, 80, 6, later+1)
		got := bySource(tr.Snapshot(later+1, nil))["10.0.0.1"]
		if got.Connections != 1 || got.DistinctPorts != 1 || got.DistinctHosts != 1 || got.Approximate {
			t.Fatalf("a, back ten years later: %+v, want a fresh exact count", got)
		}
		// 2^8 buckets on: the bucket byte of the exact entries wraps around.
		wrap := later + 256*int64(window)/scanBuckets
		tr.Connection(&a, 4, &host, 81, 6, wrap)
		if got := bySource(tr.Snapshot(wrap, nil))["10.0.0.1"]; got.Connections != 1 || got.DistinctPorts != 1 {
			t.Fatalf("256 buckets on: %+v, want one connection, one port", got)
		}
	})

	t.Run("entries age out while the source stays busy", func(t *testing.T) {
		// One port in bucket 0, then a portless protocol every bucket for
		// 300 buckets: the bucket byte of the port's entry wraps at 256 and
		// must not bring the port back.
		bw := int64(window) / scanBuckets
		tr := newScanTracker(ScanConfig{Window: window})
		tr.Connection(&a, 4, &host, 22, 6, scanT0)
		for k := int64(1); k <= 300; k++ {
			now := scanT0 + k*bw
			tr.Connection(&a, 4, &host, 0, 47, now)
			s := tr.Snapshot(now, nil)
			want := uint64(0)
			if k <= scanBuckets {
				want = 1
			}
			if len(s) != 1 || s[0].DistinctPorts != want || s[0].Connections != uint64(min(k+1, scanSlots)) {
				t.Fatalf("bucket %d: %+v, want %d ports", k, s, want)
			}
		}
	})

	t.Run("small steps back count in the current bucket", func(t *testing.T) {
		tr := newScanTracker(ScanConfig{Window: window})
		tr.Connection(&a, 4, &host, 1, 6, scanT0)
		tr.Connection(&a, 4, &host, 2, 6, scanT0-2*scanSec)
		tr.Connection(&a, 4, &host, 3, 6, scanT0-int64(window)/2)
		// Counted at scanT0: still inside the window a whole Window later,
		// which the step back's own time would not be.
		s := tr.Snapshot(scanT0+int64(window)-1, nil)
		if len(s) != 1 || s[0].Connections != 3 || s[0].DistinctPorts != 3 {
			t.Fatalf("snapshot %+v, want 3 connections and ports", s)
		}
		if ss := tr.Snapshot(scanT0+int64(window)+int64(window)/scanBuckets, nil); len(ss) != 0 {
			t.Fatalf("a window and a bucket later: %+v", ss)
		}
	})

	t.Run("a step back beyond the window is a clock reset", func(t *testing.T) {
		tr := newScanTracker(ScanConfig{Window: window, ExactPorts: 8})
		for p := range 50 {
			tr.Connection(&a, 4, &host, uint16(p), 6, scanT0)
		}
		earlier := scanT0 - 3600*scanSec
		tr.Connection(&b, 4, &host, 80, 6, earlier)
		if st := tr.Stats(); st.Sources != 1 || st.Approximate != 0 {
			t.Fatalf("stats %+v, want only b", st)
		}
		ss := tr.Snapshot(earlier, nil)
		if len(ss) != 1 || ss[0].Addr != b || ss[0].Connections != 1 {
			t.Fatalf("snapshot %+v, want b's one connection", ss)
		}
		if ss := tr.Snapshot(scanT0, nil); len(ss) != 0 {
			t.Fatalf("the dropped counts came back: %+v", ss)
		}
		for p := range 50 { // a goes approximate again with the recycled set
			tr.Connection(&a, 4, &host, uint16(p), 6, earlier+scanSec)
		}
		if got := bySource(tr.Snapshot(earlier+scanSec, nil))["10.0.0.1"]; got.Connections != 50 || !within3SE(got.DistinctPorts, 50) {
			t.Fatalf("a after the reset: %+v", got)
		}
	})
}

// TestScanNmapLike is a SYN scan as nmap runs it: 1000 ports in random order
// to one host within 3 s, among ordinary clients. Expected: the scanner tops
// the ports ranking with exactly 1000 connections, one host, and 1000 ports
// within 3 standard errors: [862, 1138].
func TestScanNmapLike(t *testing.T) {
	tr := newScanTracker(ScanConfig{})
	rng := rand.New(rand.NewPCG(5, 6))
	scanner, _ := addr("172.16.0.8")
	target, _ := addr("64.13.134.52")
	clients := make([]decode.Addr, 50)
	for i := range clients {
		clients[i], _ = addr("10.0.0." + itoa(i+1))
	}
	servers := make([]decode.Addr, 5)
	for i := range servers {
		servers[i], _ = addr("93.184.216." + itoa(i+1))
	}
	ts := scanT0
	for _, p := range rng.Perm(1000) {
		ts += 3 * scanSec / 1000
		tr.Connection(&scanner, 4, &target, uint16(p+1), 6, ts)
		c, s := clients[rng.IntN(len(clients))], servers[rng.IntN(len(servers))]
		tr.Connection(&c, 4, &s, []uint16{80, 443, 53}[rng.IntN(3)], 6, ts)
	}
	top := tr.Top(ts, 3, "ports")
	if len(top) != 3 || top[0].Addr != scanner {
		t.Fatalf("top by ports %+v, want the scanner first", top)
	}
	s := top[0]
	t.Logf("scanner: %d connections, %d ports, %d hosts, approximate %v", s.Connections, s.DistinctPorts, s.DistinctHosts, s.Approximate)
	if s.Connections != 1000 || s.DistinctHosts != 1 || !s.Approximate || s.DistinctPorts < 862 || s.DistinctPorts > 1138 {
		t.Errorf("scanner %+v, want 1000 connections, 1 host, 862..1138 ports", s)
	}
	if top[1].DistinctPorts > 3 {
		t.Errorf("a client has %d ports", top[1].DistinctPorts)
	}
	if h := tr.Top(ts, 1, "hosts"); h[0].Addr == scanner {
		t.Errorf("the scanner leads by hosts: %+v", h)
	}
	if c := tr.Top(ts, 1, "connections"); c[0].Addr != scanner {
		t.Errorf("top by connections %+v", c)
	}
}

// TestScanNmapCapture feeds the new TCP connections of the corpus's nmap SYN
// scan (the first SYN of each 5-tuple) to a tracker. Oracle, from tshark:
//
//	tshark -r ndpi-synscan.pcap -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' \
//	  -T fields -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport | sort -u
//
// gives 1994 connections, all from 172.16.0.8 to 64.13.134.52, to 1000
// distinct ports, within 5.2 s. Expected: 1994 connections, 1 host, and
// 1000 ports within 3 standard errors, [862, 1138].
func TestScanNmapCapture(t *testing.T) {
	frames, link, err := readPcap(testcorpus.Path(t, "ndpi-synscan.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	tr := newScanTracker(ScanConfig{})
	seen := map[decode.Tuple]bool{}
	var p decode.Packet
	var last int64
	for _, f := range frames {
		decode.Parse(f.data, f.wireLen, link, &p)
		if !p.HasFlow || p.Flow.Proto != 6 || p.TCPFlags&(decode.TCPSyn|decode.TCPAck) != decode.TCPSyn || seen[p.Flow] {
			continue
		}
		seen[p.Flow] = true
		tr.Connection(&p.Flow.Src, p.Flow.IPVersion, &p.Flow.Dst, p.Flow.DstPort, p.Flow.Proto, f.ts)
		last = f.ts
	}
	ss := tr.Snapshot(last, nil)
	if len(ss) != 1 {
		t.Fatalf("%d sources, want 1: %+v", len(ss), ss)
	}
	s := ss[0]
	t.Logf("%s: %d connections, %d ports, %d hosts, approximate %v",
		IP(&s.Addr, s.IPVersion), s.Connections, s.DistinctPorts, s.DistinctHosts, s.Approximate)
	if IP(&s.Addr, s.IPVersion).String() != "172.16.0.8" || s.Connections != 1994 || s.DistinctHosts != 1 ||
		s.DistinctPorts < 862 || s.DistinctPorts > 1138 {
		t.Errorf("got %+v, want 172.16.0.8 with 1994 connections, 1 host, 862..1138 ports", s)
	}
}

type pcapFrame struct {
	data    []byte
	wireLen uint32
	ts      int64
}

var errTruncatedRecord = errors.New("truncated record")

// readPcap reads a classic pcap file (either byte order, µs or ns stamps).
func readPcap(name string) ([]pcapFrame, uint16, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, 0, err
	}
	if len(b) < 24 {
		return nil, 0, errors.New("short pcap header")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	magic := bo.Uint32(b)
	if magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1 {
		bo = binary.BigEndian
		magic = bo.Uint32(b)
	}
	var unit int64
	switch magic {
	case 0xa1b2c3d4:
		unit = 1000
	case 0xa1b23c4d:
		unit = 1
	default:
		return nil, 0, errors.New("not a pcap file")
	}
	link := uint16(bo.Uint32(b[20:]))
	var out []pcapFrame
	for off := 24; off+16 <= len(b); {
		caplen := int(bo.Uint32(b[off+8:]))
		if off+16+caplen > len(b) {
			return out, link, errTruncatedRecord // the records before it are good
		}
		out = append(out, pcapFrame{
			data:    b[off+16 : off+16+caplen],
			wireLen: bo.Uint32(b[off+12:]),
			ts:      int64(bo.Uint32(b[off:]))*scanSec + int64(bo.Uint32(b[off+4:]))*unit,
		})
		off += 16 + caplen
	}
	return out, link, nil
}

func TestScanTop(t *testing.T) {
	tr := newScanTracker(ScanConfig{})
	feed(tr, []scanConn{
		{"10.0.0.1", "10.0.1.1", 80, 6, 0}, // 3 connections, 1 port, 1 host
		{"10.0.0.1", "10.0.1.1", 80, 6, 0},
		{"10.0.0.1", "10.0.1.1", 80, 6, 0},
		{"10.0.0.2", "10.0.1.1", 1, 6, 0}, // 2 connections, 2 ports, 1 host
		{"10.0.0.2", "10.0.1.1", 2, 6, 0},
		{"10.0.0.3", "10.0.1.1", 80, 6, 0}, // 2 connections, 1 port, 2 hosts
		{"10.0.0.3", "10.0.1.2", 80, 6, 0},
		{"10.0.0.4", "10.0.1.1", 80, 6, 0}, // 1 connection
	})
	order := func(ss []SourceStats) (s []string) {
		for _, x := range ss {
			s = append(s, IP(&x.Addr, x.IPVersion).String())
		}
		return s
	}
	cases := []struct {
		by   string
		n    int
		want []string
	}{
		{"connections", 2, []string{"10.0.0.1", "10.0.0.2"}}, // ties: lower address
		{"ports", 1, []string{"10.0.0.2"}},
		{"hosts", 1, []string{"10.0.0.3"}},
		{"ports", 10, []string{"10.0.0.2", "10.0.0.1", "10.0.0.3", "10.0.0.4"}},
		{"bytes", 3, nil},
		{"hosts", 0, nil},
	}
	for _, c := range cases {
		got := order(tr.Top(scanT0, c.n, c.by))
		if len(got) != len(c.want) {
			t.Errorf("Top(%d, %q) = %v, want %v", c.n, c.by, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("Top(%d, %q) = %v, want %v", c.n, c.by, got, c.want)
				break
			}
		}
	}
}

// TestScanIndexChurn evicts and re-creates sources in a small table and checks
// that the index finds every live source (backward-shift deletion leaves no
// holes), and that a source active all along is never evicted and counts exactly.
func TestScanIndexChurn(t *testing.T) {
	tr := newScanTracker(ScanConfig{MaxSources: 64, ExactPorts: 4})
	rng := rand.New(rand.NewPCG(7, 8))
	hot, _ := addr("192.0.2.1")
	host, _ := addr("10.0.0.1")
	ts := scanT0
	hotConns := 0
	for i := range 200000 {
		ts += scanSec / 1000
		var src decode.Addr
		src[0], src[1] = 10, 200
		binary.BigEndian.PutUint16(src[2:], uint16(rng.IntN(300)))
		tr.Connection(&src, 4, &host, uint16(rng.IntN(8)), 6, ts)
		if i%10 == 0 {
			tr.Connection(&hot, 4, &host, 80, 6, ts)
			hotConns++
		}
		if i%1000 == 0 {
			checkScanIndex(t, tr)
		}
	}
	checkScanIndex(t, tr)
	st := tr.Stats()
	if st.Sources != 64 || st.Evicted == 0 {
		t.Fatalf("stats %+v, want a full table and evictions", st)
	}
	got := bySource(tr.Snapshot(ts, nil))["192.0.2.1"]
	if got.Connections == 0 || got.Connections > uint64(hotConns) || got.DistinctPorts != 1 {
		t.Fatalf("hot source %+v", got)
	}
	// Its connections in the window: one per 10 ms, from the bucket holding ts-60s.
	bw := int64(scanDefaultWindow) / scanBuckets
	from := (floorDiv(ts, bw) - scanBuckets) * bw
	want := uint64(0)
	for i, x := 0, scanT0; i < 200000; i++ {
		x += scanSec / 1000
		if i%10 == 0 && x >= from {
			want++
		}
	}
	if got.Connections != want {
		t.Fatalf("hot source has %d connections, want %d", got.Connections, want)
	}
}

func checkScanIndex(t *testing.T, tr *ScanTracker) {
	t.Helper()
	n := 0
	for _, x := range tr.index {
		if j := uint32(x); j != 0 {
			n++
			if tr.at(j-1).v == 0 || uint32(x>>32) != tr.at(j-1).hash {
				t.Fatalf("index names free slot %d", j-1)
			}
		}
	}
	if n != tr.live {
		t.Fatalf("index holds %d slots, %d live", n, tr.live)
	}
	for i := range tr.used {
		s := tr.at(i)
		if s.v == 0 {
			continue
		}
		p := s.hash & tr.mask
		for uint32(tr.index[p]) != i+1 {
			if tr.index[p] == 0 {
				t.Fatalf("slot %d unreachable from its home", i)
			}
			p = (p + 1) & tr.mask
		}
	}
}

// scanFlood is the traffic of TestScanMemoryBound: half the connections
// come one each from random sources, half from 400 scanners probing random
// ports on random hosts, which makes them approximate in both kinds: 800
// sketch sets wanted, more than a pool for 4096 sources holds.
type scanFlood struct {
	rng      *rand.Rand
	ts       int64
	scanners []decode.Addr
}

func newScanFlood() *scanFlood {
	f := &scanFlood{rng: rand.New(rand.NewPCG(11, 12)), ts: scanT0, scanners: make([]decode.Addr, 400)}
	for i := range f.scanners {
		f.scanners[i][0], f.scanners[i][1] = 172, 16
		binary.BigEndian.PutUint16(f.scanners[i][2:], uint16(i))
	}
	return f
}

func (f *scanFlood) next(tr *ScanTracker) {
	f.ts += 1000 // 1 µs
	var src, dst decode.Addr
	r := f.rng.Uint64()
	binary.LittleEndian.PutUint32(dst[:], uint32(r>>32))
	if r%2 == 0 {
		src = f.scanners[(r>>8)%uint64(len(f.scanners))]
	} else {
		binary.LittleEndian.PutUint32(src[:], uint32(r))
	}
	tr.Connection(&src, 4, &dst, uint16(r>>16), 6, f.ts)
}

// TestScanMemoryBound runs 1,000,000 connections (a flood of random sources
// and 400 scanners) through a tracker with MaxSources 4096 and checks that
// it stays within its bounds: 4096 sources, 512 sketch sets, heap growth
// below ScanConfig.MaxBytes, and no allocation per connection once warm.
func TestScanMemoryBound(t *testing.T) {
	cfg := ScanConfig{MaxSources: 4096}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := newScanTracker(cfg)
	f := newScanFlood()
	for range 1_000_000 {
		f.next(tr)
	}
	tr.Top(f.ts, 10, "ports") // Top's scratch counts too
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	st := tr.Stats()
	t.Logf("stats %+v; heap grew %d bytes, bound %d", st, grown, cfg.MaxBytes())
	if st.Sources > 4096 || st.Evicted == 0 || st.Recycled == 0 || st.Approximate == 0 || st.Approximate > 512 {
		t.Errorf("stats %+v: want at most 4096 sources, evictions, recycled sketches, 1..512 approximate", st)
	}
	if tr.nSketch > scanMaxSketches(cfg.MaxSources) || len(tr.index) > scanIndexSize(cfg.MaxSources) {
		t.Errorf("%d sketch sets, index of %d", tr.nSketch, len(tr.index))
	}
	// HeapAlloc also moves with the runtime's and the test framework's own
	// objects (timers, profiling buckets): allow 64 KiB of that noise.
	if grown > int64(cfg.MaxBytes())+64<<10 {
		t.Errorf("heap grew %d bytes, above the bound of %d", grown, cfg.MaxBytes())
	}
	if allocs := testing.AllocsPerRun(100000, func() { f.next(tr) }); allocs != 0 {
		t.Errorf("%v allocations per connection after warm-up, want 0", allocs)
	}
	runtime.KeepAlive(tr)
}

func TestScanMaxBytes(t *testing.T) {
	// The figures stated in the doc comments.
	if got := unsafe.Sizeof(scanSource{}); got != 144 {
		t.Errorf("scanSource is %d bytes; update MaxBytes' doc comment", got)
	}
	if got := (ScanConfig{}).MaxBytes(); got != 94_453_568 {
		t.Errorf("default MaxBytes = %d; update the doc comments", got)
	}
}

// TestScanConnectionAllocs checks each path of Connection once warm: exact,
// approximate, a new source evicting an old one, a sketch recycled.
func TestScanConnectionAllocs(t *testing.T) {
	tr := newScanTracker(ScanConfig{MaxSources: 256, ExactPorts: 8})
	rng := rand.New(rand.NewPCG(13, 14))
	ts := scanT0
	conn := func(srcN uint32, port uint16) {
		ts += 1000
		var src, dst decode.Addr
		binary.LittleEndian.PutUint32(src[:], srcN)
		binary.LittleEndian.PutUint32(dst[:], rng.Uint32())
		tr.Connection(&src, 4, &dst, port, 6, ts)
	}
	for range 100000 { // warm: full table, full sketch pool (200 sources want 400 sets of 32)
		conn(rng.Uint32N(200), uint16(rng.Uint32()))
	}
	for range 1000 {
		conn(1000+rng.Uint32N(1000), 80)
	}
	paths := []struct {
		name string
		fn   func()
	}{
		{"exact", func() { conn(1000, 80) }},
		{"approximate", func() { conn(1001, uint16(rng.Uint32())) }},
		{"eviction", func() { conn(rng.Uint32(), 80) }},
		{"recycling", func() { conn(rng.Uint32N(200), uint16(rng.Uint32())) }},
	}
	for _, p := range paths {
		if a := testing.AllocsPerRun(20000, p.fn); a != 0 {
			t.Errorf("%s: %v allocations per connection", p.name, a)
		}
	}
	if st := tr.Stats(); st.Recycled == 0 {
		t.Errorf("stats %+v: the recycling path did not run", st)
	}
}

func BenchmarkScanConnection(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  ScanConfig
	}{
		{"default", ScanConfig{}},
		{"flood-4096", ScanConfig{MaxSources: 4096}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tr := newScanTracker(bc.cfg)
			f := newScanFlood()
			for range 1_000_000 {
				f.next(tr)
			}
			b.ReportAllocs()
			for b.Loop() {
				f.next(tr)
			}
		})
	}
}

// BenchmarkScanConnectionExact is the common case: known sources, few
// ports and hosts each, all exact.
func BenchmarkScanConnectionExact(b *testing.B) {
	tr := newScanTracker(ScanConfig{})
	srcs, dsts := make([]decode.Addr, 1000), make([]decode.Addr, 50)
	for i := range srcs {
		binary.BigEndian.PutUint32(srcs[i][:], 0x0a000000+uint32(i))
	}
	for i := range dsts {
		binary.BigEndian.PutUint32(dsts[i][:], 0xc0a80000+uint32(i))
	}
	ts, i := scanT0, 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		ts += 10000
		tr.Connection(&srcs[i%len(srcs)], 4, &dsts[i%len(dsts)], uint16(i%16), 6, ts)
	}
}

func BenchmarkScanSnapshot(b *testing.B) {
	tr := newScanTracker(ScanConfig{MaxSources: 4096})
	f := newScanFlood()
	for range 1_000_000 {
		f.next(tr)
	}
	var dst []SourceStats
	b.ReportAllocs()
	for b.Loop() {
		dst = tr.Snapshot(f.ts, dst[:0])
	}
}
