package sensor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/store"
)

// edgeText is exposition text /metrics does not write today but could:
// escapes, an empty label value (Prometheus drops the label), labels out
// of order, NaN, infinities, a uint64 counter past 2^53, negative zero.
const edgeText = `# HELP netsentry_test_edge Edge cases.
# TYPE netsentry_test_edge gauge
netsentry_test_edge{a="quote\"back\\slash\nnl",b=""} NaN
netsentry_test_edge{a="inf"} +Inf
netsentry_test_edge{a="neg"} -Inf
netsentry_test_edge{a="big"} 18446744073709551615
netsentry_test_edge{a="small"} 5e-324
netsentry_test_edge{z="1",a="order"} -0
netsentry_test_plain 42
`

type fakeHost struct{}

func (fakeHost) HostMetrics() (map[string]any, map[string]float64, error) {
	return map[string]any{}, map[string]float64{"cpu.usage": 12.5, "cpu.load_avg_1m": 0.25,
		"memory.total_bytes": 8 << 30, "memory.used_bytes": 3 << 30, "disk.io_utilization_percent": 3.3}, nil
}

type fixedConfig struct{}

func (fixedConfig) Config() configs.Config { return configs.Default() }
func (fixedConfig) Replace(configs.Config) (httpd.ApplyResult, error) {
	return httpd.ApplyResult{}, nil
}

