package flowtable

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/netsentry/netsentry/decode"
)

// fanOut picks a tracker for a connection as live capture's fan-out does:
// by a symmetric hash of the 5-tuple, so one source's connections spread
// over every tracker.
func fanOut(src, dst decode.Addr, sport, dport uint16, proto uint8, n int) int {
	a, b := src, dst
	pa, pb := sport, dport
	if string(a[:]) > string(b[:]) || (a == b && pa > pb) {
		a, b, pa, pb = b, a, pb, pa
	}
	h := fmix64(binary.LittleEndian.Uint64(a[8:]) ^ fmix64(binary.LittleEndian.Uint64(b[8:])^uint64(pa)<<16^uint64(pb)<<32^uint64(proto)<<48))
	return int(h % uint64(n))
}

// TestMergeSourcesAgainstModel feeds random connections from a few sources,
// some scanning thousands of ports or hosts, into 2 to 4 trackers sharing a
// seed (split as the fan-out splits them), merges their exports and compares
// with the brute-force model's exact set sizes: equal where the merge says
// exact, within 3 HyperLogLog standard errors (±13.8 %) where approximate;
// connections always exact. A single tracker fed everything must agree on
// connections, and on distinct counts wherever both are exact.
func TestMergeSourcesAgainstModel(t *testing.T) {
	const window = 60 * time.Second
	for _, c := range []struct {
		trackers, exact int
	}{{2, 16}, {3, 64}, {4, 16}, {4, 64}} {
		seed := uint64(0x9e3779b97f4a7c15) + uint64(c.trackers*100+c.exact)
		cfg := ScanConfig{Window: window, ExactPorts: c.exact, Seed: seed}
		trs := make([]*ScanTracker, c.trackers)
		for i := range trs {
			trs[i] = NewScanTracker(cfg)
		}
		one := NewScanTracker(cfg)
		m := &scanModel{bw: int64(window) / scanBuckets}
		rng := rand.New(rand.NewPCG(uint64(c.trackers), uint64(c.exact)))
		// Per source: how many distinct ports and hosts it draws from.
		type profile struct {
			src          decode.Addr
			v            uint8
			ports, hosts int
		}
		var profiles []profile
		for i, p := range [][2]int{{3, 2}, {c.exact - 2, 5}, {c.exact + 8, 3}, {400, 1}, {3000, 2}, {5, 2500}, {200, 200}} {
			a, v := addr("192.168.7." + itoa(i+1))
			if i == 6 {
				a, v = addr("2001:db8::7")
			}
			profiles = append(profiles, profile{a, v, p[0], p[1]})
		}
		protos := []uint8{6, 6, 6, 17, 17, 1, 47}
		ts := scanT0
		var nExact, nApprox int
		for step := range 100000 {
			switch r := rng.IntN(10000); {
			case r < 9990:
				ts += rng.Int64N(int64(time.Millisecond) * 2)
			case r < 9999:
				ts += rng.Int64N(int64(window) / 3)
			default:
				ts += 2 * int64(window)
			}
			p := profiles[rng.IntN(len(profiles))]
			var dst decode.Addr
			if p.v == 4 {
				dst, _ = addr("10.0.0.0")
				binary.BigEndian.PutUint32(dst[:4], 0x0a000000+uint32(rng.IntN(p.hosts)))
			} else {
				dst, _ = addr("2001:db8:1::")
				binary.BigEndian.PutUint32(dst[12:], uint32(rng.IntN(p.hosts)))
			}
			dport := uint16(1 + rng.IntN(p.ports))
			sport := uint16(1024 + rng.IntN(60000))
			proto := protos[rng.IntN(len(protos))]
			trs[fanOut(p.src, dst, sport, dport, proto, len(trs))].Connection(&p.src, p.v, &dst, dport, proto, ts)
			one.Connection(&p.src, p.v, &dst, dport, proto, ts)
			m.add(p.src, dst, p.v, dport, proto, ts)
			if step%7919 != 7918 {
				continue
			}
			now := ts + rng.Int64N(int64(window)/2)
			parts := make([][]SourceWindow, len(trs))
			for i, tr := range trs {
				parts[i] = tr.Export(now, nil)
			}
			merged := MergeSources(parts...)
			got, want, single := bySource(merged), m.snapshot(now), bySource(one.Snapshot(now, nil))
			if len(merged) != len(want) || len(got) != len(want) {
				t.Fatalf("%d trackers, step %d: %d merged entries (%d sources), model %d", c.trackers, step, len(merged), len(got), len(want))
			}
			for k, w := range want {
				g, s := got[k], single[k]
				if g.Connections != w.Connections || s.Connections != w.Connections {
					t.Errorf("%d trackers, step %d, %s: %d connections merged, %d single, model %d",
						c.trackers, step, k, g.Connections, s.Connections, w.Connections)
				}
				if g.Approximate {
					nApprox++
				} else {
					nExact++
				}
				for _, d := range []struct {
					name           string
					got, one, want uint64
				}{{"ports", g.DistinctPorts, s.DistinctPorts, w.DistinctPorts}, {"hosts", g.DistinctHosts, s.DistinctHosts, w.DistinctHosts}} {
					switch {
					case !g.Approximate && d.got != d.want:
						t.Errorf("%d trackers, step %d, %s: %d distinct %s (exact), model %d", c.trackers, step, k, d.got, d.name, d.want)
					case g.Approximate && !within3SE(d.got, int(d.want)):
						t.Errorf("%d trackers, step %d, %s: %d distinct %s (approximate), model %d", c.trackers, step, k, d.got, d.name, d.want)
					case !g.Approximate && !s.Approximate && d.got != d.one:
						t.Errorf("%d trackers, step %d, %s: %d distinct %s merged, %d single", c.trackers, step, k, d.got, d.name, d.one)
					}
				}
				if !g.Approximate && (w.DistinctPorts > uint64(c.exact) || w.DistinctHosts > uint64(c.exact)) {
					t.Errorf("%d trackers, step %d, %s: exact with %d ports, %d hosts, past ExactPorts %d", c.trackers, step, k, w.DistinctPorts, w.DistinctHosts, c.exact)
				}
			}
		}
		t.Logf("%d trackers, ExactPorts %d: %d exact and %d approximate merged sources checked", c.trackers, c.exact, nExact, nApprox)
		if nExact < 10 || nApprox < 10 {
			t.Errorf("%d trackers: %d exact, %d approximate comparisons; the test lost its reach", c.trackers, nExact, nApprox)
		}
	}
}

