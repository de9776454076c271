package sensor

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/netsentry/netsentry/alerting"
	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
)

// Label keys of the alerting metrics.
const (
	LabelSrcIP    = "src_ip"
	LabelProtocol = "application_protocol"
)

// AlertMetric describes one metric alert rules may use.
type AlertMetric struct {
	Name string
	Kind alerting.MetricKind
	Keys []string // label keys a filter may use; nil: unlabelled
	Doc  string
}

// AlertMetrics are the metrics the feeder makes from every snapshot (host
// metrics come in addition, see Catalog). Counts are the new events since
// the previous snapshot (one signal per snapshot); gauges a level.
var AlertMetrics = []AlertMetric{
	{"network.connection_count", alerting.Gauge, []string{LabelSrcIP},
		"connections (flows) the source opened in the scan tracker's sliding window (60 s)"},
	{"network.unique_dest_port_count", alerting.Gauge, []string{LabelSrcIP},
		"distinct destination ports the source reached in the scan tracker's window"},
	{"network.unique_dest_host_count", alerting.Gauge, []string{LabelSrcIP},
		"distinct destination hosts the source reached in the scan tracker's window"},
	{"network.fragment_anomalies", alerting.Count, []string{LabelSrcIP},
		"new IP fragment anomalies (tiny first fragment, overlap, conflicting overlap) of the source"},
	{"network.packets", alerting.Count, nil, "packets captured (all queues)"},
	{"network.bytes", alerting.Count, nil, "bytes captured (all queues)"},
	{"network.drops", alerting.Count, nil, "packets the kernel dropped before capture (all queues)"},
	{"network.malformed", alerting.Count, nil, "frames that failed to decode completely"},
	{"network.flows.created", alerting.Count, nil, "flows created"},
	{"network.flows.ended", alerting.Count, nil, "flows ended (exported)"},
	{"network.flows.evicted", alerting.Count, nil, "flows evicted from a full flow table"},
	{"network.protocol.flows", alerting.Count, []string{LabelProtocol},
		"ended flows of the application protocol (by detection or port guess)"},
	{"network.protocol.packets", alerting.Count, []string{LabelProtocol},
		"packets of the ended flows of the application protocol"},
	{"network.protocol.bytes", alerting.Count, []string{LabelProtocol},
		"bytes of the ended flows of the application protocol"},
}

// Catalog is the alerting.Catalog of the running sensor: AlertMetrics
// plus the host metrics (gauges without labels). Safe for concurrent use.
type Catalog struct {
	net  map[string]AlertMetric
	host map[string]bool
	live func() map[string]float64
}

// NewCatalog returns the catalog. hostNames are the host metrics known at
// start-up (the samplers' dotted names); live, if not nil, returns the
// latest host sample's dotted names and values, so that names appearing
// later (a new interface) are known too. A name that is both a network
// and a host metric is the network one.
func NewCatalog(hostNames []string, live func() map[string]float64) *Catalog {
	c := &Catalog{net: map[string]AlertMetric{}, host: map[string]bool{}, live: live}
	for _, m := range AlertMetrics {
		c.net[m.Name] = m
	}
	for _, n := range hostNames {
		c.host[n] = true
	}
	return c
}

// Metric implements alerting.Catalog.
func (c *Catalog) Metric(name string) (alerting.MetricKind, []string, bool) {
	if m, ok := c.net[name]; ok {
		return m.Kind, m.Keys, true
	}
	if c.isHost(name) {
		return alerting.Gauge, nil, true
	}
	return 0, nil, false
}

func (c *Catalog) isHost(name string) bool {
	if c.host[name] {
		return true
	}
	if c.live == nil || strings.HasPrefix(name, "network.") {
		return false
	}
	_, ok := c.live()[name]
	return ok
}

