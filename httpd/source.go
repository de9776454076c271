package httpd

import (
	"context"
	"errors"
	"time"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/flowtable"
)

// Sentinels the sources wrap so that handlers can pick the status.
var (
	// ErrConflict: the request contradicts the current state (capture
	// already running, no config file to write).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request names something that does not exist or
	// cannot be used (an unknown interface).
	ErrInvalid = errors.New("invalid request")
)

// Parts selects what a snapshot copies; counters are always copied.
type Parts struct {
	Flows, Hosts, Protocols bool
	// Scan asks for the per-source scan signals (Snapshot.Scan).
	Scan bool
}

// Snapshot is the merged state of every packet worker, copied by the
// workers between batches.
type Snapshot struct {
	// Seq numbers the sensor's published snapshots (0 from a source that
	// does not publish: see Publisher).
	Seq                   uint64
	Packets, Bytes, NonIP uint64
	// DecodeErrors counts undecodable frames per reason, every reason
	// listed (bounded label set), zero counts included.
	DecodeErrors []NamedCount
	Stats        flowtable.Stats
	// Flows are the open flows, one slice per worker (the shards hold
	// disjoint flows, so they are not merged).
	Flows     [][]flowtable.Record
	Hosts     []flowtable.HostCounters
	Protocols []flowtable.ProtoStat
	// Scan holds one entry per source address with a connection in the
	// scan window, its windows in every worker merged
	// (flowtable.MergeSources); ScanWindow is that window.
	Scan       []flowtable.SourceStats
	ScanWindow time.Duration
	// FragAnomalies are the IP fragment anomalies per source (tiny,
	// overlapping, conflicting fragments) since the capture started, with
	// Scan.
	FragAnomalies []flowtable.FragAnomalies
	// Sinks are the flow sinks' counters (records written, dropped).
	Sinks []SinkStats
}

// SinkStats are one ended-flow sink's counters: each sink has its own
// bounded queue, so one slow sink drops only its own records.
type SinkStats struct {
	Name             string
	Written, Dropped uint64
	Queued, Depth    int // batches waiting, and the queue's bound
}

// NamedCount is a count with a name from a fixed set.
type NamedCount struct {
	Name  string
	Count uint64
}

// QueueStats are one capture queue's counters (see engine.QueueStats).
type QueueStats struct {
	Queue, CPU                          int
	Packets, Bytes                      uint64
	KernelPackets, KernelDrops, Freezes uint64
}

// CaptureStatus says whether and where the sensor captures.
type CaptureStatus struct {
	Running    bool
	Interfaces []string
	Since      time.Time // start of the current (or last) capture
	Queues     int
	Fanout     string
}

// Sensor is the capture engine as the API sees it. Every method is safe from
// any goroutine.
type Sensor interface {
	// Snapshot asks every worker for a copy of its state and merges them;
	// it waits for the workers' next batch end (or ctx). With the capture
	// stopped it returns an empty Snapshot.
	Snapshot(ctx context.Context, parts Parts) (Snapshot, error)
	// TopFlows returns the q.Limit open flows that match q with the
	// largest q.By, largest first, selected by each worker from its own
	// table between two batches and merged: its cost depends on q.Limit,
	// not on the tables. It waits for the workers' next batch end (or
	// ctx); with the capture stopped there are none.
	TopFlows(ctx context.Context, q flowtable.FlowQuery) ([]flowtable.Record, error)
	// Queues returns each queue's counters; cheap (atomic loads).
	Queues() []QueueStats
	// Capture returns the capture's status.
	Capture() CaptureStatus
	// StartCapture starts capturing on ifaces (nil: the configured ones).
	// It wraps ErrConflict when a capture is running, ErrInvalid when an
	// interface cannot be used.
	StartCapture(ifaces []string) (CaptureStatus, error)
	// StopCapture stops the capture, flushing its open flows; stopping a
	// stopped capture is not an error.
	StopCapture() (CaptureStatus, error)
	// Health says whether the sensor works: false with the reason when a
	// packet worker did not answer its latest liveness probe in time or
	// the capture ended without being asked to. A capture stopped on
	// request is healthy (reason may say so). It may wait for a probe, a
	// second or two at most; the reason is for people and holds no
	// addresses or error text of the system.
	Health() (ok bool, reason string)
}

// Publisher is a Sensor that publishes a snapshot periodically (package
// sensor). The API then shares each published snapshot, and what it
// rendered from it, among its requests until the next one is published,
// instead of keeping snapshots for a TTL.
type Publisher interface {
	// Published returns the Seq of the latest published snapshot.
	Published() uint64
}

// HostMetrics is the host samplers as the API sees them.
type HostMetrics interface {
	// HostMetrics returns the latest sample: doc is the "metrics" object of
	// /api/v1/metrics (cpu, memory, disk, ...), flat the same values under
	// dotted names (cpu.usage, memory.usage_percent, ...).
	HostMetrics() (doc map[string]any, flat map[string]float64, err error)
}

// ApplyResult says what a configuration change did.
type ApplyResult struct {
	Applied         []string // keys applied at once
	RestartRequired []string // keys that take effect at the next start
	// NotActedOn lists the changed keys that this build accepts but does
	// not act on yet (configs.Inert): neither applied nor waiting for a
	// restart.
	NotActedOn []string
}

// ConfigStore holds the configuration in force.
type ConfigStore interface {
	Config() configs.Config
	// Replace writes c (already validated) to the configuration file
	// atomically and applies what can change live. On error nothing
	// changed; it wraps ErrConflict when there is no file to write.
	Replace(c configs.Config) (ApplyResult, error)
}
