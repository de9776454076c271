// Package web holds the web dashboard's assets (HTML, CSS, ES modules and
// the vendored uPlot under static/vendor), embedded in the binary so that
// the dashboard works offline with no build step at run time. httpd serves
// them; this package has no code beyond the embedding. Assets is read-only
// and safe for concurrent use.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Assets is the dashboard's file tree: index.html at its root.
var Assets fs.FS

func init() {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("BUG: web assets: " + err.Error())
	}
	Assets = sub
}
