package httpd_test

import (
	"bytes"
	"cmp"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
)

func scanAddr(s string) (decode.Addr, uint8) {
	ip := netip.MustParseAddr(s)
	var a decode.Addr
	if ip.Is4() {
		b := ip.As4()
		copy(a[:], b[:])
		return a, 4
	}
	return ip.As16(), 6
}

// mergedScan feeds two trackers sharing a seed, as two capture workers
// would be fed, and returns their merged windows: a port scanner (300
// ports on one host), a host sweeper (50 hosts, one port), a quiet IPv4
// source and an IPv6 one.
func mergedScan(t *testing.T) []flowtable.SourceStats {
	t.Helper()
	const t0 = 1_700_000_000 * int64(time.Second)
	cfg := flowtable.ScanConfig{ExactPorts: 16, Seed: 11}
	trs := []*flowtable.ScanTracker{flowtable.NewScanTracker(cfg), flowtable.NewScanTracker(cfg)}
	conn := func(i int, src, dst string, port uint16, proto uint8) {
		s, v := scanAddr(src)
		d, _ := scanAddr(dst)
		trs[i%2].Connection(&s, v, &d, port, proto, t0+int64(i)*int64(time.Millisecond))
	}
	for i := range 300 {
		conn(i, "198.51.100.7", "203.0.113.1", uint16(1+i), 6)
	}
	for i := range 50 {
		conn(i, "198.51.100.8", "203.0.113."+strconv.Itoa(10+i), 22, 6)
	}
	for i := range 5 {
		conn(i, "198.51.100.9", "203.0.113.1", 443, 6)
	}
	for i := range 12 {
		conn(i, "2001:db8::5", "2001:db8::"+strconv.Itoa(100+i%3), uint16(53+i%2), 17)
	}
	now := t0 + time.Second.Nanoseconds()
	ss := flowtable.MergeSources(trs[0].Export(now, nil), trs[1].Export(now, nil))
	if len(ss) != 4 {
		t.Fatalf("merged %d sources, want 4", len(ss))
	}
	return ss
}

