package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netsentry/netsentry/internal/testcorpus"
)

// The live command end to end: the binary captures in its own network
// namespace on a veth, tcpreplay sends a corpus capture into the peer.

var corpus = testcorpus.PcapsDir()

var nsSeq atomic.Int32

func liveNet(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live capture tests need root (network namespaces, AF_PACKET)")
	}
	if _, err := exec.LookPath("tcpreplay"); err != nil {
		t.Skip("live capture tests need tcpreplay")
	}
	ns := fmt.Sprintf("nscli%d-%d", os.Getpid(), nsSeq.Add(1))
	sh := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// The API listens on 127.0.0.1 inside the namespace.
	sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	sh("ip", "netns", "exec", ns, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	for _, i := range []string{"s0", "c0"} {
		sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		sh("ip", "netns", "exec", ns, "ip", "link", "set", i, "mtu", "65521", "up")
	}
	return ns
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildBinary builds the command once for all tests of the package.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netsentry-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "netsentry")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type liveProc struct {
	cmd            *exec.Cmd
	stdout, stderr strings.Builder
}

func startCapture(t *testing.T, bin, ns string, args ...string) *liveProc {
	t.Helper()
	p := &liveProc{}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin, "--storage-path", t.TempDir(), "--interface", "c0"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	// Ready when it says where it captures.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.stderr.String(), "capturing on") {
			return p
		}
	}
	t.Fatalf("capture did not start: %s", p.stderr.String())
	return nil
}

func (p *liveProc) interrupt(t *testing.T) {
	t.Helper()
	p.stop(t, syscall.SIGINT, 10*time.Second)
}

// stop sends sig and waits up to within for a clean exit, failing the test
// otherwise. ip netns exec runs the binary in place (exec), so the pid is
// netsentry's.
func (p *liveProc) stop(t *testing.T, sig syscall.Signal, within time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("netsentry: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(within):
		t.Fatalf("netsentry did not stop within %v of %v", within, sig)
	}
}

func sendFile(ns, file string, pps int) {
	rate := "--topspeed"
	if pps > 0 {
		rate = "--pps=" + strconv.Itoa(pps)
	}
	exec.Command("ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", "s0", rate, file).Run()
}

// pairs sums a --flows-out file per protocol and unordered endpoint pair,
// per sending endpoint, as compare_flows.py does.
func pairs(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]uint64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			SrcIP     string `json:"source_ip"`
			SrcPort   int    `json:"source_port"`
			DstIP     string `json:"dest_ip"`
			DstPort   int    `json:"dest_port"`
			Proto     string `json:"protocol"`
			PacketsTx uint64 `json:"packets_tx"`
			PacketsRx uint64 `json:"packets_rx"`
			BytesTx   uint64 `json:"bytes_tx"`
			BytesRx   uint64 `json:"bytes_rx"`
			End       string `json:"end_reason"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		a, b := fmt.Sprintf("%s:%d", r.SrcIP, r.SrcPort), fmt.Sprintf("%s:%d", r.DstIP, r.DstPort)
		k := r.Proto + " " + min(a, b) + " " + max(a, b)
		m[k+" from "+a+" pkts"] += r.PacketsTx
		m[k+" from "+a+" bytes"] += r.BytesTx
		m[k+" from "+b+" pkts"] += r.PacketsRx
		m[k+" from "+b+" bytes"] += r.BytesRx
		m["end "+r.End]++
	}
	return m
}

// TestLiveCommand: the flows of a live capture equal those of --replay of
// the same file; SIGINT ends every open flow with reason shutdown; the
// summary counts the packets and shows no kernel drop.
func TestLiveCommand(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	file := filepath.Join(corpus, "zeek-http-bro.org.pcap")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.yaml")
	os.WriteFile(cfg, []byte("performance:\n  threads: 2\n  memory_limit_mb: 64\n"), 0o644)
	p := startCapture(t, bin, ns, "--config", cfg, "--flows-out", filepath.Join(dir, "live.jsonl"))
	sendFile(ns, file, 20000)
	time.Sleep(200 * time.Millisecond)
	p.interrupt(t)
	if out, err := exec.Command(bin, "--replay", file, "--flows-out", filepath.Join(dir, "replay.jsonl")).CombinedOutput(); err != nil {
		t.Fatalf("replay: %v: %s", err, out)
	}
	live, rep := pairs(t, filepath.Join(dir, "live.jsonl")), pairs(t, filepath.Join(dir, "replay.jsonl"))
	if live["end shutdown"] == 0 {
		t.Error("no flow ended with reason shutdown")
	}
	for k, v := range rep {
		if strings.HasPrefix(k, "end ") {
			continue
		}
		if live[k] != v {
			t.Errorf("%s: live %d, replay %d", k, live[k], v)
		}
	}
	out := p.stdout.String()
	if !strings.Contains(out, "Packets captured: 751\n") {
		t.Errorf("summary does not count the 751 frames:\n%s", out)
	}
	for _, m := range regexp.MustCompile(`Queue \d+: \d+ packets, (\d+) kernel drops`).FindAllStringSubmatch(out, -1) {
		if m[1] != "0" {
			t.Errorf("kernel drops: %s", m[0])
		}
	}
	if n := strings.Count(out, "kernel drops"); n != 2 {
		t.Errorf("summary shows %d queues, want 2:\n%s", n, out)
	}
}

// TestLiveCommandStalled: a stopped consumer (SIGSTOP) lets a burst overflow
// its small ring; the summary shows the kernel's drops.
func TestLiveCommandStalled(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg.yaml")
	os.WriteFile(cfg, []byte("performance:\n  threads: 1\n  memory_limit_mb: 16\n  ring_size_mb: 2\n  packet_batch_size: 64\n"), 0o644)
	p := startCapture(t, bin, ns, "--config", cfg, "--flows-out", filepath.Join(dir, "live.jsonl"))
	p.cmd.Process.Signal(syscall.SIGSTOP)
	sendFile(ns, filepath.Join(corpus, "ndpi-1kxun.pcap"), 0)
	p.cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(300 * time.Millisecond)
	p.interrupt(t)
	m := regexp.MustCompile(`Queue 0: (\d+) packets, (\d+) kernel drops`).FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("no queue line in the summary:\n%s", p.stdout.String())
	}
	if m[2] == "0" {
		t.Errorf("stalled consumer, yet no kernel drop in the summary: %s", m[0])
	}
}

// TestLiveBadFilter: a filter libpcap cannot compile is a config error with
// libpcap's message.
func TestLiveBadFilter(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	cfg := filepath.Join(t.TempDir(), "cfg.yaml")
	os.WriteFile(cfg, []byte("network_analysis:\n  bpf_filter: \"not prt 53\"\n"), 0o644)
	out, err := exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", t.TempDir(), "--interface", "c0", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bpf_filter") || !strings.Contains(string(out), "syntax error") {
		t.Errorf("bad filter: err %v, output %s", err, out)
	}
}
