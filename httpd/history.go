package httpd

import (
	"bufio"
	"bytes"
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/store"
)

// Flows is the flow history as the API sees it (store.FlowLog).
type Flows interface {
	// Query returns the records that match q, newest first, and the cursor
	// of the next page ("" when none). An error with a method
	// BadRequest() bool that returns true (a cursor that does not decode)
	// is the client's fault and gets 400; any other is 500.
	Query(q store.FlowQuery) ([]flowtable.Record, string, error)
}

// History limits.
const (
	// DefaultFlowsLimit is the page size of /api/v1/network/flows without
	// ?limit=.
	DefaultFlowsLimit = 100
	// historyPoints is the number of points /history aims at when no step
	// is given.
	historyPoints = 300
	maxCursorLen  = 1024
)

// historyExpr maps a dotted name of /api/v1/metrics to the PromQL
// expression over the stored /metrics families that gives its value: the
// sensor's totals are sums over the queues (or reasons) of their family,
// the host metrics are their netsentry_node_* family, scaled back from the
// base unit (ratios 0-1) to the dotted name's unit (percent). Each is
// wrapped in sum() so that the answer is one series.
func historyExpr(dotted string) (expr, family string, ok bool) {
	switch dotted {
	case "network.packets":
		family = "netsentry_engine_packets_total"
	case "network.bytes":
		family = "netsentry_engine_bytes_total"
	case "network.drops":
		family = "netsentry_engine_drops_total"
	case "network.malformed":
		family = "netsentry_decode_errors_total"
	case "network.connection_count":
		family = "netsentry_flows_active"
	case "network.flows.created":
		family = "netsentry_flows_created_total"
	case "network.flows.ended":
		family = "netsentry_flows_ended_total"
	case "network.flows.evicted":
		family = "netsentry_flows_evicted_total"
	}
	if family != "" {
		return "sum(" + family + ")", family, true
	}
	for _, f := range hostFamilies {
		if f.dotted != dotted {
			continue
		}
		expr = "sum(" + f.name + ")"
		if f.scale != 1 {
			expr += " * " + strconv.FormatFloat(math.Round(1/f.scale), 'g', -1, 64)
		}
		return expr, f.name, true
	}
	return "", "", false
}

// historyPoint is one point of /history; Value is null for NaN or an
// infinity.
type historyPoint struct {
	Timestamp string   `json:"timestamp"`
	Value     *float64 `json:"value"`
}

// metricHistory answers /api/v1/metrics/{name}/history.
func (s *Server) metricHistory(ctx *fasthttp.RequestCtx) {
	q, msg := parseQuery(ctx, "start", "end", "step")
	if msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	name, _ := ctx.UserValue("name").(string)
	expr, family, ok := historyExpr(name)
	if !ok {
		writeProblem(ctx, fasthttp.StatusNotFound, "no stored metric named "+quote(name)+
			"; the history has network.packets, network.bytes, network.drops, network.malformed, network.connection_count, network.flows.{created,ended,evicted} and the host metrics of /metrics")
		return
	}
	if s.prom == nil {
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, errNoStore.Error())
		return
	}
	now := time.Now().UTC()
	end, start := now, now.Add(-time.Hour)
	var err error
	if q.has("end") {
		if end, err = parsePromTime(q.get("end")); err != nil {
			writeProblem(ctx, fasthttp.StatusBadRequest, "end: "+err.Error())
			return
		}
		if !q.has("start") {
			start = end.Add(-time.Hour)
		}
	}
	if q.has("start") {
		if start, err = parsePromTime(q.get("start")); err != nil {
			writeProblem(ctx, fasthttp.StatusBadRequest, "start: "+err.Error())
			return
		}
	}
	if end.Before(start) {
		writeProblem(ctx, fasthttp.StatusBadRequest, "end is before start")
		return
	}
	step := max(5*time.Second, (end.Sub(start)/historyPoints + time.Second - 1).Truncate(time.Second))
	if q.has("step") {
		if step, err = parsePromDuration(q.get("step")); err != nil {
			writeProblem(ctx, fasthttp.StatusBadRequest, "step: "+err.Error())
			return
		}
		if step < time.Second {
			writeProblem(ctx, fasthttp.StatusBadRequest, "step: at least 1s")
			return
		}
	}
	if end.Sub(start)/step > MaxPointsPerSeries {
		writeProblem(ctx, fasthttp.StatusBadRequest, "the range and step would return more than 11,000 points; use a larger step")
		return
	}
	a := s.prom
	qctx, cancel, _ := a.context(promParams{}, s.done)
	defer cancel()
	if e := a.acquire(qctx); e != nil {
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, e.err.Error())
		return
	}
	defer a.release()
	qry, err := a.engine.NewRangeQuery(qctx, a.q, nil, expr, start, end, step)
	if err != nil {
		panic("BUG: history expression " + expr + ": " + err.Error())
	}
	defer qry.Close()
	res := qry.Exec(qctx)
	if res.Err != nil {
		e := execError(res.Err)
		writeProblem(ctx, e.status(), "evaluate history: "+res.Err.Error())
		return
	}
	points := []historyPoint{}
	if m, ok := res.Value.(promql.Matrix); ok && len(m) > 0 {
		for _, p := range m[0].Floats {
			hp := historyPoint{Timestamp: time.UnixMilli(p.T).UTC().Format(time.RFC3339Nano)}
			if !math.IsNaN(p.F) && !math.IsInf(p.F, 0) {
				v := p.F
				hp.Value = &v
			}
			points = append(points, hp)
		}
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, map[string]any{
		"name": name, "metric": family, "query": expr, "host": s.hostname,
		"start": start.UTC().Format(time.RFC3339Nano), "end": end.UTC().Format(time.RFC3339Nano),
		"step_sec": step.Seconds(), "points": points,
	})
}

