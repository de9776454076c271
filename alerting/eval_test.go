package alerting

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

var (
	emailCh   = Channel{Type: "email", Recipients: []string{"security@example.com"}}
	webhookCh = Channel{Type: "webhook", URL: "https://example.com/security-alerts"}
)

// portScanRule is the description's "Potential Port Scan" rule, compiled as
// RULES' Compile would: network.connection_count counts new connections per
// src_ip; network.unique_dest_port_count is the scan tracker's distinct
// count over its own 60 s window, so a gauge.
func portScanRule(logic string) *Compiled {
	th := 0.0
	_ = th
	return &Compiled{
		Rule: Rule{
			ID: "r1", Name: "Potential Port Scan", Description: "Detects potential port scanning activity",
			ConditionLogic: logic, Severity: "critical", ThrottleSec: 300,
			Notifications: []Channel{emailCh, webhookCh},
		},
		Logic: logic,
		Conds: []CompiledCond{
			{Metric: "network.connection_count", Kind: Count, Cmp: GT, Threshold: 100, Window: 60 * time.Second, Vars: map[string]string{"src_ip": "$src_ip"}},
			{Metric: "network.unique_dest_port_count", Kind: Gauge, Cmp: GT, Threshold: 20, Window: 60 * time.Second, Vars: map[string]string{"src_ip": "$src_ip"}},
		},
		GroupVars: []string{"$src_ip"},
		Throttle:  300 * time.Second,
	}
}

type collector struct{ got []Notification }

func (c *collector) out(n Notification) { c.got = append(c.got, n) }

func (c *collector) alerts(status string) []Alert {
	var a []Alert
	for _, n := range c.got {
		if n.Channel.Type != "webhook" {
			continue
		}
		for _, x := range n.Alerts {
			if x.Status == status {
				a = append(a, x)
			}
		}
	}
	return a
}

// conn is one connection a synthetic source starts.
type conn struct {
	at   time.Time
	src  string
	port int
}

// scanFeed turns connections into the sensor's signals: +1 on
// connection_count and the distinct destination ports of the last 60 s (the
// scan tracker's figure, computed here naively from the connection list).
type scanFeed struct{ seen map[string]map[int]time.Time }

func (f *scanFeed) signals(c conn) []Signal {
	if f.seen == nil {
		f.seen = map[string]map[int]time.Time{}
	}
	if f.seen[c.src] == nil {
		f.seen[c.src] = map[int]time.Time{}
	}
	f.seen[c.src][c.port] = c.at
	ports := 0
	for _, at := range f.seen[c.src] {
		if !at.Before(c.at.Add(-60 * time.Second)) {
			ports++
		}
	}
	l := map[string]string{"src_ip": c.src}
	return []Signal{
		{Metric: "network.connection_count", Labels: l, Value: 1, At: c.at},
		{Metric: "network.unique_dest_port_count", Labels: l, Value: float64(ports), At: c.at},
	}
}

// scanStream: 10.0.0.5 scans 300 ports in 30 s (one connection every
// 100 ms); 10.0.0.6 makes 200 connections to 3 ports (crosses the count
// only); 10.0.0.7 makes 10 connections to 10 ports. Ticks every 100 ms.
func runScan(t *testing.T, e *Evaluator, f *scanFeed, start time.Time, dur time.Duration) (crossing time.Time) {
	t.Helper()
	n5 := 0
	for d := time.Duration(0); d < dur; d += 100 * time.Millisecond {
		at := start.Add(d)
		i := int(d / (100 * time.Millisecond))
		e.Ingest(f.signals(conn{at, "10.0.0.5", 1000 + i}))
		n5++
		if n5 == 101 {
			crossing = at // count 101 > 100 with 101 > 20 ports: both hold
		}
		if i < 200 {
			e.Ingest(f.signals(conn{at.Add(time.Millisecond), "10.0.0.6", 80 + i%3}))
		}
		if i < 10 {
			e.Ingest(f.signals(conn{at.Add(2 * time.Millisecond), "10.0.0.7", 20 + i}))
		}
		e.Tick(at.Add(50 * time.Millisecond))
	}
	return crossing
}

