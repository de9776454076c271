package httpd_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMetricsLint: /metrics has HELP and TYPE for every family, passes
// `promtool check metrics`, and has no IP address or port as a label.
func TestMetricsLint(t *testing.T) {
	ts := newTestServer(t, "")
	ts.do("GET", "/api/v1/network/hosts", "", nil) // a request counter to show
	r := ts.do("GET", "/metrics", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.ct, "text/plain") {
		t.Fatalf("/metrics: %d %q", r.status, r.ct)
	}
	text := string(r.body)
	for _, want := range []string{
		`netsentry_build_info{version="test",goversion="go-test"} 1`,
		`netsentry_engine_packets_total{queue="0"} 751`,
		`netsentry_protocol_flows_total{protocol="http",guessed="false"} 8`, // tshark: 8 of 13 carry HTTP
		`netsentry_protocol_flows_total{protocol="http",guessed="true"} 5`,  // 5 carry no payload
		`netsentry_flows_active `,
		`netsentry_decode_errors_total{reason="truncated_tcp"} 0`,
		`netsentry_api_requests_total{route="/api/v1/network/hosts",method="GET",code="200"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	families := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		if f, ok := strings.CutPrefix(l, "# TYPE "); ok {
			families[strings.Fields(f)[0]] = true
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		name := l[:strings.IndexAny(l, "{ ")]
		if !families[name] {
			t.Errorf("sample without TYPE: %s", l)
		}
		if !strings.HasPrefix(name, "netsentry_") {
			t.Errorf("metric outside netsentry_: %s", l)
		}
	}
	if m := regexp.MustCompile(`="[^"]*(\d+\.\d+\.\d+\.\d+|:\d+)[^"]*"`).FindString(text); m != "" {
		t.Errorf("an address or port as a label value: %s", m)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; make deps)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestPrometheusScrape: a real Prometheus server on loopback scrapes
// /metrics, and a series comes back through its query API.
func TestPrometheusScrape(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus; make deps)")
	}
	if testing.Short() {
		t.Skip("starts a Prometheus server")
	}
	ts := newTestServer(t, "")
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: netsentry
    static_configs:
      - targets: ["%s"]
`, ts.srv.Addr().String())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:"+port,
		"--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	q := "http://127.0.0.1:" + port + "/api/v1/query?query=" + url.QueryEscape(`netsentry_engine_packets_total{job="netsentry",queue="0"}`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		resp, err := http.Get(q)
		if err != nil {
			continue
		}
		var out struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  []any             `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || out.Status != "success" || len(out.Data.Result) == 0 {
			continue
		}
		if v := out.Data.Result[0].Value; len(v) != 2 || v[1] != "751" {
			t.Errorf("Prometheus has %v, want 751 packets", v)
		}
		return
	}
	t.Fatalf("Prometheus did not scrape /metrics within 30 s; its log:\n%s", logs.String())
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
