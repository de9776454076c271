package httpd_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/store"
)

// memSource is an in-memory store.SampleSource: series with their points.
type memSource struct {
	series []memSeries
	// delay, if set, is slept by Points (for the timeout tests), or until
	// the context given ends.
	delay time.Duration
	err   error // returned by Points, if set
}

type memSeries struct {
	info store.SeriesInfo
	pts  []store.Point
}

// add appends a point to the series name{lbls} (pairs of name, value),
// creating it.
func (m *memSource) add(name string, t int64, v float64, lbls ...string) {
	var ls []store.Label
	for i := 0; i+1 < len(lbls); i += 2 {
		ls = append(ls, store.Label{Name: lbls[i], Value: lbls[i+1]})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	for i := range m.series {
		s := &m.series[i]
		if s.info.Name == name && slices.Equal(s.info.Labels, ls) {
			s.pts = append(s.pts, store.Point{T: t, V: v})
			return
		}
	}
	m.series = append(m.series, memSeries{info: store.SeriesInfo{Ref: uint64(len(m.series) + 1), Name: name, Labels: ls},
		pts: []store.Point{{T: t, V: v}}})
}

func (m *memSource) matches(s *memSeries, ms []store.Matcher) bool {
	for _, x := range ms {
		v := s.info.Name
		if x.Name != "__name__" {
			v = ""
			for _, l := range s.info.Labels {
				if l.Name == x.Name {
					v = l.Value
				}
			}
		}
		typ := map[store.MatchType]labels.MatchType{store.MatchEqual: labels.MatchEqual, store.MatchNotEqual: labels.MatchNotEqual,
			store.MatchRegexp: labels.MatchRegexp, store.MatchNotRegexp: labels.MatchNotRegexp}[x.Type]
		lm, err := labels.NewMatcher(typ, x.Name, x.Value)
		if err != nil || !lm.Matches(v) {
			return false
		}
	}
	return true
}

func (m *memSource) inRange(s *memSeries, mint, maxt int64) bool {
	for _, p := range s.pts {
		if p.T >= mint && p.T <= maxt {
			return true
		}
	}
	return false
}

func (m *memSource) Select(ms []store.Matcher, mint, maxt int64) ([]store.SeriesInfo, error) {
	var out []store.SeriesInfo
	for i := range m.series {
		if m.matches(&m.series[i], ms) && m.inRange(&m.series[i], mint, maxt) {
			out = append(out, m.series[i].info)
		}
	}
	return out, nil
}

func (m *memSource) Points(ref uint64, mint, maxt int64, dst []store.Point) ([]store.Point, error) {
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	if m.err != nil {
		return nil, m.err
	}
	for _, p := range m.series[ref-1].pts {
		if p.T >= mint && p.T <= maxt {
			dst = append(dst, p)
		}
	}
	return dst, nil
}

func (m *memSource) LabelNames(ms []store.Matcher, mint, maxt int64) ([]string, error) {
	var out []string
	for i := range m.series {
		if m.matches(&m.series[i], ms) && m.inRange(&m.series[i], mint, maxt) {
			for _, l := range m.series[i].info.Labels {
				out = append(out, l.Name)
			}
		}
	}
	return out, nil
}

func (m *memSource) LabelValues(name string, ms []store.Matcher, mint, maxt int64) ([]string, error) {
	var out []string
	for i := range m.series {
		s := &m.series[i]
		if !m.matches(s, ms) || !m.inRange(s, mint, maxt) {
			continue
		}
		if name == "__name__" {
			out = append(out, s.info.Name)
		}
		for _, l := range s.info.Labels {
			if l.Name == name {
				out = append(out, l.Value)
			}
		}
	}
	return out, nil
}

// oracleBase is the first sample time of the generated data (ms).
const oracleBase = int64(1_780_000_000_000)

// genSamples fills src with two hours of 5 s samples (fixed seed):
// per-queue packet and byte counters (one with a counter reset), a
// gauge per protocol, a CPU ratio, and a series with a gap.
func genSamples(src *memSource) {
	r := rand.New(rand.NewPCG(11, 7))
	const n = 2 * 3600 / 5
	// Counters start high: Prometheus 3 (our engine) and 2.x (the Debian
	// oracle) differ in when rate() extrapolates a series' start to its
	// zero point, and from a high start neither does.
	pk := [4]float64{1e6, 2e6, 3e6, 4e6}
	by := [4]float64{1e9, 2e9, 3e9, 4e9}
	for i := 0; i < n; i++ {
		t := oracleBase + int64(i)*5000
		for q := 0; q < 4; q++ {
			if q == 2 && i == n/2 {
				pk[q], by[q] = 0, 0 // a restart: counter reset
			}
			d := float64(r.IntN(1000) + 1)
			pk[q] += d
			by[q] += d * float64(60+r.IntN(1400))
			qs := strconv.Itoa(q)
			src.add("netsentry_engine_packets_total", t, pk[q], "queue", qs)
			src.add("netsentry_engine_bytes_total", t, by[q], "queue", qs)
		}
		for _, p := range []string{"http", "dns", "tls"} {
			for _, g := range []string{"false", "true"} {
				// no two alike, so that topk has no ties to break
				src.add("netsentry_protocol_flows_active", t, float64(r.IntN(500))+r.Float64(), "protocol", p, "guessed", g)
			}
		}
		src.add("netsentry_node_cpu_usage_ratio", t, r.Float64())
		if i < n/3 || i > n/3+200 { // a gap of 1000 s
			src.add("netsentry_flows_active", t, float64(r.IntN(10000))+r.Float64())
		}
	}
}

// writeOpenMetrics writes src as an OpenMetrics text file (untyped
// families, seconds timestamps).
func writeOpenMetrics(t *testing.T, src *memSource, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	byName := map[string][]*memSeries{}
	var names []string
	for i := range src.series {
		s := &src.series[i]
		if byName[s.info.Name] == nil {
			names = append(names, s.info.Name)
		}
		byName[s.info.Name] = append(byName[s.info.Name], s)
	}
	for _, name := range names {
		for _, s := range byName[name] {
			var lb strings.Builder
			for i, l := range s.info.Labels {
				if i > 0 {
					lb.WriteByte(',')
				}
				fmt.Fprintf(&lb, "%s=%q", l.Name, l.Value)
			}
			for _, p := range s.pts {
				fmt.Fprintf(w, "%s{%s} %s %d.%03d\n", name, lb.String(), strconv.FormatFloat(p.V, 'g', -1, 64), p.T/1000, p.T%1000)
			}
		}
	}
	fmt.Fprintln(w, "# EOF")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// startPrometheus builds a TSDB from src with promtool and serves it with
// a real Prometheus on loopback; it returns the base URL.
func startPrometheus(t *testing.T, src *memSource) string {
	dir := t.TempDir()
	om := filepath.Join(dir, "samples.om")
	writeOpenMetrics(t, src, om)
	data := filepath.Join(dir, "data")
	out, err := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", om, data).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool: %v: %s", err, out)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freePort(t)
	cmd := exec.Command("prometheus", "--config.file="+cfg, "--storage.tsdb.path="+data,
		"--storage.tsdb.retention.time=100y", "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 60 s", addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promResp is a Prometheus API response.
type promResp struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
	Warnings  []string        `json:"warnings"`
}

type matrixSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

func getProm(t *testing.T, base, path string, params url.Values, token string) (int, promResp, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path+"?"+params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var pr promResp
	if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil {
		t.Fatalf("GET %s %v: body not JSON: %v", path, params, err)
	}
	return resp.StatusCode, pr, resp.Header.Get("Content-Type")
}

func metricKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, m[k])
	}
	return b.String()
}

