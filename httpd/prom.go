package httpd

import (
	"context"
	"io"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/flowtable"
)

// prometheus serves /metrics in the Prometheus text format.
func (s *Server) prometheus(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	// The set holds the request counters alone and writes them first, then
	// calls writeMetrics for the rest.
	p := &promWriter{w: ctx}
	p.family("netsentry_api_requests_total", "counter", "API requests answered, by route template, method and status code.")
	s.set.WritePrometheus(ctx)
}

// promWriter writes metric families with HELP and TYPE lines.
type promWriter struct {
	w   io.Writer
	buf []byte
}

func (p *promWriter) family(name, typ, help string) {
	p.buf = append(p.buf[:0], "# HELP "...)
	p.buf = append(p.buf, name...)
	p.buf = append(p.buf, ' ')
	p.buf = append(p.buf, help...)
	p.buf = append(p.buf, "\n# TYPE "...)
	p.buf = append(p.buf, name...)
	p.buf = append(p.buf, ' ')
	p.buf = append(p.buf, typ...)
	p.buf = append(p.buf, '\n')
	p.w.Write(p.buf)
}

// sample writes one sample; labels alternate names and values.
func (p *promWriter) sample(name string, v float64, labels ...string) {
	p.buf = append(p.buf[:0], name...)
	if len(labels) > 0 {
		p.buf = append(p.buf, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.buf = append(p.buf, ',')
			}
			p.buf = append(p.buf, labels[i]...)
			p.buf = append(p.buf, `="`...)
			p.buf = appendLabelValue(p.buf, labels[i+1])
			p.buf = append(p.buf, '"')
		}
		p.buf = append(p.buf, '}')
	}
	p.buf = append(p.buf, ' ')
	p.buf = strconv.AppendFloat(p.buf, v, 'g', -1, 64)
	p.buf = append(p.buf, '\n')
	p.w.Write(p.buf)
}

func appendLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// WriteMetrics writes to w what /metrics serves, but for the API's own
// request counters: the store records it every tick (package sensor). It
// needs no listener, so it works before Start and without one.
func (s *Server) WriteMetrics(w io.Writer) { s.writeMetrics(w) }

