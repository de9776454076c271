// Command alert is `make bench-alert`: the latency from the packet that
// crosses an alert threshold to the webhook receiving the alert, for
// NetSentry (the workers' alert feed) and, in the same run on the same
// events, for Prometheus + Alertmanager at a 1 s scrape and evaluation
// interval; the kernel's drops during the run; and the evaluator's CPU per
// million signal updates with 1000 rules and 100 k group keys
// (alerting.BenchmarkIngest).
//
// The traffic (a veth pair in a namespace of its own): for each of N
// sources, three TCP SYNs to three ports of one host, sent back to back by
// this program on an AF_PACKET socket; the third is the crossing packet of
// the rule `network.connection_count gt 2` per src_ip, and its send time
// is stamped. One source every -gap. The peer gets the same events as a
// metric this program exports (bench_source_connections{src_ip}, the SYNs
// sent per source, updated as each is sent), which Prometheus scrapes every
// second with the rule `bench_source_connections > 2` evaluated every
// second, sent through Alertmanager (group_wait 10 ms, as NetSentry's
// default) to the same webhook receiver. NetSentry runs with 2 queues, so a
// source's connections are split over shards.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var ns = fmt.Sprintf("nsbalert%d", os.Getpid())

func main() {
	bin := flag.String("netsentry", "bin/netsentry", "the netsentry binary")
	n := flag.Int("alerts", 600, "sources, one alert each")
	gap := flag.Duration("gap", 20*time.Millisecond, "time between two sources' crossings")
	flag.Parse()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		fatal("bench-alert needs Linux and root (network namespaces)")
	}
	for _, p := range []string{"prometheus", "prometheus-alertmanager", "ip"} {
		if _, err := exec.LookPath(p); err != nil {
			fatal("%s is not installed (make deps)", p)
		}
	}
	dir, err := os.MkdirTemp("", "bench-alert-")
	if err != nil {
		fatal("%v", err)
	}
	defer os.RemoveAll(dir)
	setup()
	defer cleanup()
	defer stopAll()

	hook := &receiver{ours: map[string]time.Time{}, peer: map[string]time.Time{}}
	hl := listen("127.0.0.1:0")
	go http.Serve(hl, hook)
	hookURL := "http://" + hl.Addr().String()
	exp := &exporter{conns: map[string]int{}}
	el := listen("127.0.0.1:0")
	go http.Serve(el, exp)

	// NetSentry.
	rules := filepath.Join(dir, "rules")
	os.MkdirAll(rules, 0o750)
	rule := fmt.Sprintf(`{"name": "bench conns", "severity": "warning",
  "conditions": [{"metric": "network.connection_count", "filter": "src_ip = $src_ip", "comparator": "gt", "threshold": 2}],
  "notifications": [{"type": "webhook", "url": %q}]}`, hookURL+"/ours")
	must(os.WriteFile(filepath.Join(rules, "conns.json"), []byte(rule), 0o600))
	cfg := filepath.Join(dir, "netsentry.yaml")
	must(os.WriteFile(cfg, []byte(fmt.Sprintf(`log_level: warn
api_port: 18091
capture_interface: c0
storage:
  local_path: %q
performance:
  threads: 2
  memory_limit_mb: 256
alerts:
  config_path: %q
`, filepath.Join(dir, "data"), rules)), 0o644))
	ours := exec.Command("ip", "netns", "exec", ns, *bin, "--config", cfg, "--api-enable")
	var oursErr bytes.Buffer
	ours.Stderr = &oursErr
	must(ours.Start())
	procs = append(procs, ours)
	waitHTTP("127.0.0.1:18091", "/api/v1/alerts", &oursErr)

	// Prometheus + Alertmanager.
	amPort, promPort := 19093, 19090
	amCfg := filepath.Join(dir, "am.yml")
	must(os.WriteFile(amCfg, []byte(fmt.Sprintf(`route:
  receiver: hook
  group_by: [src_ip]
  group_wait: 10ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: false
`, hookURL+"/peer")), 0o644))
	am := exec.Command("ip", "netns", "exec", ns, "prometheus-alertmanager", "--config.file="+amCfg,
		"--storage.path="+filepath.Join(dir, "am"), "--web.listen-address=127.0.0.1:"+strconv.Itoa(amPort),
		"--cluster.listen-address=")
	var amErr bytes.Buffer
	am.Stderr = &amErr
	must(am.Start())
	procs = append(procs, am)
	promRules := filepath.Join(dir, "rules.yml")
	must(os.WriteFile(promRules, []byte(`groups:
  - name: bench
    interval: 1s
    rules:
      - alert: bench conns
        expr: bench_source_connections > 2
        labels: {severity: warning}
`), 0o644))
	promCfg := filepath.Join(dir, "prom.yml")
	must(os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["127.0.0.1:%d"]}]