func parseSample(t *testing.T, p [2]any) (float64, float64) {
	ts, ok := p[0].(float64)
	if !ok {
		t.Fatalf("timestamp %v is not a number", p[0])
	}
	s, ok := p[1].(string)
	if !ok {
		t.Fatalf("value %v is not a string", p[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("value %q: %v", s, err)
	}
	return ts, v
}

func close9(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// newPromServer starts an API server over src.
func newPromServer(t testing.TB, src store.SampleSource, edit func(o *httpd.Options)) *testServer {
	return newTestServerWith(t, func(o *httpd.Options) {
		o.Query = store.NewQueryable(src)
		if edit != nil {
			edit(o)
		}
	})
}

// TestPromQLOracle: the same query_range expressions on a real Prometheus
// (its TSDB built by promtool from the same samples) and on ours give the
// same series, timestamps and values (within 1e-9 relative).
//
// The evaluation times are offset 2.5 s from the 5 s sample grid, so that
// no range or lookback boundary falls on a sample: Prometheus 3 (our
// engine) made those boundaries left-open, the Debian Prometheus (2.x)
// has them closed, and off the grid both agree.
func TestPromQLOracle(t *testing.T) {
	src := &memSource{}
	genSamples(src)
	prom := startPrometheus(t, src)
	ts := newPromServer(t, src, nil)

	exprs := []string{
		`netsentry_engine_packets_total`,
		`rate(netsentry_engine_packets_total[1m])`,
		`irate(netsentry_engine_packets_total[1m])`,
		`increase(netsentry_engine_bytes_total[5m])`,
		`sum by (queue) (rate(netsentry_engine_bytes_total[2m]))`,
		`sum(rate(netsentry_engine_packets_total[1m]))`,
		`sum by (protocol) (netsentry_protocol_flows_active)`,
		`avg by (guessed) (netsentry_protocol_flows_active)`,
		`max by (protocol) (netsentry_protocol_flows_active)`,
		`min(netsentry_protocol_flows_active)`,
		`count(netsentry_protocol_flows_active)`,
		`avg_over_time(netsentry_node_cpu_usage_ratio[10m])`,
		`max_over_time(netsentry_flows_active[3m])`,
		`min_over_time(netsentry_flows_active[3m])`,
		`delta(netsentry_flows_active[5m])`,
		`deriv(netsentry_flows_active[5m])`,
		`topk(2, netsentry_protocol_flows_active)`,
		`bottomk(1, rate(netsentry_engine_packets_total[1m]))`,
		`netsentry_engine_bytes_total / netsentry_engine_packets_total`,
		`rate(netsentry_engine_bytes_total[1m]) * 8 / on(queue) rate(netsentry_engine_packets_total[1m])`,
		`netsentry_node_cpu_usage_ratio * 100`,
		`netsentry_flows_active > 5000`,
		`sum(netsentry_engine_packets_total) - sum(netsentry_engine_packets_total offset 10m)`,
		`stddev(netsentry_protocol_flows_active)`,
		`quantile(0.9, netsentry_protocol_flows_active)`,
		`resets(netsentry_engine_packets_total[30m])`,
		`changes(netsentry_flows_active[5m])`,
		`absent(netsentry_flows_active)`,
		`sum_over_time(netsentry_node_cpu_usage_ratio[1m])`,
		`count_over_time(netsentry_flows_active[10m])`,
		`last_over_time(netsentry_flows_active[1m])`,
		`label_replace(netsentry_node_cpu_usage_ratio, "x", "$1", "__name__", "netsentry_(.*)")`,
		`sum without (guessed) (netsentry_protocol_flows_active)`,
		`clamp_max(netsentry_flows_active, 3000)`,
		`scalar(sum(netsentry_flows_active)) + 1`,
	}
	ranges := [][3]string{
		// start, end (s), step
		{"1780000002.5", "1780007202.5", "30"},
		{"1780000602.5", "1780003002.5", "15s"},
		{"1779999002.5", "1780008002.5", "5m"}, // beyond both ends of the data
	}
	points := 0
	for _, e := range exprs {
		before := points
		for _, r := range ranges {
			params := url.Values{"query": {e}, "start": {r[0]}, "end": {r[1]}, "step": {r[2]}}
			ps, pr, _ := getProm(t, prom, "/api/v1/query_range", params, "")
			os, or, _ := getProm(t, ts.base, "/api/v1/query_range", params, "")
			if ps != 200 || os != 200 {
				t.Errorf("%s %v: prometheus %d %s, ours %d %s", e, r, ps, pr.Error, os, or.Error)
				continue
			}
			points += compareMatrix(t, e+" "+strings.Join(r[:], " "), pr.Data, or.Data)
		}
		if points == before {
			t.Errorf("%s: no point to compare in any range", e)
		}
	}
	t.Logf("%d expressions x %d ranges: %d points equal", len(exprs), len(ranges), points)

	// Instant queries, series and labels: the same data, decoded.
	same := func(path string, params url.Values) {
		t.Helper()
		ps, pr, _ := getProm(t, prom, path, params, "")
		os, or, _ := getProm(t, ts.base, path, params, "")
		if ps != 200 || os != 200 {
			t.Errorf("%s %v: prometheus %d %s, ours %d %s", path, params, ps, pr.Error, os, or.Error)
			return
		}
		var w, g any
		json.Unmarshal(pr.Data, &w)
		json.Unmarshal(or.Data, &g)
		if !reflect.DeepEqual(w, g) {
			t.Errorf("%s %v:\n ours       %s\n prometheus %s", path, params, or.Data, pr.Data)
		}
	}
	for _, e := range []string{`netsentry_engine_packets_total`, `sum by (protocol) (netsentry_protocol_flows_active)`,
		`netsentry_flows_active[1m]`, `scalar(netsentry_node_cpu_usage_ratio)`, `1 + 2`, `"text"`,
		`topk(3, rate(netsentry_engine_bytes_total[5m]))`, `netsentry_flows_active`} {
		for _, tm := range []string{"1780003602.5", "1780002402", "2026-05-28T21:13:20.5Z"} {
			same("/api/v1/query", url.Values{"query": {e}, "time": {tm}})
		}
	}
	win := url.Values{"start": {"1780000000"}, "end": {"1780007200"}}
	for _, m := range [][]string{{`netsentry_engine_packets_total`}, {`{queue="1"}`, `netsentry_flows_active`},
		{`{__name__=~"netsentry_.*_total", queue!="0"}`}, {`netsentry_protocol_flows_active{protocol=~"d.*|t.*"}`}} {
		q := url.Values{"match[]": m, "start": win["start"], "end": win["end"]}
		same("/api/v1/series", q)
		same("/api/v1/labels", q)
		same("/api/v1/label/protocol/values", q)
		same("/api/v1/label/__name__/values", q)
	}
	same("/api/v1/labels", win)
	same("/api/v1/labels", nil)
	same("/api/v1/label/queue/values", win)
	same("/api/v1/label/__name__/values", nil)

	// Bad requests: the same status and errorType as Prometheus.
	for _, c := range []struct {
		path string
		q    url.Values
	}{
		{"/api/v1/query", url.Values{"query": {"rate("}}},
		{"/api/v1/query", url.Values{"query": {"rate(netsentry_flows_active)"}}},
		{"/api/v1/query", url.Values{"query": {`{__name__=~".*"}`}}},
		{"/api/v1/query", url.Values{"query": {"1"}, "time": {"yesterday"}}},
		{"/api/v1/query", url.Values{"query": {"1"}, "timeout": {"soon"}}},
		{"/api/v1/query", url.Values{"query": {"netsentry_engine_packets_total + on() netsentry_engine_packets_total"}, "time": {"1780003600"}}},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "start": {"100"}, "end": {"50"}, "step": {"5"}}},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "start": {"0"}, "end": {"1000000"}, "step": {"1"}}},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "start": {"0"}, "end": {"100"}, "step": {"0"}}},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "start": {"0"}, "end": {"100"}, "step": {"often"}}},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "start": {"garbage"}, "end": {"100"}, "step": {"5"}}},
		{"/api/v1/query_range", url.Values{"query": {"up{"}, "start": {"0"}, "end": {"100"}, "step": {"5"}}},
		{"/api/v1/series", url.Values{}},
		{"/api/v1/series", url.Values{"match[]": {"{"}}},
		{"/api/v1/series", url.Values{"match[]": {`{queue=""}`}}},
		{"/api/v1/series", url.Values{"match[]": {"up"}, "start": {"x"}}},
		{"/api/v1/labels", url.Values{"match[]": {"up{"}}},
		{"/api/v1/label/queue/values", url.Values{"end": {"tomorrow"}}},
	} {
		ps, pr, _ := getProm(t, prom, c.path, c.q, "")
		os, or, _ := getProm(t, ts.base, c.path, c.q, "")
		if ps != os || pr.ErrorType != or.ErrorType || pr.Status != "error" {
			t.Errorf("%s %v: ours %d %s %q, prometheus %d %s %q", c.path, c.q, os, or.ErrorType, or.Error, ps, pr.ErrorType, pr.Error)
		}
	}
}

