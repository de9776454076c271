package httpd_test

import (
	"net/url"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/store"
)

// BenchmarkQueryRange24h: query_range over 24 h of 5 s samples (17,280
// points a series) at a 60 s step through the handler, the source in
// memory: what the query side adds to the store's reads. One series, and
// sum(rate()) over 100.
func BenchmarkQueryRange24h(b *testing.B) {
	for _, n := range []int{1, 100} {
		src := &memSource{}
		for s := 0; s < n; s++ {
			for i := int64(0); i < 17280; i++ {
				src.add("netsentry_engine_packets_total", oracleBase+i*5000, float64(i*int64(s+1)), "queue", string(rune('a'+s%26))+string(rune('a'+s/26)))
			}
		}
		srv, err := httpd.New(httpd.Options{Listen: "127.0.0.1:0", Sensor: &fakeSensor{}, Config: &fakeConfig{},
			Query: store.NewQueryable(src)})
		if err != nil {
			b.Fatal(err)
		}
		h := srv.Handler()
		query := "netsentry_engine_packets_total"
		if n > 1 {
			query = "sum(rate(netsentry_engine_packets_total[5m]))"
		}
		args := url.Values{"query": {query}, "start": {"1780000000"}, "end": {"1780086400"}, "step": {"60"}}.Encode()
		b.Run(map[int]string{1: "1series", 100: "100series"}[n], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var ctx fasthttp.RequestCtx
				ctx.Request.SetRequestURI("/api/v1/query_range?" + args)
				h(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
