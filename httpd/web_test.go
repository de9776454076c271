package httpd_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/httpd"
)

// rawGet fetches url without Go's transparent gzip, with the headers hdr.
func rawGet(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Every file under web/static is served on the dashboard's port with its
// bytes (as on disk: the oracle), gzipped when asked, with a type, an ETag
// that revalidates, and the security headers; nothing else is.
func TestWebAssets(t *testing.T) {
	const token, read = "0123456789abcdef0123", "fedcba9876543210fedc"
	ts := newTestServerWith(t, func(o *httpd.Options) { o.WebListen = "127.0.0.1:0"; o.Token = token; o.ReadToken = read })
	base := "http://" + ts.srv.WebAddr().String()
	root := filepath.Join("..", "web", "static")
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(path, root+string(filepath.Separator)))
		n++
		resp, body := rawGet(t, "GET", base+rel, map[string]string{"Accept-Encoding": "gzip, br"})
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", rel, resp.StatusCode)
		}
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
		} else if len(want) > 1024 && !strings.HasSuffix(rel, ".png") {
			t.Errorf("%s (%d bytes) not gzipped", rel, len(want))
		}
		if !bytes.Equal(body, want) {
			t.Errorf("GET %s: body differs from %s", rel, path)
		}
		ct := resp.Header.Get("Content-Type")
		switch filepath.Ext(rel) {
		case ".js":
			if ct != "text/javascript; charset=utf-8" {
				t.Errorf("%s: Content-Type %q", rel, ct)
			}
		case ".css":
			if ct != "text/css; charset=utf-8" {
				t.Errorf("%s: Content-Type %q", rel, ct)
			}
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s: headers %v", rel, resp.Header)
		}
		// Plain, when gzip is not accepted.
		if resp, body := rawGet(t, "GET", base+rel, map[string]string{"Accept-Encoding": "gzip;q=0, identity"}); resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) {
			t.Errorf("%s without gzip: encoding %q, %d bytes", rel, resp.Header.Get("Content-Encoding"), len(body))
		}
		if resp, _ := rawGet(t, "GET", base+rel, map[string]string{"If-None-Match": resp.Header.Get("ETag")}); resp.StatusCode != 304 {
			t.Errorf("%s with its ETag: %d, want 304", rel, resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("only %d files under %s", n, root)
	}
	index, _ := os.ReadFile(filepath.Join(root, "index.html"))
	if resp, body := rawGet(t, "GET", base+"/", nil); resp.StatusCode != 200 || !bytes.Equal(body, index) || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		want         int
	}{
		{"GET", "/nope.js", nil, 404},
		{"GET", "/../go.mod", nil, 404},
		{"POST", "/index.html", nil, 405},
		{"GET", "/vendor/uplot/", nil, 404},
		// The API, under its token rules, on the same port.
		{"GET", "/api/v1/network/stats", nil, 401},
		{"GET", "/api/v1/network/stats", map[string]string{"Authorization": "Bearer " + read}, 200},
		{"POST", "/api/v1/capture", map[string]string{"Authorization": "Bearer " + read}, 403},
		{"GET", "/metrics", map[string]string{"Authorization": "Bearer " + read}, 200},
		{"GET", "/healthz", nil, 200},
	} {
		if resp, body := rawGet(t, tc.method, base+tc.path, tc.hdr); resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d: %.200s", tc.method, tc.path, resp.StatusCode, tc.want, body)
		}
	}
	// The API's own port serves no dashboard.
	if resp, _ := rawGet(t, "GET", ts.base+"/", nil); resp.StatusCode != 404 {
		t.Errorf("GET / on the API port: %d", resp.StatusCode)
	}
}

// The dashboard alone (enable_api off): it serves the API itself; the
// token rules hold for its address too.
func TestWebOnly(t *testing.T) {
	ts := newTestServerWith(t, func(o *httpd.Options) { o.Listen = ""; o.WebListen = "127.0.0.1:0" })
	if ts.srv.Addr() != nil {
		t.Errorf("API address %v, want none", ts.srv.Addr())
	}
	if resp, _ := rawGet(t, "GET", "http://"+ts.srv.WebAddr().String()+"/api/v1/network/stats", nil); resp.StatusCode != 200 {
		t.Errorf("stats on the dashboard's port: %d", resp.StatusCode)
	}
	sensor, cfg := ts.sensor, ts.config
	if _, err := httpd.New(httpd.Options{Sensor: sensor, Config: cfg}); err == nil {
		t.Error("New with no address: no error")
	}
	_, err := httpd.New(httpd.Options{Listen: "127.0.0.1:0", WebListen: "0.0.0.0:0", Sensor: sensor, Config: cfg})
	if err == nil || !strings.Contains(err.Error(), "api_token is empty") {
		t.Errorf("dashboard beyond loopback without a token: %v", err)
	}
	if err := ts.srv.CheckTokens("", ""); err != nil {
		t.Errorf("no token on loopback: %v", err)
	}
}
