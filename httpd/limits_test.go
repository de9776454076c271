package httpd_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/httpd"
)

// rawExchange writes req on a new connection and reads one response.
func rawExchange(t *testing.T, addr string, req []byte, wait time.Duration) (response, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write(req)
	c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%.60q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: b}, resp
}

// TestProtocolErrors: requests fasthttp cannot read get the status RFC
// 9110 gives for what went wrong (414 a request line over the limit, 431
// header fields over it, 408 a client too slow to send its request, 413 a
// body over the limit), as problem+json with a fixed text: no Go error
// text, no socket address.
func TestProtocolErrors(t *testing.T) {
	ts := newTestServerWith(t, func(o *httpd.Options) { o.ReadTimeout = 300 * time.Millisecond })
	addr := ts.srv.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	longPath := "/" + strings.Repeat("a", httpd.MaxHeaderBytes+100)
	for _, c := range []struct {
		name   string
		req    string
		status int
		wait   time.Duration // at least this long before the answer
	}{
		{"request line over the limit", "GET " + longPath + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, 0},
		{"request line over the limit, no end", "GET " + longPath, 414, 0},
		{"one header over the limit", "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("b", httpd.MaxHeaderBytes) + "\r\n\r\n", 431, 0},
		{"many headers over the limit", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("c", 90)+"\r\n", httpd.MaxHeaderBytes/90) + "\r\n", 431, 0},
		{"request line just short, headers over", "GET /" + strings.Repeat("d", httpd.MaxHeaderBytes-200) + " HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("e", 400) + "\r\n\r\n", 431, 0},
		{"head never ends", "GET /healthz HTTP/1.1\r\nHost: x\r\n", 408, 300 * time.Millisecond},
		{"nothing after the method", "GET ", 408, 300 * time.Millisecond},
		{"body shorter than Content-Length", "PUT /api/v1/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"log_level\":", 408, 300 * time.Millisecond},
		{"body over the limit", fmt.Sprintf("PUT /api/v1/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", httpd.MaxBodyBytes+1), 413, 0},
		{"no method", "\x01\x02 / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 0},
		{"bad version", "GET / HTTP/9\r\nHost: x\r\n\r\n", 400, 0},
		{"two Content-Lengths", "PUT /api/v1/config HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r, h := rawExchange(t, addr, []byte(c.req), 5*time.Second)
			took := time.Since(start)
			if r.status != c.status {
				t.Errorf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if took < c.wait {
				t.Errorf("answered after %v, before the read timeout", took)
			}
			if !strings.HasPrefix(r.ct, "application/problem+json") {
				t.Errorf("content type %q", r.ct)
			}
			var p struct {
				Status int    `json:"status"`
				Title  string `json:"title"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(r.body, &p); err != nil || p.Status != c.status || p.Title != http.StatusText(c.status) {
				t.Errorf("body %s: %v", r.body, err)
			}
			if !h.Close {
				t.Error("no Connection: close")
			}
			low := strings.ToLower(string(r.body))
			for _, bad := range []string{"127.0.0.1", port, "fasthttp", "readbuffersize", "i/o timeout", "read tcp", "error when", "buffer size"} {
				if strings.Contains(low, bad) {
					t.Errorf("body names %q: %s", bad, r.body)
				}
			}
		})
	}
	// A request at the limit's edge is served.
	okPath := "/healthz?" + strings.Repeat("f", httpd.MaxHeaderBytes/2)
	if r, _ := rawExchange(t, addr, []byte("GET "+okPath+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 5*time.Second); r.status != 200 {
		t.Errorf("a %d-byte request line: %d %s", len(okPath), r.status, r.body)
	}
}

// TestReadToken: the read-only token reads (every GET) and changes
// nothing: a write with it is 403 with error="insufficient_scope"; no token
// or an unknown one is 401 with a Bearer challenge (RFC 6750 section 3).
// GET /api/v1/config redacts both tokens, and a PUT that sends them back
// redacted keeps them.
func TestReadToken(t *testing.T) {
	const admin, read = "0123456789abcdef0123", "fedcba9876543210fedc"
	ts := newTestServerWith(t, func(o *httpd.Options) { o.Token, o.ReadToken = admin, read })
	type want struct {
		status    int
		challenge string
	}
	as := func(tok string, method, path string, body []byte) (response, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.base+path, bytes.NewReader(body))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if tok != "" {
			req.Header.Set("Authorization", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: b}, resp.Header
	}
	const (
		none  = `Bearer realm="netsentry"`
		bad   = `Bearer realm="netsentry", error="invalid_token"`
		scope = `Bearer realm="netsentry", error="insufficient_scope"`
	)
	for _, c := range []struct {
		auth, method, path string
		body               []byte
		want               want
	}{
		{"Bearer " + read, "GET", "/api/v1/network/connections", nil, want{200, ""}},
		{"bearer " + read, "GET", "/api/v1/network/hosts", nil, want{200, ""}},
		{"Bearer " + read, "GET", "/metrics", nil, want{200, ""}},
		{"Bearer " + read, "GET", "/api/v1/capture", nil, want{200, ""}},
		{"Bearer " + admin, "GET", "/api/v1/network/stats", nil, want{200, ""}},
		{"", "GET", "/api/v1/network/connections", nil, want{401, none}},
		{"Basic " + read, "GET", "/api/v1/network/connections", nil, want{401, none}},
		{"Bearer " + read + "x", "GET", "/api/v1/config", nil, want{401, bad}},
		{"Bearer " + read, "POST", "/api/v1/capture", []byte(`{"action":"stop"}`), want{403, scope}},
		{"Bearer " + read, "PUT", "/api/v1/config", []byte(`{"log_level":"debug"}`), want{403, scope}},
		{"", "POST", "/api/v1/capture", []byte(`{"action":"stop"}`), want{401, none}},
		{"Bearer nope-nope-nope-nope", "PUT", "/api/v1/config", []byte(`{}`), want{401, bad}},
		{"", "GET", "/healthz", nil, want{200, ""}},
		{"", "GET", "/api/v1/openapi.json", nil, want{200, ""}},
	} {
		r, h := as(c.auth, c.method, c.path, c.body)
		if r.status != c.want.status || h.Get("WWW-Authenticate") != c.want.challenge {
			t.Errorf("%s %s with %.12q: %d %q, want %d %q: %s", c.method, c.path, c.auth, r.status, h.Get("WWW-Authenticate"),
				c.want.status, c.want.challenge, r.body)
		}
		if r.status >= 400 {
			ts.check(c.path, c.method, r)
		}
	}
	if !ts.sensor.Capture().Running || ts.config.replaced != 0 {
		t.Fatalf("refused writes changed something: running %v, replaced %d", ts.sensor.Capture().Running, ts.config.replaced)
	}
	// The stream is a GET: the read token opens it.
	c, err := net.Dial("tcp", ts.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", read)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Errorf("stream with the read token: %v %v", resp, err)
	}
	c.Close()

	r, _ := as("Bearer "+read, "GET", "/api/v1/config", nil)
	cfg := ts.check("/api/v1/config", "GET", r)
	if cfg["api_token"] != httpd.Redacted || cfg["api_read_token"] != httpd.Redacted {
		t.Fatalf("GET config: api_token %v, api_read_token %v; want both %q", cfg["api_token"], cfg["api_read_token"], httpd.Redacted)
	}
	if bytes.Contains(r.body, []byte(admin)) || bytes.Contains(r.body, []byte(read)) {
		t.Fatal("GET config shows a token")
	}
	cfg["log_level"] = "warn"
	body, _ := json.Marshal(cfg)
	r, _ = as("Bearer "+admin, "PUT", "/api/v1/config", body)
	if r.status != 200 {
		t.Fatalf("PUT with the admin token: %d %s", r.status, r.body)
	}
	if got := ts.config.Config(); got.APIToken != admin || got.APIReadToken != read || got.LogLevel != "warn" {
		t.Errorf("after PUT of the redacted tokens: %q %q %q", got.APIToken, got.APIReadToken, got.LogLevel)
	}
	// A read token equal to the admin token is refused by validation.
	cfg["api_read_token"] = admin
	body, _ = json.Marshal(cfg)
	if r, _ = as("Bearer "+admin, "PUT", "/api/v1/config", body); r.status != 400 || !bytes.Contains(r.body, []byte("api_read_token")) {
		t.Errorf("PUT with api_read_token = api_token: %d %s", r.status, r.body)
	}
	// New tokens apply at once; the old read token stops working.
	if err := ts.srv.SetTokens(admin, "aaaabbbbccccddddeeee"); err != nil {
		t.Fatal(err)
	}
	if r, _ := as("Bearer "+read, "GET", "/api/v1/capture", nil); r.status != 401 {
		t.Errorf("old read token after SetTokens: %d", r.status)
	}
	if r, _ := as("Bearer aaaabbbbccccddddeeee", "GET", "/api/v1/capture", nil); r.status != 200 {
		t.Errorf("new read token: %d", r.status)
	}
	if err := ts.srv.SetTokens("", "aaaabbbbccccddddeeee"); err == nil {
		t.Error("a read token without an admin token was accepted")
	}
}

// TestTokenClearRefused: on an API that listens beyond loopback, a PUT
// that clears api_token (with api_listen back on loopback, which applies
// only at a restart) is refused with 409 and changes nothing: the old token
// is still required and GET shows it set.
func TestTokenClearRefused(t *testing.T) {
	const admin = "0123456789abcdef0123"
	ts := newTestServerWith(t, func(o *httpd.Options) { o.Listen, o.Token = "0.0.0.0:0", admin })
	_, port, _ := net.SplitHostPort(ts.srv.Addr().String())
	ts.base = "http://127.0.0.1:" + port
	r := ts.do("GET", "/api/v1/config", "", nil)
	cfg := ts.check("/api/v1/config", "GET", r)
	cfg["api_token"] = ""
	cfg["api_listen"] = "127.0.0.1"
	body, _ := json.Marshal(cfg)
	r = ts.do("PUT", "/api/v1/config", "application/json", body)
	if r.status != 409 || !bytes.Contains(r.body, []byte("nothing was changed")) {
		t.Errorf("PUT clearing the token: %d %s", r.status, r.body)
	}
	ts.check("/api/v1/config", "PUT", r)
	if ts.config.replaced != 0 {
		t.Error("the refused PUT replaced the configuration")
	}
	ts.token = ""
	if r := ts.do("GET", "/api/v1/capture", "", nil); r.status != 401 {
		t.Errorf("without the token after the refused PUT: %d", r.status)
	}
	ts.token = admin
	if m := ts.check("/api/v1/config", "GET", ts.do("GET", "/api/v1/config", "", nil)); m["api_token"] != httpd.Redacted {
		t.Errorf("GET config after the refused PUT: api_token %v", m["api_token"])
	}
	if err := ts.srv.CheckTokens("", ""); err == nil {
		t.Error("CheckTokens accepted an empty token beyond loopback")
	}
}

// TestHealth: /healthz is 503 with the sensor's reason when it is
// unhealthy, 200 "capture stopped" when the capture was stopped on request.
func TestHealth(t *testing.T) {
	ts := newTestServer(t, "")
	get := func() (int, map[string]any) {
		r := ts.do("GET", "/healthz", "", nil)
		return r.status, ts.check("/healthz", "GET", r)
	}
	if st, m := get(); st != 200 || m["status"] != "ok" || m["capture_running"] != true || m["reason"] != nil {
		t.Errorf("healthy: %d %v", st, m)
	}
	ts.sensor.mu.Lock()
	ts.sensor.sick = "packet worker of queue 0 did not answer within 2s"
	ts.sensor.mu.Unlock()
	if st, m := get(); st != 503 || m["status"] != "unhealthy" || m["reason"] != "packet worker of queue 0 did not answer within 2s" {
		t.Errorf("unhealthy: %d %v", st, m)
	}
	ts.sensor.mu.Lock()
	ts.sensor.sick = ""
	ts.sensor.mu.Unlock()
	ts.do("POST", "/api/v1/capture", "application/json", []byte(`{"action":"stop"}`))
	if st, m := get(); st != 200 || m["status"] != "ok" || m["capture_running"] != false || m["reason"] != "capture stopped" {
		t.Errorf("stopped: %d %v", st, m)
	}
}

// dialFrom connects to addr from the loopback address src with a small
// receive buffer (set before connect, so the window stays small).
func dialFrom(t *testing.T, src, addr string, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(network, address string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
			return serr
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openStream sends GET /api/v1/stream on c and reads the response head.
func openStream(t *testing.T, c net.Conn) (*http.Response, *bufio.Reader) {
	t.Helper()
	fmt.Fprint(c, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	return resp, br
}

func metricValue(t *testing.T, ts *testServer, series string) float64 {
	t.Helper()
	r := ts.do("GET", "/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("/metrics has no %s", series)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestStreamLimits: one client address holds MaxStreamsPerClient streams
// (429 past that); MaxStreams clients that connect and never read fill the
// server (503 for the next one), are dropped once their buffers have stayed
// full for the write timeout, and then a new reader gets events. Both
// counts are in /metrics.
func TestStreamLimits(t *testing.T) {
	const interval, timeout = 20 * time.Millisecond, 300 * time.Millisecond
	ts := newTestServerWith(t, func(o *httpd.Options) { o.StreamInterval, o.StreamWriteTimeout = interval, timeout })
	addr := ts.srv.Addr().String()

	var same []net.Conn
	for i := 0; i < httpd.MaxStreamsPerClient; i++ {
		c := dialFrom(t, "127.0.0.2", addr, 0)
		if resp, _ := openStream(t, c); resp.StatusCode != 200 {
			t.Fatalf("stream %d from one address: %d", i+1, resp.StatusCode)
		}
		same = append(same, c)
	}
	c := dialFrom(t, "127.0.0.2", addr, 0)
	resp, _ := openStream(t, c)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("stream %d from one address: %d, Retry-After %q; want 429", httpd.MaxStreamsPerClient+1, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if c := dialFrom(t, "127.0.0.3", addr, 0); true {
		if resp, _ := openStream(t, c); resp.StatusCode != 200 {
			t.Errorf("another address while one is at its cap: %d", resp.StatusCode)
		}
		c.Close()
	}
	if v := metricValue(t, ts, `netsentry_api_stream_rejected_total{reason="client_limit"}`); v != 1 {
		t.Errorf("client_limit rejections: %v, want 1", v)
	}
	for _, c := range same {
		c.Close()
	}
	waitMetric(t, ts, "netsentry_api_streams_open", 0, 5*time.Second)

	// MaxStreams clients from as many addresses that never read.
	for i := 0; i < httpd.MaxStreams; i++ {
		c := dialFrom(t, fmt.Sprintf("127.0.1.%d", i+1), addr, 2048)
		fmt.Fprint(c, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	waitMetric(t, ts, "netsentry_api_streams_open", httpd.MaxStreams, 5*time.Second)
	start := time.Now()
	late := dialFrom(t, "127.0.2.1", addr, 0)
	if resp, _ := openStream(t, late); resp.StatusCode != 503 {
		t.Errorf("stream beyond MaxStreams: %d, want 503", resp.StatusCode)
	}
	waitMetric(t, ts, "netsentry_api_stream_dropped_total", httpd.MaxStreams, 20*time.Second)
	t.Logf("%d non-reading clients dropped %v after the server was full", httpd.MaxStreams, time.Since(start).Round(time.Millisecond))
	if d := time.Since(start); d < timeout {
		t.Errorf("dropped after %v, before the write timeout %v", d, timeout)
	}
	waitMetric(t, ts, "netsentry_api_streams_open", 0, 5*time.Second)
	if v := metricValue(t, ts, `netsentry_api_stream_rejected_total{reason="server_limit"}`); v != 1 {
		t.Errorf("server_limit rejections: %v, want 1", v)
	}

	// A reader now gets events, and is not dropped while it reads.
	reader := dialFrom(t, "127.0.2.2", addr, 0)
	resp, _ = openStream(t, reader)
	if resp.StatusCode != 200 {
		t.Fatalf("reader after the drops: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	events := 0
	reader.SetReadDeadline(time.Now().Add(10 * time.Second))
	for sc.Scan() && events < 20 {
		if strings.HasPrefix(sc.Text(), "event: connections") {
			events++
		}
	}
	if events < 20 {
		t.Errorf("reader got %d connections events: %v", events, sc.Err())
	}
	if v := metricValue(t, ts, "netsentry_api_stream_dropped_total"); v != httpd.MaxStreams {
		t.Errorf("dropped %v, want %d (the reader was dropped too?)", v, httpd.MaxStreams)
	}
}

func waitMetric(t *testing.T, ts *testServer, series string, want float64, limit time.Duration) {
	t.Helper()
	var v float64
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if v = metricValue(t, ts, series); v == want {
			return
		}
	}
	t.Fatalf("%s = %v after %v, want %v", series, v, limit, want)
}

// TestJSONProblems: a bad JSON body is described in the API's own words,
// not the decoder's error text.
func TestJSONProblems(t *testing.T) {
	ts := newTestServer(t, "")
	for body, want := range map[string]string{
		`{"action":1}`:           "bad JSON body: action: want a string, got a JSON number",
		`{"action":`:             "bad JSON body: the JSON ends early",
		`{"colour":"red"}`:       `bad JSON body: unknown field "colour"`,
		`{"action":"stop",,}`:    "bad JSON body: not valid JSON at byte 18",
		`{"interface":["eth0"]}`: "bad JSON body: interface: want a string, got a JSON array",
	} {
		r := ts.do("POST", "/api/v1/capture", "application/json", []byte(body))
		var p struct {
			Detail string `json:"detail"`
		}
		json.Unmarshal(r.body, &p)
		if r.status != 400 || p.Detail != want {
			t.Errorf("%s: %d %q, want 400 %q", body, r.status, p.Detail, want)
		}
	}
}

// FuzzRequest: whatever bytes a client sends, the answer (if any) is an
// HTTP response whose body names no socket address and holds no internal
// error text.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /" + strings.Repeat("a", httpd.MaxHeaderBytes) + " HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nX: " + strings.Repeat("b", httpd.MaxHeaderBytes) + "\r\n\r\n",
		"PUT /api/v1/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\":",
		"POST /api/v1/capture HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"\r\n\r\n", "G", "GET  / HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	ts := newTestServerWith(f, func(o *httpd.Options) { o.ReadTimeout = 200 * time.Millisecond })
	addr := ts.srv.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	f.Fuzz(func(t *testing.T, req []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			c.Write(req)
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		out, _ := io.ReadAll(c)
		if len(out) == 0 {
			return
		}
		if !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) {
			t.Fatalf("answer is not HTTP: %.80q", out)
		}
		low := strings.ToLower(string(out))
		for _, bad := range []string{"127.0.0.1:", ":" + port, "fasthttp:", "readbuffersize", "i/o timeout", "error when"} {
			if strings.Contains(low, bad) {
				t.Fatalf("answer names %q: %.300q", bad, out)
			}
		}
	})
}

// TestSMTPPasswordRedacted: GET /api/v1/config shows a set
// alerts.smtp.password as Redacted, and a PUT that sends it back keeps it.
func TestSMTPPasswordRedacted(t *testing.T) {
	const pw = "mail-secret-123"
	ts := newTestServerWith(t, func(o *httpd.Options) {})
	ts.config.mu.Lock()
	ts.config.cfg.Alerts.SMTP.Username, ts.config.cfg.Alerts.SMTP.Password = "alerts", pw
	ts.config.mu.Unlock()
	r := ts.do("GET", "/api/v1/config", "", nil)
	cfg := ts.check("/api/v1/config", "GET", r)
	if bytes.Contains(r.body, []byte(pw)) {
		t.Fatal("GET config shows the SMTP password")
	}
	smtp, _ := cfg["alerts"].(map[string]any)["smtp"].(map[string]any)
	if smtp["password"] != httpd.Redacted {
		t.Fatalf("alerts.smtp.password = %v, want %q", smtp["password"], httpd.Redacted)
	}
	cfg["log_level"] = "warn"
	body, _ := json.Marshal(cfg)
	if r = ts.do("PUT", "/api/v1/config", "application/json", body); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if got := ts.config.Config(); got.Alerts.SMTP.Password != pw || got.LogLevel != "warn" {
		t.Errorf("after PUT of the redacted password: %q %q", got.Alerts.SMTP.Password, got.LogLevel)
	}
}

// TestRemoteSecretsRedacted: GET /api/v1/config shows a set
// storage.remote_token and storage.remote_password as Redacted, and a PUT
// that sends them back keeps them.
func TestRemoteSecretsRedacted(t *testing.T) {
	const tok, pw = "remote-token-123", "remote-pass-456"
	ts := newTestServerWith(t, func(o *httpd.Options) {})
	ts.config.mu.Lock()
	ts.config.cfg.Storage.RemoteToken = tok
	ts.config.mu.Unlock()
	check := func(key, secret string) {
		r := ts.do("GET", "/api/v1/config", "", nil)
		cfg := ts.check("/api/v1/config", "GET", r)
		if bytes.Contains(r.body, []byte(secret)) {
			t.Fatalf("GET config shows storage.%s", key)
		}
		st, _ := cfg["storage"].(map[string]any)
		if st[key] != httpd.Redacted {
			t.Fatalf("storage.%s = %v, want %q", key, st[key], httpd.Redacted)
		}
		cfg["log_level"] = "warn"
		body, _ := json.Marshal(cfg)
		if r = ts.do("PUT", "/api/v1/config", "application/json", body); r.status != 200 {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
	}
	check("remote_token", tok)
	if got := ts.config.Config(); got.Storage.RemoteToken != tok {
		t.Errorf("after PUT of the redacted token: %q", got.Storage.RemoteToken)
	}
	ts.config.mu.Lock()
	ts.config.cfg.Storage.RemoteToken = ""
	ts.config.cfg.Storage.RemoteUsername, ts.config.cfg.Storage.RemotePassword = "u", pw
	ts.config.mu.Unlock()
	check("remote_password", pw)
	if got := ts.config.Config(); got.Storage.RemotePassword != pw {
		t.Errorf("after PUT of the redacted password: %q", got.Storage.RemotePassword)
	}
}

// A default notification channel's webhook secret is redacted in GET
// /api/v1/config, and a PUT that sends the redacted form back keeps it.
func TestChannelSecretRedacted(t *testing.T) {
	const secret = "hmac-key-789"
	ts := newTestServerWith(t, func(o *httpd.Options) {})
	ts.config.mu.Lock()
	ts.config.cfg.Alerts.NotificationChannels = []configs.NotificationChannel{
		{Type: "webhook", URL: "https://hooks.example.com/a", Secret: secret},
		{Type: "webhook", URL: "https://hooks.example.com/b"},
	}
	ts.config.mu.Unlock()
	r := ts.do("GET", "/api/v1/config", "", nil)
	cfg := ts.check("/api/v1/config", "GET", r)
	if bytes.Contains(r.body, []byte(secret)) {
		t.Fatalf("GET config shows a channel's secret: %s", r.body)
	}
	al, _ := cfg["alerts"].(map[string]any)
	chs, _ := al["notification_channels"].([]any)
	if len(chs) != 2 {
		t.Fatalf("notification_channels = %v", al["notification_channels"])
	}
	if got := chs[0].(map[string]any)["secret"]; got != httpd.Redacted {
		t.Fatalf("channel 0 secret = %v, want %q", got, httpd.Redacted)
	}
	if _, ok := chs[1].(map[string]any)["secret"]; ok {
		t.Errorf("channel 1 has no secret but shows one: %v", chs[1])
	}
	if got := ts.config.Config().Alerts.NotificationChannels[0].Secret; got != secret {
		t.Fatalf("GET changed the secret in force: %q", got)
	}
	cfg["log_level"] = "warn"
	body, _ := json.Marshal(cfg)
	if r = ts.do("PUT", "/api/v1/config", "application/json", body); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	if got := ts.config.Config().Alerts.NotificationChannels[0].Secret; got != secret {
		t.Errorf("after PUT of the redacted secret: %q, want the secret in force", got)
	}
}
