package httpd

import "github.com/netsentry/netsentry/store"

// StoreMetrics is what /metrics reads of the local store: the time series'
// and the flow history's counters (sensor.History implements it). Both
// calls must be safe from any goroutine.
type StoreMetrics interface {
	StoreStats() store.Stats
	FlowStats() store.FlowStats
}

// writeStore writes the local store's own metrics.
func (s *Server) writeStore(p *promWriter) {
	if s.opt.StoreMetrics == nil {
		return
	}
	st, fl := s.opt.StoreMetrics.StoreStats(), s.opt.StoreMetrics.FlowStats()
	p.family("netsentry_store_series", "gauge", "Time series interned in the store.")
	p.sample("netsentry_store_series", float64(st.Series))
	p.family("netsentry_store_samples_appended_total", "counter", "Samples appended to the store since it opened.")
	p.sample("netsentry_store_samples_appended_total", float64(st.Samples))
	p.family("netsentry_store_samples_rejected_total", "counter", "Samples the store skipped (empty name, bad labels) since it opened.")
	p.sample("netsentry_store_samples_rejected_total", float64(st.Rejected))
	p.family("netsentry_store_append_errors_total", "counter", "Ticks the store failed to append (out of order, a failed commit) since it opened.")
	p.sample("netsentry_store_append_errors_total", float64(st.AppendErrors))
	p.family("netsentry_store_chunks_written_total", "counter", "Compressed chunks written since the store opened.")
	p.sample("netsentry_store_chunks_written_total", float64(st.Chunks))
	p.family("netsentry_store_disk_bytes", "gauge", "Bytes of every file of the store's database (time series, flow history, write-ahead log).")
	p.sample("netsentry_store_disk_bytes", float64(st.DiskBytes))
	p.family("netsentry_store_partitions", "gauge", "Partitions holding data, per kind of data.")
	p.sample("netsentry_store_partitions", float64(st.Partitions), "data", "series")
	p.sample("netsentry_store_partitions", float64(fl.Partitions), "data", "flows")
	p.family("netsentry_store_partitions_dropped_total", "counter", "Partitions deleted (a DeleteRange and a compaction) since the store opened, per kind of data and reason.")
	p.sample("netsentry_store_partitions_dropped_total", float64(st.DroppedRetention), "data", "series", "reason", "retention")
	p.sample("netsentry_store_partitions_dropped_total", float64(st.DroppedDiskCap), "data", "series", "reason", "disk_cap")
	p.sample("netsentry_store_partitions_dropped_total", float64(fl.DroppedRetention), "data", "flows", "reason", "retention")
	p.sample("netsentry_store_partitions_dropped_total", float64(fl.DroppedDiskCap), "data", "flows", "reason", "disk_cap")
	p.family("netsentry_store_retention_errors_total", "counter", "Retention or disk-cap passes of the time series that failed since the store opened.")
	p.sample("netsentry_store_retention_errors_total", float64(st.EnforceErrors))
	p.family("netsentry_store_compactions_total", "counter", "Compactions of the store's database since it opened.")
	p.sample("netsentry_store_compactions_total", float64(st.Compactions))
	p.family("netsentry_store_flow_records", "gauge", "Ended-flow records held in the flow history.")
	p.sample("netsentry_store_flow_records", float64(fl.Records))
	p.family("netsentry_store_flow_bytes", "gauge", "Bytes of the flow history's keys and values (what its share of storage.max_disk_mb caps).")
	p.sample("netsentry_store_flow_bytes", float64(fl.Bytes))
}