// TestMergeSourcesExactToSketch: two exact halves whose union fits
// ExactPorts stay exact; a larger union becomes a sketch, as one tracker
// fed both halves would; hosts are exact all along.
func TestMergeSourcesExactToSketch(t *testing.T) {
	cfg := ScanConfig{ExactPorts: 16, Seed: 7}
	for _, c := range []struct {
		ports  int
		approx bool
	}{{16, false}, {17, true}, {30, true}} {
		a, b := NewScanTracker(cfg), NewScanTracker(cfg)
		src, _ := addr("10.9.9.9")
		dst, _ := addr("10.0.0.1")
		for p := range c.ports {
			tr := a
			if p%2 == 1 {
				tr = b
			}
			tr.Connection(&src, 4, &dst, uint16(p+1), 6, scanT0)
			tr.Connection(&src, 4, &dst, uint16(p+1), 6, scanT0) // a repeat: one more connection, no new port
		}
		ea, eb := a.Export(scanT0, nil), b.Export(scanT0, nil)
		if ea[0].Stats.Approximate || eb[0].Stats.Approximate {
			t.Fatalf("%d ports: a half went approximate", c.ports)
		}
		ss := MergeSources(ea, eb)
		if len(ss) != 1 {
			t.Fatalf("%d ports: %d sources", c.ports, len(ss))
		}
		s := ss[0]
		if s.Connections != uint64(2*c.ports) || s.DistinctHosts != 1 || s.Approximate != c.approx ||
			(!c.approx && s.DistinctPorts != uint64(c.ports)) || !within3SE(s.DistinctPorts, c.ports) {
			t.Errorf("%d ports: %+v, want %d connections, %d ports, 1 host, approximate %v", c.ports, s, 2*c.ports, c.ports, c.approx)
		}
	}
}

