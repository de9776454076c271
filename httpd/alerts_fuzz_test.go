package httpd

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// FuzzAlertRequest: any body for POST/PUT /api/v1/alerts is either a rule
// or a 400 problem+json listing why; any ?start=/?end= value is a time or
// refused. Nothing panics.
func FuzzAlertRequest(f *testing.F) {
	f.Add([]byte(`{"name":"High CPU Usage","metric":"cpu.usage","comparator":"gt","threshold":90.0,"severity":"warning"}`), "2026-12-03T14:00:00Z")
	f.Add([]byte(`{"name":`), "1796306400.5")
	f.Add([]byte(`[]`), "-1")
	f.Add([]byte("name: x\n"), "1e308")
	f.Fuzz(func(t *testing.T, body []byte, ts string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBody(body)
		if _, ok := alertBody(&ctx); !ok {
			var p problem
			if ctx.Response.StatusCode() != fasthttp.StatusBadRequest || string(ctx.Response.Header.ContentType()) != "application/problem+json" ||
				json.Unmarshal(ctx.Response.Body(), &p) != nil || p.Detail == "" {
				t.Fatalf("%q: refused with %d %s", body, ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
		if tm, ok := parseAlertTime(ts); ok && (tm.Before(time.Unix(0, 0).AddDate(-3000, 0, 0)) || tm.Year() > 9999) {
			t.Fatalf("%q: accepted as %v", ts, tm)
		}
	})
}