// HostNames returns the host metric names known at start-up, sorted.
func (c *Catalog) HostNames() []string {
	names := make([]string, 0, len(c.host))
	for n := range c.host {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AlertFeeder turns sensor snapshots and the workers' alert feed into
// alert signals. Not safe for concurrent use: one goroutine (RunAlerts)
// owns it.
//
// Two paths. Every snapshot (1 s) gives the host metrics, network.drops
// and, for a capture without a feed, every signal. A capture with a feed
// (Sensor.EnableAlertFeed) also reports from each worker at every batch end
// (engine.FeedSet): the counts and the per-source scan signals then come
// from there, within a batch of the packet that changed them (see
// docs/alerting.md for how the shards' figures combine).
type AlertFeeder struct {
	// Host returns the latest host sample's dotted metrics (nil: none).
	Host func() map[string]float64

	have     bool
	since    time.Time // the previous snapshot's capture start
	counts   map[string]uint64
	frag     map[string]uint64
	srcs     map[string]bool // sources of the previous snapshot's Scan
	protos   map[string][3]uint64
	labelsIP map[string]map[string]string
	labelsPr map[string]map[string]string

	// The fast path (a capture with a feed).
	feed      *engine.FeedSet
	feedSince time.Time
	fsrc      map[srcKey]*srcState
	qTotals   [][6]uint64
	qProtos   map[qProto][3]uint64
	out       []alerting.Signal
	// FastRefused counts the per-source reports refused at maxFastSources.
	FastRefused uint64
	// NoScan says that no rule uses the per-source scan gauges: Signals
	// leaves them out (RunAlerts sets it from its evaluator before each
	// snapshot), and the sources' states start afresh when a rule asks
	// for them again.
	NoScan bool
}

// maxFastSources bounds the sources the fast path keeps state for (about
// 0.5 KiB each) from the workers' reports; past it a new source's reports
// are refused (counted in FastRefused) and it is fed by the snapshot alone,
// whose sources (bounded by the scan trackers) always get state. States of
// sources gone from every window are dropped at each snapshot.
const maxFastSources = 1 << 17

type srcKey struct {
	addr decode.Addr
	v    uint8
}

// shardScan is one worker's latest figures of a source, at its clock.
type shardScan struct {
	conns, ports, hosts uint64
	at                  int64
}

type srcState struct {
	labels         map[string]string
	q              []shardScan
	mPorts, mHosts uint64 // the latest merged snapshot's distinct counts
	inSnap         bool   // in the latest merged snapshot
}

type qProto struct {
	q     int
	name  string
	guess bool
}

// Count metrics of the feed's FeedTotals, in the order of its N.
var feedTotals = [6]string{"network.packets", "network.bytes", "network.malformed",
	"network.flows.created", "network.flows.ended", "network.flows.evicted"}

func (f *AlertFeeder) init() {
	if f.counts == nil {
		f.counts, f.frag, f.protos = map[string]uint64{}, map[string]uint64{}, map[string][3]uint64{}
		f.labelsIP, f.labelsPr = map[string]map[string]string{}, map[string]map[string]string{}
		f.fsrc, f.qProtos = map[srcKey]*srcState{}, map[qProto][3]uint64{}
	}
}

// SetFeed starts the fast path for a capture that began at since with
// feed set (nil: none). Its counters start at zero.
func (f *AlertFeeder) SetFeed(set *engine.FeedSet, since time.Time) {
	f.init()
	f.feed, f.feedSince = set, since
	clear(f.fsrc)
	clear(f.qProtos)
	f.qTotals = nil
	if set != nil {
		f.qTotals = make([][6]uint64, set.Len())
	}
}

// fastFor reports whether snap's capture is the one the feed reports.
func (f *AlertFeeder) fastFor(snap *Snapshot) bool {
	return f.feed != nil && snap.Capture.Running && snap.Capture.Since.Equal(f.feedSince)
}

// Fast converts feed items (each of worker qs[i]) into signals, each at its
// worker's clock. The slice returned is reused by the next call.
func (f *AlertFeeder) Fast(items []engine.FeedItem, qs []int) []alerting.Signal {
	f.init()
	out := f.out[:0]
	for i := range items {
		it := &items[i]
		q := qs[i]
		if q >= len(f.qTotals) {
			continue
		}
		at := time.Unix(0, it.At)
		switch it.Kind {
		case engine.FeedSource:
			st := f.source(srcKey{it.Addr, it.IPVersion}, len(f.fsrc) < maxFastSources)
			if st == nil {
				f.FastRefused++
				continue
			}
			if sc := &st.q[q]; it.At >= sc.at {
				*sc = shardScan{conns: it.N[0], ports: it.N[1], hosts: it.N[2], at: it.At}
			}
			out = f.scanSignals(out, st, at)
		case engine.FeedTotals:
			last := &f.qTotals[q]
			for k, m := range feedTotals {
				prev := last[k]
				if it.N[k] < prev {
					prev = 0
				}
				if d := it.N[k] - prev; d > 0 {
					out = append(out, alerting.Signal{Metric: m, Value: float64(d), At: at})
				}
				last[k] = it.N[k]
			}
		case engine.FeedProtocol:
			k := qProto{q, it.Name, it.Guess}
			prev := f.qProtos[k]
			if it.N[0] < prev[0] {
				prev = [3]uint64{}
			}
			f.qProtos[k] = [3]uint64{it.N[0], it.N[1], it.N[2]}
			if it.N[0] == prev[0] {
				continue
			}
			l := f.labels(f.labelsPr, LabelProtocol, it.Name)
			out = append(out,
				alerting.Signal{Metric: "network.protocol.flows", Labels: l, Value: float64(it.N[0] - prev[0]), At: at},
				alerting.Signal{Metric: "network.protocol.packets", Labels: l, Value: float64(it.N[1] - prev[1]), At: at},
				alerting.Signal{Metric: "network.protocol.bytes", Labels: l, Value: float64(it.N[2] - prev[2]), At: at})
		}
	}
	f.out = out
	return out
}

// source returns the fast path's state of k, creating it (nil at the cap).
func (f *AlertFeeder) source(k srcKey, create bool) *srcState {
	st := f.fsrc[k]
	if st == nil && create {
		st = &srcState{labels: map[string]string{LabelSrcIP: flowtable.IP(&k.addr, k.v).String()},
			q: make([]shardScan, len(f.qTotals))}
		f.fsrc[k] = st
	}
	return st
}

// scanSignals appends the three scan gauges of st, combined over the
// workers: connections summed (each connection is counted by one worker),
// distinct ports and hosts the largest of the workers' own and the latest
// merged snapshot's (a lower bound of the union between snapshots).
func (f *AlertFeeder) scanSignals(out []alerting.Signal, st *srcState, at time.Time) []alerting.Signal {
	var conns uint64
	ports, hosts := st.mPorts, st.mHosts
	for _, sc := range st.q {
		conns += sc.conns
		ports = max(ports, sc.ports)
		hosts = max(hosts, sc.hosts)
	}
	return append(out,
		alerting.Signal{Metric: "network.connection_count", Labels: st.labels, Value: float64(conns), At: at},
		alerting.Signal{Metric: "network.unique_dest_port_count", Labels: st.labels, Value: float64(ports), At: at},
		alerting.Signal{Metric: "network.unique_dest_host_count", Labels: st.labels, Value: float64(hosts), At: at})
}

// fastScan takes a snapshot's scan part into the fast path's state: each
// worker's own figures where they are newer than its latest report (by the
// worker's clock; a source absent from a worker's figures has none there),
// the merged distinct counts; then every source's gauges, at snap.At. A
// source that left every window reads 0 once and is forgotten.
func (f *AlertFeeder) fastScan(out []alerting.Signal, snap *Snapshot) []alerting.Signal {
	for _, st := range f.fsrc {
		st.inSnap, st.mPorts, st.mHosts = false, 0, 0
	}
	for i := range snap.Engine.Scan {
		s := &snap.Engine.Scan[i]
		if st := f.source(srcKey{s.Addr, s.IPVersion}, true); st != nil {
			st.inSnap, st.mPorts, st.mHosts = true, s.DistinctPorts, s.DistinctHosts
		}
	}
	if len(snap.ScanQueues) == len(f.qTotals) {
		for q := range snap.ScanQueues {
			qs := &snap.ScanQueues[q]
			seen := make(map[srcKey]bool, len(qs.Scan))
			for i := range qs.Scan {
				s := &qs.Scan[i]
				k := srcKey{s.Addr, s.IPVersion}
				seen[k] = true
				if st := f.source(k, true); st != nil && qs.Now >= st.q[q].at {
					st.q[q] = shardScan{conns: s.Connections, ports: s.DistinctPorts, hosts: s.DistinctHosts, at: qs.Now}
				}
			}
			for k, st := range f.fsrc {
				if !seen[k] && qs.Now >= st.q[q].at {
					st.q[q] = shardScan{at: qs.Now}
				}
			}
		}
	}
	keys := make([]srcKey, 0, len(f.fsrc))
	for k := range f.fsrc {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].v != keys[j].v {
			return keys[i].v < keys[j].v
		}
		return string(keys[i].addr[:]) < string(keys[j].addr[:])
	})
	for _, k := range keys {
		st := f.fsrc[k]
		out = f.scanSignals(out, st, snap.At)
		if n := len(out); out[n-3].Value == 0 && !st.inSnap {
			delete(f.fsrc, k)
		}
	}
	return out
}