// writeMetrics writes every family but the request counters; the
// metrics.Set calls it after writing those.
func (s *Server) writeMetrics(w io.Writer) {
	p := &promWriter{w: w}
	p.family("netsentry_build_info", "gauge", "Build of the running sensor; always 1.")
	p.sample("netsentry_build_info", 1, "version", s.opt.Version, "goversion", s.opt.GoVersion)

	p.family("netsentry_api_stream_dropped_total", "counter",
		"Event-stream clients dropped because they did not read for the stream write timeout.")
	p.sample("netsentry_api_stream_dropped_total", float64(s.streams.dropped.Load()))
	p.family("netsentry_api_stream_rejected_total", "counter",
		"Event-stream requests refused: reason client_limit (429, the client address holds its maximum of streams) or server_limit (503, the server holds its maximum).")
	p.sample("netsentry_api_stream_rejected_total", float64(s.streams.rejectedClient.Load()), "reason", "client_limit")
	p.sample("netsentry_api_stream_rejected_total", float64(s.streams.rejectedServer.Load()), "reason", "server_limit")
	s.streams.mu.Lock()
	open := s.streams.open
	s.streams.mu.Unlock()
	p.family("netsentry_api_streams_open", "gauge", "Event streams open now.")
	p.sample("netsentry_api_streams_open", float64(open))

	st := s.opt.Sensor.Capture()
	p.family("netsentry_capture_running", "gauge", "1 while the sensor captures packets, else 0.")
	run := 0.0
	if st.Running {
		run = 1
	}
	p.sample("netsentry_capture_running", run)

	qs := s.opt.Sensor.Queues()
	queueFamily := func(name, help string, get func(q *QueueStats) uint64) {
		p.family(name, "counter", help)
		for i := range qs {
			p.sample(name, float64(get(&qs[i])), "queue", strconv.Itoa(qs[i].Queue))
		}
	}
	queueFamily("netsentry_engine_packets_total", "Frames the capture workers took from the ring, per queue.",
		func(q *QueueStats) uint64 { return q.Packets })
	queueFamily("netsentry_engine_bytes_total", "Wire bytes of the frames the workers took from the ring, per queue.",
		func(q *QueueStats) uint64 { return q.Bytes })
	queueFamily("netsentry_engine_kernel_packets_total", "Frames the kernel passed to the capture socket (drops included), per queue.",
		func(q *QueueStats) uint64 { return q.KernelPackets })
	queueFamily("netsentry_engine_drops_total", "Frames the kernel dropped because the ring was full, per queue.",
		func(q *QueueStats) uint64 { return q.KernelDrops })
	queueFamily("netsentry_engine_freezes_total", "Times the ring of a queue was full (queue frozen), per queue.",
		func(q *QueueStats) uint64 { return q.Freezes })

	cctx, cancel := context.WithTimeout(context.Background(), snapshotWait)
	defer cancel()
	c, err := s.light.get(cctx)
	if err != nil {
		s.log.Warn("metrics: snapshot failed", "err", err)
	}
	if c != nil {
		sn := &c.snap
		p.family("netsentry_decode_errors_total", "counter", "Frames that could not be decoded completely, by reason.")
		for _, d := range sn.DecodeErrors {
			p.sample("netsentry_decode_errors_total", float64(d.Count), "reason", d.Name)
		}
		p.family("netsentry_decode_non_ip_frames_total", "counter", "Frames without an IP layer (ARP, LLDP, ...).")
		p.sample("netsentry_decode_non_ip_frames_total", float64(sn.NonIP))
		p.family("netsentry_flows_active", "gauge", "Flows in the flow tables now.")
		p.sample("netsentry_flows_active", float64(sn.Stats.Active))
		p.family("netsentry_flows_created_total", "counter", "Flows created.")
		p.sample("netsentry_flows_created_total", float64(sn.Stats.FlowsCreated))
		p.family("netsentry_flows_ended_total", "counter", "Flow records written (ended flows and active-timeout cuts).")
		p.sample("netsentry_flows_ended_total", float64(sn.Stats.FlowsEnded))
		p.family("netsentry_flows_evicted_total", "counter", "Flows ended early because the flow table was full.")
		p.sample("netsentry_flows_evicted_total", float64(sn.Stats.FlowsEvicted))
		p.family("netsentry_flows_detection_skipped_total", "counter",
			"Flows reported by their port guess alone because every detection state of the memory budget was in use.")
		p.sample("netsentry_flows_detection_skipped_total", float64(sn.Stats.DetectSkipped))
		writeDegraded(p, &sn.Stats)
		s.writeProtocols(p, sn)
		writeSinks(p, sn)
		writeFragAnomalies(p, sn)
	}
	s.writeScan(p)
	s.writeHost(p)
	s.writeAlerts(p)
	s.writeRemote(p)
	s.writeIPFIX(p)
	s.writeStore(p)
}

// writeProtocols writes the protocol distribution with a bounded label set:
// every known protocol, zero or not, and "other" for any other name, each
// twice: guessed="false" for flows whose payload showed the protocol,
// guessed="true" for flows that only a port suggests it for.
func (s *Server) writeProtocols(p *promWriter, sn *Snapshot) {
	type agg struct{ flows, pkts, bytes uint64 }
	type key struct {
		name  string
		guess bool
	}
	by := make(map[key]*agg, 2*len(s.opt.Protocols)+2)
	names := append(append([]string{}, s.opt.Protocols...), "other")
	for _, n := range names {
		by[key{n, false}], by[key{n, true}] = &agg{}, &agg{}
	}
	for _, ps := range sn.Protocols {
		k := key{ps.Name, ps.Guess}
		if !s.protoSet[ps.Name] {
			k.name = "other"
		}
		a := by[k]
		a.flows += ps.Flows
		a.pkts += ps.Packets
		a.bytes += ps.Bytes
	}
	fam := func(name, help string, get func(a *agg) uint64) {
		p.family(name, "counter", help)
		for _, n := range names {
			for _, g := range []bool{false, true} {
				p.sample(name, float64(get(by[key{n, g}])), "protocol", strings.ToLower(n), "guessed", strconv.FormatBool(g))
			}
		}
	}
	fam("netsentry_protocol_flows_total", "Flows per application protocol (open flows included); guessed=\"true\": named by port only.",
		func(a *agg) uint64 { return a.flows })
	fam("netsentry_protocol_packets_total", "Packets per application protocol (open flows included); guessed=\"true\": named by port only.",
		func(a *agg) uint64 { return a.pkts })
	fam("netsentry_protocol_bytes_total", "Wire bytes per application protocol (open flows included); guessed=\"true\": named by port only.",
		func(a *agg) uint64 { return a.bytes })
}

