package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netsentry/netsentry/engine/ipfix"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// IPFIX export end to end: the sensor replays a corpus capture with
// flows.export set; Debian's nfcapd collects the UDP export and nfdump reads
// it back, tshark decodes the export traffic (captured on loopback by
// tcpdump) of both transports. The flows must carry the packet counts of
// tshark's conversation tables per conversation and direction, and the
// frame bytes (layer2OctetDeltaCount) of the same tables, judged by the
// shared compare_flows.py on tshark's decode; and nfdump's bytes (it reads
// octetDeltaCount) must be the IP bytes tshark sums from the capture
// (testcorpus.TsharkIPBytes) per conversation and direction.

var exportPcaps = []string{"ndpi-http_ipv6.pcap", "zeek-http-bro.org.pcap", "gopacket-test_dns.pcap", "zeek-smtp.pcap"}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s (make deps installs it): %v", tool, err)
		}
	}
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuf is a bytes.Buffer safe for a process's output and a reader.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startTool starts a helper process and waits until its output says ready.
func startTool(t *testing.T, ready string, name string, args ...string) (*exec.Cmd, *syncBuf) {
	t.Helper()
	out := &syncBuf{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for end := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), ready); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s did not start: %s", name, out.String())
		}
	}
	return cmd, out
}

// stopTool stops a helper with sig and waits for it.
func stopTool(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not stop", cmd.Path)
	}
}

// tcpCollector accepts IPFIX over TCP and counts the data records it
// decodes (tshark is the judge; this only gives the sender a peer).
type tcpCollector struct {
	ln      net.Listener
	mu      sync.Mutex
	records int
	err     error
}

func newTCPCollector(t *testing.T, port int) *tcpCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	c := &tcpCollector{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				d := ipfix.NewDecoder()
				r := bufio.NewReader(conn)
				for {
					hdr, err := r.Peek(ipfix.HeaderLen)
					if err != nil {
						return
					}
					n, err := ipfix.MessageLen(hdr)
					if err != nil {
						c.fail(err)
						return
					}
					msg := make([]byte, n)
					if _, err := io.ReadFull(r, msg); err != nil {
						return
					}
					m, err := d.Decode(msg)
					if err != nil {
						c.fail(err)
						return
					}
					c.mu.Lock()
					c.records += len(m.Records)
					c.mu.Unlock()
				}
			}()
		}
	}()
	return c
}

func (c *tcpCollector) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func TestIPFIXExport(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it captures the export on loopback with tcpdump (run make test as root)")
	}
	needTools(t, "nfcapd", "nfdump", "tshark", "tcpdump", "python3")
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			for _, name := range exportPcaps {
				t.Run(name, func(t *testing.T) { t.Parallel(); exportOne(t, transport, name) })
			}
		})
	}
}

