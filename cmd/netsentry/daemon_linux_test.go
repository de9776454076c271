package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/configs"
)

// The daemon end to end: the binary captures on c0 in its own network
// namespace with the API on 127.0.0.1 there. The API is reachable only
// inside that namespace, so the test dials it from a thread that entered
// the namespace (dialInNetns): no port is opened in the root namespace and
// parallel tests cannot collide.

// dialInNetns opens a connection from inside namespace ns. The socket is
// created on a locked thread that entered ns; the thread is never
// unlocked, so it ends with its goroutine and no other goroutine runs in
// ns. The connection itself may then be used from any goroutine.
func dialInNetns(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("open netns %s: %w", ns, err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter netns %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

type apiClient struct {
	t     *testing.T
	ns    string
	addr  string
	http  *http.Client
	token string // sent as a bearer token when set
}

func newAPIClient(t *testing.T, ns, addr string) *apiClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		return dialInNetns(ctx, ns, network, a)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{t: t, ns: ns, addr: addr, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (c *apiClient) do(method, path string, body []byte) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.addr+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *apiClient) getJSON(path string, v any) {
	c.t.Helper()
	st, b := c.do("GET", path, nil)
	if st != 200 {
		c.t.Fatalf("GET %s: %d %s", path, st, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

// tsv reads one of tshark's tables from the corpus oracle.
func tsv(t *testing.T, name string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpus, "oracle", name))
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

func atou(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }

// notifySocket listens where the daemon's sd_notify messages go.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, m := range n.msgs {
		if strings.HasPrefix(m, prefix) {
			k++
		}
	}
	return k
}

// TestDaemon: the API of a capturing daemon agrees with tshark's tables;
// malformed requests get 4xx and change nothing while capture goes on;
// an invalid PUT /config leaves the file alone, a valid one rewrites it;
// /metrics passes promtool; sd_notify READY and WATCHDOG arrive; SIGHUP
// reloads; SIGTERM stops within 5 s with the summary.
func TestDaemon(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "netsentry.yaml")
	cfgText := `log_level: info
api_port: 18080
capture_interface: c0
performance:
  threads: 2
  memory_limit_mb: 64
flows:
  idle_timeout: 1h
  udp_idle_timeout: 1h
  active_timeout: 2h
  tcp_closed_linger: 1h
`
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	notify := newNotifySocket(t)
	p := &liveProc{}
	p.cmd = exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", t.TempDir(), "--config", cfgPath, "--api-enable")
	p.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path, "WATCHDOG_USEC=400000")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	api := newAPIClient(t, ns, "127.0.0.1:18080")
	for end := time.Now().Add(10 * time.Second); notify.count("READY=1") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no READY=1 within 10 s:\n%s", p.stderr.String())
		}
	}
	if st, _ := api.do("GET", "/healthz", nil); st != 200 {
		t.Fatalf("healthz: %d", st)
	}

	sendFile(ns, filepath.Join(corpus, "zeek-http-bro.org.pcap"), 20000)
	var stats struct {
		Packets uint64 `json:"packets"`
		Drops   uint64 `json:"drops"`
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		api.getJSON("/api/v1/network/stats", &stats)
		if stats.Packets >= 751 || time.Now().After(end) {
			break
		}
	}
	if stats.Packets != 751 || stats.Drops != 0 {
		t.Fatalf("stats: %d packets, %d drops; want 751 and 0", stats.Packets, stats.Drops)
	}
	// Past the sensor's snapshot interval (1 s): the API serves the latest
	// published snapshot, at most two intervals old.
	time.Sleep(2500 * time.Millisecond)

	// The top connection by bytes and its counters, against tshark.
	var conns struct {
		Timestamp   string `json:"timestamp"`
		Connections []struct {
			SrcIP     string  `json:"source_ip"`
			SrcPort   int     `json:"source_port"`
			DstIP     string  `json:"dest_ip"`
			DstPort   int     `json:"dest_port"`
			Proto     string  `json:"protocol"`
			BytesTx   uint64  `json:"bytes_tx"`
			BytesRx   uint64  `json:"bytes_rx"`
			PacketsTx uint64  `json:"packets_tx"`
			PacketsRx uint64  `json:"packets_rx"`
			Duration  float64 `json:"duration_sec"`
			State     string  `json:"state"`
			App       string  `json:"application_protocol"`
		} `json:"connections"`
	}
	api.getJSON("/api/v1/network/connections?limit=100", &conns)
	conv := tsv(t, "zeek-http-bro.org.pcap.conv_exact.tsv")
	if len(conns.Connections) != len(conv) {
		t.Errorf("%d connections, tshark %d", len(conns.Connections), len(conv))
	}
	top := conv[0]
	for _, row := range conv {
		if atou(row["bytes_total"]) > atou(top["bytes_total"]) {
			top = row
		}
	}
	c := conns.Connections[0]
	if c.SrcIP != top["addr_a"] || strconv.Itoa(c.SrcPort) != top["port_a"] || c.DstIP != top["addr_b"] || strconv.Itoa(c.DstPort) != top["port_b"] {
		t.Errorf("top connection %s:%d -> %s:%d, tshark %s:%s -> %s:%s", c.SrcIP, c.SrcPort, c.DstIP, c.DstPort,
			top["addr_a"], top["port_a"], top["addr_b"], top["port_b"])
	}
	if c.PacketsTx != atou(top["frames_a_to_b"]) || c.BytesTx != atou(top["bytes_a_to_b"]) ||
		c.PacketsRx != atou(top["frames_b_to_a"]) || c.BytesRx != atou(top["bytes_b_to_a"]) {
		t.Errorf("top connection counters %d/%d %d/%d, tshark %s/%s %s/%s", c.PacketsTx, c.BytesTx, c.PacketsRx, c.BytesRx,
			top["frames_a_to_b"], top["bytes_a_to_b"], top["frames_b_to_a"], top["bytes_b_to_a"])
	}
	if c.Proto != "TCP" || c.App != "HTTP" || c.State != "CLOSED" {
		t.Errorf("top connection: %s %s %s, want TCP HTTP CLOSED", c.Proto, c.App, c.State)
	}

	// The top hosts, against tshark's endpoints.
	var hosts struct {
		Hosts []struct {
			IP      string `json:"ip"`
			Bytes   uint64 `json:"bytes"`
			BytesTx uint64 `json:"bytes_tx"`
			BytesRx uint64 `json:"bytes_rx"`
			Packets uint64 `json:"packets"`
		} `json:"hosts"`
	}
	api.getJSON("/api/v1/network/hosts?limit=10", &hosts)
	eps := tsv(t, "zeek-http-bro.org.pcap.endpoints_exact.tsv")
	if len(hosts.Hosts) != len(eps) {
		t.Errorf("%d hosts, tshark %d", len(hosts.Hosts), len(eps))
	}
	for _, h := range hosts.Hosts {
		found := false
		for _, e := range eps {
			if e["address"] == h.IP {
				found = true
				if h.Bytes != atou(e["bytes_total"]) || h.BytesTx != atou(e["bytes_tx"]) || h.BytesRx != atou(e["bytes_rx"]) || h.Packets != atou(e["frames_total"]) {
					t.Errorf("host %s: %d bytes (%d tx, %d rx), %d packets; tshark %s (%s, %s), %s", h.IP, h.Bytes, h.BytesTx, h.BytesRx,
						h.Packets, e["bytes_total"], e["bytes_tx"], e["bytes_rx"], e["frames_total"])
				}
			}
		}
		if !found {
			t.Errorf("host %s is not in tshark's endpoints", h.IP)
		}
	}

	// The protocol distribution: the capture's 13 connections are HTTP, 8
	// shown by their payload and 5 (no payload at all, per tshark) guessed
	// from the port, on a row of their own.
	var protos struct {
		Protocols []struct {
			Name    string `json:"name"`
			Guessed bool   `json:"guessed"`
			Flows   uint64 `json:"flows"`
			Packets uint64 `json:"packets"`
		} `json:"protocols"`
	}
	api.getJSON("/api/v1/network/protocols", &protos)
	if ps := protos.Protocols; len(ps) != 2 || ps[0].Name != "HTTP" || ps[0].Guessed || ps[0].Flows != 8 ||
		ps[1].Name != "HTTP" || !ps[1].Guessed || ps[1].Flows != 5 || ps[0].Packets+ps[1].Packets != 751 {
		t.Errorf("protocols: %+v, want HTTP: 8 flows detected, 5 guessed, 751 packets", ps)
	}

	// The scan signals: each initiator once, though its connections went
	// to both workers; counts against tshark's conversations (addr_a
	// started each one).
	var scanners struct {
		Window   float64 `json:"window_seconds"`
		Scanners []struct {
			SrcIP string `json:"src_ip"`
			Conns uint64 `json:"connection_count"`
			Ports uint64 `json:"unique_dest_port_count"`
			Hosts uint64 `json:"unique_dest_host_count"`
		} `json:"scanners"`
	}
	api.getJSON("/api/v1/network/scanners?sort=connections&limit=100", &scanners)
	type convSet struct {
		conns        uint64
		ports, hosts map[string]bool
	}
	bySrc := map[string]*convSet{}
	for _, row := range conv {
		c := bySrc[row["addr_a"]]
		if c == nil {
			c = &convSet{ports: map[string]bool{}, hosts: map[string]bool{}}
			bySrc[row["addr_a"]] = c
		}
		c.conns++
		c.ports[row["proto"]+"/"+row["port_b"]] = true
		c.hosts[row["addr_b"]] = true
	}
	if len(scanners.Scanners) != len(bySrc) || scanners.Window != 60 {
		t.Errorf("scanners: %+v (window %v s), want %d sources (tshark's initiators), 60 s", scanners.Scanners, scanners.Window, len(bySrc))
	}
	for _, sc := range scanners.Scanners {
		if c := bySrc[sc.SrcIP]; c == nil || sc.Conns != c.conns || sc.Ports != uint64(len(c.ports)) || sc.Hosts != uint64(len(c.hosts)) {
			t.Errorf("scanner %+v; tshark %+v", sc, c)
		}
	}

	// Malformed requests: 4xx, nothing changes, capture goes on.
	before, _ := os.ReadFile(cfgPath)
	_, cfgBefore := api.do("GET", "/api/v1/config", nil)
	big := bytes.Repeat([]byte(" "), 10<<20)
	for _, r := range []struct {
		method, path string
		body         []byte
	}{
		{"GET", "/api/v1/network/connections?limit=-5", nil},
		{"GET", "/api/v1/network/connections?limit=100000", nil},
		{"GET", "/api/v1/network/hosts?limit=abc", nil},
		{"GET", "/api/v1/network/connections?sort=size", nil},
		{"POST", "/api/v1/capture", []byte(`{"action":"stop"`)},
		{"POST", "/api/v1/capture", []byte(`{"action":["stop"]}`)},
		{"POST", "/api/v1/capture", []byte(`{"action":"stop","force":true}`)},
		{"PUT", "/api/v1/config", []byte(`{"log_level": 3}`)},
		{"PUT", "/api/v1/config", []byte(`{"log_level": "loud", "capture_interface": "c0"}`)},
		{"PUT", "/api/v1/config", []byte(`{"performance": {"threads": -2}, "capture_interface": "c0"}`)},
		{"PUT", "/api/v1/config", []byte(`{"bogus": true}`)},
		{"PUT", "/api/v1/config", []byte(`not json`)},
	} {
		if st, b := api.do(r.method, r.path, r.body); st < 400 || st > 499 {
			t.Errorf("%s %s %q: %d %s", r.method, r.path, r.body, st, b)
		}
	}
	for _, path := range []string{"/api/v1/config", "/api/v1/capture"} {
		method := "PUT"
		if path == "/api/v1/capture" {
			method = "POST"
		}
		if st := bigRequest(t, ns, "127.0.0.1:18080", method, path, big); st != 413 {
			t.Errorf("%s %s with 10 MB: %d, want 413", method, path, st)
		}
	}
	if after, _ := os.ReadFile(cfgPath); !bytes.Equal(before, after) {
		t.Errorf("bad requests changed the config file:\n%s", after)
	}
	if _, cfgAfter := api.do("GET", "/api/v1/config", nil); !bytes.Equal(cfgBefore, cfgAfter) {
		t.Errorf("bad requests changed the config in force")
	}
	var capSt struct {
		Running bool `json:"running"`
	}
	api.getJSON("/api/v1/capture", &capSt)
	if !capSt.Running {
		t.Fatal("capture stopped after bad requests")
	}
	sendFile(ns, filepath.Join(corpus, "zeek-ssh-single-conn.pcap"), 20000)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		api.getJSON("/api/v1/network/stats", &stats)
		if stats.Packets >= 751+94 || time.Now().After(end) {
			break
		}
	}
	if stats.Packets != 751+94 {
		t.Errorf("capture after bad requests: %d packets, want %d", stats.Packets, 751+94)
	}

	// A valid PUT: log_level applies at once, api_port after a restart;
	// the file is rewritten whole and loads back.
	var cfg map[string]any
	api.getJSON("/api/v1/config", &cfg)
	cfg["log_level"] = "debug"
	cfg["api_port"] = 18081
	body, _ := json.Marshal(cfg)
	st, b := api.do("PUT", "/api/v1/config", body)
	if st != 200 {
		t.Fatalf("PUT config: %d %s", st, b)
	}
	var res struct {
		Applied []string `json:"applied"`
		Restart []string `json:"restart_required"`
	}
	json.Unmarshal(b, &res)
	if fmt.Sprint(res.Applied) != "[log_level]" || fmt.Sprint(res.Restart) != "[api_port]" {
		t.Errorf("PUT config: applied %v, restart %v", res.Applied, res.Restart)
	}
	if c, err := configs.LoadChecked(cfgPath); err != nil || c.LogLevel != "debug" || c.APIPort != 18081 || c.Flows.TCPClosedLinger.Duration != time.Hour {
		t.Errorf("config file after PUT: %v %+v", err, c)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, ".netsentry.yaml.*"))
	if len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}

	// /metrics passes promtool.
	st, b = api.do("GET", "/metrics", nil)
	if st != 200 || !bytes.Contains(b, []byte(`netsentry_engine_packets_total{queue="0"}`)) {
		t.Errorf("/metrics: %d", st)
	}
	// Each flow sink has its own queue and drop counter.
	if !bytes.Contains(b, []byte(`netsentry_flow_records_dropped_total{sink="summary"} 0`)) {
		t.Errorf("/metrics has no drop counter for the summary sink")
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}

	// SIGHUP with a broken file keeps the configuration; with a good one
	// applies it.
	os.WriteFile(cfgPath, []byte("log_level: loud\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, p, "configuration not reloaded")
	os.WriteFile(cfgPath, []byte(cfgText), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, p, "SIGHUP: configuration reloaded")

	if n := notify.count("WATCHDOG=1"); n == 0 {
		t.Errorf("no WATCHDOG=1 while the workers ran")
	}
	start := time.Now()
	p.stop(t, syscall.SIGTERM, 6*time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if notify.count("STOPPING=1") == 0 {
		t.Error("no STOPPING=1")
	}
	if !strings.Contains(p.stdout.String(), "Packets captured: 845") {
		t.Errorf("summary:\n%s", p.stdout.String())
	}
}

func waitFor(t *testing.T, p *liveProc, text string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.stderr.String(), text) {
			return
		}
	}
	t.Errorf("log has no %q:\n%s", text, p.stderr.String())
}

