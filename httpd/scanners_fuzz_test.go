package httpd

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzScannersQuery: any query string given to /network/scanners is either
// refused with a message or yields a limit in 1..MaxLimit and a known sort;
// nothing panics.
func FuzzScannersQuery(f *testing.F) {
	for _, s := range []string{"", "limit=10", "sort=hosts&limit=1000", "limit=0", "limit=-1", "limit=1001",
		"limit=99999999999999999999", "sort=", "sort=ports&sort=ports", "sort=%70orts", "x=1", "limit=1&&&", "=", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/api/v1/network/scanners?" + raw)
		q, msg := parseQuery(&ctx, "limit", "sort")
		if msg != "" {
			return
		}
		limit, sort, msg := parseScanQuery(q)
		if msg != "" {
			if limit != 0 || sort != "" {
				t.Errorf("%q: refused (%s) but limit %d, sort %q", raw, msg, limit, sort)
			}
			return
		}
		if limit < 1 || limit > MaxLimit || scanSorts[sort] == nil {
			t.Errorf("%q: accepted limit %d, sort %q", raw, limit, sort)
		}
	})
}
