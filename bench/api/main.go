// Command api is the REST API benchmark (make bench-api): wrk against
// GET /api/v1/network/connections?limit=100 of a daemon that tracks -flows
// active flows and keeps capturing while wrk runs, and, in the same run
// and under the same traffic, wrk against a trivial fasthttp handler (the
// peer: what this box can serve at all). It prints requests/s and p99
// latency of both, the capture's kernel drops in the measured window, and
// the daemon's idle RSS.
//
// Test bed: a network namespace holding a veth pair (s0 -> c0) and its own
// loopback; the daemon captures on c0 with its API on 127.0.0.1 there; wrk
// runs in the namespace too. The trace is -flows UDP flows of one packet
// each (distinct 5-tuples), written here; tcpreplay sends it once to fill
// the flow table, then loops it at -pps while wrk runs, so the flows stay
// active and the workers stay busy.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/valyala/fasthttp"
)

var (
	netsentry   = flag.String("netsentry", "bin/netsentry", "NetSentry binary")
	flows       = flag.Int("flows", 100000, "active flows to track")
	pps         = flag.Int("pps", 10000, "packet rate of the background traffic while wrk runs")
	duration    = flag.Duration("duration", 10*time.Second, "wrk run length (each target)")
	connections = flag.Int("connections", 32, "wrk connections")
	threads     = flag.Int("threads", 2, "wrk threads")
	cpuprofile  = flag.String("cpuprofile", "", "write the daemon's CPU profile to this file")
)

const (
	ns      = "nsbenchapi"
	apiAddr = "127.0.0.1:18080"
	path    = "/api/v1/network/connections?limit=100"
)

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal("bench-api needs root (network namespace, AF_PACKET)")
	}
	for _, t := range []string{"wrk", "tcpreplay", "ip", "curl"} {
		if _, err := exec.LookPath(t); err != nil {
			fatal("bench-api needs %s: %v (make deps)", t, err)
		}
	}
	dir, err := os.MkdirTemp("", "bench-api")
	if err != nil {
		fatal("%v", err)
	}
	defer os.RemoveAll(dir)
	cleanup()
	setup()
	defer cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; cleanup(); os.Exit(1) }()

	trace := filepath.Join(dir, "flows.pcap")
	if err := writeTrace(trace, *flows); err != nil {
		fatal("write trace: %v", err)
	}
	cfg := filepath.Join(dir, "netsentry.yaml")
	os.WriteFile(cfg, []byte(`log_level: warn
api_port: 18080
capture_interface: c0
performance:
  threads: 2
  memory_limit_mb: 256
flows:
  idle_timeout: 1h
  udp_idle_timeout: 1h
  active_timeout: 2h
`), 0o644)
	// Its own store: the default path may be another daemon's.
	dargs := []string{"netns", "exec", ns, *netsentry, "--config", cfg, "--storage-path", filepath.Join(dir, "store")}
	if *cpuprofile != "" {
		dargs = append(dargs, "--cpuprofile", *cpuprofile)
	}
	d := exec.Command("ip", dargs...)
	var dlog strings.Builder
	d.Stderr = &dlog
	if err := d.Start(); err != nil {
		fatal("start netsentry: %v", err)
	}
	defer func() { d.Process.Signal(syscall.SIGTERM); d.Wait() }()
	if !waitAPI() {
		fatal("the API did not come up:\n%s", dlog.String())
	}
	time.Sleep(2 * time.Second)
	idleRSS := rssMB(d.Process.Pid)
	idleRing := ringRSSMB(d.Process.Pid)

	// Fill the flow table.
	run("ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", "s0", "--pps=200000", trace)
	var active int
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		if active = statsFlows(); active >= *flows {
			break
		}
	}
	fmt.Printf("flows active: %d (trace: %d flows); daemon idle RSS %.1f MiB, with the flows %.1f MiB\n",
		active, *flows, idleRSS, rssMB(d.Process.Pid))

	// Background traffic: the same flows again and again.
	bg := exec.Command("ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", "s0", "--loop=0", fmt.Sprintf("--pps=%d", *pps), trace)
	if err := bg.Start(); err != nil {
		fatal("tcpreplay: %v", err)
	}
	defer func() { bg.Process.Kill(); bg.Wait() }()
	time.Sleep(time.Second)

	// Drops with the traffic alone, then under each wrk run.
	b0, bd0 := statsDrops()
	time.Sleep(*duration)
	b1, bd1 := statsDrops()
	p0, d0 := statsDrops()
	ours := wrk("ip", "netns", "exec", ns, "wrk", "--latency", "-t", strconv.Itoa(*threads), "-c", strconv.Itoa(*connections),
		"-d", duration.String(), "http://"+apiAddr+path)
	p1, d1 := statsDrops()

	// The peer: a trivial fasthttp handler, same wrk, same traffic.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("%v", err)
	}
	// A second peer serves a static body as large as our answer, to tell
	// the cost of the bytes from the cost of our code.
	same := curl(path)
	go fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		if string(ctx.Path()) == "/same-size" {
			ctx.Response.SetBodyRaw(same)
			return
		}
		ctx.SetBodyString(`{"ok":true}`)
	})
	q0, qd0 := statsDrops()
	peer := wrk("wrk", "--latency", "-t", strconv.Itoa(*threads), "-c", strconv.Itoa(*connections),
		"-d", duration.String(), "http://"+ln.Addr().String()+"/")
	q1, qd1 := statsDrops()
	peerSame := wrk("wrk", "--latency", "-t", strconv.Itoa(*threads), "-c", strconv.Itoa(*connections),
		"-d", duration.String(), "http://"+ln.Addr().String()+"/same-size")
	ln.Close()

	fmt.Printf("\nwrk -t%d -c%d -d%s, %d active flows, background traffic %d pps\n", *threads, *connections, *duration, active, *pps)
	fmt.Printf("%-44s %12s %10s %10s %14s\n", "target", "requests/s", "p50", "p99", "errors+timeouts")
	fmt.Printf("%-44s %12.0f %10s %10s %14d\n", "netsentry "+path, ours.rps, ours.p50, ours.p99, ours.non2xx)
	fmt.Printf("%-44s %12.0f %10s %10s %14d\n", "trivial fasthttp handler (peer)", peer.rps, peer.p50, peer.p99, peer.non2xx)
	fmt.Printf("%-44s %12.0f %10s %10s %14d\n", fmt.Sprintf("trivial handler, static %d-byte body", len(same)), peerSame.rps, peerSame.p50, peerSame.p99, peerSame.non2xx)
	if peer.rps > 0 {
		fmt.Printf("ratio: %.0f %% of the trivial handler's rate (target >= 50 %%)\n", 100*ours.rps/peer.rps)
	}
	p99, _ := time.ParseDuration(strings.Replace(ours.p99, "us", "µs", 1))
	verdict := "ok"
	if p99 >= 10*time.Millisecond || peer.rps == 0 || ours.rps < peer.rps/2 || ours.non2xx > 0 {
		verdict = "FAIL"
	}
	fmt.Printf("verdict: %s (p99 %s, target < 10ms; rate %.2fx the trivial handler's, target >= 0.5x)\n", verdict, ours.p99, ours.rps/max(peer.rps, 1))
	fmt.Printf("capture, %s windows: traffic alone %d packets, %d kernel drops; wrk on netsentry %d packets, %d drops; wrk on the peer %d packets, %d drops\n",
		*duration, b1-b0, bd1-bd0, p1-p0, d1-d0, q1-q0, qd1-qd0)
	fmt.Printf("daemon peak RSS (VmHWM) after every wrk run: %.1f MiB (memory_limit_mb 256)\n", hwmMB(d.Process.Pid))
	fmt.Printf("daemon idle RSS: %.1f MiB (target < 60 MiB): capture rings %.1f MiB (performance.ring_size_mb, default 32), the rest %.1f MiB\n",
		idleRSS, idleRing, idleRSS-idleRing)
}