// Signals converts one snapshot into signals, all at snap.At: the
// per-source gauges of every source in snap.Engine.Scan, the counts since
// the previous snapshot (the first snapshot, and the first of a new
// capture, count from zero: a capture's counters start at zero), and the
// host metrics. A source of the previous snapshot's Scan that is not in
// this one gets its gauges at 0, once. A snapshot without PartScan gives
// no per-source signals. For the capture the feed reports (SetFeed) the
// counts other than network.drops come from Fast, and the scan gauges
// combine the snapshot with the feed's reports.
func (f *AlertFeeder) Signals(snap *Snapshot) []alerting.Signal {
	f.init()
	at := snap.At
	if f.have && !snap.Capture.Since.Equal(f.since) {
		// A new capture: its counters start at zero.
		clear(f.counts)
		clear(f.frag)
		clear(f.protos)
		clear(f.srcs)
	}
	f.have, f.since = true, snap.Capture.Since
	fast := f.fastFor(snap)
	var out []alerting.Signal
	add := func(metric string, labels map[string]string, v float64) {
		out = append(out, alerting.Signal{Metric: metric, Labels: labels, Value: v, At: at})
	}
	delta := func(metric string, now uint64) {
		prev := f.counts[metric]
		f.counts[metric] = now
		if now < prev { // a restart the capture start did not show
			prev = 0
		}
		add(metric, nil, float64(now-prev))
	}

	var pk, by, drops uint64
	for _, q := range snap.Queues {
		pk += q.Packets
		by += q.Bytes
		drops += q.KernelDrops
	}
	delta("network.drops", drops)
	if !fast {
		st := snap.Engine.Stats
		delta("network.packets", pk)
		delta("network.bytes", by)
		delta("network.malformed", snap.Engine.Counters.Malformed())
		delta("network.flows.created", st.FlowsCreated)
		delta("network.flows.ended", st.FlowsEnded)
		delta("network.flows.evicted", st.FlowsEvicted)

		// Protocols: one entry per (name, guess); summed per name.
		cur := map[string][3]uint64{}
		for _, p := range snap.Engine.Protocols {
			c := cur[p.Name]
			c[0] += p.Flows
			c[1] += p.Packets
			c[2] += p.Bytes
			cur[p.Name] = c
		}
		names := make([]string, 0, len(cur))
		for n := range cur {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c, prev := cur[n], f.protos[n]
			if c[0] < prev[0] {
				prev = [3]uint64{}
			}
			if c[0] == prev[0] && c[1] == prev[1] && c[2] == prev[2] {
				continue // nothing new: no signal (a count of 0 adds nothing)
			}
			l := f.labels(f.labelsPr, LabelProtocol, n)
			add("network.protocol.flows", l, float64(c[0]-prev[0]))
			add("network.protocol.packets", l, float64(c[1]-prev[1]))
			add("network.protocol.bytes", l, float64(c[2]-prev[2]))
		}
		f.protos = cur
	}

	if snap.Parts.Has(PartScan) {
		switch {
		case f.NoScan:
			// No rule reads them: a random-source flood would otherwise
			// make thousands of sources' states and gauges a second.
			clear(f.fsrc)
			clear(f.srcs)
		case fast:
			out = f.fastScan(out, snap)
		default:
			out = f.snapScan(out, snap)
		}
		seen := make(map[string]uint64, len(snap.Engine.FragAnomalies))
		for i := range snap.Engine.FragAnomalies {
			a := &snap.Engine.FragAnomalies[i]
			ip := flowtable.IP(&a.Addr, a.IPVersion).String()
			n := a.Total()
			seen[ip] = n
			prev := f.frag[ip]
			if n < prev {
				prev = 0
			}
			if n > prev {
				add("network.fragment_anomalies", f.labels(f.labelsIP, LabelSrcIP, ip), float64(n-prev))
			}
		}
		f.frag = seen
	}
	if len(f.labelsIP) > 4*max(len(snap.Engine.Scan), 1024) {
		clear(f.labelsIP) // bounded: sources come and go
	}

	if f.Host != nil {
		host := f.Host()
		names := make([]string, 0, len(host))
		for n := range host {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			add(n, nil, host[n])
		}
	}
	return out
}