func tickUntil(e *Evaluator, from, to time.Time, step time.Duration) {
	for at := from; !at.After(to); at = at.Add(step) {
		e.Tick(at)
	}
}

func TestPortScanRule(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: 20 * time.Millisecond}, c.out)
	e.SetRules([]*Compiled{portScanRule("AND")})
	crossing := runScan(t, e, &scanFeed{}, t0, 30*time.Second)

	fired := c.alerts("firing")
	if len(fired) != 1 {
		t.Fatalf("firing alerts: got %d (%+v), want exactly 1 for 10.0.0.5", len(fired), fired)
	}
	a := fired[0]
	if a.GroupKey != "src_ip=10.0.0.5" || a.Labels["src_ip"] != "10.0.0.5" || a.Severity != "critical" ||
		a.Labels["severity"] != "critical" || a.Labels["alertname"] != "Potential Port Scan" || a.RuleID != "r1" {
		t.Errorf("alert: %+v", a)
	}
	if !a.StartsAt.Equal(crossing) {
		t.Errorf("StartsAt %v, want the 101st connection at %v", a.StartsAt, crossing)
	}
	// The crossing signal is the 101st connection; the port gauge read 100
	// (the reading that follows it brings 101).
	if a.Values["network.connection_count"] != 101 || a.Values["network.unique_dest_port_count"] != 100 {
		t.Errorf("values %v, want 101 connections and 100 ports", a.Values)
	}
	if len(c.got) != 2 || c.got[0].Channel.Type != "email" || c.got[1].Channel.Type != "webhook" || c.got[0].Rule != "Potential Port Scan" {
		t.Errorf("notifications: %+v, want one per channel (email, webhook)", c.got)
	}
	act := e.Active()
	if len(act) != 1 || act[0].GroupKey != "src_ip=10.0.0.5" {
		t.Errorf("Active: %+v", act)
	}

	// The scan stopped at t0+30s: the count falls to 100 when the 201st-last
	// connection leaves the window, and the gauge goes stale 60-70 s after
	// the last reading: resolved within 70 s of the last connection.
	last := t0.Add(30*time.Second - 100*time.Millisecond)
	tickUntil(e, t0.Add(30*time.Second), t0.Add(120*time.Second), 100*time.Millisecond)
	res := c.alerts("resolved")
	if len(res) != 1 || res[0].GroupKey != "src_ip=10.0.0.5" {
		t.Fatalf("resolved: %+v", res)
	}
	if !res[0].EndsAt.After(last.Add(30*time.Second)) || res[0].EndsAt.After(last.Add(70*time.Second)) {
		t.Errorf("resolved at %v, want within (30 s, 70 s] after the last connection %v", res[0].EndsAt, last)
	}
	if len(e.Active()) != 0 {
		t.Errorf("Active after resolve: %+v", e.Active())
	}
	h := e.History(time.Time{}, time.Time{})
	if len(h) != 2 || h[0].Status != "firing" || h[1].Status != "resolved" {
		t.Errorf("history: %+v", h)
	}
	if h := e.History(t0.Add(40*time.Second), time.Time{}); len(h) != 1 || h[0].Status != "resolved" {
		t.Errorf("history from t0+40s: %+v", h)
	}
	// 10.0.0.5 is kept (empty) while its throttle window runs, so that a
	// new scan within throttle_sec is held; then freed.
	if st := e.Stats(); st.Instances != 1 || st.Sent != 4 {
		t.Errorf("stats %+v: want 10.0.0.5's instance kept and 4 notifications (2 channels x firing, resolved)", st)
	}
	tickUntil(e, t0.Add(121*time.Second), t0.Add(340*time.Second), time.Second)
	if st := e.Stats(); st.Instances != 0 || st.Sent != 4 {
		t.Errorf("stats %+v: want every instance freed after the throttle window", st)
	}
}

