package httpd

import (
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// problem is an RFC 9457 problem details object.
type problem struct {
	Type     string   `json:"type"`
	Title    string   `json:"title"`
	Status   int      `json:"status"`
	Detail   string   `json:"detail,omitempty"`
	Instance string   `json:"instance,omitempty"`
	Errors   []string `json:"errors,omitempty"`   // every problem found, e.g. of a config
	Warnings []string `json:"warnings,omitempty"` // settings accepted but not acted on, of a config
}

// writeProblem answers with status and a problem+json body.
func writeProblem(ctx *fasthttp.RequestCtx, status int, detail string, errs ...string) {
	writeProblemBody(ctx, problem{Type: "about:blank", Title: fasthttp.StatusMessage(status), Status: status,
		Detail: detail, Instance: string(ctx.Path()), Errors: errs})
}

// writeProblemBody answers with p as problem+json, p.Status as the status.
func writeProblemBody(ctx *fasthttp.RequestCtx, p problem) {
	b, err := json.Marshal(p)
	if err != nil {
		panic("BUG: marshal problem: " + err.Error())
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetContentType("application/problem+json")
	ctx.SetStatusCode(p.Status)
	ctx.SetBody(b)
}

// writeJSON answers 200 with v as JSON.
func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(ctx, fasthttp.StatusInternalServerError, "cannot encode the response")
		return
	}
	writeJSONBytes(ctx, b)
}

// writeJSONBytes answers 200 with b, which it does not copy: b must not
// change afterwards (rendered responses are shared and immutable).
func writeJSONBytes(ctx *fasthttp.RequestCtx, b []byte) {
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.SetBodyRaw(b)
}