// metricsText is what /metrics of an API server over s serves, request
// counters aside, followed by edgeText.
func metricsText(t *testing.T, s *Sensor) []byte {
	t.Helper()
	api, err := httpd.New(httpd.Options{Listen: "127.0.0.1:0", Sensor: s, Config: fixedConfig{}, Host: fakeHost{},
		Version: "v-test", GoVersion: "go-test", Protocols: []string{"HTTP", "DNS", "TLS"}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	api.WriteMetrics(&b)
	if !bytes.Contains(b.Bytes(), []byte("netsentry_node_cpu_usage_ratio 0.125")) ||
		!bytes.Contains(b.Bytes(), []byte(`netsentry_protocol_flows_total{protocol="http",guessed="false"} 0`)) {
		t.Fatalf("WriteMetrics lacks the host or protocol families:\n%s", b.Bytes())
	}
	b.WriteString(edgeText)
	return b.Bytes()
}

// TestParseSamplesLikePrometheus: the samples a tick stores are those a
// real Prometheus server stores when it scrapes the same text (the Debian
// prometheus binary, on loopback), label for label and bit for bit, its
// own job and instance labels and synthetic series aside.
func TestParseSamplesLikePrometheus(t *testing.T) {
	s, _ := newTestSensor(t, nil)
	text := metricsText(t, s)
	got, err := ParseSamples(text, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := prometheusScrape(t, text)
	key := func(x store.Sample) string {
		var b strings.Builder
		b.WriteString(x.Name)
		for _, l := range x.Labels {
			fmt.Fprintf(&b, ",%s=%q", l.Name, l.Value)
		}
		return b.String()
	}
	gm := map[string]float64{}
	for _, x := range got {
		if !slices.IsSortedFunc(x.Labels, func(a, b store.Label) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("labels not sorted: %s", key(x))
		}
		gm[key(x)] = x.Value
	}
	if len(gm) != len(got) {
		t.Errorf("%d samples, %d distinct series", len(got), len(gm))
	}
	for k, wv := range want {
		gv, ok := gm[k]
		switch {
		case !ok:
			t.Errorf("Prometheus stored %s = %v; we have no such series", k, wv)
		case math.Float64bits(gv) != math.Float64bits(wv) && !(math.IsNaN(gv) && math.IsNaN(wv)):
			t.Errorf("%s: we have %v, Prometheus %v", k, gv, wv)
		}
	}
	for k := range gm {
		if _, ok := want[k]; !ok {
			t.Errorf("we store %s, Prometheus does not", k)
		}
	}
	if len(want) < 60 {
		t.Errorf("only %d series compared", len(want))
	}
}

func TestParseSamplesRefusesGarbage(t *testing.T) {
	for _, text := range []string{"netsentry_x{a=\"b\" 1\n", "netsentry_x 1 1700000000000\n", "{} 1\n", "netsentry_x abc\n"} {
		if _, err := ParseSamples([]byte(text), nil); err == nil {
			t.Errorf("ParseSamples(%q) accepted it", text)
		}
	}
}

func FuzzParseSamples(f *testing.F) {
	f.Add([]byte(edgeText))
	f.Add([]byte("# TYPE x counter\nx_total{a=\"1\"} 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := ParseSamples(b, nil)
		if err != nil {
			return
		}
		for _, s := range out {
			if s.Name == "" {
				t.Fatalf("a sample without a name from %q", b)
			}
		}
	})
}

type memAppender struct {
	ts []time.Time
	n  []int
}

func (m *memAppender) Append(ts time.Time, s []store.Sample) error {
	m.ts = append(m.ts, ts)
	m.n = append(m.n, len(s))
	return nil
}

// TestRecorderTicks: a tick is stored at its aligned time, every sample of
// the text in it.
func TestRecorderTicks(t *testing.T) {
	s, _ := newTestSensor(t, nil)
	api, err := httpd.New(httpd.Options{Listen: "127.0.0.1:0", Sensor: s, Config: fixedConfig{}, Host: fakeHost{}})
	if err != nil {
		t.Fatal(err)
	}
	var m memAppender
	r, err := NewRecorder(RecorderOptions{Metrics: api, Store: &m, Interval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 15, 0, 7, 300, time.UTC)
	if err := r.Tick(at); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	api.WriteMetrics(&b)
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	if len(m.ts) != 1 || !m.ts[0].Equal(time.Date(2026, 12, 3, 15, 0, 5, 0, time.UTC)) || m.n[0] != n {
		t.Errorf("stored %v with %v samples; want one tick at 15:00:05 with %d", m.ts, m.n, n)
	}
}

type failAppender struct{}

func (failAppender) Append(time.Time, []store.Sample) error { return errors.New("disk full") }

// TestRecorderRemote: the remote queue gets the same tick as the local
// store, also when the local store fails, and alone with storage.local
// false.
func TestRecorderRemote(t *testing.T) {
	s, _ := newTestSensor(t, nil)
	api, err := httpd.New(httpd.Options{Listen: "127.0.0.1:0", Sensor: s, Config: fixedConfig{}, Host: fakeHost{}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 15, 0, 7, 300, time.UTC)
	var local, rem memAppender
	r, err := NewRecorder(RecorderOptions{Metrics: api, Store: &local, Remote: &rem, Interval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tick(at); err != nil {
		t.Fatal(err)
	}
	if len(rem.ts) != 1 || !rem.ts[0].Equal(local.ts[0]) || rem.n[0] != local.n[0] || rem.n[0] == 0 {
		t.Errorf("remote got %v %v, local %v %v", rem.ts, rem.n, local.ts, local.n)
	}
	var rem2 memAppender
	r, _ = NewRecorder(RecorderOptions{Metrics: api, Store: failAppender{}, Remote: &rem2, Interval: 5 * time.Second})
	if err := r.Tick(at); err == nil || !strings.Contains(err.Error(), "disk full") || len(rem2.ts) != 1 {
		t.Errorf("local store failing: %v, remote got %d ticks", err, len(rem2.ts))
	}
	var rem3 memAppender
	r, err = NewRecorder(RecorderOptions{Metrics: api, Remote: &rem3, Interval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tick(at); err != nil || len(rem3.ts) != 1 {
		t.Errorf("remote alone: %v, %d ticks", err, len(rem3.ts))
	}
	if _, err := NewRecorder(RecorderOptions{Metrics: api, Interval: time.Second}); err == nil {
		t.Error("a recorder with neither store nor remote was made")
	}
}

// prometheusScrape has a real Prometheus scrape text once and returns what
// it stored: series key (name, then labels but job and instance, sorted)
// to value.
func prometheusScrape(t *testing.T, text []byte) map[string]float64 {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not installed (Debian package prometheus; make deps): %v", err)
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", metricsContentType)
		w.Write(text)
	}))
	defer target.Close()
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: edge\n    static_configs:\n      - targets: [%q]\n",
		strings.TrimPrefix(target.URL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:"+port, "--log.level=warn")
	var logs bytes.Buffer
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
	q := "http://127.0.0.1:" + port + "/api/v1/query?query=" + url.QueryEscape(`{job="edge",__name__=~"netsentry_.+"}`)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		resp, err := http.Get(q)
		if err != nil {
			continue
		}
		var out struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || out.Status != "success" || len(out.Data.Result) == 0 {
			continue
		}
		m := map[string]float64{}
		for _, r := range out.Data.Result {
			var names []string
			for n := range r.Metric {
				if n != "__name__" && n != "job" && n != "instance" {
					names = append(names, n)
				}
			}
			slices.Sort(names)
			var b strings.Builder
			b.WriteString(r.Metric["__name__"])
			for _, n := range names {
				fmt.Fprintf(&b, ",%s=%q", n, r.Metric[n])
			}
			v, err := strconv.ParseFloat(r.Value[1].(string), 64)
			if err != nil {
				t.Fatalf("Prometheus value %v: %v", r.Value, err)
			}
			m[b.String()] = v
		}
		return m
	}
	t.Fatalf("Prometheus did not scrape within 30 s; its log:\n%s", logs.String())
	return nil
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