// bigRequest sends a body larger than the server takes and returns the
// status; the body is written on a goroutine while the answer is read.
func bigRequest(t *testing.T, ns, addr, method, path string, body []byte) int {
	t.Helper()
	c, err := dialInNetns(context.Background(), ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", method, path, len(body))
	go c.Write(body)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDaemonSummaryPerCapture: after a capture is stopped and started again
// over the API, the final summary describes the second capture alone: its
// packets, its connections and its hosts, as tshark's tables of the file
// replayed into it give them.
func TestDaemonSummaryPerCapture(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	cfgPath := filepath.Join(t.TempDir(), "netsentry.yaml")
	cfgText := "api_port: 18090\ncapture_interface: c0\nperformance:\n  threads: 2\n  memory_limit_mb: 64\n" +
		"flows:\n  idle_timeout: 1h\n  udp_idle_timeout: 1h\n  active_timeout: 2h\n  tcp_closed_linger: 1h\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &liveProc{}
	p.cmd = exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", t.TempDir(), "--config", cfgPath, "--api-enable", "--top", "3")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	waitFor(t, p, "NetSentry is running")
	api := newAPIClient(t, ns, "127.0.0.1:18090")
	var stats struct {
		Packets uint64 `json:"packets"`
	}
	waitPackets := func(n uint64) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			api.getJSON("/api/v1/network/stats", &stats)
			if stats.Packets >= n || time.Now().After(end) {
				break
			}
		}
		if stats.Packets != n {
			t.Fatalf("captured %d packets, want %d", stats.Packets, n)
		}
	}
	sendFile(ns, filepath.Join(corpus, "zeek-http-bro.org.pcap"), 20000)
	waitPackets(751)
	for _, action := range []string{"stop", "start"} {
		if st, b := api.do("POST", "/api/v1/capture", []byte(`{"action":"`+action+`"}`)); st != 200 {
			t.Fatalf("capture %s: %d %s", action, st, b)
		}
	}
	sendFile(ns, filepath.Join(corpus, "zeek-ssh-single-conn.pcap"), 20000)
	waitPackets(94)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr.String())
	}
	out := p.stdout.String()
	conv := tsv(t, "zeek-ssh-single-conn.pcap.conv_exact.tsv")[0]
	eps := tsv(t, "zeek-ssh-single-conn.pcap.endpoints_exact.tsv")
	want := []string{
		"Packets captured: " + conv["frames_total"],
		"Bytes captured: " + conv["bytes_total"],
		fmt.Sprintf("1. %s:%s -> %s:%s [SSH]", conv["addr_a"], conv["port_a"], conv["addr_b"], conv["port_b"]),
		fmt.Sprintf("   Sent: %s packets, %s bytes | Received: %s packets, %s bytes",
			conv["frames_a_to_b"], conv["bytes_a_to_b"], conv["frames_b_to_a"], conv["bytes_b_to_a"]),
	}
	for _, e := range eps {
		want = append(want, fmt.Sprintf(". %s: %s bytes", e["address"], e["bytes_total"]))
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q", w)
		}
	}
	// Nothing of the first capture: none of its hosts, a single connection.
	for _, e := range tsv(t, "zeek-http-bro.org.pcap.endpoints_exact.tsv") {
		if strings.Contains(out, " "+e["address"]+":") {
			t.Errorf("summary of the second capture names %s of the first", e["address"])
		}
	}
	if regexp.MustCompile(`(?m)^2\. \S+ -> `).MatchString(out) {
		t.Errorf("summary lists more than the one connection of the second capture:\n%s", out)
	}
	if t.Failed() {
		t.Logf("summary:\n%s", out)
	}
}