// hostFamilies maps dotted host-metric names (as sampler.Snapshot.Dotted
// names them) to node_exporter-like families: name, type, help, and the
// factor from the dotted value to the base unit. The history endpoint
// (historyExpr) reads the same table backwards.
var hostFamilies = []struct {
	dotted, name, typ, help string
	scale                   float64
}{
	{"cpu.usage", "netsentry_node_cpu_usage_ratio", "gauge", "CPU busy share of all cores, 0 to 1.", 0.01},
	{"cpu.load_avg_1m", "netsentry_node_load1", "gauge", "1-minute load average.", 1},
	{"cpu.load_avg_5m", "netsentry_node_load5", "gauge", "5-minute load average.", 1},
	{"cpu.load_avg_15m", "netsentry_node_load15", "gauge", "15-minute load average.", 1},
	{"cpu.temperature", "netsentry_node_cpu_temperature_celsius", "gauge", "CPU temperature.", 1},
	{"memory.total", "netsentry_node_memory_total_bytes", "gauge", "Physical memory.", 1},
	{"memory.used", "netsentry_node_memory_used_bytes", "gauge", "Physical memory in use.", 1},
	{"memory.usage_percent", "netsentry_node_memory_usage_ratio", "gauge", "Share of physical memory in use, 0 to 1.", 0.01},
	{"swap.usage_percent", "netsentry_node_swap_usage_ratio", "gauge", "Share of swap in use, 0 to 1.", 0.01},
	{"disk.total", "netsentry_node_filesystem_size_bytes", "gauge", "Size of the data filesystem.", 1},
	{"disk.used", "netsentry_node_filesystem_used_bytes", "gauge", "Used bytes of the data filesystem.", 1},
	{"disk.inodes_usage_percent", "netsentry_node_filesystem_inodes_usage_ratio", "gauge", "Share of inodes in use, 0 to 1.", 0.01},
	{"disk.io_utilization_percent", "netsentry_node_disk_io_utilization_ratio", "gauge", "Share of time the disk was busy, 0 to 1.", 0.01},
}

// writeHost writes the host metrics, if there are samplers.
func (s *Server) writeHost(p *promWriter) {
	if s.opt.Host == nil {
		return
	}
	_, flat, err := s.opt.Host.HostMetrics()
	if err != nil {
		return
	}
	for _, f := range hostFamilies {
		v, ok := flat[f.dotted]
		if !ok {
			continue
		}
		p.family(f.name, f.typ, f.help)
		p.sample(f.name, v*f.scale)
	}
}

// writeDegraded writes the overload degradation (flowtable.Mode): the
// current level of the most degraded shard, how often each level was
// entered, and what each level shed.
func writeDegraded(p *promWriter, st *flowtable.Stats) {
	p.family("netsentry_degraded_mode", "gauge",
		"Overload degradation level now (the most degraded worker): 0 normal, 1 no detection for new flows, 2 and scan signals sampled, 3 and emergency idle timeouts.")
	p.sample("netsentry_degraded_mode", float64(st.DegradedMode))
	p.family("netsentry_degraded_entered_total", "counter", "Times a worker entered each overload degradation level.")
	for m := flowtable.ModeNoDetect; m < flowtable.NumModes; m++ {
		p.sample("netsentry_degraded_entered_total", float64(st.DegradedEntered[m]), "mode", m.String())
	}
	p.family("netsentry_degraded_detection_skipped_total", "counter",
		"Flows reported by their port guess because detection was off for new flows under overload.")
	p.sample("netsentry_degraded_detection_skipped_total", float64(st.DegradedDetect))
	p.family("netsentry_degraded_scan_skipped_total", "counter",
		"New connections not fed to the scan tracker while scan signals were sampled under overload.")
	p.sample("netsentry_degraded_scan_skipped_total", float64(st.DegradedScan))
	p.family("netsentry_degraded_emergency_evicted_total", "counter",
		"Flows ended early by the emergency idle timeouts under overload.")
	p.sample("netsentry_degraded_emergency_evicted_total", float64(st.DegradedEmergency))
}