// writeTrace writes n one-packet UDP flows with distinct 5-tuples.
func writeTrace(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return err
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	dst := netip.MustParseAddr("192.0.2.1").AsSlice()
	buf := gopacket.NewSerializeBuffer()
	payload := make([]byte, 32)
	t0 := time.Unix(1700000000, 0)
	for i := range n {
		src := []byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst}
		udp := &layers.UDP{SrcPort: layers.UDPPort(10000 + i%50000), DstPort: 9000}
		udp.SetNetworkLayerForChecksum(ip)
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, ip, udp, gopacket.Payload(payload)); err != nil {
			return err
		}
		b := buf.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Microsecond), CaptureLength: len(b), Length: len(b)}
		if err := w.WritePacket(ci, b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

type wrkResult struct {
	rps      float64
	p50, p99 string
	non2xx   int // answers that were not 2xx (the old code's 503s), with timeouts
}

func wrk(args ...string) wrkResult {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		fatal("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	s := string(out)
	var r wrkResult
	if m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindStringSubmatch(s); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := regexp.MustCompile(`\n\s+50%\s+(\S+)`).FindStringSubmatch(s); m != nil {
		r.p50 = m[1]
	}
	if m := regexp.MustCompile(`\n\s+99%\s+(\S+)`).FindStringSubmatch(s); m != nil {
		r.p99 = m[1]
	}
	// Errors are measured, not fatal: a daemon that answers 503 or not at
	// all under load is the figure to show.
	if m := regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`).FindStringSubmatch(s); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m := regexp.MustCompile(`timeout (\d+)`).FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.non2xx += n
	}
	return r
}

func curl(p string) []byte {
	out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-sf", "--max-time", "5", "http://"+apiAddr+p).Output()
	if err != nil {
		return nil
	}
	return out
}

func waitAPI() bool {
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if curl("/healthz") != nil {
			return true
		}
	}
	return false
}

type stats struct {
	Packets uint64 `json:"packets"`
	Drops   uint64 `json:"drops"`
	Flows   struct {
		Active int `json:"active"`
	} `json:"flows"`
}

func getStats() stats {
	var s stats
	json.Unmarshal(curl("/api/v1/network/stats"), &s)
	return s
}

func statsFlows() int { return getStats().Flows.Active }

func statsDrops() (packets, drops uint64) {
	s := getStats()
	return s.Packets, s.Drops
}

// rssMB reads VmRSS of pid, MiB.
func rssMB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// hwmMB reads VmHWM of pid, MiB.
func hwmMB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// ringRSSMB sums the resident memory of the packet-socket mappings (the
// TPACKET_V3 rings) of pid, MiB.
func ringRSSMB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0
	}
	var kb float64
	inSocket := false
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			inSocket = len(f) >= 6 && strings.HasPrefix(f[5], "socket:")
		case inSocket && len(f) >= 2 && f[0] == "Rss:":
			v, _ := strconv.ParseFloat(f[1], 64)
			kb += v
		}
	}
	return kb / 1024
}

func run(args ...string) {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		fatal("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func setup() {
	run("ip", "netns", "add", ns)
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	run("ip", "netns", "exec", ns, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	for _, i := range []string{"s0", "c0"} {
		run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		run("ip", "netns", "exec", ns, "ip", "link", "set", i, "up")
	}
}

func cleanup() { exec.Command("ip", "netns", "del", ns).Run() }

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-api: "+format+"\n", args...)
	cleanup()
	os.Exit(1)
}
