package httpd

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/geo"
)

const (
	defaultConnLimit = 100
	defaultHostLimit = 10
	tsFormat         = "2006-01-02T15:04:05Z"
)

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, tsFormat)
	return append(b, '"')
}

// snapshot returns the cache's snapshot or answers 503.
func (s *Server) snapshot(ctx *fasthttp.RequestCtx, c *snapCache) *cached {
	cctx, cancel := context.WithTimeout(context.Background(), snapshotWait)
	defer cancel()
	snap, err := c.get(cctx)
	if err != nil {
		s.log.Warn("api: snapshot failed", "err", err)
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, "the capture workers did not answer within "+snapshotWait.String()+"; try again")
		return nil
	}
	return snap
}

// connections answers /network/connections from the workers' top-N
// selections (Sensor.TopFlows through topCache): the filters (protocol,
// application_protocol, host, port) are applied by each worker to every
// open flow while it selects, so they are exact, and no request copies the
// table.
func (s *Server) connections(ctx *fasthttp.RequestCtx) {
	q, msg := parseQuery(ctx, "limit", "sort", "protocol", "application_protocol", "host", "port")
	var fq flowtable.FlowQuery
	if msg == "" {
		fq.Limit, msg = q.limit(defaultConnLimit)
	}
	if msg == "" {
		switch v := q.get("sort"); v {
		case "", "bytes":
			fq.By = flowtable.ByBytes
		case "packets":
			fq.By = flowtable.ByPackets
		case "duration":
			fq.By = flowtable.ByDuration
		default:
			msg = fmt.Sprintf("sort %q: want bytes, packets or duration", v)
		}
	}
	if msg == "" {
		fq.Proto, msg = nameParam(q, "protocol")
	}
	if msg == "" {
		fq.App, msg = nameParam(q, "application_protocol")
	}
	if msg == "" && q.has("host") {
		a, err := netip.ParseAddr(q.get("host"))
		if err != nil {
			msg = fmt.Sprintf("host %q: not an IP address", q.get("host"))
		}
		fq.Host = a.Unmap()
	}
	if msg == "" && q.has("port") {
		n, err := strconv.Atoi(q.get("port"))
		if err != nil || n < 0 || n > 65535 {
			msg = fmt.Sprintf("port %q: want an integer from 0 to 65535", q.get("port"))
		}
		fq.Port, fq.HasPort = uint16(n), true
	}
	if msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	r := s.topFlows(ctx, fq)
	if r == nil {
		return
	}
	writeJSONBytes(ctx, r.render(func(r *topResult) []byte { return renderConnections(r, s.opt.Geo) }))
}

// topFlows returns q's shared answer or answers 503.
func (s *Server) topFlows(ctx *fasthttp.RequestCtx, q flowtable.FlowQuery) *topResult {
	if r, _ := s.tops.cached(q); r != nil {
		return r // the common case: no deadline to set up
	}
	cctx, cancel := context.WithTimeout(context.Background(), snapshotWait)
	defer cancel()
	r, err := s.tops.get(cctx, q)
	if err != nil {
		s.log.Warn("api: connections failed", "err", err)
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, "the capture workers did not answer within "+snapshotWait.String()+"; try again")
		return nil
	}
	return r
}

// nameParam reads a protocol-name parameter: letters, digits, '-', '_'.
func nameParam(q query, name string) (string, string) {
	v := q.get(name)
	if !q.has(name) {
		return "", ""
	}
	if v == "" || len(v) > 32 || strings.ContainsFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return "", fmt.Sprintf("%s %q: want a protocol name such as TCP or HTTP", name, v)
	}
	return strings.ToUpper(v), ""
}

// topK keeps the indices of the k largest values, largest first; ties keep
// the earlier index first.
type topK struct {
	k    int
	idx  []int
	vals []uint64
}

func (t *topK) offer(i int, v uint64) {
	n := len(t.idx)
	if n == t.k && v <= t.vals[n-1] {
		return
	}
	j, _ := slices.BinarySearchFunc(t.vals, v, func(a, b uint64) int {
		if a > b {
			return -1
		}
		return 1 // equal values: insert after
	})
	if n < t.k {
		t.idx = append(t.idx, 0)
		t.vals = append(t.vals, 0)
	}
	copy(t.idx[j+1:], t.idx[j:len(t.idx)-1])
	copy(t.vals[j+1:], t.vals[j:len(t.vals)-1])
	t.idx[j], t.vals[j] = i, v
}