func TestPortScanOR(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: 20 * time.Millisecond}, c.out)
	e.SetRules([]*Compiled{portScanRule("OR")})
	runScan(t, e, &scanFeed{}, t0, 30*time.Second)
	got := map[string]bool{}
	for _, a := range c.alerts("firing") {
		got[a.GroupKey] = true
	}
	// OR: 10.0.0.5 (both), 10.0.0.6 (200 connections); 10.0.0.7 has 10
	// connections and 10 ports: neither.
	if len(got) != 2 || !got["src_ip=10.0.0.5"] || !got["src_ip=10.0.0.6"] {
		t.Errorf("OR fired for %v, want 10.0.0.5 and 10.0.0.6", got)
	}
}

func TestThrottle(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: 20 * time.Millisecond}, c.out)
	e.SetRules([]*Compiled{portScanRule("AND")})
	// Scan for 250 s: one firing notification, held to one within 300 s.
	var f scanFeed
	runScan(t, e, &f, t0, 250*time.Second)
	if n := len(c.alerts("firing")); n != 1 {
		t.Fatalf("firing notifications in 250 s: %d, want 1 (throttle_sec 300)", n)
	}
	first := c.alerts("firing")[0].StartsAt
	// Still firing past the throttle window: one reminder, 300 s after the
	// first notification (sent GroupWait after StartsAt).
	var reminder time.Time
	for d := 250 * time.Second; d < 400*time.Second; d += 100 * time.Millisecond {
		e.Ingest(f.signals(conn{t0.Add(d), "10.0.0.5", 1000 + int(d/(100*time.Millisecond))}))
		e.Tick(t0.Add(d + 50*time.Millisecond))
		if len(c.alerts("firing")) == 2 && reminder.IsZero() {
			reminder = t0.Add(d + 50*time.Millisecond)
		}
	}
	fired := c.alerts("firing")
	if len(fired) != 2 || !fired[1].StartsAt.Equal(first) {
		t.Fatalf("firing notifications in 400 s: %+v, want 2 (first + reminder of the same episode)", fired)
	}
	if want := first.Add(300*time.Second + 20*time.Millisecond); reminder.Before(want) || reminder.After(want.Add(200*time.Millisecond)) {
		t.Errorf("reminder sent by %v, want just after %v", reminder, want)
	}
	if st := e.Stats(); st.Firing != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestThrottleFlap: a source that resolves and fires again within
// throttle_sec is held, and notified when the window ends if still firing.
func TestThrottleFlap(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: -1}, c.out)
	r := &Compiled{
		Rule:      Rule{ID: "f", Name: "flap", Severity: "warning", Notifications: []Channel{webhookCh}},
		Conds:     []CompiledCond{{Metric: "m", Kind: Gauge, Cmp: GT, Threshold: 5, Window: 10 * time.Second, Vars: map[string]string{"src_ip": "$src_ip"}}},
		GroupVars: []string{"$src_ip"}, Throttle: 60 * time.Second,
	}
	e.SetRules([]*Compiled{r})
	l := map[string]string{"src_ip": "10.1.1.1"}
	feed := func(sec int, v float64) {
		e.Ingest([]Signal{{Metric: "m", Labels: l, Value: v, At: t0.Add(time.Duration(sec) * time.Second)}})
	}
	feed(0, 9)  // fires: notified
	feed(5, 1)  // resolves: notified
	feed(10, 9) // fires within 60 s of the first notification: held
	feed(20, 1) // resolves: never notified as firing, so no resolved either
	feed(30, 9) // fires again: held until t0+60s
	for s := 31; s <= 59; s++ {
		feed(s, 9)
	}
	if got := len(c.got); got != 2 {
		t.Fatalf("notifications before t0+60s: %d (%+v), want 2 (firing, resolved)", got, c.got)
	}
	feed(60, 9)
	if len(c.got) != 3 || c.got[2].Alerts[0].Status != "firing" || !c.got[2].Alerts[0].StartsAt.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("after the throttle window: %+v, want the held firing (started t0+30s)", c.got)
	}
	if st := e.Stats(); st.Throttled != 2 {
		t.Errorf("throttled %d, want 2", st.Throttled)
	}
	if h := e.History(time.Time{}, time.Time{}); len(h) != 5 {
		t.Errorf("history has %d changes, want 5 (every fire and resolve)", len(h))
	}
}