func compareMatrix(t *testing.T, what string, want, got json.RawMessage) int {
	t.Helper()
	var w, g struct {
		ResultType string         `json:"resultType"`
		Result     []matrixSeries `json:"result"`
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: prometheus data: %v", what, err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: our data: %v: %s", what, err, got)
	}
	if w.ResultType != g.ResultType {
		t.Errorf("%s: result type %s, prometheus %s", what, g.ResultType, w.ResultType)
		return 0
	}
	wm := map[string]matrixSeries{}
	for _, s := range w.Result {
		wm[metricKey(s.Metric)] = s
	}
	if len(w.Result) != len(g.Result) {
		t.Errorf("%s: %d series, prometheus %d", what, len(g.Result), len(w.Result))
	}
	n := 0
	for _, gs := range g.Result {
		ws, ok := wm[metricKey(gs.Metric)]
		if !ok {
			t.Errorf("%s: series %v not in prometheus's answer", what, gs.Metric)
			continue
		}
		if len(ws.Values) != len(gs.Values) {
			t.Errorf("%s %v: %d points, prometheus %d", what, gs.Metric, len(gs.Values), len(ws.Values))
			continue
		}
		for i := range gs.Values {
			gt, gv := parseSample(t, gs.Values[i])
			wt, wv := parseSample(t, ws.Values[i])
			if gt != wt || !close9(gv, wv) {
				t.Errorf("%s %v point %d: (%v, %v), prometheus (%v, %v)", what, gs.Metric, i, gt, gv, wt, wv)
				return n
			}
			n++
		}
	}
	return n
}
