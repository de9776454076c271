package httpd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsentry/netsentry/internal/testcorpus"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
)

var corpus = testcorpus.PcapsDir()

// fakeSensor serves a fixed snapshot: the state of a real replay of a
// corpus capture.
type fakeSensor struct {
	mu      sync.Mutex
	snap    httpd.Snapshot
	queues  []httpd.QueueStats
	running bool
	ifaces  []string
	calls   int
	tops    int    // TopFlows calls
	sick    string // Health's reason when unhealthy
}

func (f *fakeSensor) Health() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sick == "", f.sick
}

func (f *fakeSensor) Snapshot(ctx context.Context, parts httpd.Parts) (httpd.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	s := f.snap
	if !parts.Flows {
		s.Flows = nil
	}
	if !parts.Hosts {
		s.Hosts = nil
	}
	if !parts.Scan {
		s.Scan = nil
	}
	return s, nil
}

// TopFlows selects from the fixed snapshot's flows as a worker selects from
// its table (the same definition: flowtable.TopRecords), one part per
// worker, merged.
func (f *fakeSensor) TopFlows(ctx context.Context, q flowtable.FlowQuery) ([]flowtable.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tops++
	var parts [][]flowtable.Record
	for _, p := range f.snap.Flows {
		parts = append(parts, flowtable.TopRecords(&q, p))
	}
	return flowtable.MergeTop(&q, parts...), nil
}

func (f *fakeSensor) Queues() []httpd.QueueStats { return f.queues }

func (f *fakeSensor) Capture() httpd.CaptureStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return httpd.CaptureStatus{Running: f.running, Interfaces: f.ifaces, Queues: len(f.queues), Fanout: "none"}
}

func (f *fakeSensor) StartCapture(ifaces []string) (httpd.CaptureStatus, error) {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return f.Capture(), fmt.Errorf("capture running: %w", httpd.ErrConflict)
	}
	if len(ifaces) > 0 && ifaces[0] == "nosuch0" {
		f.mu.Unlock()
		return f.Capture(), fmt.Errorf("no such device: %w", httpd.ErrInvalid)
	}
	f.running = true
	if ifaces != nil {
		f.ifaces = ifaces
	}
	f.mu.Unlock()
	return f.Capture(), nil
}

func (f *fakeSensor) StopCapture() (httpd.CaptureStatus, error) {
	f.mu.Lock()
	f.running = false
	f.mu.Unlock()
	return f.Capture(), nil
}

// fakeConfig keeps the configuration in memory and counts replacements.
type fakeConfig struct {
	mu       sync.Mutex
	cfg      configs.Config
	replaced int
}

func (c *fakeConfig) Config() configs.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Clone()
}

func (c *fakeConfig) Replace(n configs.Config) (httpd.ApplyResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replaced++
	res := httpd.ApplyResult{}
	if n.LogLevel != c.cfg.LogLevel {
		res.Applied = append(res.Applied, "log_level")
	}
	if n.APIPort != c.cfg.APIPort {
		res.RestartRequired = append(res.RestartRequired, "api_port")
	}
	c.cfg = n
	return res, nil
}