func TestFilters(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: -1}, c.out)
	e.SetRules([]*Compiled{{
		Rule: Rule{ID: "f", Name: "tcp not 443", Severity: "info", Notifications: []Channel{webhookCh}},
		Conds: []CompiledCond{{
			Metric: "network.connection_count", Kind: Count, Cmp: GTE, Threshold: 3, Window: 10 * time.Second,
			Equal: map[string]string{"proto": "tcp"}, NotEqual: map[string]string{"dst_port": "443"},
			Vars: map[string]string{"src_ip": "$src_ip"},
		}},
		GroupVars: []string{"$src_ip"},
	}})
	sig := func(ms int, src string, l ...string) Signal {
		m := map[string]string{"src_ip": src}
		for i := 0; i < len(l); i += 2 {
			m[l[i]] = l[i+1]
		}
		return Signal{Metric: "network.connection_count", Labels: m, Value: 1, At: t0.Add(time.Duration(ms) * time.Millisecond)}
	}
	e.Ingest([]Signal{
		sig(1, "a", "proto", "udp"), sig(2, "a", "proto", "udp"), sig(3, "a", "proto", "udp"), // wrong proto
		sig(4, "b", "proto", "tcp", "dst_port", "443"), sig(5, "b", "proto", "tcp", "dst_port", "443"), sig(6, "b", "proto", "tcp", "dst_port", "443"),
		sig(7, "c"), sig(8, "c"), sig(9, "c"), // no proto label: Equal fails
		{Metric: "network.connection_count", Labels: map[string]string{"proto": "tcp"}, Value: 5, At: t0.Add(10 * time.Millisecond)}, // no src_ip
		sig(11, "d", "proto", "tcp"), sig(12, "d", "proto", "tcp", "dst_port", "80"), // absent and other dst_port pass
	})
	if len(c.got) != 0 {
		t.Fatalf("fired on filtered signals: %+v", c.got)
	}
	e.Ingest([]Signal{sig(13, "d", "proto", "tcp", "dst_port", "22")})
	if len(c.got) != 1 || c.got[0].Alerts[0].GroupKey != "src_ip=d" || c.got[0].Alerts[0].Values["network.connection_count"] != 3 {
		t.Fatalf("got %+v, want one alert for src_ip=d with 3 connections", c.got)
	}
	if st := e.Stats(); st.Instances != 1 {
		t.Errorf("instances %d: filtered signals must not make instances", st.Instances)
	}
}

func TestGaugeRule(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: -1, DefaultChannels: []Channel{webhookCh}}, c.out)
	gauge := func(id string, cmp Comparator) *Compiled {
		return &Compiled{Rule: Rule{ID: id, Name: "cpu " + id, Severity: "warning"},
			Conds: []CompiledCond{{Metric: "cpu.usage", Kind: Gauge, Cmp: cmp, Threshold: 0}}}
	}
	e.SetRules([]*Compiled{gauge("gt", GT), gauge("lt", LT)})
	for i := range 30 {
		e.Ingest([]Signal{{Metric: "cpu.usage", Value: 3.5 + float64(i%3), At: t0.Add(time.Duration(i) * time.Second)}})
	}
	if len(c.got) != 1 || c.got[0].Rule != "cpu gt" || c.got[0].Channel.URL != webhookCh.URL || c.got[0].Alerts[0].GroupKey != "" ||
		c.got[0].Alerts[0].Values["cpu.usage"] != 3.5 {
		t.Fatalf("got %+v, want one alert of cpu gt (to the default channel) with cpu.usage 3.5", c.got)
	}
	// No reading for InstantWindow (+ a bucket): stale, resolved. lt 0 never fired.
	tickUntil(e, t0.Add(30*time.Second), t0.Add(100*time.Second), time.Second)
	if len(c.got) != 2 || c.got[1].Alerts[0].Status != "resolved" || c.got[1].Rule != "cpu gt" {
		t.Fatalf("got %+v, want cpu gt resolved once stale", c.got)
	}
	end := c.got[1].Alerts[0].EndsAt
	if last := t0.Add(29 * time.Second); end.Before(last.Add(InstantWindow)) || end.After(last.Add(InstantWindow*7/6+time.Second)) {
		t.Errorf("resolved at %v, want within a bucket after %v", end, last.Add(InstantWindow))
	}
}