func exportOne(t *testing.T, transport, name string) {
	pcap := filepath.Join(corpus, name)
	oracle := filepath.Join(corpus, "oracle", name+".conv_exact.tsv")
	dir := t.TempDir()
	port := freePort(t, transport)
	var nfcapd *exec.Cmd
	var tc *tcpCollector
	nfdir := filepath.Join(dir, "nfcapd")
	if transport == "udp" {
		os.Mkdir(nfdir, 0o755)
		nfcapd, _ = startTool(t, "Startup", "nfcapd", "-w", nfdir, "-p", strconv.Itoa(port), "-b", "127.0.0.1", "-t", "3600")
	} else {
		tc = newTCPCollector(t, port)
	}
	capFile := filepath.Join(dir, "export.pcap")
	tcpdump, _ := startTool(t, "listening on", "tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-w", capFile,
		transport, "port", strconv.Itoa(port))

	cfg := filepath.Join(dir, "netsentry.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "enable_api: false\nenable_web: false\nflows:\n  export:\n    - type: ipfix\n      address: \"127.0.0.1:%d\"\n      transport: %s\n", port, transport), 0o644)
	jsonl := filepath.Join(dir, "flows.jsonl")
	var stderr bytes.Buffer
	if rc := run([]string{"--config", cfg, "--replay", pcap, "--flows-out", jsonl, "--storage-path", filepath.Join(dir, "store")}, io.Discard, &stderr); rc != 0 {
		t.Fatalf("replay exit %d: %s", rc, stderr.String())
	}
	want := countLines(t, jsonl)
	if tc != nil {
		waitUntil(t, "the TCP collector's records", func() bool { tc.mu.Lock(); defer tc.mu.Unlock(); return tc.records >= want })
		if tc.err != nil {
			t.Fatalf("collector: %v", tc.err)
		}
	}
	time.Sleep(300 * time.Millisecond) // tcpdump's last packets
	stopTool(t, tcpdump, syscall.SIGINT)

	// tshark, a second decoder: no malformed packet, every data set's
	// template known, and the flows match tshark's conversation table.
	dport := transport + ".port==" + strconv.Itoa(port) + ",cflow"
	js, err := exec.Command("tshark", "-r", capFile, "-d", dport, "-T", "json", "--no-duplicate-keys").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	flows, sets, templated, templates, bad := tsharkFlows(t, js)
	if len(bad) > 0 {
		t.Fatalf("tshark finds malformed export packets or warnings: %v", bad)
	}
	if templates == 0 || sets == 0 || templated != sets {
		t.Fatalf("tshark: %d template records, %d data sets, %d of them with a known template", templates, sets, templated)
	}
	if len(flows) != want {
		t.Fatalf("tshark decodes %d flows from the export, the sensor wrote %d", len(flows), want)
	}
	tj := filepath.Join(dir, "tshark-flows.jsonl")
	writeJSONL(t, tj, flows)
	if out, err := exec.Command("python3", filepath.Join(sharedDir, "check", "compare_flows.py"), pcap, tj, oracle).CombinedOutput(); err != nil {
		t.Fatalf("compare_flows.py on tshark's decode of the export: %v\n%s", err, out)
	}
	// The application protocol and server name elements against tshark's
	// own reading of the capture (and nDPI's verdicts where the corpus has
	// them), by the shared judge.
	if out, err := exec.Command("python3", filepath.Join(sharedDir, "check", "compare_app.py"), pcap, tj).CombinedOutput(); err != nil {
		t.Fatalf("compare_app.py on tshark's decode of the export: %v\n%s", err, out)
	}

	if transport != "udp" {
		return
	}
	stopTool(t, nfcapd, syscall.SIGTERM) // closes its file
	out, err := exec.Command("nfdump", "-R", nfdir, "-o", "json").Output()
	if err != nil {
		t.Fatalf("nfdump: %v", err)
	}
	var nf []map[string]any
	if err := json.Unmarshal(out, &nf); err != nil {
		t.Fatalf("nfdump json: %v\n%.500s", err, out)
	}
	if len(nf) != want {
		t.Fatalf("nfdump shows %d flows, the sensor wrote %d", len(nf), want)
	}
	got := map[convKey]map[string]uint64{}
	gotIP := map[testcorpus.Direction]uint64{}
	for _, r := range nf {
		proto := uint8(num(r["proto"]))
		if proto != 6 && proto != 17 {
			continue
		}
		src, dst := str(r["src4_addr"])+str(r["src6_addr"]), str(r["dst4_addr"])+str(r["dst6_addr"])
		a, b := ep(src, num(r["src_port"])), ep(dst, num(r["dst_port"]))
		k := newConvKey(proto, a, b)
		if got[k] == nil {
			got[k] = map[string]uint64{}
		}
		got[k][a] += uint64(num(r["in_packets"]))
		got[k][b] += uint64(num(r["out_packets"]))
		gotIP[testcorpus.Direction{Proto: proto, Src: a, Dst: b}] += uint64(num(r["in_bytes"]))
		gotIP[testcorpus.Direction{Proto: proto, Src: b, Dst: a}] += uint64(num(r["out_bytes"]))
	}
	wantIP := testcorpus.TsharkIPBytes(t, pcap)
	for d, n := range wantIP {
		if gotIP[d] != n {
			t.Errorf("nfdump %v: %d bytes, tshark's IP bytes %d", d, gotIP[d], n)
		}
	}
	for d, n := range gotIP {
		if _, ok := wantIP[d]; !ok && n != 0 {
			t.Errorf("nfdump %v: %d bytes in a direction tshark does not show", d, n)
		}
	}
	wantConv := oracleConv(t, oracle)
	for k, w := range wantConv {
		for e, n := range w {
			if got[k][e] != n {
				t.Errorf("nfdump %v: %d packets from %s, tshark %d", k, got[k][e], e, n)
			}
		}
	}
	for k := range got {
		if wantConv[k] == nil {
			t.Errorf("nfdump has %v, tshark's table does not", k)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

type convKey struct {
	proto uint8
	a, b  string
}

func newConvKey(proto uint8, a, b string) convKey {
	if b < a {
		a, b = b, a
	}
	return convKey{proto, a, b}
}

func ep(ip string, port float64) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.String()
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}

func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		f, _ := strconv.ParseFloat(x, 64)
		return f
	}
	return 0
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// oracleConv reads a conv_exact.tsv: frames sent by each endpoint, per
// protocol and unordered endpoint pair.
func oracleConv(t *testing.T, path string) map[convKey]map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[convKey]map[string]uint64{}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		proto := uint8(6)
		if f[0] == "udp" {
			proto = 17
		}
		a, b := ep(f[1], num(f[2])), ep(f[3], num(f[4]))
		k := newConvKey(proto, a, b)
		if out[k] == nil {
			out[k] = map[string]uint64{}
		}
		out[k][a] += uint64(num(f[5]))
		out[k][b] += uint64(num(f[7]))
	}
	return out
}

