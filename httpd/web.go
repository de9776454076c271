package httpd

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// webAsset is one embedded dashboard file, ready to serve: its bytes, and
// gzipped when that is smaller.
type webAsset struct {
	body, gz    []byte
	contentType string
	etag        string
}

// webCSP keeps the dashboard to its own origin: no inline script, no
// third-party fetch, no framing.
const webCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// loadWebAssets reads every embedded file once and compresses it.
func loadWebAssets(fsys fs.FS) (map[string]*webAsset, error) {
	out := map[string]*webAsset{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".json":
			ct = "application/json"
		case "":
			ct = "text/plain; charset=utf-8"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		a := &webAsset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		if buf.Len() < len(b) {
			a.gz = buf.Bytes()
		}
		out["/"+p] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load web assets: %w", err)
	}
	if out["/index.html"] == nil {
		return nil, fmt.Errorf("load web assets: no index.html")
	}
	return out, nil
}

// webHandler serves the dashboard on the web listener: the embedded files
// at their paths (index.html at /), and every API path (/api/, /metrics,
// /healthz) through api, under the same token rules, so that the page
// talks to its own origin. The files themselves hold no data and need no
// token.
func (s *Server) webHandler(api fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		p := string(ctx.Path())
		if strings.HasPrefix(p, "/api/") || p == "/metrics" || p == "/healthz" {
			api(ctx)
			return
		}
		s.webFile(ctx, p)
	}
}

func (s *Server) webFile(ctx *fasthttp.RequestCtx, p string) {
	h := &ctx.Response.Header
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if !ctx.IsGet() && !ctx.IsHead() {
		h.Set("Allow", "GET, HEAD")
		writeProblem(ctx, fasthttp.StatusMethodNotAllowed, "the dashboard's files are read with GET")
		return
	}
	if p == "/" {
		p = "/index.html"
	}
	a := s.web[p]
	if a == nil {
		writeProblem(ctx, fasthttp.StatusNotFound, "no such file in the dashboard; open /")
		return
	}
	h.Set("Content-Security-Policy", webCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("ETag", a.etag)
	// Revalidate every time: the files change with the binary, and a 304
	// costs a round trip on loopback only.
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept-Encoding")
	h.SetContentType(a.contentType)
	if string(ctx.Request.Header.Peek("If-None-Match")) == a.etag {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	if a.gz != nil && acceptsGzip(ctx.Request.Header.Peek("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		ctx.SetBody(a.gz)
		return
	}
	ctx.SetBody(a.body)
}

func acceptsGzip(ae []byte) bool {
	for _, part := range strings.Split(string(ae), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
