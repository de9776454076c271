package httpd

// CollectorStats are one flow collector's counters (flows.export): the
// daemon adapts engine/ipfix's.
type CollectorStats struct {
	Name               string // the sink's name, e.g. "ipfix0" (flows.export[0])
	Address, Transport string
	Messages, Records  uint64
	Bytes, Templates   uint64
	Dropped, Errors    uint64
	Connects           uint64
	Connected          bool
}

// ExportMetrics is what /metrics reads of flow export; safe from any
// goroutine.
type ExportMetrics interface {
	CollectorStats() []CollectorStats
}

// writeIPFIX writes each collector's counters, labelled by its sink name
// (ipfix0 for flows.export[0], as in netsentry_flow_records_dropped_total)
// and transport; the address is not a label.
func (s *Server) writeIPFIX(p *promWriter) {
	if s.opt.Export == nil {
		return
	}
	cs := s.opt.Export.CollectorStats()
	if len(cs) == 0 {
		return
	}
	type metric struct {
		name, typ, help string
		v               func(c *CollectorStats) float64
	}
	for _, m := range []metric{
		{"netsentry_ipfix_messages_sent_total", "counter", "IPFIX messages sent to the collector.", func(c *CollectorStats) float64 { return float64(c.Messages) }},
		{"netsentry_ipfix_records_sent_total", "counter", "IPFIX data records (flows) sent to the collector.", func(c *CollectorStats) float64 { return float64(c.Records) }},
		{"netsentry_ipfix_sent_bytes_total", "counter", "IPFIX message bytes sent to the collector.", func(c *CollectorStats) float64 { return float64(c.Bytes) }},
		{"netsentry_ipfix_template_sets_sent_total", "counter", "IPFIX template sets sent (UDP: every refresh interval; TCP: once per connection).", func(c *CollectorStats) float64 { return float64(c.Templates) }},
		{"netsentry_ipfix_records_dropped_total", "counter", "Flow records not sent because the collector was not connected or the send failed.", func(c *CollectorStats) float64 { return float64(c.Dropped) }},
		{"netsentry_ipfix_errors_total", "counter", "Failed IPFIX sends and connection attempts.", func(c *CollectorStats) float64 { return float64(c.Errors) }},
		{"netsentry_ipfix_connects_total", "counter", "Connections made to the collector (UDP: the socket opened).", func(c *CollectorStats) float64 { return float64(c.Connects) }},
		{"netsentry_ipfix_connected", "gauge", "1 while the sensor holds a connection (TCP) or socket (UDP) to the collector.", func(c *CollectorStats) float64 {
			if c.Connected {
				return 1
			}
			return 0
		}},
	} {
		p.family(m.name, m.typ, m.help)
		for i := range cs {
			p.sample(m.name, m.v(&cs[i]), "collector", cs[i].Name, "transport", cs[i].Transport)
		}
	}
}