// TestMergeSourcesSumsCounters: every integer field of SourceStats but the
// key and the distinct counts is summed, booleans ORed, so that counters
// added to SourceStats later merge without a change here.
func TestMergeSourcesSumsCounters(t *testing.T) {
	src, _ := addr("10.1.2.3")
	mk := func(seed uint64) SourceWindow {
		var st SourceStats
		v := reflect.ValueOf(&st).Elem()
		for i := range v.NumField() {
			setOnes(v.Field(i))
		}
		st.Addr, st.IPVersion, st.DistinctPorts, st.DistinctHosts, st.Approximate = src, 4, 1, 1, false
		return SourceWindow{Stats: st, seed: seed, exact: 16, ports: []uint32{6<<16 | 80}, hosts: []uint64{0x1200}}
	}
	ss := MergeSources([]SourceWindow{mk(5)}, []SourceWindow{mk(5)})
	if len(ss) != 1 {
		t.Fatalf("%d sources, want 1", len(ss))
	}
	v := reflect.ValueOf(ss[0])
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if sourceStatsSkip[f.Name] {
			continue
		}
		checkTwos(t, f.Name, v.Field(i))
	}
	if s := ss[0]; s.DistinctPorts != 1 || s.DistinctHosts != 1 || s.Approximate || s.IPVersion != 4 || s.Addr != src {
		t.Errorf("merged %+v: want the key kept, 1 port, 1 host, exact", s)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("merging windows with different seeds did not panic")
		}
	}()
	MergeSources([]SourceWindow{mk(5)}, []SourceWindow{mk(6)})
}

func setOnes(v reflect.Value) {
	switch v.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Array:
		for i := range v.Len() {
			setOnes(v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				setOnes(v.Field(i))
			}
		}
	}
}

func checkTwos(t *testing.T, name string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Uint() != 2 {
			t.Errorf("%s = %d after merging 1 and 1", name, v.Uint())
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Int() != 2 {
			t.Errorf("%s = %d after merging 1 and 1", name, v.Int())
		}
	case reflect.Float32, reflect.Float64:
		if v.Float() != 2 {
			t.Errorf("%s = %g after merging 1 and 1", name, v.Float())
		}
	case reflect.Bool:
		if !v.Bool() {
			t.Errorf("%s false after merging true and true", name)
		}
	case reflect.Array:
		for i := range v.Len() {
			checkTwos(t, name, v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				checkTwos(t, name+"."+v.Type().Field(i).Name, v.Field(i))
			}
		}
	}
}

// TestScanSeedPerProcess: trackers without a seed share the process's.
func TestScanSeedPerProcess(t *testing.T) {
	a, b := NewScanTracker(ScanConfig{}), NewScanTracker(ScanConfig{})
	if a.seed != b.seed || a.seed != ProcessScanSeed() || ProcessScanSeed() == 0 {
		t.Errorf("seeds %#x, %#x, process %#x: want the process's, non-zero", a.seed, b.seed, ProcessScanSeed())
	}
	if c := NewScanTracker(ScanConfig{Seed: 42}); c.seed != 42 {
		t.Errorf("configured seed 42, tracker has %#x", c.seed)
	}
}

// TestScanExportAllocsBounded: Export of a warm tracker allocates a fixed
// number of arrays (the snapshot, slots, exact values, sketches, and dst's
// growth), not one per source.
func TestScanExportAllocsBounded(t *testing.T) {
	tr := NewScanTracker(ScanConfig{ExactPorts: 16, Seed: 3})
	dst, _ := addr("10.0.0.1")
	for i := range 2000 {
		src, _ := addr("10.5." + itoa(i/250) + "." + itoa(i%250))
		for p := range 1 + i%40 {
			tr.Connection(&src, 4, &dst, uint16(p), 6, scanT0)
		}
	}
	buf := make([]SourceWindow, 0, 4096)
	if n := testing.AllocsPerRun(5, func() { tr.Export(scanT0, buf[:0]) }); n > 6 {
		t.Errorf("Export of 2000 sources: %.0f allocations, want at most 6", n)
	}
}