// protoNames are the transport protocol names of flow records.
var protoNames = func() map[string]string {
	m := map[string]string{}
	for i := 0; i < 256; i++ {
		n := flowtable.ProtoName(uint8(i))
		m[strings.ToUpper(n)] = n
	}
	return m
}()

// flowsHistory answers /api/v1/network/flows.
func (s *Server) flowsHistory(ctx *fasthttp.RequestCtx) {
	q, msg := parseQuery(ctx, "start", "end", "ip", "port", "protocol", "application_protocol", "limit", "cursor")
	if msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	fq := store.FlowQuery{Port: -1}
	var err error
	if q.has("start") {
		if fq.Start, err = parsePromTime(q.get("start")); err != nil {
			writeProblem(ctx, fasthttp.StatusBadRequest, "start: "+err.Error())
			return
		}
	}
	if q.has("end") {
		if fq.End, err = parsePromTime(q.get("end")); err != nil {
			writeProblem(ctx, fasthttp.StatusBadRequest, "end: "+err.Error())
			return
		}
	}
	if !fq.Start.IsZero() && !fq.End.IsZero() && fq.End.Before(fq.Start) {
		writeProblem(ctx, fasthttp.StatusBadRequest, "end is before start")
		return
	}
	if q.has("ip") {
		a, err := netip.ParseAddr(q.get("ip"))
		if err != nil || a.Zone() != "" {
			writeProblem(ctx, fasthttp.StatusBadRequest, "ip "+quote(q.get("ip"))+": want an IPv4 or IPv6 address")
			return
		}
		fq.IP = a.Unmap()
	}
	if q.has("port") {
		n, err := strconv.Atoi(q.get("port"))
		if err != nil || n < 0 || n > 65535 {
			writeProblem(ctx, fasthttp.StatusBadRequest, "port "+quote(q.get("port"))+": want an integer from 0 to 65535")
			return
		}
		fq.Port = n
	}
	if q.has("protocol") {
		n, ok := protoNames[strings.ToUpper(q.get("protocol"))]
		if num, err := strconv.ParseUint(q.get("protocol"), 10, 8); err == nil {
			n, ok = flowtable.ProtoName(uint8(num)), true
		}
		if !ok {
			writeProblem(ctx, fasthttp.StatusBadRequest, "protocol "+quote(q.get("protocol"))+": want TCP, UDP, ICMP, ICMPv6, SCTP, ... or a protocol number")
			return
		}
		fq.Protocol = n
	}
	if q.has("application_protocol") {
		v := q.get("application_protocol")
		if v == "" || len(v) > 64 {
			writeProblem(ctx, fasthttp.StatusBadRequest, "application_protocol: want a name such as HTTP, DNS, TLS")
			return
		}
		fq.AppProtocol = v
	}
	if fq.Limit, msg = q.limit(DefaultFlowsLimit); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	if c := q.get("cursor"); len(c) > maxCursorLen {
		writeProblem(ctx, fasthttp.StatusBadRequest, "cursor: not one this server gave")
		return
	} else {
		fq.Cursor = c
	}
	if s.opt.Flows == nil {
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, errNoStore.Error())
		return
	}
	recs, next, err := s.opt.Flows.Query(fq)
	if err != nil {
		var br interface{ BadRequest() bool }
		if errors.As(err, &br) && br.BadRequest() {
			writeProblem(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		s.log.Error("api: flow history query failed", "err", err)
		writeProblem(ctx, fasthttp.StatusInternalServerError, "cannot read the flow history")
		return
	}
	b := append(make([]byte, 0, 64+len(recs)*600), `{"flows":[`...)
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = recs[i].AppendJSON(b, nil)
	}
	b = append(b, `],"next_cursor":`...)
	b = appendString(b, next)
	b = append(b, '}')
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSONBytes(ctx, b)
}

// family is one metric family of /metrics.
type family struct{ name, typ, help string }

// families returns the families /metrics writes, with their type and help.
func (s *Server) families() []family {
	var buf bytes.Buffer
	s.set.WritePrometheus(&buf)
	var out []family
	idx := map[string]int{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var kind string
		switch {
		case strings.HasPrefix(line, "# HELP "):
			kind = "help"
		case strings.HasPrefix(line, "# TYPE "):
			kind = "type"
		default:
			continue
		}
		name, rest, _ := strings.Cut(line[len("# HELP "):], " ")
		i, ok := idx[name]
		if !ok {
			i = len(out)
			idx[name] = i
			out = append(out, family{name: name})
		}
		if kind == "help" {
			out[i].help = rest
		} else {
			out[i].typ = rest
		}
	}
	return out
}