func TestGrouping(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: time.Second}, c.out)
	r := portScanRule("AND")
	r.Conds = r.Conds[:1]
	r.Conds[0].Threshold = 2
	e.SetRules([]*Compiled{r})
	var sig []Signal
	for i := range 5 {
		l := map[string]string{"src_ip": "10.0.0." + strconv.Itoa(i)}
		for k := range 3 {
			sig = append(sig, Signal{Metric: "network.connection_count", Labels: l, Value: 1, At: t0.Add(time.Duration(100*i+k) * time.Millisecond)})
		}
	}
	e.Ingest(sig)
	if len(c.got) != 0 {
		t.Fatalf("sent before group_wait: %+v", c.got)
	}
	e.Tick(t0.Add(999 * time.Millisecond))
	if len(c.got) != 0 {
		t.Fatalf("sent before group_wait: %+v", c.got)
	}
	e.Tick(t0.Add(1002 * time.Millisecond))
	if len(c.got) != 2 {
		t.Fatalf("notifications: %d, want 2 (one per channel)", len(c.got))
	}
	for _, n := range c.got {
		if len(n.Alerts) != 5 {
			t.Errorf("%s notification has %d alerts, want 5", n.Channel.Type, len(n.Alerts))
		}
	}
	// A sixth source after the flush opens a new batch.
	l := map[string]string{"src_ip": "10.0.0.9"}
	for k := range 3 {
		e.Ingest([]Signal{{Metric: "network.connection_count", Labels: l, Value: 1, At: t0.Add(time.Duration(1500+k) * time.Millisecond)}})
	}
	e.Tick(t0.Add(2600 * time.Millisecond))
	if len(c.got) != 4 || len(c.got[3].Alerts) != 1 || c.got[3].Alerts[0].GroupKey != "src_ip=10.0.0.9" {
		t.Errorf("second batch: %+v", c.got[2:])
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// floodHeap feeds n distinct sources one connection each (labels built
// ahead) and returns the heap the evaluator holds afterwards.
func floodHeap(t *testing.T, n, max int) (uint64, *Evaluator, *collector) {
	labels := make([]map[string]string, n)
	for i := range labels {
		labels[i] = map[string]string{"src_ip": fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
	}
	c := &collector{}
	before := heapInUse()
	e := NewEvaluator(EvalOptions{MaxInstances: max, GroupWait: -1, DefaultChannels: []Channel{webhookCh}}, c.out)
	e.SetRules([]*Compiled{portScanRule("AND")})
	batch := make([]Signal, 0, 1000)
	for i := range labels {
		at := t0.Add(time.Duration(i) * time.Microsecond)
		batch = append(batch, Signal{Metric: "network.connection_count", Labels: labels[i], Value: 1, At: at},
			Signal{Metric: "network.unique_dest_port_count", Labels: labels[i], Value: 1, At: at})
		if len(batch) == cap(batch) {
			e.Ingest(batch)
			batch = batch[:0]
		}
	}
	e.Ingest(batch)
	after := heapInUse()
	runtime.KeepAlive(labels)
	return after - before, e, c
}

func TestInstanceCap(t *testing.T) {
	const max = 10_000
	small, _, _ := floodHeap(t, max, max)
	big, e, c := floodHeap(t, 100_000, max)
	t.Logf("evaluator heap: %d keys %d B (%d B/instance), 100000 keys capped at %d: %d B", max, small, small/max, max, big)
	if big > small*3/2 {
		t.Errorf("heap with 100k keys %d B > 1.5 x heap with 10k keys %d B: not bounded by the cap", big, small)
	}
	if small/max > 1024 {
		t.Errorf("%d B per instance, want <= 1 KiB", small/max)
	}
	st := e.Stats()
	if st.Instances != max || st.Overflow != 100_000-max || st.Evicted+st.Refused != st.Overflow || !st.OverflowFiring {
		t.Errorf("stats %+v: want %d instances, %d overflow", st, max, 100_000-max)
	}
	if len(c.got) != 1 || c.got[0].Rule != OverflowRule || c.got[0].Alerts[0].Status != "firing" {
		t.Fatalf("notifications %+v, want the overflow alert once", c.got)
	}
	if act := e.Active(); len(act) != 1 || act[0].Rule != OverflowRule {
		t.Errorf("Active %+v", act)
	}
	// The flood stops: windows empty, instances are freed, the alert resolves once.
	tickUntil(e, t0.Add(time.Second), t0.Add(90*time.Second), time.Second)
	if st := e.Stats(); st.Instances != 0 || st.OverflowFiring {
		t.Errorf("after the flood: %+v", st)
	}
	if len(c.got) != 2 || c.got[1].Rule != OverflowRule || c.got[1].Alerts[0].Status != "resolved" {
		t.Errorf("notifications %+v, want the overflow alert resolved once", c.got)
	}
}

// TestCapKeepsFiring: at the cap, a firing instance is never evicted, and a
// new source still gets an instance by evicting an idle one.
func TestCapKeepsFiring(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{MaxInstances: 100, GroupWait: -1}, c.out)
	r := portScanRule("AND")
	r.Conds = r.Conds[:1]
	r.Conds[0].Threshold = 2
	e.SetRules([]*Compiled{r})
	hot := map[string]string{"src_ip": "hot"}
	for k := range 3 {
		e.Ingest([]Signal{{Metric: "network.connection_count", Labels: hot, Value: 1, At: t0.Add(time.Duration(k) * time.Millisecond)}})
	}
	for i := range 1000 {
		e.Ingest([]Signal{{Metric: "network.connection_count", Labels: map[string]string{"src_ip": strconv.Itoa(i)}, Value: 1, At: t0.Add(time.Duration(10+i) * time.Millisecond)}})
	}
	late := map[string]string{"src_ip": "late"}
	for k := range 3 {
		e.Ingest([]Signal{{Metric: "network.connection_count", Labels: late, Value: 1, At: t0.Add(time.Duration(2000+k) * time.Millisecond)}})
	}
	keys := map[string]bool{}
	for _, a := range e.Active() {
		if a.Rule != OverflowRule {
			keys[a.GroupKey] = true
		}
	}
	if !keys["src_ip=hot"] || !keys["src_ip=late"] || len(keys) != 2 {
		t.Errorf("active %v, want hot (kept at the cap) and late (got an evicted slot)", keys)
	}
}

func TestSetRulesKeepsState(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: -1}, c.out)
	r := portScanRule("AND")
	r.Conds = r.Conds[:1]
	r.Conds[0].Threshold = 2
	e.SetRules([]*Compiled{r})
	l := map[string]string{"src_ip": "x"}
	for k := range 3 {
		e.Ingest([]Signal{{Metric: "network.connection_count", Labels: l, Value: 1, At: t0.Add(time.Duration(k) * time.Second)}})
	}
	cp := *r
	e.SetRules([]*Compiled{&cp}) // same rule: state kept, no new notification
	e.Ingest([]Signal{{Metric: "network.connection_count", Labels: l, Value: 1, At: t0.Add(4 * time.Second)}})
	if len(c.got) != 2 {
		t.Fatalf("got %d notifications, want 2 (fired once, one per channel)", len(c.got))
	}
	e.SetRules(nil) // removed while firing: resolved
	if len(c.got) != 4 || c.got[3].Alerts[0].Status != "resolved" {
		t.Fatalf("after removal %+v", c.got)
	}
	if st := e.Stats(); st.Instances != 0 || st.Rules != 0 {
		t.Errorf("stats %+v", st)
	}
	bad := portScanRule("AND")
	bad.Conds[1].Vars = nil
	bad.Conds[1].Equal = nil
	bad.GroupVars = []string{"$src_ip", "$dst_ip"}
	bad.Conds[0].Vars = map[string]string{"src_ip": "$src_ip", "dst_ip": "$dst_ip"}
	bad.Conds[1].Vars = map[string]string{"src_ip": "$src_ip"} // binds one of two
	e.SetRules([]*Compiled{bad})
	if st := e.Stats(); st.RulesRejected != 1 || st.Rules != 0 {
		t.Errorf("partial binding: %+v, want rejected", st)
	}
}