// replayState replays a corpus file into one worker and returns what the
// API would see. The replay ends every flow (end of capture); the fake
// serves those records as the open flows.
func replayState(t testing.TB, name string) httpd.Snapshot {
	t.Helper()
	rf, err := engine.OpenFile(filepath.Join(corpus, name))
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	defer rf.Close()
	var recs []flowtable.Record
	cfg := flowtable.DefaultConfig()
	cfg.Detect = true
	shard, err := flowtable.New(cfg, func(r []flowtable.Record) { recs = append(recs, r...) })
	if err != nil {
		t.Fatal(err)
	}
	w := engine.NewWorker(shard)
	if _, err := engine.Replay(context.Background(), rf, w, engine.ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	c := w.Counters()
	return httpd.Snapshot{Packets: c.Packets, Bytes: c.Bytes, Stats: shard.Stats(), Flows: [][]flowtable.Record{recs[:4], recs[4:]},
		Hosts: shard.HostSnapshot(nil), Protocols: shard.ProtocolSnapshot(),
		Scan: flowtable.MergeSources(shard.ScanExport(nil)), ScanWindow: shard.ScanWindow(),
		DecodeErrors: []httpd.NamedCount{{Name: "truncated_tcp", Count: 0}, {Name: "bad_ipv4_header", Count: 0}}}
}

type testServer struct {
	t      testing.TB
	srv    *httpd.Server
	base   string
	sensor *fakeSensor
	config *fakeConfig
	api    *openAPI
	token  string
}

func newTestServer(t *testing.T, token string) *testServer {
	t.Helper()
	return newTestServerWith(t, func(o *httpd.Options) { o.Token = token })
}

// newTestServerWith starts a server with the options that edit sets.
func newTestServerWith(t testing.TB, edit func(o *httpd.Options)) *testServer {
	t.Helper()
	snap := replayState(t, "zeek-http-bro.org.pcap")
	sensor := &fakeSensor{snap: snap, running: true, ifaces: []string{"eth0"},
		queues: []httpd.QueueStats{{Queue: 0, Packets: snap.Packets, Bytes: snap.Bytes, KernelPackets: snap.Packets}}}
	cfg := &fakeConfig{cfg: configs.Default()}
	opt := httpd.Options{Listen: "127.0.0.1:0", Version: "test", GoVersion: "go-test",
		Sensor: sensor, Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Protocols: []string{"Unknown", "HTTP", "DNS", "TLS", "HTTPS"}}
	edit(&opt)
	cfg.cfg.APIToken, cfg.cfg.APIReadToken = opt.Token, opt.ReadToken
	srv, err := httpd.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(time.Second) })
	addr := srv.Addr()
	if addr == nil { // the dashboard alone
		addr = srv.WebAddr()
	}
	return &testServer{t: t, srv: srv, base: "http://" + addr.String(), sensor: sensor, config: cfg,
		api: loadOpenAPI(t), token: opt.Token}
}

type response struct {
	status int
	ct     string
	body   []byte
}

func (ts *testServer) do(method, path, ct string, body []byte) response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.base+path, bytes.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if ts.token != "" {
		req.Header.Set("Authorization", "Bearer "+ts.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return response{status: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: b}
}

// check validates r against the document's schema for the route template.
func (ts *testServer) check(route, method string, r response) map[string]any {
	ts.t.Helper()
	s, err := ts.api.responseSchema(route, method, r.status, r.ct)
	if err != nil {
		ts.t.Errorf("%v (body %s)", err, r.body)
		return nil
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		ts.t.Errorf("%s %s: body is not JSON: %v: %s", method, route, err, r.body)
		return nil
	}
	for _, e := range ts.api.validate(s, v, "$") {
		ts.t.Errorf("%s %s %d: %s", method, route, r.status, e)
	}
	m, _ := v.(map[string]any)
	return m
}

func readTSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	head := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[1:] {
		m := map[string]string{}
		for i, f := range strings.Split(l, "\t") {
			m[head[i]] = f
		}
		rows = append(rows, m)
	}
	return rows
}

func u64(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }

