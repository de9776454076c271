package httpd_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/httpd"
)

// smallSource is a few series of the oracle's names over ten minutes.
func smallSource() *memSource {
	src := &memSource{}
	for i := int64(0); i < 120; i++ {
		t := oracleBase + i*5000
		for _, q := range []string{"0", "1"} {
			src.add("netsentry_engine_packets_total", t, float64(i*10), "queue", q)
		}
		src.add("netsentry_flows_active", t, float64(i%7))
		src.add("netsentry_node_cpu_usage_ratio", t, 0.235)
	}
	return src
}

// TestPromErrors: every bad request gets Prometheus's error body with a
// 4xx (bad_data 400, execution 422), a timeout 503 "timeout", never a
// hang or another 5xx.
func TestPromErrors(t *testing.T) {
	ts := newPromServer(t, smallSource(), nil)
	type c struct {
		path   string
		params url.Values
		status int
		typ    string
		msg    string // in the error text
	}
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	rng := func(query, start, end, step string, more ...string) url.Values {
		return q(append([]string{"query", query, "start", start, "end", end, "step", step}, more...)...)
	}
	for _, tc := range []c{
		{"/api/v1/query", q("query", "rate("), 400, "bad_data", "parse error"},
		{"/api/v1/query", q("query", "sum by (queue netsentry_flows_active"), 400, "bad_data", "parse error"},
		{"/api/v1/query", q("query", "netsentry_flows_active[5m"), 400, "bad_data", "query"},
		{"/api/v1/query", q("query", "rate(netsentry_flows_active)"), 400, "bad_data", "range vector"},
		{"/api/v1/query", q("query", `{__name__=~".*"}`), 400, "bad_data", "empty"},
		{"/api/v1/query", q(), 400, "bad_data", "query"},
		{"/api/v1/query", q("query", "1", "time", "yesterday"), 400, "bad_data", "cannot parse"},
		{"/api/v1/query", q("query", "1", "time", "NaN"), 400, "bad_data", "cannot parse"},
		{"/api/v1/query", q("query", "1", "time", "1e300"), 400, "bad_data", "cannot parse"},
		{"/api/v1/query", q("query", "1", "timeout", "soon"), 400, "bad_data", "timeout"},
		{"/api/v1/query", q("query", "1", "timeout", "-1s"), 400, "bad_data", "timeout"},
		{"/api/v1/query", q("query", "1", "lookback_delta", "x"), 400, "bad_data", "lookback"},
		{"/api/v1/query", q("query", "1", "limit", "-2"), 400, "bad_data", "limit"},
		{"/api/v1/query", q("query", "1", "foo", "bar"), 400, "bad_data", "unknown parameter"},
		{"/api/v1/query", q("query", "1", "query", "2"), 400, "bad_data", "twice"},
		{"/api/v1/query", q("query", "netsentry_engine_packets_total + on() netsentry_engine_packets_total", "time", "1780000300"),
			422, "execution", "many-to-many"},
		{"/api/v1/query_range", rng("1", "1780000100", "1780000000", "10"), 400, "bad_data", "before start"},
		{"/api/v1/query_range", rng("1", "0", "1000000", "1"), 400, "bad_data", "11,000 points"},
		{"/api/v1/query_range", rng("1", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "7s"), 400, "bad_data", "11,000 points"},
		{"/api/v1/query_range", rng("sum(rate(netsentry_engine_packets_total[1h:1ms]))", "1780000000", "1780000600", "60"),
			400, "bad_data", "subqueries would evaluate 4200000 steps"},
		{"/api/v1/query", q("query", "max_over_time((max_over_time(netsentry_flows_active[1d:100ms]))[1d:1s])"), 400, "bad_data", "subqueries"},
		{"/api/v1/query_range", rng("1", "0", "100", "0"), 400, "bad_data", "step"},
		{"/api/v1/query_range", rng("1", "0", "100", "-5"), 400, "bad_data", "step"},
		{"/api/v1/query_range", rng("1", "0", "100", "often"), 400, "bad_data", "step"},
		{"/api/v1/query_range", rng("1", "0", "100", "1e300"), 400, "bad_data", "step"},
		{"/api/v1/query_range", rng("1", "garbage", "100", "5"), 400, "bad_data", "start"},
		{"/api/v1/query_range", rng("1", "0", "2026-13-01T00:00:00Z", "5"), 400, "bad_data", "end"},
		{"/api/v1/query_range", q("query", "1", "start", "0"), 400, "bad_data", "start, end and step"},
		{"/api/v1/query_range", rng("1", "0", "100", "5", "time", "3"), 400, "bad_data", "unknown parameter"},
		{"/api/v1/query_range", rng("up{", "0", "100", "5"), 400, "bad_data", "parse error"},
		{"/api/v1/series", q(), 400, "bad_data", "match[]"},
		{"/api/v1/series", q("match[]", "{"), 400, "bad_data", "match[]"},
		{"/api/v1/series", q("match[]", `{queue=""}`), 400, "bad_data", "non-empty"},
		{"/api/v1/series", q("match[]", "up", "start", "x"), 400, "bad_data", "start"},
		{"/api/v1/series", q("match[]", "up", "start", "100", "end", "50"), 400, "bad_data", "before start"},
		{"/api/v1/labels", q("match[]", "up{"), 400, "bad_data", "match[]"},
		{"/api/v1/labels", q("step", "5"), 400, "bad_data", "unknown parameter"},
		{"/api/v1/label/queue/values", q("end", "tomorrow"), 400, "bad_data", "end"},
	} {
		code, pr, ct := getProm(t, ts.base, tc.path, tc.params, "")
		if code != tc.status || pr.Status != "error" || pr.ErrorType != tc.typ || !strings.Contains(pr.Error, tc.msg) ||
			!strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %v: %d %s %q (%s), want %d %s containing %q", tc.path, tc.params, code, pr.ErrorType, pr.Error, ct,
				tc.status, tc.typ, tc.msg)
		}
	}

	// The answers as openapi.json describes them.
	for route, path := range map[string]string{
		"/api/v1/query":               "/api/v1/query?query=netsentry_flows_active&time=1780000300",
		"/api/v1/query_range":         "/api/v1/query_range?query=rate(x[1m]&start=0&end=1&step=1",
		"/api/v1/series":              "/api/v1/series?match[]=netsentry_flows_active",
		"/api/v1/labels":              "/api/v1/labels",
		"/api/v1/label/{name}/values": "/api/v1/label/queue/values?start=1780000000",
		"/api/v1/status/buildinfo":    "/api/v1/status/buildinfo",
		"/api/v1/metadata":            "/api/v1/metadata",
		"/api/v1/query_exemplars":     "/api/v1/query_exemplars?query=up",
	} {
		ts.check(route, "GET", ts.do("GET", path, "", nil))
	}

	// POST: a form body works, JSON is refused.
	r := ts.do("POST", "/api/v1/query", "application/x-www-form-urlencoded", []byte("query=1%2B1&time=1780000000"))
	if r.status != 200 || string(r.body) != `{"status":"success","data":{"resultType":"scalar","result":[1780000000,"2"]}}` {
		t.Errorf("POST form: %d %s", r.status, r.body)
	}
	r = ts.do("POST", "/api/v1/query_range", "application/json", []byte(`{"query":"1"}`))
	if r.status != 400 || !strings.Contains(string(r.body), `"errorType":"bad_data"`) {
		t.Errorf("POST JSON: %d %s", r.status, r.body)
	}
}

