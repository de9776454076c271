package httpd_test

import (
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/engine/sampler"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/store"
)

// TestMetricHistory: /api/v1/metrics/{dotted}/history gives, at each step,
// the latest stored sample at or before it (within the 5 min lookback),
// of the family the dotted name maps to: cpu.usage is
// netsentry_node_cpu_usage_ratio as a percentage, network.packets the sum
// over the queues of netsentry_engine_packets_total.
func TestMetricHistory(t *testing.T) {
	src := &memSource{}
	type pt struct {
		t int64
		v float64
	}
	var cpu []pt
	var pk [2][]pt
	for i := int64(0); i < 360; i++ { // 30 min of 5 s samples, the last 10 min of queue 1 missing
		tm := oracleBase + i*5000
		v := float64(i%100)/100 + 0.005
		cpu = append(cpu, pt{tm, v})
		src.add("netsentry_node_cpu_usage_ratio", tm, v)
		for q := range 2 {
			if q == 1 && i >= 240 {
				continue
			}
			c := float64(1000*q) + float64(i*i)
			pk[q] = append(pk[q], pt{tm, c})
			src.add("netsentry_engine_packets_total", tm, c, "queue", strconv.Itoa(q))
		}
	}
	// latest returns the value of the latest point at or before t within
	// five minutes.
	latest := func(pts []pt, t int64) (float64, bool) {
		for i := len(pts) - 1; i >= 0; i-- {
			if pts[i].t <= t {
				return pts[i].v, t-pts[i].t < 5*60*1000
			}
		}
		return 0, false
	}
	ts := newPromServer(t, src, nil)
	start := oracleBase / 1000
	for _, tc := range []struct {
		name string
		want func(t int64) (float64, bool)
	}{
		{"cpu.usage", func(t int64) (float64, bool) { v, ok := latest(cpu, t); return v * 100, ok }},
		{"network.packets", func(t int64) (float64, bool) {
			a, okA := latest(pk[0], t)
			b, okB := latest(pk[1], t)
			if !okB {
				b = 0
			}
			return a + b, okA || okB
		}},
	} {
		r := ts.do("GET", "/api/v1/metrics/"+tc.name+"/history?start="+strconv.FormatInt(start-120, 10)+
			"&end="+time.UnixMilli(oracleBase+2400*1000).UTC().Format(time.RFC3339)+"&step=30s", "", nil)
		doc := ts.check("/api/v1/metrics/{name}/history", "GET", r)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", tc.name, r.status, r.body)
		}
		var h struct {
			Points []struct {
				Timestamp time.Time
				Value     *float64
			}
		}
		json.Unmarshal(r.body, &h)
		n := 0
		for tm := (start - 120) * 1000; tm <= oracleBase+2400*1000; tm += 30000 {
			want, ok := tc.want(tm)
			if !ok {
				continue
			}
			if n >= len(h.Points) {
				t.Fatalf("%s: %d points, want more (next at %d)", tc.name, len(h.Points), tm)
			}
			p := h.Points[n]
			if p.Timestamp.UnixMilli() != tm || p.Value == nil || math.Abs(*p.Value-want) > 1e-12*math.Abs(want) {
				t.Fatalf("%s point %d: %v %v, want %d %v", tc.name, n, p.Timestamp, p.Value, tm, want)
			}
			n++
		}
		if n != len(h.Points) || n < 50 {
			t.Errorf("%s: %d points, want %d", tc.name, len(h.Points), n)
		}
		if doc["name"] != tc.name || doc["step_sec"] != 30.0 {
			t.Errorf("%s: %v %v", tc.name, doc["name"], doc["step_sec"])
		}
	}
	// Without a step, about 300 points: an hour is 12 s steps, ten minutes
	// the 5 s floor.
	for q, want := range map[string]float64{"start=1780000000&end=1780003600": 12, "start=1780000000&end=1780000600": 5} {
		r := ts.do("GET", "/api/v1/metrics/cpu.usage/history?"+q, "", nil)
		if doc := ts.check("/api/v1/metrics/{name}/history", "GET", r); doc["step_sec"] != want {
			t.Errorf("%s: step %v, want %v", q, doc["step_sec"], want)
		}
	}
	// Defaults (the last hour: nothing stored) and errors.
	for path, want := range map[string]int{
		"/api/v1/metrics/cpu.usage/history":                                                        200,
		"/api/v1/metrics/memory.usage_percent/history?end=1780000600":                              200,
		"/api/v1/metrics/disk.io_utilization_percent/history?start=1780000000":                     200,
		"/api/v1/metrics/cpu.nonsense/history":                                                     404,
		"/api/v1/metrics/cpu.usage/history?start=yesterday":                                        400,
		"/api/v1/metrics/cpu.usage/history?end=1&start=2":                                          400,
		"/api/v1/metrics/cpu.usage/history?step=0.5":                                               400,
		"/api/v1/metrics/cpu.usage/history?step=fast":                                              400,
		"/api/v1/metrics/cpu.usage/history?start=0&end=1780000000&step=1":                          400,
		"/api/v1/metrics/cpu.usage/history?query=up":                                               400,
		"/api/v1/metrics/cpu.usage/history?step=5&step=6":                                          400,
		"/api/v1/metrics/network.flows.created/history?start=1780000000&step=1h":                   200,
		"/api/v1/metrics/network.connection_count/history?start=1780000000&end=1780003600&step=1m": 200,
		"/api/v1/metrics/network.drops/history?start=1780000000&step=1m":                           400,
	} {
		r := ts.do("GET", path, "", nil)
		if r.status != want {
			t.Errorf("%s: %d %s, want %d", path, r.status, r.body, want)
		}
		ts.check("/api/v1/metrics/{name}/history", "GET", r)
	}
}

