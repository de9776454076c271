package httpd

// writeSinks writes the ended-flow sinks' counters: each sink has its own
// bounded queue, so a slow one drops only its own records.
func writeSinks(p *promWriter, sn *Snapshot) {
	p.family("netsentry_flow_records_written_total", "counter", "Ended-flow records handed to each sink.")
	for _, k := range sn.Sinks {
		p.sample("netsentry_flow_records_written_total", float64(k.Written), "sink", k.Name)
	}
	p.family("netsentry_flow_records_dropped_total", "counter", "Ended-flow records dropped because the sink's queue was full.")
	for _, k := range sn.Sinks {
		p.sample("netsentry_flow_records_dropped_total", float64(k.Dropped), "sink", k.Name)
	}
	p.family("netsentry_flow_sink_queue_batches", "gauge", "Batches of ended flows waiting in each sink's queue.")
	for _, k := range sn.Sinks {
		p.sample("netsentry_flow_sink_queue_batches", float64(k.Queued), "sink", k.Name)
	}
}

// writeFragAnomalies writes the IP fragment anomalies, summed over sources
// (the sources are in /api/v1/network/scanners?sort=fragments).
func writeFragAnomalies(p *promWriter, sn *Snapshot) {
	p.family("netsentry_fragment_anomalies_total", "counter", "IP fragments that were tiny (a first fragment too short for the transport header), overlapped data already received, or overlapped it with different bytes.")
	p.sample("netsentry_fragment_anomalies_total", float64(sn.Stats.FragTiny), "kind", "tiny")
	p.sample("netsentry_fragment_anomalies_total", float64(sn.Stats.FragOverlap), "kind", "overlap")
	p.sample("netsentry_fragment_anomalies_total", float64(sn.Stats.FragConflict), "kind", "conflict")
}
