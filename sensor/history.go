package sensor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/store"
)

// History is the local store the storage.* keys describe: the time series
// and the flow history, in one pebble database at storage.local_path.
type History struct {
	Store *store.Store
	// Flows is the flow history; it is an engine.Sink ("store") and is
	// closed by the exporter it is given to (Close closes it otherwise).
	Flows    *store.FlowLog
	Interval time.Duration
	flowsIn  bool
}

// OpenHistory opens (creating it when missing) the store of cfg, which
// Validate accepted. A directory it cannot create or write, or a store it
// cannot open, is an error naming the key and the path. A store that was
// not closed cleanly is opened, and what it recovered is logged.
func OpenHistory(cfg configs.Storage, log *slog.Logger) (*History, error) {
	if cfg.Type != "local" {
		return nil, fmt.Errorf("storage.type %q: remote storage backends are not built yet (issue 15); use local", cfg.Type)
	}
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
	return &History{Store: st, Flows: fl, Interval: cfg.Interval.Duration}, nil
}

// FlowsSinked says that Flows was given to an exporter, which closes it.
func (h *History) FlowsSinked() { h.flowsIn = true }

// Close closes the flow history (unless an exporter owns it: close that
// first) and the store.
func (h *History) Close() error {
	var err error
	if !h.flowsIn {
		err = h.Flows.Close()
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
