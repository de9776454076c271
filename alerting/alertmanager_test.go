package alerting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// amBinary is Debian's name for Alertmanager (package prometheus-alertmanager).
const amBinary = "prometheus-alertmanager"

// amConfig routes everything to a receiver that does nothing: the tests read what the
// Alertmanagers hold through their own API.
const amConfig = `route:
  receiver: "null"
  group_by: [alertname]
receivers:
  - name: "null"
`

type ntAlertmanager struct {
	name    string
	web     string // host:port
	cluster string
	cmd     *exec.Cmd
	log     string
	done    chan struct{}
}

// ntFreePort returns a loopback port free for TCP and UDP now (memberlist gossips over both).
func ntFreePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func ntStartAM(t *testing.T, name, config, web, cluster, peer string) *ntAlertmanager {
	t.Helper()
	bin, err := exec.LookPath(amBinary)
	if err != nil {
		t.Fatalf("%s not installed (Debian package prometheus-alertmanager; make deps installs it): %v", amBinary, err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	am := &ntAlertmanager{name: name, web: web, cluster: cluster, log: filepath.Join(dir, "log"), done: make(chan struct{})}
	logf, err := os.Create(am.log)
	if err != nil {
		t.Fatal(err)
	}
	am.cmd = exec.Command(bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web,
		"--cluster.listen-address="+cluster,
		"--cluster.advertise-address="+cluster,
		"--cluster.peer="+peer,
		"--cluster.gossip-interval=50ms",
		"--cluster.pushpull-interval=1s",
		"--cluster.settle-timeout=1s",
		"--cluster.peer-timeout=1s",
		"--log.level=info",
	)
	am.cmd.Stdout, am.cmd.Stderr = logf, logf
	if err := am.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { am.cmd.Wait(); logf.Close(); close(am.done) }()
	t.Cleanup(func() {
		am.kill()
		if t.Failed() {
			b, _ := os.ReadFile(am.log)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return am
}

func (am *ntAlertmanager) kill() {
	select {
	case <-am.done:
		return
	default:
	}
	am.cmd.Process.Kill()
	<-am.done
}

func (am *ntAlertmanager) get(path string, v any) error {
	resp, err := http.Get("http://" + am.web + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// ntAMAlert is the part of /api/v2/alerts' gettableAlert the tests read.
type ntAMAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

func (am *ntAlertmanager) alerts(t *testing.T, alertname string) []ntAMAlert {
	t.Helper()
	var all []ntAMAlert
	if err := am.get("/api/v2/alerts", &all); err != nil {
		t.Fatalf("%s: %v", am.name, err)
	}
	var out []ntAMAlert
	for _, a := range all {
		if a.Labels["alertname"] == alertname {
			out = append(out, a)
		}
	}
	return out
}

// ntStartCluster runs two Alertmanagers that peer with each other and waits until each sees
// both members.
func ntStartCluster(t *testing.T, config string) (*ntAlertmanager, *ntAlertmanager) {
	t.Helper()
	w1, w2 := fmt.Sprintf("127.0.0.1:%d", ntFreePort(t)), fmt.Sprintf("127.0.0.1:%d", ntFreePort(t))
	c1, c2 := fmt.Sprintf("127.0.0.1:%d", ntFreePort(t)), fmt.Sprintf("127.0.0.1:%d", ntFreePort(t))
	am1 := ntStartAM(t, "am1", config, w1, c1, c2)
	am2 := ntStartAM(t, "am2", config, w2, c2, c1)
	for _, am := range []*ntAlertmanager{am1, am2} {
		ntWait(t, 30*time.Second, am.name+" ready with 2 peers", func() bool {
			var st struct {
				Cluster struct {
					Status string `json:"status"`
					Peers  []any  `json:"peers"`
				} `json:"cluster"`
			}
			return am.get("/api/v2/status", &st) == nil && st.Cluster.Status == "ready" && len(st.Cluster.Peers) == 2
		})
	}
	return am1, am2
}

type ntBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *ntBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *ntBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func ntAMNote(url, rule, group, status string) Notification {
	a := ntAlert(rule, group, status)
	return Notification{Channel: Channel{Type: "prometheus-alertmanager", URL: url}, Rule: rule, Alerts: []Alert{a}}
}

// TestAlertmanagerCluster: an alert posted to both clustered Alertmanagers is held once by
// each; with one killed it still reaches the other; a resolved alert leaves the active list;
// a /api/v1/alerts URL is rewritten to /api/v2/alerts with one warning.
func TestAlertmanagerCluster(t *testing.T) {
	am1, am2 := ntStartCluster(t, amConfig)
	var logs ntBuffer
	d := NewDispatcher(NotifyOptions{Timeout: 2 * time.Second, Retries: 3,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		ExternalURL: "http://sensor.test:8080",
		Logger:      slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ntClose(t, d)
	u1, u2 := "http://"+am1.web, "http://"+am2.web+"/api/v2/alerts"

	const rule = "Potential Port Scan"
	d.Send(ntAMNote(u1, rule, "src_ip=10.0.0.5", "firing"))
	d.Send(ntAMNote(u2, rule, "src_ip=10.0.0.5", "firing"))
	for _, am := range []*ntAlertmanager{am1, am2} {
		ntWait(t, 10*time.Second, am.name+" holding the alert", func() bool { return len(am.alerts(t, rule)) > 0 })
		got := am.alerts(t, rule)
		if len(got) != 1 {
			t.Fatalf("%s holds %d alerts %+v, want 1", am.name, len(got), got)
		}
		a := got[0]
		if a.Labels["src_ip"] != "10.0.0.5" || a.Labels["severity"] != "critical" || len(a.Labels) != 3 {
			t.Errorf("%s labels %v", am.name, a.Labels)
		}
		if a.Annotations["summary"] != "Potential Port Scan on src_ip=10.0.0.5" {
			t.Errorf("%s annotations %v", am.name, a.Annotations)
		}
		if !a.StartsAt.Equal(time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)) || a.Status.State != "active" {
			t.Errorf("%s startsAt %v state %q", am.name, a.StartsAt, a.Status.State)
		}
		// No endsAt sent while firing: Alertmanager sets now + resolve_timeout (5m).
		if a.EndsAt.Before(time.Now().Add(4 * time.Minute)) {
			t.Errorf("%s endsAt %v: want about now+5m", am.name, a.EndsAt)
		}
		if a.GeneratorURL != "http://sensor.test:8080/api/v1/alerts/r1" {
			t.Errorf("%s generatorURL %q", am.name, a.GeneratorURL)
		}
	}
	fp := am1.alerts(t, rule)[0].Fingerprint
	if fp2 := am2.alerts(t, rule)[0].Fingerprint; fp != fp2 {
		t.Errorf("fingerprints differ across the cluster: %s %s", fp, fp2)
	}

	// The same alert again: still one alert in each (Alertmanager merges by fingerprint).
	d.Send(ntAMNote(u1, rule, "src_ip=10.0.0.5", "firing"))
	d.Send(ntAMNote(u2, rule, "src_ip=10.0.0.5", "firing"))
	ntWait(t, 5*time.Second, "4 sent", func() bool {
		n := uint64(0)
		for _, s := range d.Stats() {
			n += s.Sent
		}
		return n == 4
	})
	for _, am := range []*ntAlertmanager{am1, am2} {
		if n := len(am.alerts(t, rule)); n != 1 {
			t.Errorf("%s holds %d alerts after a resend, want 1", am.name, n)
		}
	}

	// Resolved: it leaves the active list of both.
	d.Send(ntAMNote(u1, rule, "src_ip=10.0.0.5", "resolved"))
	d.Send(ntAMNote(u2, rule, "src_ip=10.0.0.5", "resolved"))
	for _, am := range []*ntAlertmanager{am1, am2} {
		ntWait(t, 10*time.Second, am.name+" dropping the resolved alert", func() bool { return len(am.alerts(t, rule)) == 0 })
	}

	// One Alertmanager killed: the alert still arrives at the other; the dead one's channel
	// retries and fails, and delays nothing.
	am2.kill()
	start := time.Now()
	d.Send(ntAMNote(u2, rule, "src_ip=10.0.0.66", "firing"))
	d.Send(ntAMNote(u1, rule, "src_ip=10.0.0.66", "firing"))
	ntWait(t, 5*time.Second, "am1 holding the alert with am2 dead", func() bool {
		got := am1.alerts(t, rule)
		return len(got) == 1 && got[0].Labels["src_ip"] == "10.0.0.66"
	})
	t.Logf("with am2 dead, am1 held the alert %v after Send", time.Since(start))
	ntWait(t, 5*time.Second, "am2's channel to give up", func() bool { return ntStats(t, d, u2).Failed == 1 })
	if s := ntStats(t, d, u2); s.Retried != 3 || s.Sent != 3 {
		t.Errorf("dead am2 channel stats %+v: want sent 3 (before), retried 3, failed 1", s)
	}

	// The description's v1 URL, rewritten to v2 (Alertmanager 0.27 removed v1) with one warning.
	v1 := "http://" + am1.web + "/api/v1/alerts"
	d.Send(ntAMNote(v1, "v1 rule", "", "firing"))
	d.Send(ntAMNote(v1, "v1 rule", "", "firing"))
	ntWait(t, 5*time.Second, "the v1-URL alert in am1's v2 list", func() bool { return len(am1.alerts(t, "v1 rule")) == 1 })
	if n := strings.Count(logs.String(), "/api/v1/alerts; posting to /api/v2/alerts"); n != 1 {
		t.Errorf("%d v1 rewrite warnings, want 1:\n%s", n, logs.String())
	}
}

// TestAlertmanagerV1Rewrite: the request for a v1 URL goes to /api/v2/alerts (the Debian
// Alertmanager 0.25 still answers v1, so the path is checked here), with the postable body.
func TestAlertmanagerV1Rewrite(t *testing.T) {
	type req struct {
		path string
		body []byte
	}
	ch := make(chan req, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- req{r.URL.Path + "?" + r.URL.RawQuery, b}
	}))
	t.Cleanup(srv.Close)
	d := NewDispatcher(NotifyOptions{Timeout: time.Second})
	ntClose(t, d)
	d.Send(ntAMNote(srv.URL+"/am/api/v1/alerts/?x=1", "r", "", "resolved"))
	var r req
	select {
	case r = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing posted")
	}
	if r.path != "/am/api/v2/alerts?x=1" {
		t.Errorf("posted to %q", r.path)
	}
	var body []map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 1 {
		t.Fatalf("body %s: %v", r.body, err)
	}
	for k, want := range map[string]any{"startsAt": "2026-12-03T14:00:00Z", "endsAt": "2026-12-03T14:01:00Z"} {
		if body[0][k] != want {
			t.Errorf("%s = %v, want %v", k, body[0][k], want)
		}
	}
	for k := range body[0] {
		switch k {
		case "labels", "annotations", "startsAt", "endsAt", "generatorURL":
		default:
			t.Errorf("field %q is not in Alertmanager's postableAlert", k)
		}
	}
}

func TestAlertmanagerURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://am:9093":                   "http://am:9093/api/v2/alerts",
		"http://am:9093/":                  "http://am:9093/api/v2/alerts",
		"http://am:9093/api/v2/alerts":     "http://am:9093/api/v2/alerts",
		"http://am:9093/api/v1/alerts":     "http://am:9093/api/v2/alerts",
		"http://am:9093/sub/api/v1/alerts": "http://am:9093/sub/api/v2/alerts",
	} {
		if got, _ := alertmanagerURL(in); got != want {
			t.Errorf("alertmanagerURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzAlertmanagerURL(f *testing.F) {
	for _, s := range []string{"http://am:9093", "http://am/api/v1/alerts?a=b", "/api/v2/alerts/", "?", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, rewritten := alertmanagerURL(raw)
		base, _, _ := strings.Cut(u, "?")
		if !strings.HasSuffix(base, "/api/v2/alerts") {
			t.Fatalf("%q -> %q: not a v2 alerts URL", raw, u)
		}
		if rewritten != strings.HasSuffix(strings.TrimRight(strings.SplitN(raw, "?", 2)[0], "/"), "/api/v1/alerts") {
			t.Fatalf("%q: rewritten %v", raw, rewritten)
		}
	})
}

// TestAlertmanagerClusterNotifiesOnce: the reason to post to every Alertmanager of a
// cluster. Both get the alert, and their webhook receiver is notified once: the cluster's
// notification log dedupes. The real Alertmanager's webhook body is also the oracle for ours:
// every field we send exists in its payload with the same JSON type.
func TestAlertmanagerClusterNotifiesOnce(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: false
`, hook.URL+"/am")
	am1, am2 := ntStartCluster(t, cfg)
	d := NewDispatcher(NotifyOptions{Timeout: 2 * time.Second})
	ntClose(t, d)
	const rule = "dedupe rule"
	d.Send(ntAMNote("http://"+am1.web, rule, "src_ip=10.0.0.5", "firing"))
	d.Send(ntAMNote("http://"+am2.web, rule, "src_ip=10.0.0.5", "firing"))
	start := time.Now()
	ntWait(t, 30*time.Second, "a webhook notification from the cluster", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(bodies) > 0
	})
	t.Logf("the cluster notified %v after the Sends", time.Since(start))
	// am2, second in the peer order, waits peer-timeout (1 s) and finds am1's entry in the
	// gossiped notification log. Wait well past that.
	time.Sleep(4 * time.Second)
	mu.Lock()
	n := len(bodies)
	amBody := bodies[0]
	mu.Unlock()
	if n != 1 {
		t.Errorf("the cluster notified the webhook %d times, want 1", n)
	}
	for _, am := range []*ntAlertmanager{am1, am2} {
		if got := am.alerts(t, rule); len(got) != 1 {
			t.Errorf("%s holds %d alerts, want 1 (else the single notification proves nothing)", am.name, len(got))
		}
	}

	var am map[string]any
	if err := json.Unmarshal(amBody, &am); err != nil {
		t.Fatal(err)
	}
	ourBody, err := json.Marshal(NewWebhookMessage(ntAMNote("", rule, "src_ip=10.0.0.5", "firing"), "http://x"))
	if err != nil {
		t.Fatal(err)
	}
	var ours map[string]any
	if err := json.Unmarshal(ourBody, &ours); err != nil {
		t.Fatal(err)
	}
	ntSameTypes(t, "", ours, am)
	if am["version"] != "4" || ours["version"] != "4" {
		t.Errorf("versions: alertmanager %v, ours %v", am["version"], ours["version"])
	}
}

// ntSameTypes checks that every field of ours is in theirs with the same JSON type (objects and
// the first element of arrays recursively; label and annotation maps are not compared by key).
func ntSameTypes(t *testing.T, path string, ours, theirs map[string]any) {
	t.Helper()
	for k, v := range ours {
		w, ok := theirs[k]
		if !ok {
			t.Errorf("%s%s: not in Alertmanager's webhook payload", path, k)
			continue
		}
		if fmt.Sprintf("%T", v) != fmt.Sprintf("%T", w) {
			t.Errorf("%s%s: ours %T, Alertmanager's %T", path, k, v, w)
			continue
		}
		switch k {
		case "labels", "annotations", "groupLabels", "commonLabels", "commonAnnotations":
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			ntSameTypes(t, path+k+".", v, w.(map[string]any))
		case []any:
			wa := w.([]any)
			if len(v) > 0 && len(wa) > 0 {
				vo, ok1 := v[0].(map[string]any)
				wo, ok2 := wa[0].(map[string]any)
				if ok1 && ok2 {
					ntSameTypes(t, path+k+"[0].", vo, wo)
				}
			}
		}
	}
}