scrape_configs:
  - job_name: gen
    static_configs: [{targets: [%q]}]
`, promRules, amPort, el.Addr().String())), 0o644))
	prom := exec.Command("ip", "netns", "exec", ns, "prometheus", "--config.file="+promCfg,
		"--storage.tsdb.path="+filepath.Join(dir, "prom"), "--web.listen-address=127.0.0.1:"+strconv.Itoa(promPort))
	var promErr bytes.Buffer
	prom.Stderr = &promErr
	must(prom.Start())
	procs = append(procs, prom)
	waitHTTP("127.0.0.1:"+strconv.Itoa(amPort), "/-/ready", &amErr)
	waitHTTP("127.0.0.1:"+strconv.Itoa(promPort), "/-/ready", &promErr)
	time.Sleep(3 * time.Second) // a few scrapes: the target is up, the rule group runs

	drops0 := metric("netsentry_engine_drops_total")
	sent := make([]time.Time, *n)
	names := make([]string, *n)
	snd := newSender()
	for i := range *n {
		src := [4]byte{10, 1, byte(i >> 8), byte(i)}
		names[i] = net.IP(src[:]).String()
		for k := range 3 {
			f := synFrame(src, [4]byte{10, 200, 0, 1}, uint16(40000+k), uint16(1000+k))
			at := time.Now()
			snd.send(f)
			exp.set(names[i], k+1)
			if k == 2 {
				sent[i] = at
			}
		}
		time.Sleep(*gap)
	}
	// Wait for both: ours within seconds, the peer's after a scrape and
	// an evaluation.
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		o, p := hook.counts()
		if o >= *n && p >= *n {
			break
		}
	}
	drops := metric("netsentry_engine_drops_total") - drops0
	feedDrops := metric("netsentry_alert_feed_dropped_total")

	oursLat, peerLat := hook.latencies(names, sent)
	fmt.Printf("\nbench-alert: %d sources, each 3 TCP SYNs to 3 ports back to back, one source every %v (veth in a namespace); the 3rd SYN crosses\n", *n, *gap)
	fmt.Printf("\"network.connection_count gt 2 per src_ip\" (NetSentry, 2 queues) and \"bench_source_connections > 2\" (Prometheus, scraping this generator's\n")
	fmt.Printf("count of the same SYNs). Latency: send time of the crossing packet -> the webhook receiving the alert.\n\n")
	fmt.Printf("%-44s %6s %9s %9s %9s %9s %9s\n", "pipeline", "alerts", "p50", "p90", "p99", "max", "missing")
	row := func(name string, lat []time.Duration) {
		slices.Sort(lat)
		q := func(p float64) string {
			if len(lat) == 0 {
				return "-"
			}
			return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(100 * time.Microsecond).String()
		}
		fmt.Printf("%-44s %6d %9s %9s %9s %9s %9d\n", name, len(lat), q(0.5), q(0.9), q(0.99), q(1), *n-len(lat))
	}
	row("netsentry (worker feed, 20 ms block timeout)", oursLat)
	row("prometheus + alertmanager (1 s / 1 s)", peerLat)
	if len(oursLat) > 0 && len(peerLat) > 0 {
		fmt.Printf("\np50 ratio peer/ours: %.1fx\n", float64(peerLat[len(peerLat)/2])/float64(oursLat[len(oursLat)/2]))
	}
	fmt.Printf("kernel drops during the run (netsentry_engine_drops_total): %.0f; alert feed items dropped: %.0f\n", drops, feedDrops)

	// The evaluator's CPU per million signals.
	out, err := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkIngest$", "-benchtime", "1000000x", "-count", "3", "./alerting/").CombinedOutput()
	if err != nil {
		fatal("evaluator benchmark: %v\n%s", err, out)
	}
	cpu := map[string][]float64{}
	re := regexp.MustCompile(`BenchmarkIngest/(\S+?)(-\d+)?\s.*?([\d.]+) cpu-s/Msignal`)
	for _, l := range strings.Split(string(out), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			cpu[m[1]] = append(cpu[m[1]], v)
		}
	}
	fmt.Printf("\nevaluator CPU (alerting.BenchmarkIngest, 1e6 signals, 3 runs): cpu-s per million signal updates, min/median/max\n")
	keys := make([]string, 0, len(cpu))
	for k := range cpu {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := cpu[k]
		slices.Sort(v)
		fmt.Printf("  %-40s %.2f / %.2f / %.2f\n", k, v[0], v[len(v)/2], v[len(v)-1])
	}
	if len(oursLat) < *n {
		fmt.Fprintf(os.Stderr, "netsentry log:\n%s\n", oursErr.String())
	}
}

// receiver records the first firing notification per src_ip, per path.
type receiver struct {
	mu         sync.Mutex
	ours, peer map[string]time.Time
}

func (h *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	var p struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	b, _ := io.ReadAll(r.Body)
	if json.Unmarshal(b, &p) != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.ours
	if r.URL.Path == "/peer" {
		m = h.peer
	}
	for _, a := range p.Alerts {
		if ip := a.Labels["src_ip"]; a.Status == "firing" && ip != "" {
			if _, ok := m[ip]; !ok {
				m[ip] = at
			}
		}
	}
}

func (h *receiver) counts() (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ours), len(h.peer)
}

func (h *receiver) latencies(names []string, sent []time.Time) (ours, peer []time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, n := range names {
		if t, ok := h.ours[n]; ok {
			ours = append(ours, t.Sub(sent[i]))
		}
		if t, ok := h.peer[n]; ok {
			peer = append(peer, t.Sub(sent[i]))
		}
	}
	return
}

// exporter serves bench_source_connections{src_ip} for Prometheus.
type exporter struct {
	mu    sync.Mutex
	conns map[string]int
}

func (e *exporter) set(src string, n int) {
	e.mu.Lock()
	e.conns[src] = n
	e.mu.Unlock()
}

func (e *exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# TYPE bench_source_connections gauge")
	for k, v := range e.conns {
		fmt.Fprintf(bw, "bench_source_connections{src_ip=%q} %d\n", k, v)
	}
	bw.Flush()
}

// sender writes frames to s0 from a socket opened inside the namespace.
type sender struct {
	fd int
}

func newSender() *sender {
	fd := inNetns(func() (int, error) {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return -1, err
		}
		ifi, err := net.InterfaceByName("s0")
		if err != nil {
			return -1, err
		}
		return fd, unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index})
	})
	return &sender{fd: fd}
}

func (s *sender) send(f []byte) {
	if _, err := unix.Write(s.fd, f); err != nil {
		fatal("send: %v", err)
	}
}

// synFrame is an Ethernet + IPv4 + TCP SYN frame.
func synFrame(src, dst [4]byte, sport, dport uint16) []byte {
	f := make([]byte, 14+20+20)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], 40)
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	tcp := f[34:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 1)
	tcp[12], tcp[13] = 5<<4, 0x02
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	return f
}

// listen opens a TCP listener inside the namespace.
func listen(addr string) net.Listener {
	var l net.Listener
	inNetns(func() (int, error) {
		var err error
		l, err = net.Listen("tcp", addr)
		return 0, err
	})
	return l
}

// inNetns runs f on a thread that entered the namespace (never unlocked:
// the thread ends with its goroutine).
func inNetns(f func() (int, error)) int {
	type res struct {
		v   int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- res{err: err}
			return
		}
		v, err := f()
		ch <- res{v, err}
	}()
	r := <-ch
	if r.err != nil {
		fatal("in namespace %s: %v", ns, r.err)
	}
	return r.v
}

// metric sums the samples of a family in NetSentry's /metrics.
func metric(name string) float64 {
	out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-s", "http://127.0.0.1:18091/metrics").Output()
	if err != nil {
		fatal("read /metrics: %v", err)
	}
	var sum float64
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func waitHTTP(addr, path string, log *bytes.Buffer) {
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if exec.Command("ip", "netns", "exec", ns, "curl", "-sf", "-o", "/dev/null", "http://"+addr+path).Run() == nil {
			return
		}
	}
	fatal("%s not up within 30 s:\n%s", addr, log.String())
}

func sh(args ...string) {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		fatal("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func setup() {
	sh("ip", "netns", "add", ns)
	sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	sh("ip", "netns", "exec", ns, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	for _, i := range []string{"s0", "c0"} {
		sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		sh("ip", "netns", "exec", ns, "ip", "link", "set", i, "up")
	}
}

func cleanup() { exec.Command("ip", "netns", "del", ns).Run() }

func must(err error) {
	if err != nil {
		fatal("%v", err)
	}
}

// procs are the servers started, killed at the end.
var procs []*exec.Cmd

func stopAll() {
	for _, p := range procs {
		p.Process.Kill()
		p.Wait()
	}
	procs = nil
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-alert: "+format+"\n", args...)
	stopAll()
	cleanup()
	os.Exit(1)
}