// waitCount waits until the log holds text n times.
func waitCount(t *testing.T, p *liveProc, text string, n int) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if strings.Count(p.stderr.String(), text) >= n {
			return
		}
	}
	t.Fatalf("log has %q fewer than %d times:\n%s", text, n, p.stderr.String())
}

// TestDaemonConfigInForce: GET /api/v1/config shows what the daemon
// enforces. With the API on 0.0.0.0 (inside the test's namespace) and a
// token: a PUT that clears the token is refused (409, file and tokens
// unchanged); a SIGHUP with an empty file (whose defaults clear the token)
// or a broken one is refused whole; a new token applies at once. The
// read-only token reads and cannot write. /healthz says "capture stopped"
// with 200 after a stop on request.
func TestDaemonConfigInForce(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "netsentry.yaml")
	const admin, read, admin2 = "0123456789abcdef0123", "fedcba9876543210fedc", "aaaabbbbccccddddeeee"
	cfgText := `api_listen: 0.0.0.0
api_port: 18080
api_token: ` + admin + `
api_read_token: ` + read + `
capture_interface: c0
performance:
  threads: 1
  memory_limit_mb: 64
`
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &liveProc{}
	p.cmd = exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", t.TempDir(), "--config", cfgPath, "--api-enable")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	waitFor(t, p, "REST API server started")
	api := newAPIClient(t, ns, "127.0.0.1:18080")
	health := func() (int, map[string]any) {
		t.Helper()
		st, b := api.do("GET", "/healthz", nil)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("healthz: %v: %s", err, b)
		}
		return st, m
	}
	if st, m := health(); st != 200 || m["status"] != "ok" || m["capture_running"] != true {
		t.Fatalf("healthz while capturing: %d %v", st, m)
	}
	if st, _ := api.do("GET", "/api/v1/capture", nil); st != 401 {
		t.Errorf("GET without a token: %d, want 401", st)
	}
	api.token = read
	var cfg map[string]any
	api.getJSON("/api/v1/config", &cfg)
	if cfg["api_token"] != "<redacted>" || cfg["api_read_token"] != "<redacted>" || cfg["api_listen"] != "0.0.0.0" {
		t.Fatalf("GET config: api_token %v, api_read_token %v, api_listen %v", cfg["api_token"], cfg["api_read_token"], cfg["api_listen"])
	}
	_, shown := api.do("GET", "/api/v1/config", nil)
	if st, b := api.do("PUT", "/api/v1/config", []byte(`{"capture_interface":"c0"}`)); st != 403 {
		t.Errorf("PUT with the read token: %d %s", st, b)
	}

	// Clearing the token while the API listens on 0.0.0.0: refused, even
	// with api_listen back on loopback (that applies at a restart only).
	api.token = admin
	cfg["api_token"] = ""
	cfg["api_read_token"] = ""
	cfg["api_listen"] = "127.0.0.1"
	body, _ := json.Marshal(cfg)
	if st, b := api.do("PUT", "/api/v1/config", body); st != 409 || !strings.Contains(string(b), "nothing was changed") {
		t.Errorf("PUT clearing the token: %d %s", st, b)
	}
	if after, _ := os.ReadFile(cfgPath); string(after) != cfgText {
		t.Errorf("the refused PUT changed the file:\n%s", after)
	}
	api.token = ""
	if st, _ := api.do("GET", "/api/v1/capture", nil); st != 401 {
		t.Errorf("without a token after the refused PUT: %d, want 401", st)
	}
	api.token = read
	if _, b := api.do("GET", "/api/v1/config", nil); string(b) != string(shown) {
		t.Errorf("GET config after the refused PUT:\n%s\nwant\n%s", b, shown)
	}

	// SIGHUP with an empty file (the defaults: no token, loopback) and
	// with a broken one: not reloaded, the configuration in force stays.
	for i, text := range []string{"", "api_token: [\n"} {
		os.WriteFile(cfgPath, []byte(text), 0o644)
		p.cmd.Process.Signal(syscall.SIGHUP)
		waitCount(t, p, "configuration not reloaded", i+1)
		api.token = ""
		if st, _ := api.do("GET", "/api/v1/network/stats", nil); st != 401 {
			t.Errorf("SIGHUP with %q: a GET without a token: %d, want 401", text, st)
		}
		api.token = read
		if _, b := api.do("GET", "/api/v1/config", nil); string(b) != string(shown) {
			t.Errorf("GET config after SIGHUP with %q:\n%s\nwant\n%s", text, b, shown)
		}
	}

	// A new admin token applies at once; the file has it.
	api.token = admin
	api.getJSON("/api/v1/config", &cfg)
	cfg["api_token"] = admin2
	body, _ = json.Marshal(cfg)
	st, b := api.do("PUT", "/api/v1/config", body)
	if st != 200 || !strings.Contains(string(b), `"applied":["api_token"]`) {
		t.Fatalf("PUT a new token: %d %s", st, b)
	}
	if st, _ := api.do("GET", "/api/v1/capture", nil); st != 401 {
		t.Errorf("the old admin token after the PUT: %d, want 401", st)
	}
	api.token = admin2
	api.getJSON("/api/v1/config", &cfg)
	if cfg["api_token"] != "<redacted>" {
		t.Errorf("GET config with the new token: api_token %v", cfg["api_token"])
	}
	if c, err := configs.LoadChecked(cfgPath); err != nil || c.APIToken != admin2 || c.APIReadToken != read {
		t.Errorf("file after the PUT: %v %q %q", err, c.APIToken, c.APIReadToken)
	}

	// A capture stopped on request is healthy.
	if st, b := api.do("POST", "/api/v1/capture", []byte(`{"action":"stop"}`)); st != 200 {
		t.Fatalf("stop: %d %s", st, b)
	}
	if st, m := health(); st != 200 || m["status"] != "ok" || m["capture_running"] != false || m["reason"] != "capture stopped" {
		t.Errorf("healthz after a stop: %d %v", st, m)
	}
	if st, b := api.do("POST", "/api/v1/capture", []byte(`{"action":"start"}`)); st != 200 {
		t.Fatalf("start: %d %s", st, b)
	}
	if st, m := health(); st != 200 || m["status"] != "ok" || m["capture_running"] != true || m["reason"] != nil {
		t.Errorf("healthz after a start: %d %v", st, m)
	}
	p.interrupt(t)
}

