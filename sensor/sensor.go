package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
)

// Defaults.
const (
	// DefaultInterval is how often the sensor publishes a snapshot.
	DefaultInterval = time.Second
	// demandFor is how long a part (flows, hosts, scan signals) stays in
	// every snapshot after a consumer last asked for it.
	demandFor = 10 * time.Second
	// dutyCycle: a part that took d to copy is copied again at most every
	// dutyCycle×d, so the workers spend at most 1/dutyCycle of their time
	// copying it (a full table: 100k flows).
	dutyCycle = 10
	// answerWait is how long the packet workers may take to answer a
	// snapshot request; a worker that takes longer makes the sensor
	// unhealthy (Health, /healthz, the systemd watchdog).
	answerWait = 2 * time.Second
)

// Parts is a set of the snapshot's optional parts. Counters, flow-table
// stats, the protocol distribution, queue and sink counters are in every
// snapshot.
type Parts uint8

// The optional parts.
const (
	PartFlows Parts = 1 << iota // open flows, one slice per worker
	PartHosts                   // every host's counters
	PartScan                    // per-source behaviour signals
	numParts  = 3
)

// Has reports whether p holds every part of q.
func (p Parts) Has(q Parts) bool { return p&q == q }

// Options configure a Sensor.
type Options struct {
	// Config returns the configuration in force; StartCapture reads it.
	Config func() configs.Config
	// Prepare derives a capture's engine configuration and its flow-table
	// configuration (per shard) from cfg. NewShard and Logf of the live
	// configuration are set by the sensor.
	Prepare func(cfg configs.Config) (engine.LiveConfig, flowtable.Config, error)
	// Exporter receives every capture's ended flows. The sensor does not
	// close it.
	Exporter *engine.Exporter
	// Log receives the capture's events; nil discards them.
	Log *slog.Logger
	// Interval is the snapshot period (default DefaultInterval).
	Interval time.Duration
	// Always lists the optional parts every snapshot holds, demanded or not
	// (a consumer that reads them each interval: the alert evaluator).
	Always Parts
	// TopHosts is how many hosts Snapshot.TopHosts keeps (default 100).
	TopHosts int
}

// Snapshot is the sensor at one instant. One is published every interval
// and shared read-only by every consumer (API, metrics, watchdog, summary,
// and later the store and the alert evaluator); nothing else asks the
// workers for their state.
type Snapshot struct {
	Seq uint64
	// At is the wall-clock time the snapshot was made.
	At time.Time
	// Capture is the capture's status; Queues its per-queue counters
	// (kernel drops included) at At.
	Capture httpd.CaptureStatus
	Queues  []engine.QueueStats
	// Engine is the workers' merged state: counters, flow-table stats,
	// protocols; Hosts and Scan when Parts has them.
	Engine engine.Snapshot
	// Flows are the open flows, one slice per worker, when Parts has
	// PartFlows (the shards hold disjoint flows).
	Flows [][]flowtable.Record
	// Parts lists the optional parts held; a part copied at an earlier
	// tick is carried forward, PartAt says when each was copied.
	Parts  Parts
	PartAt [numParts]time.Time
	// TopHosts are the TopHosts hosts with the most bytes, largest first,
	// when Parts has PartHosts.
	TopHosts []flowtable.HostCounters
	// ScanQueues are the per-source scan signals of each worker alone,
	// with the worker's clock, copied with PartScan (the alert feeder
	// combines them with the workers' own reports, see alerts.go).
	ScanQueues []QueueScan
	// Sinks are the flow sinks' counters (records written and dropped).
	Sinks []engine.SinkStats
	// Err is set when a worker did not answer in time: Engine and Flows
	// are then those of the previous snapshot.
	Err error
}

// Sensor owns the capture's lifecycle (start, stop, restart from the API)
// and publishes the periodic snapshot. All methods are safe from any
// goroutine; Run must be running for snapshots to be published.
type Sensor struct {
	opt      Options
	log      *slog.Logger
	interval time.Duration

	capMu sync.Mutex // guards cur and last; held while a capture starts or stops
	cur   *captureRun
	last  *captureRun // the latest capture that ran, for the final summary

	latest  atomic.Pointer[Snapshot]
	pubMu   sync.Mutex
	pubCh   chan struct{} // closed at the next publish
	kick    chan struct{}
	runDone chan struct{}          // closed when Run returns: nothing more is published
	demand  [numParts]atomic.Int64 // wall-clock ns a part was last asked for
	cost    [numParts]atomic.Int64 // ns the part's last copy took
	seq     uint64                 // written by Run only
	failed  atomic.Uint64          // snapshots a worker did not answer
	subsMu  sync.Mutex
	subs    map[chan *Snapshot]*atomic.Uint64
	feed    alertFeedState // the workers' alert feed (alerts.go)
}