// TestEndpoints: every read endpoint answers what openapi.json says, and
// the connections and hosts agree with tshark's tables of the capture.
func TestEndpoints(t *testing.T) {
	ts := newTestServer(t, "")
	r := ts.do("GET", "/api/v1/network/connections?limit=3&sort=bytes", "", nil)
	if r.status != 200 {
		t.Fatalf("connections: %d %s", r.status, r.body)
	}
	conns := ts.check("/api/v1/network/connections", "GET", r)["connections"].([]any)
	if len(conns) != 3 {
		t.Fatalf("limit=3 gave %d connections", len(conns))
	}
	// The top conversation by bytes, as tshark counts it.
	var top map[string]string
	for _, row := range readTSV(t, filepath.Join(corpus, "oracle/zeek-http-bro.org.pcap.conv_exact.tsv")) {
		if top == nil || u64(row["bytes_total"]) > u64(top["bytes_total"]) {
			top = row
		}
	}
	c := conns[0].(map[string]any)
	src := fmt.Sprintf("%s:%v", c["source_ip"], c["source_port"])
	a := top["addr_a"] + ":" + top["port_a"]
	ab := [4]string{"frames_a_to_b", "bytes_a_to_b", "frames_b_to_a", "bytes_b_to_a"}
	if src != a {
		ab = [4]string{"frames_b_to_a", "bytes_b_to_a", "frames_a_to_b", "bytes_a_to_b"}
	}
	for i, k := range []string{"packets_tx", "bytes_tx", "packets_rx", "bytes_rx"} {
		if got := uint64(c[k].(float64)); got != u64(top[ab[i]]) {
			t.Errorf("top connection %s: %s = %d, tshark %d", src, k, got, u64(top[ab[i]]))
		}
	}
	if c["application_protocol"] != "HTTP" || c["protocol"] != "TCP" {
		t.Errorf("top connection: %v/%v, want TCP/HTTP", c["protocol"], c["application_protocol"])
	}
	// Every connection: the 5 with no payload (tshark) are guessed HTTP,
	// marked "app":{"guess":true}; the 8 others detected, "app":{}. All
	// but one were closed by both sides (SF); tshark shows no FIN on port
	// 55127, established and left open (S1).
	r = ts.do("GET", "/api/v1/network/connections?limit=100", "", nil)
	guessed := 0
	for _, c := range ts.check("/api/v1/network/connections", "GET", r)["connections"].([]any) {
		c := c.(map[string]any)
		app := c["app"].(map[string]any)
		if app["guess"] == true {
			guessed++
			if uint64(c["bytes_tx"].(float64)) > 300 {
				t.Errorf("guessed connection with %v bytes sent", c["bytes_tx"])
			}
		}
		want := "SF"
		if c["source_port"] == 55127.0 {
			want = "S1"
		}
		if c["conn_state"] != want {
			t.Errorf("connection %v:%v conn_state %v, want %s", c["source_ip"], c["source_port"], c["conn_state"], want)
		}
	}
	if guessed != 5 {
		t.Errorf("%d guessed connections, want 5", guessed)
	}

	r = ts.do("GET", "/api/v1/network/hosts?limit=5", "", nil)
	hosts := ts.check("/api/v1/network/hosts", "GET", r)["hosts"].([]any)
	eps := readTSV(t, filepath.Join(corpus, "oracle/zeek-http-bro.org.pcap.endpoints_exact.tsv"))
	if len(hosts) != len(eps) {
		t.Fatalf("%d hosts, tshark %d", len(hosts), len(eps))
	}
	for _, h := range hosts {
		h := h.(map[string]any)
		for _, e := range eps {
			if e["address"] == h["ip"] {
				if uint64(h["bytes"].(float64)) != u64(e["bytes_total"]) || uint64(h["packets_tx"].(float64)) != u64(e["frames_tx"]) {
					t.Errorf("host %s: bytes %v packets_tx %v, tshark %s %s", h["ip"], h["bytes"], h["packets_tx"], e["bytes_total"], e["frames_tx"])
				}
			}
		}
	}

	r = ts.do("GET", "/api/v1/network/protocols", "", nil)
	protos := ts.check("/api/v1/network/protocols", "GET", r)["protocols"].([]any)
	// tshark: of the capture's 13 connections to port 80, 8 carry HTTP and
	// 5 no payload at all (SYN, FIN, RST only): those are guesses, apart.
	if len(protos) != 2 {
		t.Fatalf("protocols: %v, want detected and guessed HTTP", protos)
	}
	if p := protos[0].(map[string]any); p["name"] != "HTTP" || p["flows"] != 8.0 || p["guessed"] != false {
		t.Errorf("protocols: %v, want HTTP detected on 8 flows", protos)
	}
	if p := protos[1].(map[string]any); p["name"] != "HTTP" || p["flows"] != 5.0 || p["guessed"] != true {
		t.Errorf("protocols: %v, want HTTP guessed on 5 flows", protos)
	}

	for _, q := range []struct{ path, route string }{
		{"/api/v1/network/stats", "/api/v1/network/stats"},
		{"/api/v1/capture", "/api/v1/capture"},
		{"/api/v1/config", "/api/v1/config"},
		{"/healthz", "/healthz"},
		{"/api/v1/metrics/network.connection_count", "/api/v1/metrics/{name}"},
		{"/api/v1/network/connections?sort=duration&protocol=tcp&application_protocol=http&host=10.0.2.15&limit=1000", "/api/v1/network/connections"},
		{"/api/v1/network/connections?host=192.0.2.1", "/api/v1/network/connections"},
	} {
		r := ts.do("GET", q.path, "", nil)
		if r.status != 200 {
			t.Errorf("GET %s: %d %s", q.path, r.status, r.body)
		}
		ts.check(q.route, "GET", r)
	}
	// No host samplers in this server: 503 with a problem.
	r = ts.do("GET", "/api/v1/metrics", "", nil)
	if r.status != 503 {
		t.Errorf("metrics without samplers: %d", r.status)
	}
	ts.check("/api/v1/metrics", "GET", r)
	r = ts.do("GET", "/api/v1/metrics/cpu.usage", "", nil)
	ts.check("/api/v1/metrics/{name}", "GET", r)
	if r.status != 503 {
		t.Errorf("cpu.usage without samplers: %d", r.status)
	}
	r = ts.do("GET", "/api/v1/openapi.json", "", nil)
	if r.status != 200 || !bytes.Equal(r.body, httpd.OpenAPI) {
		t.Errorf("openapi.json: %d", r.status)
	}
}