// tsharkFlows walks tshark's JSON decode of the export: every flow record
// as a --flows-out line (the fields compare_flows.py reads), how many data
// sets there were, how many of them named their template's frame, and how
// many template records tshark read, and any malformed packet or expert
// warning (or worse) it reports.
func tsharkFlows(t *testing.T, js []byte) (flows []map[string]any, sets, templated, templates int, bad []string) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatalf("tshark json: %v", err)
	}
	first := func(v any) string {
		if a, ok := v.([]any); ok && len(a) > 0 {
			v = a[0]
		}
		s, _ := v.(string)
		return s
	}
	pair := func(v any) (string, string) {
		a, ok := v.([]any)
		if !ok || len(a) != 2 {
			t.Fatalf("tshark: want a value and its reverse, got %v", v)
		}
		return a[0].(string), a[1].(string)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			if _, ok := x["_ws.malformed"]; ok {
				bad = append(bad, "malformed")
			}
			if sev, ok := x["_ws.expert.severity"]; ok && num(first(sev)) >= 0x00600000 { // PI_WARN
				bad = append(bad, fmt.Sprint(x["_ws.expert.message"]))
			}
			if id, ok := x["cflow.flowset_id"]; ok {
				if n, _ := strconv.Atoi(first(id)); n >= ipfix.MinDataSetID {
					sets++
					if _, ok := x["cflow.template_frame"]; ok {
						templated++
					}
				}
			}
			if id, ok := x["cflow.template_id"]; ok {
				if a, ok := id.([]any); ok {
					templates += len(a)
				} else {
					templates++
				}
			}
			if p, ok := x["cflow.protocol"]; ok {
				src, dst := first(x["cflow.srcaddr"])+first(x["cflow.srcaddrv6"]), first(x["cflow.dstaddr"])+first(x["cflow.dstaddrv6"])
				ptx, prx := pair(x["cflow.packets"])
				btx, brx := pair(x["cflow.layer2_octet_delta_count"])
				proto := map[string]string{"6": "TCP", "17": "UDP"}[first(p)]
				if proto == "" {
					proto = first(p)
				}
				sp, _ := strconv.Atoi(first(x["cflow.srcport"]))
				dp, _ := strconv.Atoi(first(x["cflow.dstport"]))
				atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
				// The server name: the enterprise element tshark shows as hex.
				name, _ := hex.DecodeString(strings.ReplaceAll(first(x["cflow.enterprise_private_entry"]), ":", ""))
				flows = append(flows, map[string]any{"protocol": proto, "source_ip": src, "source_port": sp,
					"dest_ip": dst, "dest_port": dp, "packets_tx": atoi(ptx), "packets_rx": atoi(prx),
					"bytes_tx": atoi(btx), "bytes_rx": atoi(brx), "application_protocol": first(x["cflow.appl_name"]),
					"app": map[string]any{"server_name": string(name)}})
				return
			}
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return flows, sets, templated, templates, bad
}

func writeJSONL(t *testing.T, path string, flows []map[string]any) {
	t.Helper()
	var b bytes.Buffer
	for _, f := range flows {
		line, _ := json.Marshal(f)
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
