package httpd

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// query holds a request's validated query parameters.
type query struct {
	vals map[string]string
}

// parseQuery reads the query string, accepting only the names in allowed,
// each at most once; a problem is returned as a message for a 400.
func parseQuery(ctx *fasthttp.RequestCtx, allowed ...string) (query, string) {
	q := query{vals: map[string]string{}}
	var msg string
	for k, v := range ctx.QueryArgs().All() {
		name := string(k)
		switch {
		case !slices.Contains(allowed, name):
			if len(allowed) == 0 {
				msg = fmt.Sprintf("unknown query parameter %q; this endpoint takes none", name)
			} else {
				msg = fmt.Sprintf("unknown query parameter %q; use %s", name, strings.Join(allowed, ", "))
			}
		case q.has(name):
			msg = fmt.Sprintf("query parameter %q given twice", name)
		default:
			q.vals[name] = string(v)
		}
		if msg != "" {
			break
		}
	}
	return q, msg
}

func (q query) has(name string) bool { _, ok := q.vals[name]; return ok }

func (q query) get(name string) string { return q.vals[name] }

// limit returns ?limit= (default def), in 1..MaxLimit.
func (q query) limit(def int) (int, string) {
	s, ok := q.vals["limit"]
	if !ok {
		return def, ""
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fmt.Sprintf("limit %q: want an integer from 1 to %d", s, MaxLimit)
	}
	return n, ""
}