// TestMalformed: bad requests get 4xx problem+json and change nothing.
func TestMalformed(t *testing.T) {
	ts := newTestServer(t, "")
	big := bytes.Repeat([]byte("a"), 10<<20)
	for _, c := range []struct {
		method, path, route, ct string
		body                    []byte
		status                  int
	}{
		{"GET", "/api/v1/network/connections?limit=-1", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?limit=0", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?limit=1001", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?limit=99999999999999999999", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?limit=ten", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?limit=1&limit=2", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?sort=name", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?host=not-an-ip", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?protocol=%22%3E", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/connections?colour=red", "/api/v1/network/connections", "", nil, 400},
		{"GET", "/api/v1/network/hosts?limit=0", "/api/v1/network/hosts", "", nil, 400},
		{"GET", "/api/v1/metrics/network.no_such_metric", "/api/v1/metrics/{name}", "", nil, 404},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", []byte(`{"action":`), 400},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", []byte(`{"action":"start","colour":"red"}`), 400},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", []byte(`{"action":1}`), 400},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", []byte(`{"action":"pause"}`), 400},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", []byte(`[]`), 400},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", []byte(`{"action":"start","interface":"../etc"}`), 400},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", []byte(`{"action":"stop"} {}`), 400},
		{"POST", "/api/v1/capture", "/api/v1/capture", "text/plain", []byte(`{"action":"stop"}`), 415},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", []byte(`{"action":"start"}`), 409},
		{"PUT", "/api/v1/config", "/api/v1/config", "application/json", []byte(`{"log_level":`), 400},
		{"PUT", "/api/v1/config", "/api/v1/config", "application/json", []byte(`{"log_level":"loud"}`), 400},
		{"PUT", "/api/v1/config", "/api/v1/config", "application/json", []byte(`{"api_port":"eighty"}`), 400},
		{"PUT", "/api/v1/config", "/api/v1/config", "application/json", []byte(`{"api_port":-1}`), 400},
		{"PUT", "/api/v1/config", "/api/v1/config", "application/json", []byte(`{"no_such_key":1}`), 400},
		{"PUT", "/api/v1/config", "/api/v1/config", "application/json", []byte(`{"api_listen":"0.0.0.0"}`), 400},
		{"PUT", "/api/v1/config", "/api/v1/config", "application/json", []byte(``), 400},
		{"PUT", "/api/v1/config", "/api/v1/config", "application/json", big, 413},
		{"POST", "/api/v1/capture", "/api/v1/capture", "application/json", big, 413},
	} {
		var r response
		if len(c.body) > 1<<20 {
			r = rawRequest(t, ts.srv.Addr().String(), c.method, c.path, c.ct, c.body)
		} else {
			r = ts.do(c.method, c.path, c.ct, c.body)
		}
		if r.status != c.status {
			t.Errorf("%s %s %.40q: %d, want %d: %s", c.method, c.path, c.body, r.status, c.status, r.body)
		}
		if !strings.HasPrefix(r.ct, "application/problem+json") {
			t.Errorf("%s %s: content type %q, want problem+json", c.method, c.path, r.ct)
			continue
		}
		ts.check(c.route, c.method, r)
	}
	if ts.config.replaced != 0 {
		t.Errorf("bad PUTs replaced the config %d times", ts.config.replaced)
	}
	if !ts.sensor.Capture().Running {
		t.Error("bad requests stopped the capture")
	}
	// Unknown paths and methods are problems too.
	for _, c := range []struct {
		method, path string
		status       int
	}{{"GET", "/api/v1/nothing", 404}, {"DELETE", "/api/v1/config", 405}} {
		if r := ts.do(c.method, c.path, "", nil); r.status != c.status || !strings.HasPrefix(r.ct, "application/problem+json") {
			t.Errorf("%s %s: %d %q", c.method, c.path, r.status, r.ct)
		}
	}
}

