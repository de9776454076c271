package httpd

import (
	"errors"
	"maps"
	"time"

	"github.com/valyala/fasthttp"
)

// errNoHost is the answer for host metrics when there are no samplers.
var errNoHost = errors.New("host metrics not available: this build runs no host samplers")

// sensorMetrics returns the sensor's own metrics as the "sensor" object
// and under dotted names (network.*).
func (s *Server) sensorMetrics(c *cached) (map[string]any, map[string]float64) {
	var pk, by, drops uint64
	for _, q := range s.opt.Sensor.Queues() {
		pk += q.Packets
		by += q.Bytes
		drops += q.KernelDrops
	}
	st := c.snap.Stats
	var malformed uint64
	for _, d := range c.snap.DecodeErrors {
		malformed += d.Count
	}
	flat := map[string]float64{
		"network.packets":          float64(pk),
		"network.bytes":            float64(by),
		"network.drops":            float64(drops),
		"network.malformed":        float64(malformed),
		"network.connection_count": float64(st.Active),
		"network.flows.created":    float64(st.FlowsCreated),
		"network.flows.ended":      float64(st.FlowsEnded),
		"network.flows.evicted":    float64(st.FlowsEvicted),
	}
	doc := map[string]any{
		"packets_captured": pk, "bytes_captured": by, "drops": drops, "malformed": malformed,
		"connections_active": st.Active, "flows_created": st.FlowsCreated,
		"flows_ended": st.FlowsEnded, "flows_evicted": st.FlowsEvicted,
		"capture_running": s.opt.Sensor.Capture().Running,
	}
	return doc, flat
}

// metricsNow gathers the /api/v1/metrics document and the dotted names;
// hostErr says why host metrics are missing.
func (s *Server) metricsNow(ctx *fasthttp.RequestCtx) (doc map[string]any, flat map[string]float64, hostErr error, ok bool) {
	c := s.snapshot(ctx, s.light)
	if c == nil {
		return nil, nil, nil, false
	}
	netDoc, netFlat := s.sensorMetrics(c)
	doc, flat = map[string]any{}, map[string]float64{}
	hostErr = errNoHost
	if s.opt.Host != nil {
		var hdoc map[string]any
		var hflat map[string]float64
		if hdoc, hflat, hostErr = s.opt.Host.HostMetrics(); hostErr == nil {
			maps.Copy(doc, hdoc)
			maps.Copy(flat, hflat)
		}
	}
	doc["sensor"] = netDoc
	maps.Copy(flat, netFlat)
	return doc, flat, hostErr, true
}

func (s *Server) metricsDoc(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	doc, _, hostErr, ok := s.metricsNow(ctx)
	if !ok {
		return
	}
	if hostErr != nil {
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, hostErr.Error())
		return
	}
	writeJSON(ctx, map[string]any{"timestamp": time.Now().UTC().Format(tsFormat), "host": s.hostname, "metrics": doc})
}

func (s *Server) metricOne(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	name, _ := ctx.UserValue("name").(string)
	_, flat, hostErr, ok := s.metricsNow(ctx)
	if !ok {
		return
	}
	v, found := flat[name]
	switch {
	case found:
		writeJSON(ctx, map[string]any{"timestamp": time.Now().UTC().Format(tsFormat), "name": name, "value": v})
	case hostErr != nil && !isNetworkName(name):
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, hostErr.Error())
	default:
		writeProblem(ctx, fasthttp.StatusNotFound, "no metric named "+quote(name)+"; GET /api/v1/metrics lists them")
	}
}

func isNetworkName(n string) bool { return len(n) > 8 && n[:8] == "network." }

func quote(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return `"` + s + `"`
}