func renderConnections(r *topResult, g *geo.DB) []byte {
	b := make([]byte, 0, 64+300*len(r.recs))
	b = append(b, `{"timestamp":`...)
	b = appendTime(b, r.at)
	b = append(b, `,"connections":[`...)
	for n := range r.recs {
		if n > 0 {
			b = append(b, ',')
		}
		b = appendConnection(b, &r.recs[n], g)
	}
	return append(b, "]}"...)
}

// appendConnection appends the product's connection object: "app" as in
// flow records (the metadata detected so far: SNI, JA3/JA4, DNS names, HTTP
// host, ...; {"guess":true} when application_protocol is a port-based
// guess), and where its endpoints are when geolocation is on. A record of a
// light snapshot (AppLabel set, no detection state) holds only the guess
// mark.
func appendConnection(b []byte, r *flowtable.Record, g *geo.DB) []byte {
	b = r.AppendConnection(b)
	if r.AppLabel == "" {
		b = append(b, `,"app":`...)
		b = r.App.AppendJSON(b)
	} else if r.AppGuess() {
		b = append(b, `,"app":{"guess":true}`...)
	} else {
		b = append(b, `,"app":{}`...)
	}
	return append(appendConnGeo(b, g, r), '}')
}

func (s *Server) hosts(ctx *fasthttp.RequestCtx) {
	q, msg := parseQuery(ctx, "limit")
	limit := 0
	if msg == "" {
		limit, msg = q.limit(defaultHostLimit)
	}
	if msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	c := s.snapshot(ctx, s.hostsC)
	if c == nil {
		return
	}
	writeJSONBytes(ctx, c.render("h\x00"+strconv.Itoa(limit), func(c *cached) []byte { return renderHosts(c, limit, s.opt.Geo) }))
}