// snapScan appends the scan gauges of a snapshot of a capture without a feed.
func (f *AlertFeeder) snapScan(out []alerting.Signal, snap *Snapshot) []alerting.Signal {
	at := snap.At
	add := func(metric string, labels map[string]string, v float64) {
		out = append(out, alerting.Signal{Metric: metric, Labels: labels, Value: v, At: at})
	}
	srcs := make(map[string]bool, len(snap.Engine.Scan))
	for i := range snap.Engine.Scan {
		s := &snap.Engine.Scan[i]
		ip := flowtable.IP(&s.Addr, s.IPVersion).String()
		srcs[ip] = true
		l := f.labels(f.labelsIP, LabelSrcIP, ip)
		add("network.connection_count", l, float64(s.Connections))
		add("network.unique_dest_port_count", l, float64(s.DistinctPorts))
		add("network.unique_dest_host_count", l, float64(s.DistinctHosts))
	}
	// A source that left the scan window has no connection in it: its
	// figures are 0 now (said once, so that its alerts resolve at once
	// rather than when the last reading goes stale).
	left := make([]string, 0, len(f.srcs))
	for ip := range f.srcs {
		if !srcs[ip] {
			left = append(left, ip)
		}
	}
	sort.Strings(left)
	for _, ip := range left {
		l := f.labels(f.labelsIP, LabelSrcIP, ip)
		add("network.connection_count", l, 0)
		add("network.unique_dest_port_count", l, 0)
		add("network.unique_dest_host_count", l, 0)
	}
	f.srcs = srcs
	return out
}

