package remote

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real backends, from Debian's packages, started by the tests on
// loopback on free ports, in a directory of the test's; stop and start
// again keep the data (an outage).

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// server is one backend process that the test can stop and start again.
type server struct {
	t     *testing.T
	name  string
	args  []string
	base  string // http://127.0.0.1:port
	ready string // path answering 2xx once it serves
	cmd   *exec.Cmd
	log   *os.File
}

func (s *server) start() {
	s.t.Helper()
	if _, err := exec.LookPath(s.name); err != nil {
		s.t.Fatalf("%s not installed (make deps installs it): %v", s.name, err)
	}
	s.cmd = exec.Command(s.name, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(s.base + s.ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return
			}
		}
		if time.Now().After(end) {
			s.t.Fatalf("%s at %s not ready after 60 s (log %s)", s.name, s.base, s.log.Name())
		}
	}
}

// stop ends the server cleanly (SIGTERM), so that it keeps what it took.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func newServer(t *testing.T, name, port, ready string, args ...string) *server {
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, name: name, args: args, base: "http://127.0.0.1:" + port, ready: ready, log: log}
	t.Cleanup(func() { s.stop(); log.Close() })
	return s
}

func startPrometheus(t *testing.T) *server {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := newServer(t, "prometheus", port, "/-/ready", "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+port, "--web.enable-remote-write-receiver", "--log.level=warn")
	s.start()
	return s
}

func startVictoriaMetrics(t *testing.T) *server {
	port := freePort(t)
	// dedup.minScrapeInterval: a request that timed out after the server
	// took it is sent again; one sample per series and millisecond stays.
	s := newServer(t, "victoria-metrics", port, "/health", "-storageDataPath="+t.TempDir(), "-httpListenAddr=127.0.0.1:"+port,
		"-retentionPeriod=100y", "-loggerLevel=ERROR", "-search.latencyOffset=0s", "-search.disableCache", "-dedup.minScrapeInterval=1ms")
	s.start()
	return s
}

func startInfluxDB(t *testing.T, dbs ...string) *server {
	dir := t.TempDir()
	port, rpc := freePort(t), freePort(t)
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%s"
[meta]
  dir = "%s/meta"
[data]
  dir = "%s/data"
  wal-dir = "%s/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:%s"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`, rpc, dir, dir, dir, port)
	cfg := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, "influxd", port, "/ping", "-config", cfg)
	s.start()
	for _, db := range dbs {
		resp, err := http.PostForm(s.base+"/query", url.Values{"q": {"CREATE DATABASE " + db}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), `"error"`) {
			t.Fatalf("create database %s: %s %s", db, resp.Status, b)
		}
	}
	return s
}

// series is one series as a backend returned it: its labels but sensor,
// and its points.
type pt struct {
	t int64
	v float64
}

// key is the series' name and sorted labels, as seriesKey writes it for
// the local store's series.
func labelKey(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		b.WriteString("," + k + "=" + labels[k])
	}
	return b.String()
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", u, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %.300s", u, err, b)
	}
}

// promSeries reads every series of sensor back from Prometheus with a
// range selector (raw samples, not evaluated steps).
func promSeries(t *testing.T, base, sensor string, end time.Time, span time.Duration) map[string][]pt {
	q := fmt.Sprintf(`{sensor=%q}[%ds]`, sensor, int(span.Seconds())+1)
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Values [][2]any
			}
		}
	}
	getJSON(t, base+"/api/v1/query?"+url.Values{"query": {q}, "time": {strconv.FormatInt(end.Unix(), 10)}}.Encode(), &r)
	out := map[string][]pt{}
	for _, s := range r.Data.Result {
		name := s.Metric["__name__"]
		delete(s.Metric, "__name__")
		if s.Metric["sensor"] != sensor {
			t.Fatalf("prometheus: series %v without sensor=%q", s.Metric, sensor)
		}
		delete(s.Metric, "sensor")
		k := labelKey(name, s.Metric)
		for _, v := range s.Values {
			sec := v[0].(float64)
			f, err := strconv.ParseFloat(v[1].(string), 64)
			if err != nil {
				t.Fatal(err)
			}
			out[k] = append(out[k], pt{int64(sec*1000 + 0.5), f})
		}
	}
	return out
}

// vmSeries reads every series of sensor back from VictoriaMetrics'
// export API (raw samples).
func vmSeries(t *testing.T, base, sensor string) map[string][]pt {
	resp, err := http.Get(base + "/api/v1/export?" + url.Values{"match[]": {fmt.Sprintf(`{sensor=%q}`, sensor)}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("victoriametrics export: %s %s", resp.Status, b)
	}
	out := map[string][]pt{}
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct {
			Metric     map[string]string
			Values     []float64
			Timestamps []int64
		}
		if err := dec.Decode(&line); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		name := line.Metric["__name__"]
		delete(line.Metric, "__name__")
		delete(line.Metric, "sensor")
		k := labelKey(name, line.Metric)
		for i := range line.Values {
			out[k] = append(out[k], pt{line.Timestamps[i], line.Values[i]})
		}
	}
	for k := range out {
		sortPoints(out[k])
	}
	return out
}

// influxSeries reads every series of sensor back from InfluxDB with
// InfluxQL.
func influxSeries(t *testing.T, base, db, sensor string) map[string][]pt {
	q := fmt.Sprintf(`SELECT "value" FROM /.*/ WHERE "sensor" = '%s' GROUP BY *`, sensor)
	var r struct {
		Results []struct {
			Error  string
			Series []struct {
				Name    string
				Tags    map[string]string
				Columns []string
				Values  [][2]json.Number
			}
		}
	}
	getJSON(t, base+"/query?"+url.Values{"db": {db}, "q": {q}, "epoch": {"ms"}}.Encode(), &r)
	out := map[string][]pt{}
	for _, res := range r.Results {
		if res.Error != "" {
			t.Fatalf("influxql: %s", res.Error)
		}
		for _, s := range res.Series {
			tags := map[string]string{}
			for k, v := range s.Tags {
				if v != "" && k != "sensor" {
					tags[k] = v
				}
			}
			k := labelKey(s.Name, tags)
			for _, v := range s.Values {
				ts, err1 := v[0].Int64()
				f, err2 := v[1].Float64()
				if err1 != nil || err2 != nil {
					t.Fatalf("influxql value %v", v)
				}
				out[k] = append(out[k], pt{ts, f})
			}
		}
	}
	return out
}