// TestPromTimeout: a query slower than ?timeout= (or the server's
// QueryTimeout) ends with 503 "timeout" at once, and a storage error is
// an error, not a hang.
func TestPromTimeout(t *testing.T) {
	src := smallSource()
	src.delay = 50 * time.Millisecond
	ts := newPromServer(t, src, func(o *httpd.Options) { o.QueryTimeout = 300 * time.Millisecond })
	params := url.Values{"query": {"sum(netsentry_engine_packets_total) + sum(netsentry_flows_active) + sum(netsentry_node_cpu_usage_ratio) + sum(netsentry_engine_packets_total offset 1m)"},
		"start": {"1780000000"}, "end": {"1780000600"}, "step": {"5"}}
	for _, timeout := range []string{"60ms", ""} {
		if timeout != "" {
			params.Set("timeout", timeout)
		} else {
			params.Del("timeout")
		}
		t0 := time.Now()
		code, pr, _ := getProm(t, ts.base, "/api/v1/query_range", params, "")
		took := time.Since(t0)
		if code != 503 || pr.ErrorType != "timeout" {
			t.Errorf("timeout %q: %d %s %q, want 503 timeout", timeout, code, pr.ErrorType, pr.Error)
		}
		if took > 2*time.Second {
			t.Errorf("timeout %q: answered after %v", timeout, took)
		}
	}
	src.delay, src.err = 0, errors.New("disk on fire")
	code, pr, _ := getProm(t, ts.base, "/api/v1/query_range", params, "")
	if code < 422 || pr.Status != "error" || !strings.Contains(pr.Error, "disk on fire") {
		t.Errorf("storage error: %d %s %q", code, pr.ErrorType, pr.Error)
	}
}

// TestPromNoStore: without a store the query API says so, 503.
func TestPromNoStore(t *testing.T) {
	ts := newTestServerWith(t, func(o *httpd.Options) {})
	for _, p := range []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels", "/api/v1/label/queue/values"} {
		code, pr, _ := getProm(t, ts.base, p, url.Values{"query": {"1"}}, "")
		if code != 503 || pr.ErrorType != "unavailable" || pr.Error != "no store: storage is not enabled" {
			t.Errorf("%s: %d %s %q", p, code, pr.ErrorType, pr.Error)
		}
	}
	for _, p := range []string{"/api/v1/metrics/cpu.usage/history", "/api/v1/network/flows"} {
		r := ts.do("GET", p, "", nil)
		if r.status != 503 || !strings.Contains(string(r.body), "no store") {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
		ts.check(strings.Replace(p, "cpu.usage", "{name}", 1), "GET", r)
	}
}