func renderHosts(c *cached, limit int, g *geo.DB) []byte {
	hs := c.snap.Hosts
	t := topK{k: limit}
	for i := range hs {
		t.offer(i, hs[i].Bytes())
	}
	b := make([]byte, 0, 64+200*len(t.idx))
	b = append(b, `{"timestamp":`...)
	b = appendTime(b, c.at)
	b = append(b, `,"hosts":[`...)
	for n, i := range t.idx {
		h := &hs[i]
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ip":"`...)
		b = flowtable.IP(&h.Addr, h.IPVersion).AppendTo(b)
		b = append(b, `","bytes":`...)
		b = strconv.AppendUint(b, h.Bytes(), 10)
		b = append(b, `,"bytes_tx":`...)
		b = strconv.AppendUint(b, h.BytesTx, 10)
		b = append(b, `,"bytes_rx":`...)
		b = strconv.AppendUint(b, h.BytesRx, 10)
		b = append(b, `,"packets":`...)
		b = strconv.AppendUint(b, h.PacketsTx+h.PacketsRx, 10)
		b = append(b, `,"packets_tx":`...)
		b = strconv.AppendUint(b, h.PacketsTx, 10)
		b = append(b, `,"packets_rx":`...)
		b = strconv.AppendUint(b, h.PacketsRx, 10)
		b = append(b, `,"flows_initiated":`...)
		b = strconv.AppendUint(b, h.FlowsInitiated, 10)
		b = append(b, `,"flows_answered":`...)
		b = strconv.AppendUint(b, h.FlowsAnswered, 10)
		b = appendHostGeo(b, g, h)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// protocolJSON is one row of /network/protocols: a protocol's flows whose
// payload showed it (guessed false), or those only a port names it for
// (guessed true). A protocol can have both rows.
type protocolJSON struct {
	Name         string  `json:"name"`
	Guessed      bool    `json:"guessed"`
	Flows        uint64  `json:"flows"`
	Packets      uint64  `json:"packets"`
	Bytes        uint64  `json:"bytes"`
	BytesPercent float64 `json:"bytes_percent"`
}

func (s *Server) protocols(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	c := s.snapshot(ctx, s.light)
	if c == nil {
		return
	}
	var total uint64
	for _, p := range c.snap.Protocols {
		total += p.Bytes
	}
	out := make([]protocolJSON, 0, len(c.snap.Protocols))
	for _, p := range c.snap.Protocols {
		pct := 0.0
		if total > 0 {
			pct = float64(int64(10000*float64(p.Bytes)/float64(total))) / 100
		}
		out = append(out, protocolJSON{Name: p.Name, Guessed: p.Guess, Flows: p.Flows, Packets: p.Packets, Bytes: p.Bytes, BytesPercent: pct})
	}
	writeJSON(ctx, map[string]any{"timestamp": c.at.UTC().Format(tsFormat), "protocols": out})
}

type queueJSON struct {
	Queue         int    `json:"queue"`
	CPU           int    `json:"cpu"`
	Packets       uint64 `json:"packets"`
	Bytes         uint64 `json:"bytes"`
	KernelPackets uint64 `json:"kernel_packets"`
	Drops         uint64 `json:"drops"`
	Freezes       uint64 `json:"freezes"`
}

type statsJSON struct {
	Timestamp    string            `json:"timestamp"`
	Capture      captureJSON       `json:"capture"`
	Packets      uint64            `json:"packets"`
	Bytes        uint64            `json:"bytes"`
	Drops        uint64            `json:"drops"`
	Queues       []queueJSON       `json:"queues"`
	Flows        flowsJSON         `json:"flows"`
	NonIP        uint64            `json:"non_ip_frames"`
	DecodeErrors map[string]uint64 `json:"decode_errors"`
	Degraded     degradedJSON      `json:"degraded"`
}

// degradedJSON is the overload degradation (flowtable.Mode): the current
// level, how often each was entered and what each shed.
type degradedJSON struct {
	Mode             string            `json:"mode"`
	Level            int               `json:"level"`
	Entered          map[string]uint64 `json:"entered"`
	DetectionSkipped uint64            `json:"detection_skipped"`
	ScanSkipped      uint64            `json:"scan_skipped"`
	EmergencyEvicted uint64            `json:"emergency_evicted"`
}

func degradedOut(st *flowtable.Stats) degradedJSON {
	d := degradedJSON{Mode: st.DegradedMode.String(), Level: int(st.DegradedMode), Entered: map[string]uint64{},
		DetectionSkipped: st.DegradedDetect, ScanSkipped: st.DegradedScan, EmergencyEvicted: st.DegradedEmergency}
	for m := flowtable.ModeNoDetect; m < flowtable.NumModes; m++ {
		d.Entered[m.String()] = st.DegradedEntered[m]
	}
	return d
}

type flowsJSON struct {
	Active  int    `json:"active"`
	Created uint64 `json:"created"`
	Ended   uint64 `json:"ended"`
	Evicted uint64 `json:"evicted"`
}

func (s *Server) stats(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	c := s.snapshot(ctx, s.light)
	if c == nil {
		return
	}
	out := statsJSON{Timestamp: time.Now().UTC().Format(tsFormat), Capture: captureOut(s.opt.Sensor.Capture()),
		Queues: []queueJSON{}, DecodeErrors: map[string]uint64{}, NonIP: c.snap.NonIP}
	for _, q := range s.opt.Sensor.Queues() {
		out.Queues = append(out.Queues, queueJSON{Queue: q.Queue, CPU: q.CPU, Packets: q.Packets, Bytes: q.Bytes,
			KernelPackets: q.KernelPackets, Drops: q.KernelDrops, Freezes: q.Freezes})
		out.Packets += q.Packets
		out.Bytes += q.Bytes
		out.Drops += q.KernelDrops
	}
	st := c.snap.Stats
	out.Flows = flowsJSON{Active: st.Active, Created: st.FlowsCreated, Ended: st.FlowsEnded, Evicted: st.FlowsEvicted}
	out.Degraded = degradedOut(&st)
	for _, d := range c.snap.DecodeErrors {
		if d.Count > 0 {
			out.DecodeErrors[d.Name] = d.Count
		}
	}
	writeJSON(ctx, out)
}
