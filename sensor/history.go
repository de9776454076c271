package sensor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/store"
	"github.com/netsentry/netsentry/store/remote"
)

// History is the local store the storage.* keys describe: the time series
// and the flow history, in one pebble database at storage.local_path.
type History struct {
	Store *store.Store
	// Local says whether metric ticks go to Store (storage.local, always
	// with type local); Remote is the remote backend's writer, nil with
	// type local. Its queue lives in Store's database.
	Local  bool
	Remote *remote.Writer
	// Flows is the flow history, for queries; FlowSink is its sink.
	// Close closes it unless FlowSink was called (the exporter closes the
	// sink, and the sink the flow history).
	Flows    *store.FlowLog
	Interval time.Duration
	flowsIn  bool
}

// OpenHistory opens (creating it when missing) the store of cfg, which
// Validate accepted. A directory it cannot create or write, or a store it
// cannot open, is an error naming the key and the path. A store that was
// not closed cleanly is opened, and what it recovered is logged.
func OpenHistory(cfg configs.Storage, log *slog.Logger) (*History, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := cfg.LocalPath
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage.local_path %q: create the directory: %w", dir, err)
	}
	if err := checkWritable(dir); err != nil {
		return nil, fmt.Errorf("storage.local_path %q is not writable: %w", dir, err)
	}
	retention := time.Duration(cfg.RetentionDays) * 24 * time.Hour
	// storage.max_disk_mb caps both together: half each, so that neither
	// can crowd the other out.
	half := int64(cfg.MaxDiskMB) << 20 / 2
	st, err := store.Open(dir, store.Options{Interval: cfg.Interval.Duration, Retention: retention,
		MaxDiskBytes: half, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("storage.local_path %q: open the store: %w", dir, err)
	}
	if r := st.Recovered(); r != "" {
		log.Warn("store: not closed cleanly; recovered", "path", dir, "recovered", r)
	}
	fl, err := store.OpenFlowLog(st.DB(), store.FlowOptions{Retention: retention, MaxDiskBytes: half, Logger: log})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("storage.local_path %q: open the flow history: %w", dir, err)
	}
	h := &History{Store: st, Flows: fl, Interval: cfg.Interval.Duration, Local: cfg.Local || !cfg.Remote()}
	if cfg.Remote() {
		name := cfg.SensorName
		if name == "" {
			if name, err = os.Hostname(); err != nil || name == "" {
				name = "netsentry"
			}
		}
		h.Remote, err = remote.Open(st.DB(), remote.Options{Backend: cfg.Type, URL: cfg.RemoteURL,
			Token: cfg.RemoteToken, Username: cfg.RemoteUsername, Password: cfg.RemotePassword,
			InfluxDatabase: cfg.InfluxDatabase, InfluxOrg: cfg.InfluxOrg, InfluxBucket: cfg.InfluxBucket,
			Sensor: name, QueueBytes: int64(cfg.RemoteQueueMB) << 20, Logger: log})
		if err != nil {
			fl.Close()
			st.Close()
			return nil, fmt.Errorf("storage.type %s: %w", cfg.Type, err)
		}
		if st := h.Remote.Stats(); st.Queued > 0 {
			log.Info("remote: samples queued from before the restart", "backend", cfg.Type, "samples", st.Queued)
		}
	}
	return h, nil
}

// CloseRemote stops the remote writer after its bounded final flush
// (what it cannot send stays queued on disk); a no-op without one, or
// the second time. Close calls it too.
func (h *History) CloseRemote() error {
	if h.Remote == nil {
		return nil
	}
	return h.Remote.Close()
}

// StoreStats and FlowStats implement httpd.StoreMetrics.
func (h *History) StoreStats() store.Stats    { return h.Store.Stats() }
func (h *History) FlowStats() store.FlowStats { return h.Flows.Stats() }

// Close closes the flow history (unless FlowSink handed it to an
// exporter: close that first) and the store.
func (h *History) Close() error {
	err := h.CloseRemote()
	if !h.flowsIn {
		err = errors.Join(err, h.Flows.Close())
	}
	return errors.Join(err, h.Store.Close())
}

// checkWritable says whether the sensor may write in dir (access(2)
// with W_OK: a read-only filesystem fails even as root), so that a
// directory it cannot use is found at start, not at the first tick, and
// nothing is left in it.
func checkWritable(dir string) error {
	return unix.Access(dir, unix.W_OK|unix.X_OK)
}

// groupMax is the most records the flow sink holds for the flow history
// besides the write in progress (576 bytes each: 1.2 MiB, twice).
const groupMax = 2048