// TestScanners: /api/v1/network/scanners answers what openapi.json says,
// each source once with the merged stats the sensor gave, in the order
// asked; bad parameters get a 400 problem.
func TestScanners(t *testing.T) {
	ts := newTestServer(t, "")
	merged := mergedScan(t)
	ts.sensor.mu.Lock()
	ts.sensor.snap.Scan, ts.sensor.snap.ScanWindow = merged, time.Minute
	ts.sensor.mu.Unlock()

	key := map[string]func(s *flowtable.SourceStats) uint64{
		"ports":       func(s *flowtable.SourceStats) uint64 { return s.DistinctPorts },
		"hosts":       func(s *flowtable.SourceStats) uint64 { return s.DistinctHosts },
		"connections": func(s *flowtable.SourceStats) uint64 { return s.Connections },
	}
	for _, c := range []struct {
		query, sort string
		limit       int
	}{{"", "ports", 10}, {"?sort=ports&limit=2", "ports", 2}, {"?sort=hosts", "hosts", 10},
		{"?limit=1000&sort=connections", "connections", 1000}, {"?limit=1", "ports", 1}} {
		r := ts.do("GET", "/api/v1/network/scanners"+c.query, "", nil)
		if r.status != 200 {
			t.Fatalf("scanners%s: %d %s", c.query, r.status, r.body)
		}
		m := ts.check("/api/v1/network/scanners", "GET", r)
		if m["window_seconds"] != 60.0 || m["sort"] != c.sort || m["sources"] != float64(len(merged)) {
			t.Errorf("scanners%s: window %v, sort %v, sources %v; want 60, %s, %d", c.query, m["window_seconds"], m["sort"], m["sources"], c.sort, len(merged))
		}
		want := slices.Clone(merged)
		k := key[c.sort]
		slices.SortStableFunc(want, func(a, b flowtable.SourceStats) int {
			if c := cmp.Compare(k(&b), k(&a)); c != 0 {
				return c
			}
			if c := cmp.Compare(b.Connections, a.Connections); c != 0 {
				return c
			}
			if c := cmp.Compare(a.IPVersion, b.IPVersion); c != 0 {
				return c
			}
			return bytes.Compare(a.Addr[:], b.Addr[:])
		})
		want = want[:min(c.limit, len(want))]
		got, _ := m["scanners"].([]any)
		if len(got) != len(want) {
			t.Fatalf("scanners%s: %d entries, want %d", c.query, len(got), len(want))
		}
		for i, g := range got {
			g := g.(map[string]any)
			w := want[i]
			if g["src_ip"] != flowtable.IP(&w.Addr, w.IPVersion).String() || g["ip_version"] != float64(w.IPVersion) ||
				g["connection_count"] != float64(w.Connections) || g["unique_dest_port_count"] != float64(w.DistinctPorts) ||
				g["unique_dest_host_count"] != float64(w.DistinctHosts) || g["approximate"] != w.Approximate {
				t.Errorf("scanners%s [%d]: %v, want %+v", c.query, i, g, w)
			}
		}
	}
	// The sources and counts, as fed: the port scanner's 300 ports are past
	// ExactPorts (a sketch); the sweep's 50 hosts too; the rest exact.
	r := ts.do("GET", "/api/v1/network/scanners?limit=4", "", nil)
	got := ts.check("/api/v1/network/scanners", "GET", r)["scanners"].([]any)
	first := got[0].(map[string]any)
	if first["src_ip"] != "198.51.100.7" || first["connection_count"] != 300.0 || first["approximate"] != true ||
		first["unique_dest_port_count"].(float64) < 300*(1-0.138) || first["unique_dest_port_count"].(float64) > 300*(1+0.138) {
		t.Errorf("top port scanner %v, want 198.51.100.7 with 300 connections, ~300 ports", first)
	}
	for _, g := range got {
		if g := g.(map[string]any); g["src_ip"] == "2001:db8::5" &&
			(g["connection_count"] != 12.0 || g["unique_dest_port_count"] != 2.0 || g["unique_dest_host_count"] != 3.0 || g["approximate"] != false) {
			t.Errorf("IPv6 source %v, want 12 connections, 2 ports, 3 hosts, exact", g)
		}
	}

	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?sort=bytes", "?sort=", "?sort=ports&sort=hosts", "?src_ip=1.2.3.4"} {
		r := ts.do("GET", "/api/v1/network/scanners"+q, "", nil)
		if r.status != 400 || r.ct != "application/problem+json" {
			t.Errorf("scanners%s: %d %q, want 400 problem+json", q, r.status, r.ct)
		}
		ts.check("/api/v1/network/scanners", "GET", r)
	}
}

