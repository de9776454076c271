package sensor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsentry/netsentry/alerting"
	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
)

func addr4(s string) decode.Addr {
	var a decode.Addr
	b := netip.MustParseAddr(s).As4()
	copy(a[:], b[:])
	return a
}

// sigKey names a signal for comparison: metric{labels}.
func sigKey(s alerting.Signal) string {
	var ls []string
	for k, v := range s.Labels {
		ls = append(ls, k+"="+v)
	}
	sort.Strings(ls)
	return s.Metric + "{" + strings.Join(ls, ",") + "}"
}

func sigMap(t *testing.T, sigs []alerting.Signal, at time.Time) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, s := range sigs {
		if !s.At.Equal(at) {
			t.Errorf("%s: At %v, want the snapshot's %v", sigKey(s), s.At, at)
		}
		k := sigKey(s)
		if _, dup := m[k]; dup {
			t.Errorf("%s: twice in one snapshot", k)
		}
		m[k] = s.Value
	}
	return m
}

func TestAlertSignals(t *testing.T) {
	since := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	t0 := since.Add(time.Second)
	scanner, victim := addr4("172.16.0.8"), addr4("172.16.0.1")
	snap1 := &Snapshot{Seq: 1, At: t0, Parts: PartScan | PartHosts,
		Capture: httpd.CaptureStatus{Running: true, Since: since},
		Queues:  []engine.QueueStats{{Packets: 100, Bytes: 6000, KernelDrops: 1}, {Packets: 50, Bytes: 4000}},
		Engine: engine.Snapshot{
			Stats: flowtable.Stats{FlowsCreated: 40, FlowsEnded: 10, FlowsEvicted: 2},
			Protocols: []flowtable.ProtoStat{{Name: "DNS", Flows: 3, Packets: 6, Bytes: 600},
				{Name: "DNS", Guess: true, Flows: 1, Packets: 2, Bytes: 200}, {Name: "HTTP", Flows: 5, Packets: 50, Bytes: 5000}},
			Scan: []flowtable.SourceStats{{Addr: scanner, IPVersion: 4, Connections: 300, DistinctPorts: 250, DistinctHosts: 1},
				{Addr: victim, IPVersion: 4, Connections: 2, DistinctPorts: 1, DistinctHosts: 1}},
			FragAnomalies: []flowtable.FragAnomalies{{Addr: victim, IPVersion: 4, Tiny: 1, Overlap: 2}},
		}}
	snap1.Engine.Counters.Decode[decode.ReasonNone+1] = 3
	f := &AlertFeeder{Host: func() map[string]float64 { return map[string]float64{"cpu.usage": 12.5, "memory.usage_percent": 40} }}
	got := sigMap(t, f.Signals(snap1), t0)
	want := map[string]float64{
		"network.packets{}": 150, "network.bytes{}": 10000, "network.drops{}": 1, "network.malformed{}": 3,
		"network.flows.created{}": 40, "network.flows.ended{}": 10, "network.flows.evicted{}": 2,
		"network.protocol.flows{application_protocol=DNS}": 4, "network.protocol.packets{application_protocol=DNS}": 8,
		"network.protocol.bytes{application_protocol=DNS}":  800,
		"network.protocol.flows{application_protocol=HTTP}": 5, "network.protocol.packets{application_protocol=HTTP}": 50,
		"network.protocol.bytes{application_protocol=HTTP}": 5000,
		"network.connection_count{src_ip=172.16.0.8}":       300, "network.unique_dest_port_count{src_ip=172.16.0.8}": 250,
		"network.unique_dest_host_count{src_ip=172.16.0.8}": 1,
		"network.connection_count{src_ip=172.16.0.1}":       2, "network.unique_dest_port_count{src_ip=172.16.0.1}": 1,
		"network.unique_dest_host_count{src_ip=172.16.0.1}": 1,
		"network.fragment_anomalies{src_ip=172.16.0.1}":     3,
		"cpu.usage{}": 12.5, "memory.usage_percent{}": 40,
	}
	compareSigs(t, "snapshot 1", got, want)

	// The next tick: counts are differences; an unchanged protocol and an
	// unchanged anomaly count give no signal; a source that left the scan
	// window gets its gauges at 0, once.
	t1 := t0.Add(time.Second)
	snap2 := *snap1
	snap2.Seq, snap2.At = 2, t1
	snap2.Queues = []engine.QueueStats{{Packets: 130, Bytes: 8000, KernelDrops: 1}, {Packets: 60, Bytes: 4500, KernelDrops: 4}}
	snap2.Engine.Stats = flowtable.Stats{FlowsCreated: 45, FlowsEnded: 10, FlowsEvicted: 2}
	snap2.Engine.Protocols = []flowtable.ProtoStat{{Name: "DNS", Flows: 3, Packets: 6, Bytes: 600},
		{Name: "DNS", Guess: true, Flows: 1, Packets: 2, Bytes: 200}, {Name: "HTTP", Flows: 7, Packets: 54, Bytes: 5400}}
	snap2.Engine.Scan = []flowtable.SourceStats{{Addr: scanner, IPVersion: 4, Connections: 500, DistinctPorts: 400, DistinctHosts: 1}}
	f.Host = nil
	got = sigMap(t, f.Signals(&snap2), t1)
	want = map[string]float64{
		"network.packets{}": 40, "network.bytes{}": 2500, "network.drops{}": 4, "network.malformed{}": 0,
		"network.flows.created{}": 5, "network.flows.ended{}": 0, "network.flows.evicted{}": 0,
		"network.protocol.flows{application_protocol=HTTP}": 2, "network.protocol.packets{application_protocol=HTTP}": 4,
		"network.protocol.bytes{application_protocol=HTTP}": 400,
		"network.connection_count{src_ip=172.16.0.8}":       500, "network.unique_dest_port_count{src_ip=172.16.0.8}": 400,
		"network.unique_dest_host_count{src_ip=172.16.0.8}": 1,
		"network.connection_count{src_ip=172.16.0.1}":       0, "network.unique_dest_port_count{src_ip=172.16.0.1}": 0,
		"network.unique_dest_host_count{src_ip=172.16.0.1}": 0,
	}
	compareSigs(t, "snapshot 2", got, want)

	// A new capture: its counters start at zero, so they count from zero.
	t2 := t1.Add(time.Second)
	snap3 := Snapshot{Seq: 3, At: t2, Capture: httpd.CaptureStatus{Running: true, Since: t1},
		Queues: []engine.QueueStats{{Packets: 7, Bytes: 700}},
		Engine: engine.Snapshot{Stats: flowtable.Stats{FlowsCreated: 1},
			Protocols: []flowtable.ProtoStat{{Name: "HTTP", Flows: 1, Packets: 2, Bytes: 300}}}}
	got = sigMap(t, f.Signals(&snap3), t2)
	want = map[string]float64{
		"network.packets{}": 7, "network.bytes{}": 700, "network.drops{}": 0, "network.malformed{}": 0,
		"network.flows.created{}": 1, "network.flows.ended{}": 0, "network.flows.evicted{}": 0,
		"network.protocol.flows{application_protocol=HTTP}": 1, "network.protocol.packets{application_protocol=HTTP}": 2,
		"network.protocol.bytes{application_protocol=HTTP}": 300,
	}
	compareSigs(t, "snapshot 3 (new capture, no scan part)", got, want)

	// No rule on the scan gauges (NoScan): a scan part gives none of them,
	// the fragment anomalies still count. Asked for again, the sources of
	// the next snapshot have their gauges, and a source gone meanwhile is
	// not said to be at 0 (its state was dropped).
	t3 := t2.Add(time.Second)
	snap4 := snap3
	snap4.Seq, snap4.At, snap4.Parts = 4, t3, PartScan
	snap4.Engine.Scan = snap1.Engine.Scan
	snap4.Engine.FragAnomalies = snap1.Engine.FragAnomalies
	f.NoScan = true
	got = sigMap(t, f.Signals(&snap4), t3)
	want = map[string]float64{
		"network.packets{}": 0, "network.bytes{}": 0, "network.drops{}": 0, "network.malformed{}": 0,
		"network.flows.created{}": 0, "network.flows.ended{}": 0, "network.flows.evicted{}": 0,
		"network.fragment_anomalies{src_ip=172.16.0.1}": 3,
	}
	compareSigs(t, "snapshot 4 (NoScan)", got, want)
	t4 := t3.Add(time.Second)
	snap5 := snap4
	snap5.Seq, snap5.At = 5, t4
	snap5.Engine.Scan = snap2.Engine.Scan
	f.NoScan = false
	got = sigMap(t, f.Signals(&snap5), t4)
	want = map[string]float64{
		"network.packets{}": 0, "network.bytes{}": 0, "network.drops{}": 0, "network.malformed{}": 0,
		"network.flows.created{}": 0, "network.flows.ended{}": 0, "network.flows.evicted{}": 0,
		"network.connection_count{src_ip=172.16.0.8}": 500, "network.unique_dest_port_count{src_ip=172.16.0.8}": 400,
		"network.unique_dest_host_count{src_ip=172.16.0.8}": 1,
	}
	compareSigs(t, "snapshot 5 (scan gauges asked for again)", got, want)
}

