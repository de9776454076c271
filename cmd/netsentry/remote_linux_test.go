package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsentry/netsentry/store"
	"github.com/netsentry/netsentry/store/remote"
)

func remoteFreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Two sensors (two daemons, each with its own store and sensor_name)
// ship their metrics to one VictoriaMetrics, which is stopped for a while;
// both daemons are restarted while it is down. The series are kept apart
// by the sensor label, a sum() across them counts both, and each sensor's
// series in VictoriaMetrics are exactly the points of its own local store.
func TestTwoSensorsOneVictoriaMetrics(t *testing.T) {
	bin := buildBinary(t)
	if _, err := exec.LookPath("victoria-metrics"); err != nil {
		t.Fatalf("victoria-metrics not installed (make deps installs it): %v", err)
	}
	vmPort := remoteFreePort(t)
	vmURL := "http://127.0.0.1:" + vmPort
	vmDir := t.TempDir()
	var vm *exec.Cmd
	startVM := func() {
		vm = exec.Command("victoria-metrics", "-storageDataPath="+vmDir, "-httpListenAddr=127.0.0.1:"+vmPort,
			"-retentionPeriod=100y", "-loggerLevel=ERROR", "-search.latencyOffset=0s", "-search.disableCache", "-dedup.minScrapeInterval=1ms")
		vm.Stderr = os.Stderr
		if err := vm.Start(); err != nil {
			t.Fatal(err)
		}
		waitHTTP(t, vmURL+"/health")
	}
	stopVM := func() {
		vm.Process.Signal(syscall.SIGTERM)
		vm.Wait()
	}
	startVM()
	t.Cleanup(func() { vm.Process.Kill(); vm.Wait() })

	type sensorProc struct {
		name, dir, api, cfg string
		cmd                 *exec.Cmd
		stderr              strings.Builder
	}
	var sensors []*sensorProc
	rules := t.TempDir()
	for _, name := range []string{"tap-a", "tap-b"} {
		s := &sensorProc{name: name, dir: t.TempDir(), api: remoteFreePort(t), cfg: filepath.Join(t.TempDir(), "netsentry.yaml")}
		cfg := s.cfg
		text := fmt.Sprintf(`enable_packet_capture: false
enable_web: false
api_port: %s
performance: {memory_limit_mb: 64}
alerts: {config_path: %q}
storage:
  type: victoriametrics
  remote_url: %q
  sensor_name: %q
  local_path: %q
  interval: 1s
`, s.api, rules, vmURL, name, s.dir)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		sensors = append(sensors, s)
	}
	start := func() {
		for _, s := range sensors {
			s.stderr.Reset()
			s.cmd = exec.Command(bin, "--config", s.cfg)
			s.cmd.Stdout, s.cmd.Stderr = io.Discard, &s.stderr
			if err := s.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmd := s.cmd
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		}
		for _, s := range sensors {
			waitHTTP(t, "http://127.0.0.1:"+s.api+"/healthz")
		}
	}
	stop := func(limit time.Duration) {
		for _, s := range sensors {
			s.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, s := range sensors {
			start := time.Now()
			if err := s.cmd.Wait(); err != nil {
				t.Fatalf("%s: exit: %v\n%s", s.name, err, s.stderr.String())
			}
			if d := time.Since(start); d > limit {
				t.Errorf("%s took %s to stop", s.name, d)
			}
			t.Logf("%s stopped in %s", s.name, time.Since(start).Round(time.Millisecond))
		}
	}
	start()
	time.Sleep(4 * time.Second)
	// VictoriaMetrics goes down; the sensors queue, are restarted while it
	// is down (a stop that does not wait for it), and send the queue once
	// it is back.
	stopVM()
	time.Sleep(4 * time.Second)
	stop(4 * time.Second)
	start()
	for _, s := range sensors {
		if !strings.Contains(s.stderr.String(), "samples queued from before the restart") {
			t.Errorf("%s: the restart found no queue:\n%s", s.name, s.stderr.String())
		}
	}
	time.Sleep(2 * time.Second)
	startVM()
	time.Sleep(4 * time.Second)
	// /metrics counts what was sent.
	for _, s := range sensors {
		resp, err := http.Get("http://127.0.0.1:" + s.api + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `netsentry_remote_samples_sent_total{backend="victoriametrics"} `) ||
			strings.Contains(string(b), `netsentry_remote_samples_sent_total{backend="victoriametrics"} 0`+"\n") {
			t.Errorf("%s: /metrics has no samples sent:\n%s", s.name, grepLines(string(b), "netsentry_remote_"))
		}
	}
	stop(5 * time.Second)

	// Each sensor's local store is the oracle. A tick its final flush did
	// not send is still queued: a writer on the same store sends it (as
	// the next start would).
	for _, s := range sensors {
		st, err := store.Open(s.dir, store.Options{Interval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		w, err := remote.Open(st.DB(), remote.Options{Backend: remote.VictoriaMetrics, URL: vmURL, Sensor: s.name})
		if err != nil {
			t.Fatal(err)
		}
		left := w.Stats().Queued
		for end := time.Now().Add(20 * time.Second); w.Stats().Queued > 0 && time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
		}
		w.Close()
		if q := w.Stats().Queued; q > 0 {
			t.Fatalf("%s: %d samples still queued", s.name, q)
		}
		t.Logf("%s: %d samples were left in the queue at exit", s.name, left)
		local := localPoints(t, st)
		st.Close()
		var got map[string][]store.Point
		for end := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			got = vmExport(t, vmURL, s.name)
			if samePointCounts(local, got) || time.Now().After(end) {
				break
			}
		}
		n := 0
		for k, lp := range local {
			rp := got[k]
			n += len(lp)
			if len(rp) != len(lp) {
				t.Errorf("%s: %s: %d points in VictoriaMetrics, %d in the local store", s.name, k, len(rp), len(lp))
				continue
			}
			for i := range lp {
				if lp[i].T != rp[i].T || math.Abs(lp[i].V-rp[i].V) > 1e-11*math.Abs(lp[i].V) {
					t.Errorf("%s: %s point %d: %v in VictoriaMetrics, %v in the local store", s.name, k, i, rp[i], lp[i])
					break
				}
			}
		}
		for k := range got {
			if _, ok := local[k]; !ok {
				t.Errorf("%s: %s in VictoriaMetrics only", s.name, k)
			}
		}
		t.Logf("%s: %d series, %d points in VictoriaMetrics equal to its local store", s.name, len(local), n)
	}

	// Kept apart, and summed across.
	q := func(expr string) []struct {
		Metric map[string]string
		Value  [2]any
	} {
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		resp, err := http.Get(vmURL + "/api/v1/query?" + url.Values{"query": {expr}, "time": {strconv.FormatInt(time.Now().Unix(), 10)}, "nocache": {"1"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r.Data.Result
	}
	by := q(`count by (sensor) (last_over_time(netsentry_build_info[5m]))`)
	var names []string
	for _, r := range by {
		names = append(names, r.Metric["sensor"])
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"tap-a", "tap-b"}) {
		t.Errorf("sensors in VictoriaMetrics: %v, want [tap-a tap-b]", names)
	}
	sum := q(`sum(last_over_time(netsentry_build_info[5m]))`)
	if len(sum) != 1 || sum[0].Value[1] != "2" {
		t.Errorf("sum(netsentry_build_info) across sensors = %v, want 2", sum)
	}
	per := q(`sum by (sensor) (last_over_time(netsentry_remote_queue_capacity_bytes[5m]))`)
	if len(per) != 2 {
		t.Errorf("sum by (sensor) of the queue capacity: %v, want one per sensor", per)
	}
}

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("%s did not answer within 30 s", u)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func seriesName(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(name)
	for _, k := range keys {
		b.WriteString("," + k + "=" + labels[k])
	}
	return b.String()
}

func localPoints(t *testing.T, st *store.Store) map[string][]store.Point {
	ss, err := st.Select([]store.Matcher{{Type: store.MatchRegexp, Name: store.MetricName, Value: ".+"}}, math.MinInt64/2, math.MaxInt64/2)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]store.Point{}
	for _, s := range ss {
		ps, err := st.Points(s.Ref, math.MinInt64/2, math.MaxInt64/2, nil)
		if err != nil {
			t.Fatal(err)
		}
		ls := map[string]string{}
		for _, l := range s.Labels {
			ls[l.Name] = l.Value
		}
		out[seriesName(s.Name, ls)] = ps
	}
	return out
}

func vmExport(t *testing.T, base, sensor string) map[string][]store.Point {
	resp, err := http.Get(base + "/api/v1/export?" + url.Values{"match[]": {fmt.Sprintf(`{sensor=%q}`, sensor)}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string][]store.Point{}
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
		k := seriesName(name, line.Metric)
		for i := range line.Values {
			out[k] = append(out[k], store.Point{T: line.Timestamps[i], V: line.Values[i]})
		}
		slices.SortFunc(out[k], func(a, b store.Point) int { return int(a.T - b.T) })
	}
	return out
}

func samePointCounts(a, b map[string][]store.Point) bool {
	if len(a) != len(b) {
		return false
	}
	for k, p := range a {
		if len(p) != len(b[k]) {
			return false
		}
	}
	return true
}
