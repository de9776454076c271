// Package sensor owns the running sensor's state between the packet
// workers and their consumers: the capture's lifecycle (start, stop,
// restart from the API, a capture that ended by itself) and the periodic
// sensor snapshot.
//
// One snapshot is published every interval (1 s by default) and shared by
// every consumer: the API and /metrics (through httpd.Sensor, which Sensor
// implements), the systemd watchdog and /healthz (Health), the terminal
// summary, the alert evaluator (RunAlerts, alerts.go: the snapshot turned
// into alerting signals, and the Catalog of the metrics rules may use), and
// the store to come (Latest, Subscribe).
// No consumer asks the workers itself. Counters, flow-table stats, the
// protocol distribution, queue counters (kernel drops) and flow-sink
// counters are in every snapshot; the costly parts (open flows, every
// host, per-source scan signals) are copied while a consumer asks for them
// (Want, Wait), and no more often than ten times the time their last copy
// took, so the workers spend at most a tenth of their time copying.
//
// Threading: Run is the one goroutine that asks the workers (each worker
// answers between two of its batches, see engine.Worker.Snapshot) and
// publishes. Snapshots are immutable once published; read them from any
// goroutine, never modify them. StartCapture and StopCapture serialise on
// one mutex; StopCapture waits for the workers to drain and flush.
//
// Lifetimes: a capture's engine lives from StartCapture to StopCapture (or
// Close); the last one is kept for the final summary (LastCapture).
//
// The history: OpenHistory opens the local store the storage.* keys
// describe (package store: the time series and the flow history in one
// pebble database). A Recorder stores one tick every storage.interval:
// what /metrics serves (httpd.Server.WriteMetrics, the API's request
// counters aside) parsed by Prometheus's own text parser (ParseSamples),
// so that the stored series are those a Prometheus scraping /metrics
// stores; every sample of a tick shares its aligned timestamp. Its Run is
// its only goroutine; the flow history is a flow sink of the exporter,
// which closes it; History.Close closes the store after that.
package sensor