// rawRequest sends a request whose body the server refuses before reading
// it: the body is written on a goroutine, the answer read meanwhile.
func rawRequest(t *testing.T, addr, method, path, ct string, body []byte) response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", method, path, ct, len(body))
	go c.Write(body)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: b}
}

// TestControl: capture stop/start and a config replacement.
func TestControl(t *testing.T) {
	ts := newTestServer(t, "")
	r := ts.do("POST", "/api/v1/capture", "application/json", []byte(`{"action":"stop"}`))
	if st := ts.check("/api/v1/capture", "POST", r); r.status != 200 || st["running"] != false {
		t.Fatalf("stop: %d %s", r.status, r.body)
	}
	r = ts.do("POST", "/api/v1/capture", "application/json", []byte(`{"action":"start","interface":"nosuch0"}`))
	if ts.check("/api/v1/capture", "POST", r); r.status != 422 {
		t.Errorf("start on a missing interface: %d %s", r.status, r.body)
	}
	r = ts.do("POST", "/api/v1/capture", "application/json", []byte(`{"action":"start","interface":"eth1"}`))
	if st := ts.check("/api/v1/capture", "POST", r); r.status != 200 || st["running"] != true {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	r = ts.do("GET", "/api/v1/config", "", nil)
	cfg := ts.check("/api/v1/config", "GET", r)
	cfg["log_level"] = "debug"
	cfg["api_port"] = 8181.0
	body, _ := json.Marshal(cfg)
	r = ts.do("PUT", "/api/v1/config", "application/json", body)
	res := ts.check("/api/v1/config", "PUT", r)
	if r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	if fmt.Sprint(res["applied"]) != "[log_level]" || fmt.Sprint(res["restart_required"]) != "[api_port]" {
		t.Errorf("put: applied %v, restart %v", res["applied"], res["restart_required"])
	}
	if got := ts.config.Config(); got.LogLevel != "debug" || got.APIPort != 8181 {
		t.Errorf("config after put: %s %d", got.LogLevel, got.APIPort)
	}
}

// TestToken: with a token, requests without it get 401; /healthz stays
// open; the token can change live; no token beyond loopback is refused.
func TestToken(t *testing.T) {
	const tok = "0123456789abcdef0123"
	ts := newTestServer(t, tok)
	ts.token = ""
	for _, p := range []string{"/api/v1/network/connections", "/metrics", "/api/v1/config"} {
		if r := ts.do("GET", p, "", nil); r.status != 401 {
			t.Errorf("GET %s without token: %d", p, r.status)
		}
	}
	if r := ts.do("POST", "/api/v1/capture", "application/json", []byte(`{"action":"stop"}`)); r.status != 401 || !ts.sensor.Capture().Running {
		t.Errorf("POST capture without token: %d", r.status)
	}
	if r := ts.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
	ts.token = tok
	r := ts.do("GET", "/api/v1/config", "", nil)
	if m := ts.check("/api/v1/config", "GET", r); m["api_token"] != httpd.Redacted {
		t.Errorf("GET config shows the token: %v", m["api_token"])
	}
	if err := ts.srv.SetTokens("fedcba9876543210fedc", ""); err != nil {
		t.Fatal(err)
	}
	if r := ts.do("GET", "/api/v1/capture", "", nil); r.status != 401 {
		t.Errorf("old token after SetToken: %d", r.status)
	}
	_, err := httpd.New(httpd.Options{Listen: "0.0.0.0:0", Sensor: ts.sensor, Config: ts.config})
	if err == nil {
		t.Error("an API on 0.0.0.0 without a token was accepted")
	}
}

// TestStream: the event stream sends metrics and connections events.
func TestStream(t *testing.T) {
	ts := newTestServer(t, "")
	resp, err := http.Get(ts.base + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	seen := map[string]int{}
	event := ""
	for sc.Scan() && seen["connections"] < 2 {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var v map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
				t.Fatalf("event %s: %v", event, err)
			}
			seen[event]++
		}
	}
	if seen["metrics"] < 2 || seen["connections"] < 2 {
		t.Errorf("events seen: %v", seen)
	}
}