// fakeFlows is the flow history: it records the query and answers with
// the records that match it, newest first, two per page.
type fakeFlows struct {
	recs []flowtable.Record
	last store.FlowQuery
	err  error
}

type badCursor struct{}

func (badCursor) Error() string    { return "decode cursor: not base64" }
func (badCursor) BadRequest() bool { return true }

func (f *fakeFlows) Query(q store.FlowQuery) ([]flowtable.Record, string, error) {
	f.last = q
	if f.err != nil {
		return nil, "", f.err
	}
	var out []flowtable.Record
	for _, r := range f.recs {
		src, dst := netip.AddrFrom16(r.Src).Unmap(), netip.AddrFrom16(r.Dst).Unmap()
		switch {
		case q.IP.IsValid() && q.IP != src && q.IP != dst,
			q.Port >= 0 && int(r.SrcPort) != q.Port && int(r.DstPort) != q.Port,
			q.Protocol != "" && flowtable.ProtoName(r.Proto) != q.Protocol,
			q.AppProtocol != "" && !strings.EqualFold(r.AppName(), q.AppProtocol),
			!q.Start.IsZero() && r.Last < q.Start.UnixNano(),
			!q.End.IsZero() && r.Last > q.End.UnixNano():
			continue
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b flowtable.Record) int { return int(b.Last - a.Last) })
	from := 0
	if q.Cursor != "" {
		from, _ = strconv.Atoi(q.Cursor)
	}
	out = out[min(from, len(out)):]
	if len(out) > q.Limit {
		return out[:q.Limit], strconv.Itoa(from + q.Limit), nil
	}
	return out, "", nil
}

