package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestLiveCommandStopUnderTraffic: SIGTERM while tcpreplay floods the veth.
// The summary's queue lines must hold the kernel's own count (PACKET_STATISTICS)
// = frames captured + kernel drops, exactly, for each queue; the captured
// frames must add up to "Packets captured", and the flow records written at
// the stop must hold every one of them.
func TestLiveCommandStopUnderTraffic(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.yaml")
	os.WriteFile(cfg, []byte("performance:\n  threads: 2\n  memory_limit_mb: 64\n"), 0o644)
	flows := filepath.Join(dir, "live.jsonl")
	p := startCapture(t, bin, ns, "--config", cfg, "--flows-out", flows)
	sent := flood(t, ns)
	time.Sleep(500 * time.Millisecond)
	p.stop(t, syscall.SIGTERM, 10*time.Second)
	select {
	case <-sent:
		t.Fatal("tcpreplay ended before netsentry stopped: not a stop under traffic")
	default:
	}
	out := p.stdout.String()
	lines := regexp.MustCompile(`Queue (\d+): (\d+) packets, (\d+) kernel drops, \d+ freezes; (\d+) captured`).FindAllStringSubmatch(out, -1)
	if len(lines) != 2 {
		t.Fatalf("summary shows %d queue lines, want 2:\n%s", len(lines), out)
	}
	var captured uint64
	for _, m := range lines {
		k, d, c := atou(m[2]), atou(m[3]), atou(m[4])
		if c == 0 || k != c+d {
			t.Errorf("queue %s: the kernel counted %d frames, captured %d + dropped %d", m[1], k, c, d)
		}
		captured += c
	}
	m := regexp.MustCompile(`Packets captured: (\d+)\n`).FindStringSubmatch(out)
	if m == nil || atou(m[1]) != captured {
		t.Errorf("queues captured %d frames in all; summary:\n%s", captured, out)
	}
	if inFlows := flowPackets(t, flows); inFlows != captured {
		t.Errorf("flow records hold %d packets, the queues captured %d", inFlows, captured)
	}
	t.Logf("%s", regexp.MustCompile(`(?m)^Queue .*$`).FindAllString(out, -1))
	if !regexp.MustCompile(`capture on \[c0\] stopped.*kernel_packets=` + strconv.FormatUint(captured+sumDrops(lines), 10)).MatchString(p.stderr.String()) {
		t.Errorf("stop log line does not give the kernel's count %d:\n%s", captured+sumDrops(lines), p.stderr.String())
	}
}

func sumDrops(lines [][]string) uint64 {
	var n uint64
	for _, m := range lines {
		n += atou(m[3])
	}
	return n
}

// flood loops ndpi-synscan.pcap (2011 frames, every one in a flow) into s0
// at top speed, for at most 30 s; the channel closes when tcpreplay ends.
func flood(t *testing.T, ns string) <-chan struct{} {
	t.Helper()
	send := exec.Command("ip", "netns", "exec", ns, "timeout", "30", "tcpreplay", "-q", "-i", "s0", "--topspeed",
		"--loop=1000", filepath.Join(corpus, "ndpi-synscan.pcap"))
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	go func() { send.Wait(); close(sent) }()
	t.Cleanup(func() { send.Process.Kill(); <-sent })
	return sent
}

// flowPackets sums the packets of a --flows-out file.
func flowPackets(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n uint64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Tx uint64 `json:"packets_tx"`
			Rx uint64 `json:"packets_rx"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		n += r.Tx + r.Rx
	}
	return n
}

// TestDaemonStopUnderTrafficAPI: a capture stopped through the API
// (POST /api/v1/capture {"action":"stop"}) while tcpreplay floods the veth
// logs the kernel's count = captured + kernel drops, exactly, and the flow
// records of that capture (in the file once the daemon exits) hold every
// captured frame.
func TestDaemonStopUnderTrafficAPI(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.yaml")
	os.WriteFile(cfg, []byte("api_port: 18081\ncapture_interface: c0\nperformance:\n  threads: 2\n  memory_limit_mb: 64\n"), 0o644)
	flows := filepath.Join(dir, "live.jsonl")
	p := &liveProc{cmd: exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", t.TempDir(), "--config", cfg, "--api-enable", "--flows-out", flows)}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	waitFor(t, p, "REST API server started")
	api := newAPIClient(t, ns, "127.0.0.1:18081")
	sent := flood(t, ns)
	time.Sleep(500 * time.Millisecond)
	if st, body := api.do("POST", "/api/v1/capture", []byte(`{"action":"stop"}`)); st != 200 {
		t.Fatalf("stop: %d %s", st, body)
	}
	select {
	case <-sent:
		t.Fatal("tcpreplay ended before the capture stopped: not a stop under traffic")
	default:
	}
	m := regexp.MustCompile(`capture on \[c0\] stopped packets=(\d+) kernel_packets=(\d+) kernel_drops=(\d+)`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no stop line in the log:\n%s", p.stderr.String())
	}
	captured, kernel, drops := atou(m[1]), atou(m[2]), atou(m[3])
	t.Logf("%s", m[0])
	if captured == 0 || kernel != captured+drops {
		t.Errorf("the kernel counted %d frames, captured %d + dropped %d", kernel, captured, drops)
	}
	// The flow writer flushes its file when the daemon exits.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("netsentry: %v\n%s", err, p.stderr.String())
	}
	if inFlows := flowPackets(t, flows); inFlows != captured {
		t.Errorf("flow records hold %d packets, the capture took %d", inFlows, captured)
	}
}
