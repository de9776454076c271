package sensor

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/netsentry/netsentry/alerting"
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

// AlertFeeder turns sensor snapshots into alert signals. Not safe for
// concurrent use: one goroutine (RunAlerts) owns it.
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
}

// Signals converts one snapshot into signals, all at snap.At: the
// per-source gauges of every source in snap.Engine.Scan, the counts since
// the previous snapshot (the first snapshot, and the first of a new
// capture, count from zero: a capture's counters start at zero), and the
// host metrics. A source of the previous snapshot's Scan that is not in
// this one gets its gauges at 0, once. A snapshot without PartScan gives
// no per-source signals.
func (f *AlertFeeder) Signals(snap *Snapshot) []alerting.Signal {
	if f.counts == nil {
		f.counts, f.frag, f.protos = map[string]uint64{}, map[string]uint64{}, map[string][3]uint64{}
		f.labelsIP, f.labelsPr = map[string]map[string]string{}, map[string]map[string]string{}
	}
	at := snap.At
	if f.have && !snap.Capture.Since.Equal(f.since) {
		// A new capture: its counters start at zero.
		clear(f.counts)
		clear(f.frag)
		clear(f.protos)
		clear(f.srcs)
	}
	f.have, f.since = true, snap.Capture.Since
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
	st := snap.Engine.Stats
	delta("network.packets", pk)
	delta("network.bytes", by)
	delta("network.drops", drops)
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

	if snap.Parts.Has(PartScan) {
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

// labels returns the shared, read-only label map {key: v}.
func (f *AlertFeeder) labels(cache map[string]map[string]string, key, v string) map[string]string {
	l, ok := cache[v]
	if !ok {
		l = map[string]string{key: v}
		cache[v] = l
	}
	return l
}

// AlertEvaluator is what RunAlerts feeds (*alerting.Evaluator).
type AlertEvaluator interface {
	Ingest(s []alerting.Signal)
	Tick(now time.Time)
	Next() time.Time
}

// RunAlerts feeds ev from the sensor's snapshots until ctx ends: each
// snapshot's signals (f.Signals) go to Ingest, then Tick(snap.At); between
// snapshots it calls Tick at ev.Next() (windows slide, group_wait batches
// leave). It subscribes to s itself.
func RunAlerts(ctx context.Context, s *Sensor, f *AlertFeeder, ev AlertEvaluator) {
	ch, _, cancel := s.Subscribe(4)
	defer cancel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := ev.Next()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
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
		}
	}
}