func compareSigs(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: no signal %s, want %v", what, k, v)
		case g != v:
			t.Errorf("%s: %s = %v, want %v", what, k, g, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected signal %s = %v", what, k, v)
		}
	}
}

func TestAlertCatalog(t *testing.T) {
	live := map[string]float64{"net.veth9.rx_bytes": 1}
	c := NewCatalog([]string{"cpu.usage"}, func() map[string]float64 { return live })
	for _, m := range AlertMetrics {
		kind, keys, ok := c.Metric(m.Name)
		if !ok || kind != m.Kind || fmt.Sprint(keys) != fmt.Sprint(m.Keys) {
			t.Errorf("Metric(%q) = %v %v %v, want %v %v", m.Name, kind, keys, ok, m.Kind, m.Keys)
		}
	}
	for _, n := range []string{"cpu.usage", "net.veth9.rx_bytes"} {
		if kind, keys, ok := c.Metric(n); !ok || kind != alerting.Gauge || keys != nil {
			t.Errorf("Metric(%q) = %v %v %v, want a gauge without keys", n, kind, keys, ok)
		}
	}
	for _, n := range []string{"cpu.bogus", "network.nope", ""} {
		if _, _, ok := c.Metric(n); ok {
			t.Errorf("Metric(%q): known, want unknown", n)
		}
	}
}

