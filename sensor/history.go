package sensor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
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

// FlowSink returns the flow history as an engine.Sink named "store" that
// commits in groups: WriteFlows copies the batch and returns; one
// goroutine writes what has gathered, all of it in one synced commit, so
// a backlog (a burst of ended flows, the final flush at shutdown) costs a
// sync per group of up to groupMax records instead of one per batch of
// 256 (about four times the records per second). While groupMax records
// wait, WriteFlows waits. A record is queryable, and durable, once its
// group is committed; Close commits what is left, then closes the flow
// history. Hand it to the exporter instead of Flows, which the exporter
// then closes through it.
func (h *History) FlowSink() *GroupSink {
	g := &GroupSink{fl: h.Flows, done: make(chan struct{})}
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
	done    chan struct{}
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
	g.pending = append(g.pending, recs...)
	g.cond.Broadcast()
	return nil
}

func (g *GroupSink) run() {
	defer close(g.done)
	var spare []flowtable.Record
	g.mu.Lock()
	for {
		for len(g.pending) == 0 && !g.closed {
			g.cond.Wait()
		}
		if len(g.pending) == 0 {
			g.mu.Unlock()
			return
		}
		batch := g.pending
		g.pending = spare[:0]
		g.mu.Unlock()
		err := g.fl.WriteFlows(batch)
		clear(batch) // no App state kept alive
		spare = batch
		g.mu.Lock()
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
	g.cond.Broadcast()
	g.mu.Unlock()
	<-g.done
	return errors.Join(g.err, g.fl.Close())
}