// TestFlowsHistory: /api/v1/network/flows passes its parameters on as a
// store.FlowQuery and writes each record exactly as --flows-out does
// (Record.AppendJSON), pages by the cursor, and refuses bad parameters
// with 400 problems.
func TestFlowsHistory(t *testing.T) {
	snap := replayState(t, "zeek-http-bro.org.pcap")
	var recs []flowtable.Record
	for _, w := range snap.Flows {
		recs = append(recs, w...)
	}
	if len(recs) < 3 {
		t.Fatalf("%d records in the capture", len(recs))
	}
	ff := &fakeFlows{recs: recs}
	ts := newTestServerWith(t, func(o *httpd.Options) { o.Flows = ff })
	const route = "/api/v1/network/flows"

	// Every record, two per page, newest first, as AppendJSON writes them.
	var got []json.RawMessage
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > len(recs) {
			t.Fatal("the cursor does not end")
		}
		path := route + "?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := ts.do("GET", path, "", nil)
		ts.check(route, "GET", r)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var page struct {
			Flows      []json.RawMessage `json:"flows"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Flows...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	want, _, _ := (&fakeFlows{recs: recs}).Query(store.FlowQuery{Port: -1, Limit: 1000})
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if w := want[i].AppendJSON(nil, nil); string(got[i]) != string(w) {
			t.Errorf("record %d:\n got %s\nwant %s", i, got[i], w)
		}
	}

	// The parameters reach the query.
	r0 := recs[0]
	ip := netip.AddrFrom16(r0.Dst).Unmap()
	first := time.Unix(0, r0.First).UTC()
	path := route + "?ip=" + ip.String() + "&port=" + strconv.Itoa(int(r0.DstPort)) + "&protocol=" +
		strings.ToLower(flowtable.ProtoName(r0.Proto)) + "&application_protocol=" + r0.AppName() +
		"&start=" + first.Format(time.RFC3339Nano) + "&end=" + strconv.FormatInt(r0.Last/1e9+1, 10) + "&limit=5&cursor=0"
	r := ts.do("GET", path, "", nil)
	ts.check(route, "GET", r)
	wantQ := store.FlowQuery{Start: first, End: time.Unix(r0.Last/1e9+1, 0).UTC(), IP: ip, Port: int(r0.DstPort),
		Protocol: flowtable.ProtoName(r0.Proto), AppProtocol: r0.AppName(), Limit: 5, Cursor: "0"}
	if r.status != 200 || ff.last != wantQ {
		t.Errorf("%s: %d %s\nquery %+v\n want %+v", path, r.status, r.body, ff.last, wantQ)
	}
	if !strings.Contains(string(r.body), string(r0.AppendJSON(nil, nil))) {
		t.Errorf("%s: the record asked for is not in %s", path, r.body)
	}
	for in, want := range map[string]string{"6": "TCP", "icmpv6": "ICMPv6", "udp": "UDP", "99": "99"} {
		if r := ts.do("GET", route+"?protocol="+in, "", nil); r.status != 200 || ff.last.Protocol != want {
			t.Errorf("protocol=%s: %d, query %q, want %q", in, r.status, ff.last.Protocol, want)
		}
	}
	ts.do("GET", route, "", nil)
	if ff.last.Limit != httpd.DefaultFlowsLimit || ff.last.Port != -1 || ff.last.IP.IsValid() {
		t.Errorf("defaults: %+v", ff.last)
	}

	for _, q := range []string{"?ip=10.0.0.300", "?ip=fe80::1%25eth0", "?port=65536", "?port=-1", "?port=http",
		"?protocol=carrier-pigeon", "?protocol=256", "?limit=0", "?limit=1001", "?start=noon", "?end=1e400",
		"?start=1780000100&end=1780000000", "?application_protocol=", "?host=10.0.0.1", "?limit=1&limit=2",
		"?cursor=" + strings.Repeat("x", 2000)} {
		r := ts.do("GET", route+q, "", nil)
		ts.check(route, "GET", r)
		if r.status != 400 || r.ct != "application/problem+json" {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	ff.err = badCursor{}
	if r := ts.do("GET", route+"?cursor=zz", "", nil); r.status != 400 || !strings.Contains(string(r.body), "decode cursor") {
		t.Errorf("bad cursor: %d %s", r.status, r.body)
	}
	ff.err = errors.New("disk on fire")
	r = ts.do("GET", route, "", nil)
	ts.check(route, "GET", r)
	if r.status != 500 || strings.Contains(string(r.body), "fire") {
		t.Errorf("store error: %d %s", r.status, r.body)
	}
}

// fakeHost serves a sampler snapshot as the host samplers do.
type fakeHost struct{ snap sampler.Snapshot }

func (h fakeHost) HostMetrics() (map[string]any, map[string]float64, error) {
	return map[string]any{}, h.snap.Dotted(), nil
}

// TestHostFamilies: every netsentry_node_* family of /metrics is there
// for a full sampler snapshot, with the sampler's value in the base unit,
// and its history reads it back under the dotted name.
func TestHostFamilies(t *testing.T) {
	temp, io := 42.5, 2.1
	snap := sampler.Snapshot{Timestamp: time.Unix(1780000000, 0), Metrics: sampler.Metrics{
		CPU: sampler.CPU{UsagePercent: 23.5, LoadAvg1m: 1.23, LoadAvg5m: 1.15, LoadAvg15m: 0.98, CoreCount: 8, TemperatureCelsius: &temp},
		Memory: sampler.Memory{TotalBytes: 17179869184, UsedBytes: 8203091968, UsedPercent: 47.75, SwapUsedPercent: 5.12,
			SwapTotalBytes: 1 << 30, SwapUsedBytes: 1 << 20},
		Disks: []sampler.Disk{{Path: "/", TotalBytes: 1099511627776, UsedBytes: 351383035904, UsedPercent: 31.96,
			InodesUsedPercent: 14.32, IOUtilizationPercent: &io}},
	}}
	want := map[string]float64{
		"netsentry_node_cpu_usage_ratio":               0.235,
		"netsentry_node_load1":                         1.23,
		"netsentry_node_load5":                         1.15,
		"netsentry_node_load15":                        0.98,
		"netsentry_node_cpu_temperature_celsius":       42.5,
		"netsentry_node_memory_total_bytes":            17179869184,
		"netsentry_node_memory_used_bytes":             8203091968,
		"netsentry_node_memory_usage_ratio":            0.4775,
		"netsentry_node_swap_usage_ratio":              0.0512,
		"netsentry_node_filesystem_size_bytes":         1099511627776,
		"netsentry_node_filesystem_used_bytes":         351383035904,
		"netsentry_node_filesystem_inodes_usage_ratio": 0.1432,
		"netsentry_node_disk_io_utilization_ratio":     0.021,
	}
	ts := newTestServerWith(t, func(o *httpd.Options) { o.Host = fakeHost{snap} })
	r := ts.do("GET", "/metrics", "", nil)
	got := map[string]float64{}
	for _, line := range strings.Split(string(r.body), "\n") {
		if name, v, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, "netsentry_node_") {
			got[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || math.Abs(g-w) > 1e-12*w {
			t.Errorf("%s = %v (%v), want %v", name, g, ok, w)
		}
	}

	// The history of each dotted name gives the sampler's value back.
	src := &memSource{}
	for name, v := range got {
		src.add(name, 1780000000000, v)
	}
	ts = newPromServer(t, src, nil)
	for dotted, w := range snap.Dotted() {
		r := ts.do("GET", "/api/v1/metrics/"+dotted+"/history?start=1780000000&end=1780000000", "", nil)
		if r.status == 404 {
			continue // not a /metrics family
		}
		var h struct{ Points []struct{ Value *float64 } }
		json.Unmarshal(r.body, &h)
		if r.status != 200 || len(h.Points) != 1 || h.Points[0].Value == nil || math.Abs(*h.Points[0].Value-w) > 1e-9*w {
			t.Errorf("history of %s: %d %s, want %v", dotted, r.status, r.body, w)
		}
		delete(want, strings.TrimSpace(doc(r.body)))
	}
	if len(want) > 0 {
		t.Errorf("families without a dotted history: %v", want)
	}
}

func doc(b []byte) string {
	var d struct{ Metric string }
	json.Unmarshal(b, &d)
	return d.Metric
}