// TestScanMetrics: /metrics holds the scan signals as bounded aggregates
// that agree with the merged stats, no address among the labels, and
// passes promtool.
func TestScanMetrics(t *testing.T) {
	ts := newTestServer(t, "")
	merged := mergedScan(t)
	ts.sensor.mu.Lock()
	ts.sensor.snap.Scan, ts.sensor.snap.ScanWindow = merged, time.Minute
	ts.sensor.mu.Unlock()
	r := ts.do("GET", "/metrics", "", nil)
	text := string(r.body)
	over := func(get func(s *flowtable.SourceStats) uint64, th uint64) int {
		n := 0
		for i := range merged {
			if get(&merged[i]) > th {
				n++
			}
		}
		return n
	}
	approx := 0
	for _, s := range merged {
		if s.Approximate {
			approx++
		}
	}
	want := []string{
		"netsentry_scan_window_seconds 60",
		"netsentry_scan_sources " + strconv.Itoa(len(merged)),
		"netsentry_scan_sources_approximate " + strconv.Itoa(approx),
	}
	for _, th := range []uint64{10, 20, 100, 1000, 10000} {
		tv := strconv.FormatUint(th, 10)
		want = append(want,
			`netsentry_scan_sources_over{signal="connection_count",threshold="`+tv+`"} `+
				strconv.Itoa(over(func(s *flowtable.SourceStats) uint64 { return s.Connections }, th)),
			`netsentry_scan_sources_over{signal="unique_dest_port_count",threshold="`+tv+`"} `+
				strconv.Itoa(over(func(s *flowtable.SourceStats) uint64 { return s.DistinctPorts }, th)),
			`netsentry_scan_sources_over{signal="unique_dest_host_count",threshold="`+tv+`"} `+
				strconv.Itoa(over(func(s *flowtable.SourceStats) uint64 { return s.DistinctHosts }, th)))
	}
	for _, w := range want {
		if !strings.Contains(text, w+"\n") {
			t.Errorf("/metrics lacks %q", w)
		}
	}
	// The port scanner is over 100 ports and the sweep over 20 hosts: the
	// aggregates are not all zero.
	if !strings.Contains(text, `netsentry_scan_sources_over{signal="unique_dest_port_count",threshold="100"} 1`+"\n") ||
		!strings.Contains(text, `netsentry_scan_sources_over{signal="unique_dest_host_count",threshold="20"} 1`+"\n") {
		t.Errorf("scan aggregates miss the scanner or the sweep")
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "netsentry_scan_") && (strings.Contains(l, "198.51.100") || strings.Contains(l, "2001:db8")) {
			t.Errorf("an address in a scan metric: %s", l)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool: %v (Debian package prometheus)", err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestScannersFragments: ?sort=fragments lists the sources of fragment
// anomalies by their total, joined with their scan signals where they
// started connections (else zeros), and every entry carries its
// anomalies; /metrics sums them by kind.
func TestScannersFragments(t *testing.T) {
	ts := newTestServer(t, "")
	merged := mergedScan(t)
	scanner, v4 := scanAddr("198.51.100.7") // a port scanner in mergedScan
	quiet, _ := scanAddr("192.0.2.99")      // no connection in the window
	ts.sensor.mu.Lock()
	ts.sensor.snap.Scan, ts.sensor.snap.ScanWindow = merged, time.Minute
	ts.sensor.snap.FragAnomalies = []flowtable.FragAnomalies{
		{Addr: scanner, IPVersion: v4, Tiny: 2, Overlap: 1},
		{Addr: quiet, IPVersion: v4, Tiny: 1, Overlap: 4, Conflict: 3},
	}
	ts.sensor.snap.Stats.FragTiny, ts.sensor.snap.Stats.FragOverlap, ts.sensor.snap.Stats.FragConflict = 3, 5, 3
	ts.sensor.mu.Unlock()

	r := ts.do("GET", "/api/v1/network/scanners?sort=fragments", "", nil)
	if r.status != 200 {
		t.Fatalf("sort=fragments: %d %s", r.status, r.body)
	}
	m := ts.check("/api/v1/network/scanners", "GET", r)
	got, _ := m["scanners"].([]any)
	if m["sources"] != 2.0 || len(got) != 2 {
		t.Fatalf("sort=fragments: sources %v, %d entries; want 2 and 2", m["sources"], len(got))
	}
	first, second := got[0].(map[string]any), got[1].(map[string]any)
	fa := func(g map[string]any) map[string]any { return g["fragment_anomalies"].(map[string]any) }
	if first["src_ip"] != "192.0.2.99" || first["connection_count"] != 0.0 ||
		fa(first)["tiny"] != 1.0 || fa(first)["overlap"] != 4.0 || fa(first)["conflict"] != 3.0 {
		t.Errorf("first %v, want 192.0.2.99 with 8 anomalies and no connection", first)
	}
	if second["src_ip"] != "198.51.100.7" || second["connection_count"] != 300.0 ||
		fa(second)["tiny"] != 2.0 || fa(second)["overlap"] != 1.0 || fa(second)["conflict"] != 0.0 {
		t.Errorf("second %v, want the port scanner with its 300 connections and 3 anomalies", second)
	}
	// Sorted by ports, the scanner carries its anomalies, the others zeros.
	r = ts.do("GET", "/api/v1/network/scanners?limit=4", "", nil)
	for _, g := range ts.check("/api/v1/network/scanners", "GET", r)["scanners"].([]any) {
		g := g.(map[string]any)
		want := 0.0
		if g["src_ip"] == "198.51.100.7" {
			want = 2
		}
		if fa(g)["tiny"] != want {
			t.Errorf("%v: tiny %v, want %v", g["src_ip"], fa(g)["tiny"], want)
		}
	}
	r = ts.do("GET", "/metrics", "", nil)
	for _, line := range []string{`netsentry_fragment_anomalies_total{kind="tiny"} 3`,
		`netsentry_fragment_anomalies_total{kind="overlap"} 5`, `netsentry_fragment_anomalies_total{kind="conflict"} 3`} {
		if !strings.Contains(string(r.body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