// TestIngestAllocs: feeding instances that exist, without a state change,
// allocates nothing.
func TestIngestAllocs(t *testing.T) {
	e := NewEvaluator(EvalOptions{GroupWait: -1}, nil)
	e.SetRules([]*Compiled{portScanRule("AND")})
	sig := make([]Signal, 100)
	for i := range sig {
		sig[i] = Signal{Metric: "network.connection_count", Labels: map[string]string{"src_ip": strconv.Itoa(i)}, Value: 1, At: t0}
	}
	e.Ingest(sig)
	at := t0
	allocs := testing.AllocsPerRun(100, func() {
		at = at.Add(time.Millisecond)
		for i := range sig {
			sig[i].At = at
		}
		e.Ingest(sig)
	})
	if allocs != 0 {
		t.Errorf("Ingest of 100 known sources: %v allocations, want 0", allocs)
	}
}

// TestOutMayCallBack: out runs after the evaluator's lock is released, so a
// receiver that reads Active or Stats does not deadlock.
func TestOutMayCallBack(t *testing.T) {
	var e *Evaluator
	seen := 0
	e = NewEvaluator(EvalOptions{GroupWait: -1, DefaultChannels: []Channel{webhookCh}}, func(n Notification) {
		seen = len(e.Active()) + int(e.Stats().Sent)
	})
	e.SetRules([]*Compiled{{Rule: Rule{ID: "c", Name: "cpu"}, Conds: []CompiledCond{{Metric: "cpu.usage", Kind: Gauge, Cmp: GT}}}})
	e.Ingest([]Signal{{Metric: "cpu.usage", Value: 1, At: t0}})
	if seen != 2 {
		t.Errorf("out saw %d, want 1 active + 1 sent", seen)
	}
}

