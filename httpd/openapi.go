package httpd

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

// OpenAPI is the OpenAPI 3.1 description of the API, served at
// /api/v1/openapi.json; a test checks real responses against it.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) openapi(ctx *fasthttp.RequestCtx) {
	writeJSONBytes(ctx, OpenAPI)
}
