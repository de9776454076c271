package httpd_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/httpd"
)

// FuzzPromQuery: any query, time, range, step, timeout and selector,
// parsed and evaluated over a small source with a short timeout, answers
// Prometheus's JSON with a 2xx, 4xx or the 503 of a timeout; never a
// panic, another 5xx, or a hang.
func FuzzPromQuery(f *testing.F) {
	for _, s := range [][6]string{
		{"rate(netsentry_engine_packets_total[1m])", "1780000300", "1780000000", "1780000600", "15", ""},
		{"sum by (queue) (netsentry_engine_packets_total)", "2026-05-28T21:00:00Z", "1780000000", "1780000600", "1m", "1s"},
		{"topk(1, netsentry_flows_active) * on() group_left scalar(netsentry_node_cpu_usage_ratio)", "", "0", "1e9", "1", ""},
		{`{__name__=~"netsentry_.+"}[5m:10s]`, "NaN", "-1", "1", "0.001", "0"},
		{"histogram_quantile(0.9, rate(x[5m]))", "1e300", "1780000000", "1780000000", "1e-9", "-1"},
		{`label_replace(up, "a", "$1", "b", "(.*")`, "1780000000.1234", "x", "y", "5m", "1y"},
		{"absent_over_time(nothing[1h]) @ start()", "", "1780000000", "1780000100", "1", ""},
		{`count_values("v", netsentry_flows_active)`, "1780000100", "1780000000", "1780000100", "5", "100ms"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	src := smallSource()
	ts := newPromServer(f, src, func(o *httpd.Options) {
		o.QueryTimeout = 500 * time.Millisecond
		o.Flows = &fakeFlows{}
	})
	h := ts.srv.Handler()
	f.Fuzz(func(t *testing.T, query, tm, start, end, step, timeout string) {
		do := func(path string, args url.Values) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(path + "?" + args.Encode())
			ctx.Request.Header.SetMethod("GET")
			done := make(chan struct{})
			go func() {
				defer close(done)
				h(&ctx)
			}()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				t.Fatalf("%s %v: no answer in 3 s", path, args)
			}
			code := ctx.Response.StatusCode()
			var body struct {
				Status    string `json:"status"`
				ErrorType string `json:"errorType"`
			}
			if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil {
				t.Fatalf("%s %v: %d, body not JSON: %q", path, args, code, ctx.Response.Body())
			}
			ok := code == 200 && body.Status == "success" || code >= 400 && code < 500 && body.Status == "error" ||
				code == 503 && (body.ErrorType == "timeout" || body.ErrorType == "canceled")
			if !ok {
				t.Fatalf("%s %v: %d %s", path, args, code, ctx.Response.Body())
			}
		}
		opt := func(v url.Values, k, s string) {
			if s != "" {
				v.Set(k, s)
			}
		}
		a := url.Values{"query": {query}}
		opt(a, "time", tm)
		opt(a, "timeout", timeout)
		do("/api/v1/query", a)
		a = url.Values{"query": {query}, "start": {start}, "end": {end}, "step": {step}}
		opt(a, "timeout", timeout)
		do("/api/v1/query_range", a)
		a = url.Values{"match[]": {query}, "start": {start}}
		opt(a, "end", end)
		do("/api/v1/series", a)
		do("/api/v1/labels", a)
		do("/api/v1/label/"+url.PathEscape(tm)+"/values", a)

		// The history endpoints answer problems: 200, 4xx, never 5xx.
		plain := func(path string) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(path)
			ctx.Request.Header.SetMethod("GET")
			t0 := time.Now()
			h(&ctx)
			if d := time.Since(t0); d > 3*time.Second {
				t.Fatalf("%s: answered after %v", path, d)
			}
			if code := ctx.Response.StatusCode(); code >= 500 || !json.Valid(ctx.Response.Body()) {
				t.Fatalf("%s: %d %s", path, code, ctx.Response.Body())
			}
		}
		plain("/api/v1/metrics/" + url.PathEscape(query) + "/history?" + url.Values{"start": {start}, "end": {end}, "step": {step}}.Encode())
		plain("/api/v1/metrics/cpu.usage/history?" + url.Values{"start": {start}, "end": {end}, "step": {step}}.Encode())
		plain("/api/v1/network/flows?" + url.Values{"start": {start}, "end": {end}, "ip": {tm}, "port": {step},
			"protocol": {timeout}, "application_protocol": {query}, "limit": {step}, "cursor": {tm}}.Encode())
	})
}