// labels returns the shared, read-only label map {key: v}.
func (f *AlertFeeder) labels(cache map[string]map[string]string, key, v string) map[string]string {
	l, ok := cache[v]
	if !ok {
		l = map[string]string{key: v}
		cache[v] = l
	}
	return l
}

// QueueScan is one worker's per-source scan signals at its clock Now.
type QueueScan struct {
	Now  int64
	Scan []flowtable.SourceStats
}

func queueScans(snaps []engine.Snapshot) []QueueScan {
	out := make([]QueueScan, len(snaps))
	for i := range snaps {
		out[i] = QueueScan{Now: snaps[i].Now, Scan: snaps[i].Scan}
	}
	return out
}

// alertFeedState is the sensor's side of the alert feed.
type alertFeedState struct {
	on      atomic.Bool
	cur     atomic.Pointer[feedRun]
	dropped atomic.Uint64 // items dropped by the feeds of captures that ended
}

type feedRun struct {
	set   *engine.FeedSet
	since time.Time
}

// EnableAlertFeed makes every capture started from now on report its
// changes at each batch end for RunAlerts (engine.FeedSet).
func (s *Sensor) EnableAlertFeed() { s.feed.on.Store(true) }

// AlertFeedDropped counts the feed items lost to full rings (all captures).
func (s *Sensor) AlertFeedDropped() uint64 {
	n := s.feed.dropped.Load()
	if r := s.feed.cur.Load(); r != nil {
		n += r.set.Dropped()
	}
	return n
}