// captureRun is one capture from start to stop.
type captureRun struct {
	l        *engine.Live
	ifaces   []string
	since    time.Time
	stopping atomic.Bool
	cancel   context.CancelFunc
	done     chan error
	err      atomic.Pointer[error] // set when Run returned without a stop
	feed     *engine.FeedSet       // the workers' alert feed, nil when off
}

// New returns a sensor with no capture running.
func New(opt Options) (*Sensor, error) {
	if opt.Config == nil || opt.Prepare == nil || opt.Exporter == nil {
		return nil, errors.New("new sensor: Config, Prepare and Exporter are required")
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.TopHosts <= 0 {
		opt.TopHosts = 100
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sensor{opt: opt, log: log, interval: opt.Interval, pubCh: make(chan struct{}),
		kick: make(chan struct{}, 1), runDone: make(chan struct{}), subs: map[chan *Snapshot]*atomic.Uint64{}}
	s.latest.Store(&Snapshot{}) // never fresh: the first Wait waits for Run
	return s, nil
}

// Interval returns the snapshot period.
func (s *Sensor) Interval() time.Duration { return s.interval }

// Run publishes a snapshot every interval, and at once when a consumer
// needs a part the latest one lacks, until ctx ends.
func (s *Sensor) Run(ctx context.Context) {
	defer close(s.runDone)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.publish(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		s.publish(ctx)
	}
}

// Published implements httpd.Publisher.
func (s *Sensor) Published() uint64 { return s.latest.Load().Seq }

// Latest returns the latest snapshot (never nil). Do not modify it.
func (s *Sensor) Latest() *Snapshot { return s.latest.Load() }

// Subscribe returns a channel that receives every published snapshot,
// with room for buf of them; a subscriber that falls behind misses
// snapshots (counted in Missed) and never delays the others. cancel ends
// the subscription.
func (s *Sensor) Subscribe(buf int) (ch <-chan *Snapshot, missed func() uint64, cancel func()) {
	c := make(chan *Snapshot, max(buf, 1))
	n := new(atomic.Uint64)
	s.subsMu.Lock()
	s.subs[c] = n
	s.subsMu.Unlock()
	return c, n.Load, func() {
		s.subsMu.Lock()
		delete(s.subs, c)
		s.subsMu.Unlock()
	}
}

// Want tells the sensor that a consumer reads parts p: they are in every
// snapshot for the next demandFor.
func (s *Sensor) Want(p Parts) {
	now := time.Now().UnixNano()
	for i := range numParts {
		if p.Has(1 << i) {
			s.demand[i].Store(now)
		}
	}
}

// Wait returns a snapshot holding parts p, each copied at most maxAge ago
// (a part that is costly to copy may be older: see dutyCycle), waiting for
// the next publish when the latest does not qualify, or for ctx.
func (s *Sensor) Wait(ctx context.Context, p Parts, maxAge time.Duration) (*Snapshot, error) {
	s.Want(p)
	for {
		s.pubMu.Lock()
		ch := s.pubCh
		s.pubMu.Unlock()
		cur := s.latest.Load()
		if s.fresh(cur, p, maxAge) {
			return cur, nil
		}
		select {
		case s.kick <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-s.runDone:
			// Run has stopped (shutdown): the latest is all there is.
			return s.latest.Load(), nil
		case <-ctx.Done():
			return nil, fmt.Errorf("sensor snapshot: %w", ctx.Err())
		}
	}
}

// fresh reports whether snap holds parts p, each young enough.
func (s *Sensor) fresh(snap *Snapshot, p Parts, maxAge time.Duration) bool {
	if snap.Err != nil {
		return false
	}
	now := time.Now()
	if now.Sub(snap.At) > maxAge {
		return false
	}
	if snap.Capture.Running {
		for i := range numParts {
			bit := Parts(1 << i)
			if !p.Has(bit) {
				continue
			}
			if !snap.Parts.Has(bit) || now.Sub(snap.PartAt[i]) > max(maxAge, s.period(i)) {
				return false
			}
		}
	}
	return true
}

// period is how often part i may be copied: every interval, or less often
// when its copy is costly.
func (s *Sensor) period(i int) time.Duration {
	return max(s.interval, dutyCycle*time.Duration(s.cost[i].Load()))
}

// publish makes and publishes one snapshot.
func (s *Sensor) publish(ctx context.Context) {
	prev := s.latest.Load()
	now := time.Now()
	s.seq++
	snap := &Snapshot{Seq: s.seq, At: now}
	run := s.running()
	if run == nil {
		snap.Capture = s.Capture()
		snap.Parts = PartFlows | PartHosts | PartScan
		for i := range snap.PartAt {
			snap.PartAt[i] = now
		}
	} else {
		snap.Capture = s.statusOf(run)
		s.fill(ctx, snap, prev, run, now)
		snap.Queues = run.l.Stats()
	}
	snap.Sinks = s.opt.Exporter.Stats()
	s.latest.Store(snap)
	s.pubMu.Lock()
	close(s.pubCh)
	s.pubCh = make(chan struct{})
	s.pubMu.Unlock()
	s.subsMu.Lock()
	for c, missed := range s.subs {
		select {
		case c <- snap:
		default:
			missed.Add(1)
		}
	}
	s.subsMu.Unlock()
}

// fill asks the running capture's workers for the parts in demand, merges
// their answers into snap, and carries forward the parts not copied now.
func (s *Sensor) fill(ctx context.Context, snap, prev *Snapshot, run *captureRun, now time.Time) {
	var want Parts
	for i := range numParts {
		bit := Parts(1 << i)
		demanded := s.opt.Always.Has(bit) || now.UnixNano()-s.demand[i].Load() < int64(demandFor)
		due := !prev.Parts.Has(bit) || !prev.Capture.Running || prev.Capture.Since != snap.Capture.Since ||
			now.Sub(prev.PartAt[i]) >= s.period(i)
		if demanded && due {
			want |= bit
		}
	}
	if run.err.Load() != nil {
		// The capture ended by itself: its workers answer nothing more.
		snap.Engine, snap.Flows, snap.Parts, snap.PartAt = prev.Engine, prev.Flows, prev.Parts, prev.PartAt
		return
	}
	wctx, cancel := context.WithTimeout(ctx, answerWait)
	defer cancel()
	start := time.Now()
	snaps, err := workerSnapshots(wctx, run.l.Workers(), engine.SnapshotParts{
		Flows: want.Has(PartFlows), Hosts: want.Has(PartHosts), Scan: want.Has(PartScan), Protocols: true})
	took := time.Since(start)
	if err != nil {
		s.failed.Add(1)
		snap.Err = err
		snap.Engine, snap.Flows, snap.Parts, snap.PartAt = prev.Engine, prev.Flows, prev.Parts, prev.PartAt
		return
	}
	flows := make([][]flowtable.Record, len(snaps))
	for i := range snaps {
		flows[i], snaps[i].Flows = snaps[i].Flows, nil
	}
	snap.Engine = engine.MergeSnapshots(snaps)
	sameRun := prev.Capture.Running && prev.Capture.Since == snap.Capture.Since
	for i := range numParts {
		bit := Parts(1 << i)
		switch {
		case want.Has(bit):
			snap.Parts |= bit
			snap.PartAt[i] = now
			s.cost[i].Store(int64(took))
		case sameRun && prev.Parts.Has(bit):
			snap.Parts |= bit
			snap.PartAt[i] = prev.PartAt[i]
		}
	}
	if want.Has(PartFlows) {
		snap.Flows = flows
	} else if snap.Parts.Has(PartFlows) {
		snap.Flows = prev.Flows
	}
	switch {
	case want.Has(PartHosts):
		snap.TopHosts = topHosts(snap.Engine.Hosts, s.opt.TopHosts)
	case snap.Parts.Has(PartHosts):
		snap.Engine.Hosts, snap.TopHosts = prev.Engine.Hosts, prev.TopHosts
	}
	if !want.Has(PartScan) && snap.Parts.Has(PartScan) {
		snap.Engine.Scan, snap.Engine.ScanWindow = prev.Engine.Scan, prev.Engine.ScanWindow
		snap.Engine.FragAnomalies = prev.Engine.FragAnomalies
		snap.ScanQueues = prev.ScanQueues
	} else if want.Has(PartScan) {
		snap.ScanQueues = queueScans(snaps)
	}
	snap.Engine.ScanWindows = nil // merged into Scan; the per-worker windows are not kept
}

// topHosts returns the n hosts of hs with the most bytes, largest first
// (ties: the lower address), in a new slice.
func topHosts(hs []flowtable.HostCounters, n int) []flowtable.HostCounters {
	top := make([]flowtable.HostCounters, 0, min(n, len(hs))+1)
	for _, h := range hs {
		if len(top) == n && h.Bytes() <= top[n-1].Bytes() {
			continue
		}
		i := len(top)
		for i > 0 && top[i-1].Bytes() < h.Bytes() {
			i--
		}
		top = slices.Insert(top, i, h)
		if len(top) > n {
			top = top[:n]
		}
	}
	return top
}

// workerSnapshots asks every worker for a snapshot at once.
func workerSnapshots(ctx context.Context, ws []*engine.Worker, parts engine.SnapshotParts) ([]engine.Snapshot, error) {
	snaps := make([]engine.Snapshot, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps[i], errs[i] = w.Snapshot(ctx, parts)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("queue %d: %w", i, err)
		}
	}
	return snaps, nil
}

// Health says whether the sensor works as configured: every packet worker
// answered the latest snapshot request within answerWait, and a capture
// that should run does. A capture stopped on purpose is healthy ("capture
// stopped"); a healthy running capture has no reason. Reasons are for
// people: no addresses, no error text (the log has that). Cheap: it reads
// the latest snapshot, it asks the workers nothing.
func (s *Sensor) Health() (ok bool, reason string) {
	snap := s.latest.Load()
	s.capMu.Lock()
	cur, last := s.cur, s.last
	s.capMu.Unlock()
	if cur == nil {
		if last != nil {
			if p := last.err.Load(); p != nil {
				return false, "capture on " + fmt.Sprint(last.ifaces) + " " + (*p).Error()
			}
		}
		return true, "capture stopped"
	}
	if p := cur.err.Load(); p != nil {
		return false, "capture on " + fmt.Sprint(cur.ifaces) + " " + (*p).Error()
	}
	if snap.Err != nil {
		return false, "a packet worker did not answer the sensor's snapshot request within " + answerWait.String()
	}
	// A snapshot is due every interval; one made before this capture
	// started does not count against it.
	since := snap.At
	if cur.since.After(since) {
		since = cur.since
	}
	if age := time.Since(since); age > 3*s.interval+answerWait {
		return false, "no snapshot for " + age.Round(time.Second).String() + ": the sensor is stuck"
	}
	return true, ""
}

// FailedSnapshots counts snapshots a worker did not answer in time.
func (s *Sensor) FailedSnapshots() uint64 { return s.failed.Load() }

// Snapshot implements httpd.Sensor from the published snapshot.
func (s *Sensor) Snapshot(ctx context.Context, parts httpd.Parts) (httpd.Snapshot, error) {
	var p Parts
	if parts.Flows {
		p |= PartFlows
	}
	if parts.Hosts {
		p |= PartHosts
	}
	if parts.Scan {
		p |= PartScan
	}
	snap, err := s.Wait(ctx, p, 2*s.interval)
	if err != nil {
		return httpd.Snapshot{}, err
	}
	return ToAPI(snap), nil
}

// ToAPI converts a snapshot for the API.
func ToAPI(snap *Snapshot) httpd.Snapshot {
	e := &snap.Engine
	out := httpd.Snapshot{Seq: snap.Seq, Packets: e.Counters.Packets, Bytes: e.Counters.Bytes, NonIP: e.Counters.NonIP,
		Stats: e.Stats, Hosts: e.Hosts, Protocols: e.Protocols, Flows: snap.Flows, Scan: e.Scan, ScanWindow: e.ScanWindow,
		FragAnomalies: e.FragAnomalies}
	for r := decode.ReasonNone + 1; r < decode.NumReasons; r++ {
		out.DecodeErrors = append(out.DecodeErrors, httpd.NamedCount{Name: r.String(), Count: e.Counters.Decode[r]})
	}
	for _, k := range snap.Sinks {
		out.Sinks = append(out.Sinks, httpd.SinkStats{Name: k.Name, Written: k.Written, Dropped: k.Dropped,
			Queued: k.Queued, Depth: k.Depth})
	}
	return out
}
