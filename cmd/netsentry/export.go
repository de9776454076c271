package main

import (
	"fmt"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/engine/ipfix"
	"github.com/netsentry/netsentry/httpd"
)

// collectors are the flows.export senders, one engine sink each.
type collectors []*ipfix.Sender

// exportSinks makes one IPFIX sender per flows.export entry (validated:
// every type is ipfix).
func exportSinks(cfg configs.Config) (collectors, []engine.Sink, error) {
	var cs collectors
	var sinks []engine.Sink
	for i, e := range cfg.Flows.Export {
		s, err := ipfix.New(ipfix.Options{Address: e.Address, Transport: e.ExportTransport(), Name: fmt.Sprintf("ipfix%d", i)})
		if err != nil {
			return nil, nil, fmt.Errorf("flows.export[%d]: %w", i, err)
		}
		cs = append(cs, s)
		sinks = append(sinks, s)
	}
	return cs, sinks, nil
}

// CollectorStats implements httpd.ExportMetrics.
func (cs collectors) CollectorStats() []httpd.CollectorStats {
	out := make([]httpd.CollectorStats, len(cs))
	for i, s := range cs {
		st := s.Stats()
		out[i] = httpd.CollectorStats{Name: s.Name(), Address: st.Address, Transport: st.Transport, Messages: st.Messages,
			Records: st.Records, Bytes: st.Bytes, Templates: st.Templates, Dropped: st.Dropped, Errors: st.Errors,
			Connects: st.Connects, Connected: st.Connected}
	}
	return out
}