// TestAlertFeedPortScan runs the description's Port Scan rule over fed
// snapshots: one alert for the scanner alone, resolved when its window
// figures fall.
func TestAlertFeedPortScan(t *testing.T) {
	cat := NewCatalog([]string{"cpu.usage"}, nil)
	r, err := alerting.ParseRule([]byte(`{"name": "Potential Port Scan", "severity": "critical", "throttle_sec": 300,
	  "conditions": [
	    {"metric": "network.connection_count", "filter": "src_ip = $src_ip", "comparator": "gt", "threshold": 100, "time_range": "60s"},
	    {"metric": "network.unique_dest_port_count", "filter": "src_ip = $src_ip", "comparator": "gt", "threshold": 20, "time_range": "60s"}],
	  "condition_logic": "AND", "notifications": [{"type": "webhook", "url": "http://127.0.0.1:1/"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	comp, err := alerting.Compile(r, cat)
	if err != nil {
		t.Fatal(err)
	}
	var got []alerting.Alert
	ev := alerting.NewEvaluator(alerting.EvalOptions{GroupWait: -1}, func(n alerting.Notification) { got = append(got, n.Alerts...) })
	ev.SetRules([]*alerting.Compiled{comp})
	f := &AlertFeeder{}
	since := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	scanner, other := addr4("172.16.0.8"), addr4("172.16.0.1")
	feed := func(i int, scan []flowtable.SourceStats) {
		snap := &Snapshot{Seq: uint64(i), At: since.Add(time.Duration(i) * time.Second), Parts: PartScan,
			Capture: httpd.CaptureStatus{Running: true, Since: since}, Engine: engine.Snapshot{Scan: scan}}
		ev.Ingest(f.Signals(snap))
		ev.Tick(snap.At)
	}
	for i := 1; i <= 5; i++ {
		feed(i, []flowtable.SourceStats{
			{Addr: scanner, IPVersion: 4, Connections: uint64(100 * i), DistinctPorts: uint64(90 * i), DistinctHosts: 1},
			{Addr: other, IPVersion: 4, Connections: 500, DistinctPorts: 3, DistinctHosts: 1}}) // many connections, few ports
	}
	if len(got) != 1 || got[0].Status != "firing" || got[0].Labels["src_ip"] != "172.16.0.8" || got[0].Severity != "critical" {
		t.Fatalf("after the scan: alerts %+v, want one firing for 172.16.0.8", got)
	}
	feed(6, nil) // the scan tracker's window emptied: the scanner is no longer in Scan
	if len(got) != 2 || got[1].Status != "resolved" || got[1].Labels["src_ip"] != "172.16.0.8" {
		t.Fatalf("after the window emptied: alerts %+v, want the firing one resolved", got)
	}
}

// fakeEval records what RunAlerts calls.
type fakeEval struct {
	mu     sync.Mutex
	calls  []string
	ingest []time.Time // At of each Ingest's first signal
	next   time.Time
}

func (e *fakeEval) Ingest(s []alerting.Signal) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, "ingest")
	if len(s) > 0 {
		e.ingest = append(e.ingest, s[0].At)
	}
}

func (e *fakeEval) Tick(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.next.IsZero() && !now.Before(e.next) {
		e.calls = append(e.calls, "tick-next")
		e.next = time.Time{}
		return
	}
	e.calls = append(e.calls, "tick")
}

func (e *fakeEval) Next() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.next
}

// TestRunAlerts: each published snapshot is ingested, then ticked at its
// time; a Tick comes at Next between snapshots; ctx ends it.
func TestRunAlerts(t *testing.T) {
	s, _ := newTestSensor(t, nil) // 20 ms snapshots
	ev := &fakeEval{next: time.Now().Add(5 * time.Millisecond)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { RunAlerts(ctx, s, &AlertFeeder{}, ev); close(done) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("RunAlerts did not return after ctx ended")
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if !slices.Contains(ev.calls, "tick-next") {
		t.Errorf("no Tick at Next: %v", ev.calls)
	}
	n := 0
	for i, c := range ev.calls {
		if c == "ingest" {
			n++
			if i+1 >= len(ev.calls) || ev.calls[i+1] != "tick" {
				t.Errorf("Ingest not followed by Tick: %v", ev.calls)
				break
			}
		}
	}
	if n < 5 {
		t.Errorf("%d snapshots ingested in 300 ms at a 20 ms interval, want at least 5", n)
	}
	for i := 1; i < len(ev.ingest); i++ {
		if !ev.ingest[i].After(ev.ingest[i-1]) {
			t.Errorf("signal times not increasing: %v", ev.ingest)
		}
	}
}

// TestAlertFeederFast: the fast path's combination of per-worker reports.
// A source's connections on two workers sum; its distinct ports are the
// larger of the workers' own and the merged snapshot's; a report older
// (by the worker's clock) than what a snapshot said of that worker changes
// nothing; a source gone from every window reads 0 once and is forgotten.
// Counts come from the workers' cumulative totals, per worker.
func TestAlertFeederFast(t *testing.T) {
	since := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	set := engine.NewFeedSet(2)
	var f AlertFeeder
	f.SetFeed(set, since)
	src := addr4("10.0.0.5")
	t0 := since.Add(time.Second).UnixNano()
	item := func(at int64, conns, ports uint64) engine.FeedItem {
		return engine.FeedItem{At: at, Kind: engine.FeedSource, IPVersion: 4, Addr: src, N: [6]uint64{conns, ports, 1}}
	}
	vals := func(sigs []alerting.Signal) (conns, ports float64) {
		t.Helper()
		for _, s := range sigs {
			if s.Labels[LabelSrcIP] != "10.0.0.5" {
				continue
			}
			switch s.Metric {
			case "network.connection_count":
				conns = s.Value
			case "network.unique_dest_port_count":
				ports = s.Value
			}
		}
		return
	}
	sigs := f.Fast([]engine.FeedItem{item(t0, 300, 300), item(t0+1, 250, 280)}, []int{0, 1})
	if c, p := vals(sigs); c != 550 || p != 300 {
		t.Fatalf("two workers: conns %v ports %v, want 550 (sum) and 300 (max)", c, p)
	}
	if got := sigs[len(sigs)-1].At; !got.Equal(time.Unix(0, t0+1)) {
		t.Errorf("At %v, want the worker's clock", got)
	}
	// The snapshot: worker 0 saw 310 by t0+10, worker 1 no newer than its
	// report (its figure stays); the union of ports is 520.
	snap := &Snapshot{At: time.Unix(0, t0+20), Parts: PartScan, Capture: httpd.CaptureStatus{Running: true, Since: since},
		Engine: engine.Snapshot{Scan: []flowtable.SourceStats{{Addr: src, IPVersion: 4, Connections: 560, DistinctPorts: 520, DistinctHosts: 1}}},
		ScanQueues: []QueueScan{
			{Now: t0 + 10, Scan: []flowtable.SourceStats{{Addr: src, IPVersion: 4, Connections: 310, DistinctPorts: 305, DistinctHosts: 1}}},
			{Now: t0, Scan: []flowtable.SourceStats{{Addr: src, IPVersion: 4, Connections: 240, DistinctPorts: 270, DistinctHosts: 1}}},
		}}
	if c, p := vals(f.Signals(snap)); c != 560 || p != 520 {
		t.Fatalf("after the snapshot: conns %v ports %v, want 560 and 520", c, p)
	}
	// A late report of worker 0 from before the snapshot's view of it.
	if c, _ := vals(f.Fast([]engine.FeedItem{item(t0+5, 305, 302)}, []int{0})); c != 560 {
		t.Fatalf("a stale report changed the sum to %v", c)
	}
	if c, p := vals(f.Fast([]engine.FeedItem{item(t0+30, 400, 410)}, []int{0})); c != 650 || p != 520 {
		t.Fatalf("a new report: conns %v ports %v, want 650 and 520", c, p)
	}
	// Gone from every window.
	gone := &Snapshot{At: time.Unix(0, t0+90e9), Parts: PartScan, Capture: snap.Capture,
		ScanQueues: []QueueScan{{Now: t0 + 90e9}, {Now: t0 + 90e9}}}
	sigs = f.Signals(gone)
	if c, p := vals(sigs); c != 0 || p != 0 || !slices.ContainsFunc(sigs, func(s alerting.Signal) bool { return s.Labels[LabelSrcIP] == "10.0.0.5" }) {
		t.Fatalf("gone: conns %v ports %v (%d signals), want 0 once", c, p, len(sigs))
	}
	if slices.ContainsFunc(f.Signals(gone), func(s alerting.Signal) bool { return s.Labels[LabelSrcIP] == "10.0.0.5" }) {
		t.Fatal("a gone source read 0 twice")
	}
	// Totals: per worker deltas of the cumulative counters; the snapshot
	// path gives only network.drops for this capture.
	tot := func(at int64, pk uint64) engine.FeedItem {
		return engine.FeedItem{At: at, Kind: engine.FeedTotals, N: [6]uint64{pk, pk * 60}}
	}
	sum := map[string]float64{}
	for _, s := range f.Fast([]engine.FeedItem{tot(t0, 10), tot(t0, 7), tot(t0+1, 25), tot(t0+1, 7)}, []int{0, 1, 0, 1}) {
		sum[s.Metric] += s.Value
	}
	if sum["network.packets"] != 32 || sum["network.bytes"] != 32*60 {
		t.Fatalf("fast totals %v, want 32 packets", sum)
	}
	snapC := &Snapshot{At: time.Unix(0, t0+95e9), Capture: snap.Capture, Queues: []engine.QueueStats{{Packets: 32, KernelDrops: 3}}}
	m := map[string]float64{}
	for _, s := range f.Signals(snapC) {
		m[s.Metric] = s.Value
	}
	if _, ok := m["network.packets"]; ok || m["network.drops"] != 3 {
		t.Fatalf("snapshot signals with a feed: %v, want network.drops alone of the counts", m)
	}
}
