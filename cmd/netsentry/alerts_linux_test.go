package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/internal/testcorpus"
)

// alertNet makes a namespace with lo up and the veth pair s0 (send) - c0
// (capture), named for this test's helper (nsawire...).
func alertNet(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("tcpreplay"); err != nil {
		t.Fatal("tcpreplay is not installed")
	}
	ns := fmt.Sprintf("nsawire%d", os.Getpid())
	sh := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	sh("ip", "netns", "exec", ns, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	for _, i := range []string{"s0", "c0"} {
		sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		sh("ip", "netns", "exec", ns, "ip", "link", "set", i, "mtu", "16000", "up")
	}
	return ns
}

// listenInNetns opens a TCP listener inside namespace ns, from a locked
// thread that entered it (never unlocked: it ends with its goroutine). The
// listener may then be used from any goroutine.
func listenInNetns(ns, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
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
		l, err := net.Listen("tcp", addr)
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

// amPayload is the Alertmanager webhook payload, version 4.
type amPayload struct {
	Version  string            `json:"version"`
	GroupKey string            `json:"groupKey"`
	Status   string            `json:"status"`
	Receiver string            `json:"receiver"`
	Common   map[string]string `json:"commonLabels"`
	Alerts   []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
		Fingerprint string            `json:"fingerprint"`
	} `json:"alerts"`
}

type received struct {
	at time.Time
	p  amPayload
}

// hookReceiver records every webhook POST.
type hookReceiver struct {
	mu  sync.Mutex
	got []received
	bad []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	b, _ := io.ReadAll(r.Body)
	var p amPayload
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := json.Unmarshal(b, &p); err != nil || p.Version != "4" || r.Method != "POST" {
		h.bad = append(h.bad, fmt.Sprintf("%s %v: %s", r.Method, err, b))
	} else {
		h.got = append(h.got, received{at, p})
	}
}

func (h *hookReceiver) snapshot() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// byRule returns the (receive time, alert) pairs of rule name.
type alertAt struct {
	at     time.Time
	status string
	labels map[string]string
	starts time.Time
	fp     string
}

func alertsOf(rs []received, rule string) []alertAt {
	var out []alertAt
	for _, r := range rs {
		for _, a := range r.p.Alerts {
			if a.Labels["alertname"] == rule {
				out = append(out, alertAt{r.at, a.Status, a.Labels, a.StartsAt, a.Fingerprint})
			}
		}
	}
	return out
}

// TestDaemonAlerts: ndpi-synscan.pcap at recorded speed into the daemon,
// with the description's Potential Port Scan rule (created over the API)
// and a webhook receiver in the daemon's namespace: one critical alert for
// the scanner 172.16.0.8 and none for its victim, at most one firing
// notification per throttle_sec, resolved once the scan tracker's 60 s
// window has emptied; cpu.usage gt 0 fires, lt 0 never; the rules survive
// a restart.
//
// The oracle (tshark): 172.16.0.8 sends 1994 SYNs to 1000 ports of
// 64.13.134.52 within 5.1 s; 64.13.134.52 sends 17 packets in all. So
// thresholds of 500 connections and 500 distinct ports in 60 s are crossed
// by the scanner only: the victim could not reach them with every packet
// it sends.
func TestDaemonAlerts(t *testing.T) {
	ns := alertNet(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules") // missing: the daemon creates it
	l, err := listenInNetns(ns, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hook := &hookReceiver{}
	srv := &http.Server{Handler: hook}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	hookURL := "http://" + l.Addr().String() + "/hook"

	cfgPath := filepath.Join(dir, "netsentry.yaml")
	cfgText := fmt.Sprintf(`log_level: info
api_port: 18081
capture_interface: c0
performance:
  threads: 1
  memory_limit_mb: 64
alerts:
  config_path: %q
`, rulesDir)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (*liveProc, *apiClient) {
		p := &liveProc{}
		p.cmd = exec.Command("ip", "netns", "exec", ns, bin, "--config", cfgPath, "--api-enable")
		p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.cmd.Process.Kill() })
		api := newAPIClient(t, ns, "127.0.0.1:18081")
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if c, err := dialInNetns(t.Context(), ns, "tcp", "127.0.0.1:18081"); err == nil {
				c.Close()
				break
			}
			if time.Now().After(end) {
				t.Fatalf("API not up within 10 s:\n%s", p.stderr.String())
			}
		}
		return p, api
	}
	p, api := start()

	const throttle = 30 * time.Second
	scanRule := fmt.Sprintf(`{"name": "Potential Port Scan", "description": "Detects potential port scanning activity",
	  "conditions": [
	    {"metric": "network.connection_count", "filter": "src_ip = $src_ip", "comparator": "gt", "threshold": 500, "time_range": "60s"},
	    {"metric": "network.unique_dest_port_count", "filter": "src_ip = $src_ip", "comparator": "gt", "threshold": 500, "time_range": "60s"}],
	  "condition_logic": "AND", "severity": "critical", "throttle_sec": %d,
	  "notifications": [{"type": "webhook", "url": %q}]}`, int(throttle/time.Second), hookURL)
	ids := map[string]string{}
	for name, body := range map[string]string{
		"Potential Port Scan": scanRule,
		"cpu busy":            fmt.Sprintf(`{"name": "cpu busy", "metric": "cpu.usage", "comparator": "gt", "threshold": 0, "severity": "info", "notifications": [{"type": "webhook", "url": %q}]}`, hookURL),
		"cpu negative":        fmt.Sprintf(`{"name": "cpu negative", "metric": "cpu.usage", "comparator": "lt", "threshold": 0, "severity": "warning", "notifications": [{"type": "webhook", "url": %q}]}`, hookURL),
	} {
		st, b := api.do("POST", "/api/v1/alerts", []byte(body))
		var r struct {
			ID string `json:"id"`
		}
		if st != 201 || json.Unmarshal(b, &r) != nil || r.ID == "" {
			t.Fatalf("POST rule %q: %d %s", name, st, b)
		}
		ids[name] = r.ID
	}

	replayStart := time.Now()
	out, err := exec.Command("ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", "s0",
		testcorpus.Path(t, "ndpi-synscan.pcap")).CombinedOutput() // recorded speed
	if err != nil {
		t.Fatalf("tcpreplay: %v: %s", err, out)
	}
	t.Logf("replay took %v", time.Since(replayStart).Round(time.Millisecond))

	// Wait for the scan alert to resolve: the scan tracker's window (60 s)
	// empties about a minute after the last SYN (5.1 s into the capture).
	var scan []alertAt
	for end := replayStart.Add(100 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		scan = alertsOf(hook.snapshot(), "Potential Port Scan")
		if slices.ContainsFunc(scan, func(a alertAt) bool { return a.status == "resolved" }) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no resolved Port Scan alert within 100 s of the replay; got %+v\n%s", scan, p.stderr.String())
		}
	}
	fps := map[string]bool{}
	var firing []alertAt
	for _, a := range scan {
		fps[a.fp] = true
		if a.labels["src_ip"] != "172.16.0.8" || a.labels["severity"] != "critical" {
			t.Errorf("Port Scan alert for %v (severity %q), want only 172.16.0.8, critical", a.labels["src_ip"], a.labels["severity"])
		}
		if a.status == "firing" {
			firing = append(firing, a)
		}
	}
	if len(fps) != 1 || len(firing) == 0 || scan[len(scan)-1].status != "resolved" {
		t.Fatalf("Port Scan alerts %+v: want one alert (fingerprint), firing then resolved", scan)
	}
	for i := 1; i < len(firing); i++ {
		if gap := firing[i].at.Sub(firing[i-1].at); gap < throttle-time.Second {
			t.Errorf("firing notifications %v apart, want at most one per throttle_sec (%v)", gap, throttle)
		}
	}
	// tshark: the scanner's 501st distinct port (both thresholds crossed)
	// is at 3.682 s into the capture.
	const crossAt = 3682 * time.Millisecond
	t.Logf("crossing packet (tshark: %v into the capture) to webhook: %v", crossAt, (firing[0].at.Sub(replayStart) - crossAt).Round(time.Millisecond))
	lat := firing[0].at.Sub(firing[0].starts)
	resolvedAfter := scan[len(scan)-1].at.Sub(replayStart)
	t.Logf("Port Scan: %d firing notification(s) (throttle %v), first %v after the replay began, %v after startsAt (the evaluator's clock when it fired); resolved %v after the replay began",
		len(firing), throttle, firing[0].at.Sub(replayStart).Round(time.Millisecond), lat.Round(time.Microsecond), resolvedAfter.Round(time.Second))
	if lat < 0 || lat > time.Second {
		t.Errorf("startsAt to webhook: %v, want within 1 s", lat)
	}

	all := hook.snapshot()
	if busy := alertsOf(all, "cpu busy"); len(busy) == 0 || busy[0].status != "firing" {
		t.Errorf("cpu.usage gt 0: %+v, want it firing", busy)
	}
	if neg := alertsOf(all, "cpu negative"); len(neg) != 0 {
		t.Errorf("cpu.usage lt 0 fired: %+v", neg)
	}
	hook.mu.Lock()
	if len(hook.bad) > 0 {
		t.Errorf("bad webhook requests: %v", hook.bad)
	}
	hook.mu.Unlock()
	if st, b := api.do("GET", "/metrics", nil); st != 200 || !strings.Contains(string(b), `netsentry_alert_notifications_total{channel_type="webhook",result="sent"} `) {
		t.Errorf("/metrics: %d, no webhook notification counter", st)
	}

	// The rules survive a restart, and a bad rule file is logged with its
	// path while the others load and are evaluated.
	p.interrupt(t)
	busyBefore := len(alertsOf(hook.snapshot(), "cpu busy"))
	broken := filepath.Join(rulesDir, "broken.json")
	if err := os.WriteFile(broken, []byte(`{"name": "broken", "metric": "no.such.metric", "comparator": "gt", "threshold": 1, "severity": "info"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p, api = start()
	waitFor(t, p, broken)
	if !strings.Contains(p.stderr.String(), "no.such.metric") {
		t.Errorf("the log does not name the bad rule's problem:\n%s", p.stderr.String())
	}
	for end := time.Now().Add(20 * time.Second); len(alertsOf(hook.snapshot(), "cpu busy")) == busyBefore; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the reloaded cpu.usage rule did not fire within 20 s of the restart:\n%s", p.stderr.String())
		}
	}
	st, b := api.do("GET", "/api/v1/alerts", nil)
	if st != 200 {
		t.Fatalf("GET rules after restart: %d %s", st, b)
	}
	for name, id := range ids {
		if !strings.Contains(string(b), `"`+id+`"`) || !strings.Contains(string(b), name) {
			t.Errorf("rule %s (%s) is gone after a restart: %s", id, name, b)
		}
	}
	files, _ := os.ReadDir(rulesDir)
	if len(files) != len(ids)+1 {
		t.Errorf("%d files in %s, want %d (one per rule, and broken.json)", len(files), rulesDir, len(ids)+1)
	}
}