// groupWait is how long the flow sink lets a group gather after the last
// commit before it commits a group smaller than groupMax. A commit costs
// a WAL sync and the flow history's summaries and partition totals
// whatever its size, and a block of 512 records written over several
// small commits is rewritten as it grows: under a flood of new flows
// groups of a few hundred records (what gathered during the previous
// commit) cost about 1.7 times the CPU a record of groups of 2,048 did
// (store.BenchmarkFlowWriteFlood, batch256 against batch2048). A record
// waits at most this much longer to be durable.
const groupWait = 20 * time.Millisecond

// FlowSink returns the flow history as an engine.Sink named "store" that
// commits in groups: WriteFlows copies the batch and returns; one
// goroutine writes what has gathered, all of it in one synced commit, as
// soon as groupMax records wait, or groupWait after its last commit began,
// or at Close. So a backlog (a flood of ended flows, the final flush at
// shutdown) costs a sync per group of up to groupMax records instead of
// one per batch of 256. While groupMax records wait, WriteFlows waits. A
// record is queryable, and durable, once its group is committed; Close
// commits what is left, then closes the flow history. Hand it to the
// exporter instead of Flows, which the exporter then closes through it.
func (h *History) FlowSink() *GroupSink {
	g := &GroupSink{fl: h.Flows, done: make(chan struct{}), full: make(chan struct{}, 1)}
	g.cond = sync.NewCond(&g.mu)
	h.flowsIn = true
	go g.run()
	return g
}

// GroupSink is the flow history's sink; see History.FlowSink.
type GroupSink struct {
	fl      *store.FlowLog
	mu      sync.Mutex
	cond    *sync.Cond // signalled when pending, busy or closed change
	pending []flowtable.Record
	closed  bool
	err     error // the first write error, returned by the next call
	groups  int64 // commits so far (under mu)
	done    chan struct{}
	full    chan struct{} // a group need not wait longer: groupMax records wait, or Close
}

// Name implements engine.Named.
func (g *GroupSink) Name() string { return g.fl.Name() }

// WriteFlows implements engine.Sink.
func (g *GroupSink) WriteFlows(recs []flowtable.Record) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.pending) > 0 && len(g.pending)+len(recs) > groupMax && g.err == nil {
		g.cond.Wait()
	}
	if g.err != nil {
		return g.err
	}
	// Each record copied by CopyOver (its used lines, not its empty App
	// arena): pending's records are zero, or were written so.
	n := len(g.pending)
	g.pending = slices.Grow(g.pending, len(recs))[:n+len(recs)]
	for i := range recs {
		g.pending[n+i].CopyOver(&recs[i])
	}
	if len(g.pending) >= groupMax {
		g.kick()
	}
	g.cond.Broadcast()
	return nil
}

// kick ends the wait of a gathering group (a signal already pending is
// enough).
func (g *GroupSink) kick() {
	select {
	case g.full <- struct{}{}:
	default:
	}
}

// Groups returns how many groups the sink has committed.
func (g *GroupSink) Groups() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups
}

func (g *GroupSink) run() {
	defer close(g.done)
	var spare []flowtable.Record
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var last time.Time // when the last commit began
	g.mu.Lock()
	for {
		for len(g.pending) == 0 && !g.closed {
			g.cond.Wait()
		}
		if len(g.pending) == 0 {
			g.mu.Unlock()
			return
		}
		if wait := groupWait - time.Since(last); wait > 0 && len(g.pending) < groupMax && !g.closed {
			g.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-g.full:
			case <-timer.C:
			}
			timer.Stop()
			g.mu.Lock()
		}
		batch := g.pending
		g.pending = spare[:0]
		g.mu.Unlock()
		last = time.Now()
		err := g.fl.WriteFlows(batch)
		// no label kept alive; the records stay, for CopyOver to write over
		for i := range batch {
			if batch[i].AppLabel != "" {
				batch[i].AppLabel = ""
			}
		}
		spare = batch
		g.mu.Lock()
		g.groups++
		if err != nil && g.err == nil {
			g.err = fmt.Errorf("store flows: %w", err)
		}
		g.cond.Broadcast()
	}
}

// Close implements engine.Sink: it commits what waits, then closes the
// flow history.
func (g *GroupSink) Close() error {
	g.mu.Lock()
	g.closed = true
	g.kick()
	g.cond.Broadcast()
	g.mu.Unlock()
	<-g.done
	return errors.Join(g.err, g.fl.Close())
}