// TestSnapshotCache: many requests within the TTL cost the workers one
// snapshot.
func TestSnapshotCache(t *testing.T) {
	ts := newTestServer(t, "")
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts.do("GET", "/api/v1/network/connections?limit="+strconv.Itoa(1+i%5), "", nil)
		}()
	}
	wg.Wait()
	ts.sensor.mu.Lock()
	calls := ts.sensor.calls
	ts.sensor.mu.Unlock()
	if calls > 3 {
		t.Errorf("50 requests made %d snapshots", calls)
	}
}

// TestConnectionsAppMetadata: open connections carry what the detectors
// read so far (here HTTP's host), equal to tshark's reading of the same
// requests, per client port.
func TestConnectionsAppMetadata(t *testing.T) {
	ts := newTestServer(t, "")
	out, err := exec.Command("tshark", "-r", filepath.Join(corpus, "zeek-http-bro.org.pcap"), "-Y", "http.request",
		"-T", "fields", "-e", "tcp.srcport", "-e", "http.host").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	want := map[string]string{} // client port -> first request's Host
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "\t")
		if len(f) == 2 && want[f[0]] == "" {
			want[f[0]] = f[1]
		}
	}
	if len(want) == 0 {
		t.Fatal("tshark found no HTTP request in the capture")
	}
	r := ts.do("GET", "/api/v1/network/connections?limit=1000", "", nil)
	conns := ts.check("/api/v1/network/connections", "GET", r)["connections"].([]any)
	seen := 0
	for _, c := range conns {
		m := c.(map[string]any)
		port := strconv.Itoa(int(m["source_port"].(float64)))
		host, ok := want[port]
		if !ok {
			continue
		}
		http, _ := m["app"].(map[string]any)["http"].(map[string]any)
		if http == nil || http["host"] != host {
			t.Errorf("connection from port %s: app %v, want http.host %q (tshark)", port, m["app"], host)
			continue
		}
		seen++
	}
	if seen == 0 {
		t.Fatalf("no open connection of the %d HTTP requests tshark saw; API: %s", len(want), r.body)
	}
	t.Logf("%d connections with tshark's HTTP host", seen)
}