// attachFeed gives run's workers their feed rings (before they run).
func (s *Sensor) attachFeed(run *captureRun) {
	if !s.feed.on.Load() {
		return
	}
	ws := run.l.Workers()
	set := engine.NewFeedSet(len(ws))
	for q, w := range ws {
		w.SetAlertFeed(set.Ring(q))
	}
	run.feed = set
	if old := s.feed.cur.Swap(&feedRun{set: set, since: run.since}); old != nil {
		s.feed.dropped.Add(old.set.Dropped())
	}
}

// AlertEvaluator is what RunAlerts feeds (*alerting.Evaluator).
type AlertEvaluator interface {
	Ingest(s []alerting.Signal)
	Tick(now time.Time)
	Next() time.Time
}

// scanMetrics are the per-source scan gauges the workers' feed reports.
var scanMetrics = []string{"network.connection_count", "network.unique_dest_port_count", "network.unique_dest_host_count"}

// wantsSources reports whether ev has a rule on a scan gauge (true when ev
// cannot say).
func wantsSources(ev AlertEvaluator) bool {
	u, ok := ev.(interface{ Uses(string) bool })
	if !ok {
		return true
	}
	for _, m := range scanMetrics {
		if u.Uses(m) {
			return true
		}
	}
	return false
}

// fedMetrics are the metrics of the feed's totals and protocol items.
var fedMetrics = append(feedTotals[:], "network.protocol.flows", "network.protocol.packets", "network.protocol.bytes")

// wantsFeed reports whether ev has a rule on any figure the workers' feed
// carries (true when ev cannot say).
func wantsFeed(ev AlertEvaluator) bool {
	u, ok := ev.(interface{ Uses(string) bool })
	if !ok {
		return true
	}
	for _, m := range fedMetrics {
		if u.Uses(m) {
			return true
		}
	}
	return wantsSources(ev)
}

// RunAlerts feeds ev until ctx ends: each snapshot's signals (f.Signals) go
// to Ingest, then Tick(snap.At); the workers' feed items (f.Fast), when the
// capture has a feed, as soon as a worker publishes them; between them it
// calls Tick at ev.Next() (windows slide, group_wait batches leave). It
// subscribes to s itself.
func RunAlerts(ctx context.Context, s *Sensor, f *AlertFeeder, ev AlertEvaluator) {
	ch, _, cancel := s.Subscribe(4)
	defer cancel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var cur *feedRun
	var wake <-chan struct{}
	var items []engine.FeedItem
	var qs []int
	for {
		if r := s.feed.cur.Load(); r != cur {
			cur = r
			f.SetFeed(r.set, r.since)
			wake = r.set.Wake()
		}
		poll := false
		scan := wantsSources(ev)
		f.NoScan = !scan
		if cur != nil {
			// The workers compute per-source figures only while a rule
			// uses them (a rule change shows at the next wake-up).
			cur.set.SetSources(scan)
			// Without a rule on what the items carry, the workers do not
			// wake this loop at each batch end: it drains their items with
			// the next snapshot (a rule added meanwhile is seen then, within
			// an interval).
			cur.set.SetLazy(!wantsFeed(ev))
			items, qs = cur.set.Drain(items[:0], qs[:0])
			if len(items) > 0 {
				ev.Ingest(f.Fast(items, qs))
				clear(items) // no protocol names held
				poll = true
			} else if !cur.set.Sleep() {
				poll = true
			}
		}
		next := ev.Next()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		if poll {
			select {
			case <-ctx.Done():
				return
			case snap := <-ch:
				ev.Ingest(f.Signals(snap))
				ev.Tick(snap.At)
			default:
				if wait == 0 {
					ev.Tick(time.Now())
				}
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case snap := <-ch:
			ev.Ingest(f.Signals(snap))
			ev.Tick(snap.At)
		case now := <-timer.C:
			ev.Tick(now)
		case <-wake:
		}
	}
}