// TestHistoryBounded: History keeps the last HistorySize changes, in order,
// and counts the ones that left.
func TestHistoryBounded(t *testing.T) {
	e := NewEvaluator(EvalOptions{GroupWait: -1, DefaultChannels: []Channel{webhookCh}}, nil)
	e.SetRules([]*Compiled{{Rule: Rule{ID: "c", Name: "cpu"}, Conds: []CompiledCond{{Metric: "cpu.usage", Kind: Gauge, Cmp: GT}}}})
	const changes = HistorySize + 500
	for i := range changes {
		e.Ingest([]Signal{{Metric: "cpu.usage", Value: float64((i + 1) % 2), At: t0.Add(time.Duration(i) * time.Second)}})
	}
	h := e.History(time.Time{}, time.Time{})
	if len(h) != HistorySize || e.Stats().HistoryDropped != 500 {
		t.Fatalf("history %d entries, dropped %d; want %d, 500", len(h), e.Stats().HistoryDropped, HistorySize)
	}
	// Change i happens at t0+i s: the oldest kept is change 500.
	if first := h[0]; first.Status != "firing" || !first.StartsAt.Equal(t0.Add(500*time.Second)) {
		t.Errorf("oldest kept: %+v", first)
	}
	for i := 1; i < len(h); i++ {
		if h[i].Status == h[i-1].Status {
			t.Fatalf("entry %d: %s after %s", i, h[i].Status, h[i-1].Status)
		}
	}
	if got := e.History(t0.Add(10000*time.Second), t0.Add(10009*time.Second)); len(got) != 10 {
		t.Errorf("10 s range: %d entries, want 10", len(got))
	}
	if e.Stats().Dropped == 0 {
		t.Errorf("notifications without an out function are not counted as dropped")
	}
}