// TestDaemonTokenCleared: on a loopback API a PUT that clears the token
// is applied, and really: requests without a token are then served.
func TestDaemonTokenCleared(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	cfgPath := filepath.Join(t.TempDir(), "netsentry.yaml")
	const admin = "0123456789abcdef0123"
	os.WriteFile(cfgPath, []byte("api_port: 18080\napi_token: "+admin+"\ncapture_interface: c0\nperformance:\n  threads: 1\n  memory_limit_mb: 64\n"), 0o644)
	p := &liveProc{}
	p.cmd = exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", t.TempDir(), "--config", cfgPath, "--api-enable")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	waitFor(t, p, "REST API server started")
	api := newAPIClient(t, ns, "127.0.0.1:18080")
	api.token = admin
	var cfg map[string]any
	api.getJSON("/api/v1/config", &cfg)
	cfg["api_token"] = ""
	body, _ := json.Marshal(cfg)
	if st, b := api.do("PUT", "/api/v1/config", body); st != 200 || !strings.Contains(string(b), `"applied":["api_token"]`) {
		t.Fatalf("PUT clearing the token: %d %s", st, b)
	}
	api.token = ""
	api.getJSON("/api/v1/config", &cfg)
	if cfg["api_token"] != "" {
		t.Errorf("GET config after clearing: api_token %v", cfg["api_token"])
	}
	p.interrupt(t)
}