// TestPromLimits: a query holding (700 series x ~9,900 points) more than MaxQuerySamples at once is a
// 422 execution error, and at most MaxConcurrentQueries evaluate at once.
func TestPromLimits(t *testing.T) {
	src := &memSource{}
	for s := 0; s < 700; s++ {
		for i := int64(0); i < 40; i++ {
			src.add("wide", oracleBase+i*240_000, float64(i), "n", strconv.Itoa(s))
		}
	}
	ts := newPromServer(t, src, nil)
	code, pr, _ := getProm(t, ts.base, "/api/v1/query_range", url.Values{"query": {"wide"}, "start": {"1780000000"},
		"end": {"1780011000"}, "step": {"1"}}, "")
	if code != 422 || pr.ErrorType != "execution" || !strings.Contains(pr.Error, "too many samples") {
		t.Errorf("7 M samples: %d %s %q", code, pr.ErrorType, pr.Error)
	}

	// Eight queries that each wait 300 ms in the source take two rounds.
	slow := smallSource()
	slow.delay = 300 * time.Millisecond
	ts = newPromServer(t, slow, nil)
	t0 := time.Now()
	errs := make(chan string, 8)
	for range 8 {
		go func() {
			code, pr, _ := getProm(t, ts.base, "/api/v1/query", url.Values{"query": {"netsentry_flows_active"}, "time": {"1780000300"}}, "")
			if code != 200 {
				errs <- pr.Error
				return
			}
			errs <- ""
		}()
	}
	for range 8 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	if took := time.Since(t0); took < 2*300*time.Millisecond || took > 2*time.Second {
		t.Errorf("8 queries of 300 ms, %d at a time: %v", httpd.MaxConcurrentQueries, took)
	}
}

// TestPromMeta: buildinfo, metadata, exemplars, and the tokens: the read
// token may GET and POST the query API, no token is 401.
func TestPromMeta(t *testing.T) {
	ts := newPromServer(t, smallSource(), func(o *httpd.Options) { o.Token, o.ReadToken = "admin-token-0123456789", "read-token-0123456789" })
	code, pr, _ := getProm(t, ts.base, "/api/v1/status/buildinfo", nil, "read-token-0123456789")
	var bi map[string]string
	json.Unmarshal(pr.Data, &bi)
	if code != 200 || !strings.HasPrefix(bi["version"], "3.") {
		t.Errorf("buildinfo: %d %s", code, pr.Data)
	}
	code, pr, _ = getProm(t, ts.base, "/api/v1/metadata", nil, "read-token-0123456789")
	var md map[string][]map[string]string
	json.Unmarshal(pr.Data, &md)
	if code != 200 || md["netsentry_engine_packets_total"][0]["type"] != "counter" || md["netsentry_flows_active"][0]["type"] != "gauge" ||
		md["netsentry_flows_active"][0]["help"] == "" {
		t.Errorf("metadata: %d %s", code, pr.Data)
	}
	code, pr, _ = getProm(t, ts.base, "/api/v1/metadata", url.Values{"metric": {"netsentry_flows_active"}}, "read-token-0123456789")
	md = nil
	json.Unmarshal(pr.Data, &md)
	if code != 200 || len(md) != 1 {
		t.Errorf("metadata of one: %d %s", code, pr.Data)
	}
	code, pr, _ = getProm(t, ts.base, "/api/v1/query_exemplars", url.Values{"query": {"x"}}, "read-token-0123456789")
	if code != 200 || string(pr.Data) != "[]" {
		t.Errorf("exemplars: %d %s", code, pr.Data)
	}
	ts.token = "read-token-0123456789"
	r := ts.do("POST", "/api/v1/query_range", "application/x-www-form-urlencoded",
		[]byte("query=netsentry_flows_active&start=1780000000&end=1780000010&step=5"))
	if r.status != 200 || string(r.body) != `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"netsentry_flows_active"},"values":[[1780000000,"0"],[1780000005,"1"],[1780000010,"2"]]}]}}` {
		t.Errorf("POST with the read token: %d %s", r.status, r.body)
	}
	ts.token = ""
	for _, p := range []string{"/api/v1/query?query=1", "/api/v1/labels", "/api/v1/metrics/cpu.usage/history", "/api/v1/network/flows"} {
		if r := ts.do("GET", p, "", nil); r.status != 401 {
			t.Errorf("%s without a token: %d", p, r.status)
		}
	}
}