// TestNext: Next names the time of the next window boundary or group_wait
// flush, so the feeder can sleep until then.
func TestNext(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: 300 * time.Millisecond, DefaultChannels: []Channel{webhookCh}}, c.out)
	e.SetRules([]*Compiled{{Rule: Rule{ID: "c", Name: "cpu"}, Conds: []CompiledCond{{Metric: "cpu.usage", Kind: Gauge, Cmp: GT, Window: 60 * time.Second}}}})
	at := t0.Add(time.Second)
	e.Ingest([]Signal{{Metric: "cpu.usage", Value: 1, At: at}})
	if n := e.Next(); !n.Equal(at.Add(300 * time.Millisecond)) {
		t.Errorf("Next %v, want the group_wait flush at %v", n, at.Add(300*time.Millisecond))
	}
	e.Tick(e.Next())
	if len(c.got) != 1 {
		t.Fatalf("no notification at Next")
	}
	if n := e.Next(); !n.Equal(t0.Add(10 * time.Second)) { // the 10 s bucket boundary
		t.Errorf("Next %v, want the bucket boundary %v", n, t0.Add(10*time.Second))
	}
}

// TestSharedCondition: a condition that binds none of the rule's variables
// (cpu.usage in a per-source rule) is one window shared by the instances; a
// change of it re-evaluates them all.
func TestSharedCondition(t *testing.T) {
	var c collector
	e := NewEvaluator(EvalOptions{GroupWait: -1}, c.out)
	e.SetRules([]*Compiled{{
		Rule:  Rule{ID: "s", Name: "scan under load", Severity: "warning", Notifications: []Channel{webhookCh}},
		Logic: "AND",
		Conds: []CompiledCond{
			{Metric: "network.connection_count", Kind: Count, Cmp: GT, Threshold: 2, Window: 10 * time.Second, Vars: map[string]string{"src_ip": "src_ip"}},
			{Metric: "cpu.usage", Kind: Gauge, Cmp: GT, Threshold: 50},
		},
		GroupVars: []string{"src_ip"}, // RULES' Compile writes them without the '$'
	}})
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	conn := func(ms int, src string) Signal {
		return Signal{Metric: "network.connection_count", Labels: map[string]string{"src_ip": src}, Value: 1, At: at(ms)}
	}
	e.Ingest([]Signal{{Metric: "cpu.usage", Value: 10, At: at(0)}, conn(1, "a"), conn(2, "a"), conn(3, "a"), conn(4, "b"), conn(5, "c"), conn(6, "c"), conn(7, "c")})
	if len(c.got) != 0 {
		t.Fatalf("fired with cpu.usage 10: %+v", c.got)
	}
	e.Ingest([]Signal{{Metric: "cpu.usage", Value: 80, At: at(100)}})
	keys := map[string]float64{}
	for _, a := range c.alerts("firing") {
		keys[a.GroupKey] = a.Values["cpu.usage"]
	}
	if len(c.got) != 1 || len(keys) != 2 || keys["src_ip=a"] != 80 || keys["src_ip=c"] != 80 {
		t.Fatalf("after cpu.usage 80: %+v, want a and c in one notification", c.got)
	}
	e.Ingest([]Signal{{Metric: "cpu.usage", Value: 20, At: at(200)}})
	if r := c.alerts("resolved"); len(r) != 2 {
		t.Errorf("after cpu.usage 20: %d resolved, want 2", len(r))
	}
}

// TestConcurrentReaders: Active, History, Stats and SetRules from other
// goroutines while the feeder ingests (run with -race).
func TestConcurrentReaders(t *testing.T) {
	var mu sync.Mutex
	sent := 0
	e := NewEvaluator(EvalOptions{GroupWait: time.Millisecond}, func(Notification) { mu.Lock(); sent++; mu.Unlock() })
	r := portScanRule("OR")
	e.SetRules([]*Compiled{r})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			_ = e.Active()
			_ = e.History(time.Time{}, time.Time{})
			_ = e.Stats()
			if i%50 == 0 {
				cp := *r
				e.SetRules([]*Compiled{&cp})
			}
		}
	}()
	var f scanFeed
	for i := range 3000 {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		e.Ingest(f.signals(conn{at, "10.0.0." + strconv.Itoa(i%7), i}))
		e.Tick(at.Add(5 * time.Millisecond))
	}
	close(done)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if sent == 0 {
		t.Errorf("no notification")
	}
}
