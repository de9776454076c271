package httpd

import "github.com/netsentry/netsentry/store/remote"

// RemoteMetrics is what /metrics reads of the remote storage writer
// (*remote.Writer); Stats must be safe from any goroutine.
type RemoteMetrics interface {
	Stats() remote.Stats
}

// writeRemote writes the remote writer's counters, labelled with its
// backend (storage.type).
func (s *Server) writeRemote(p *promWriter) {
	if s.opt.Remote == nil {
		return
	}
	st := s.opt.Remote.Stats()
	b := st.Backend
	p.family("netsentry_remote_samples_sent_total", "counter", "Samples the remote backend took.")
	p.sample("netsentry_remote_samples_sent_total", float64(st.Sent), "backend", b)
	p.family("netsentry_remote_samples_failed_total", "counter",
		"Samples not sent for good: refused by the backend as bad data, unreadable in the queue, or not representable (InfluxDB: NaN, Inf).")
	p.sample("netsentry_remote_samples_failed_total", float64(st.Failed), "backend", b)
	p.family("netsentry_remote_samples_retried_total", "counter", "Samples in requests that failed and are sent again (the backend down, 5xx, 429, 401/403/404).")
	p.sample("netsentry_remote_samples_retried_total", float64(st.Retried), "backend", b)
	p.family("netsentry_remote_samples_dropped_total", "counter", "Samples deleted unsent because the queue was past storage.remote_queue_mb.")
	p.sample("netsentry_remote_samples_dropped_total", float64(st.Dropped), "backend", b)
	p.family("netsentry_remote_samples_queued", "gauge", "Samples waiting in the on-disk queue for the remote backend.")
	p.sample("netsentry_remote_samples_queued", float64(st.Queued), "backend", b)
	p.family("netsentry_remote_queue_bytes", "gauge", "Bytes of the records in the on-disk queue.")
	p.sample("netsentry_remote_queue_bytes", float64(st.QueuedBytes), "backend", b)
	p.family("netsentry_remote_queue_capacity_bytes", "gauge", "Bound of the on-disk queue (storage.remote_queue_mb).")
	p.sample("netsentry_remote_queue_capacity_bytes", float64(st.CapacityBytes), "backend", b)
	p.family("netsentry_remote_requests_total", "counter", "Requests made to the remote backend, every attempt counted.")
	p.sample("netsentry_remote_requests_total", float64(st.Requests), "backend", b)
	last := 0.0
	if !st.LastSent.IsZero() {
		last = float64(st.LastSent.UnixMilli()) / 1e3
	}
	p.family("netsentry_remote_last_sent_timestamp_seconds", "gauge", "When the backend last took a request (Unix time); 0: not since the start.")
	p.sample("netsentry_remote_last_sent_timestamp_seconds", last, "backend", b)
}
