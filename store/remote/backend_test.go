package remote

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/netsentry/netsentry/store"
)

func sortStrings(s []string) { slices.Sort(s) }
func sortPoints(p []pt)      { slices.SortFunc(p, func(a, b pt) int { return int(a.t - b.t) }) }

// genTick is the samples of tick i, shaped like the sensor's /metrics:
// counters per queue and per CPU and mode, gauges with fractions, a big
// integer, and label values that the line protocol must escape.
func genTick(i int) []store.Sample {
	var out []store.Sample
	for q := range 4 {
		out = append(out, store.Sample{Name: "netsentry_engine_packets_total",
			Labels: []store.Label{{Name: "queue", Value: fmt.Sprint(q)}}, Value: float64(i*1000 + q*7)})
	}
	for cpu := range 8 {
		for _, mode := range []string{"idle", "system", "user"} {
			out = append(out, store.Sample{Name: "netsentry_host_cpu_seconds_total",
				Labels: []store.Label{{Name: "cpu", Value: fmt.Sprint(cpu)}, {Name: "mode", Value: mode}},
				Value:  float64(i)*0.37 + float64(cpu)})
		}
	}
	out = append(out,
		store.Sample{Name: "netsentry_test_gauge", Labels: []store.Label{{Name: "kind", Value: "a b,c=d"}, {Name: "zone", Value: "zürich"}},
			Value: math.Round(math.Sin(float64(i))*1e6) / 1e3},
		store.Sample{Name: "netsentry_test_ratio", Value: float64(i) / 3},
		store.Sample{Name: "netsentry_test_big", Value: 1e15 + float64(i)},
		store.Sample{Name: "netsentry_up", Value: 1},
	)
	return out
}

// sensorRun is one sensor's side of a backend test: its local store and
// the remote writer, ticking once a second with real timestamps.
type sensorRun struct {
	t      *testing.T
	dir    string
	opt    Options
	st     *store.Store
	w      *Writer
	n      int // ticks appended
	sent   uint64
	first  int64
	last   int64
	nsampl uint64
}

func newSensorRun(t *testing.T, opt Options) *sensorRun {
	r := &sensorRun{t: t, dir: t.TempDir(), opt: opt}
	r.open()
	t.Cleanup(r.close)
	return r
}

func (r *sensorRun) open() {
	var err error
	if r.st, err = store.Open(r.dir, store.Options{Interval: time.Second}); err != nil {
		r.t.Fatal(err)
	}
	if r.w, err = Open(r.st.DB(), r.opt); err != nil {
		r.t.Fatal(err)
	}
}

func (r *sensorRun) close() {
	if r.w == nil {
		return
	}
	if err := r.w.Close(); err != nil {
		r.t.Error(err)
	}
	r.sent += r.w.Stats().Sent
	r.w = nil
	if err := r.st.Close(); err != nil {
		r.t.Error(err)
	}
}

// restart closes and opens the sensor's store and writer, as a restart
// of the daemon does.
func (r *sensorRun) restart() {
	before := r.w.Stats()
	start := time.Now()
	r.close()
	if d := time.Since(start); d > 3*time.Second {
		r.t.Errorf("closing the writer took %s with the backend down", d)
	}
	r.open()
	after := r.w.Stats()
	if after.Queued != before.Queued || after.QueuedBytes != before.QueuedBytes || after.Queued == 0 {
		r.t.Fatalf("restart: queued %d samples (%d bytes) before, %d (%d bytes) after", before.Queued, before.QueuedBytes, after.Queued, after.QueuedBytes)
	}
}

// tickFor appends a tick at every second boundary for d.
func (r *sensorRun) tickFor(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		now := time.Now()
		next := now.Truncate(time.Second).Add(time.Second)
		time.Sleep(next.Sub(now))
		s := genTick(r.n)
		if err := r.st.Append(next, s); err != nil {
			r.t.Fatal(err)
		}
		start := time.Now()
		if err := r.w.Append(next, s); err != nil {
			r.t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			r.t.Errorf("queueing a tick took %s", d)
		}
		if r.n == 0 {
			r.first = next.UnixMilli()
		}
		r.last = next.UnixMilli()
		r.n++
		r.nsampl += uint64(len(s))
	}
}

// drain waits until the queue is empty.
func (r *sensorRun) drain(limit time.Duration) {
	for end := time.Now().Add(limit); r.w.Stats().Queued > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			r.t.Fatalf("queue not drained after %s: %+v", limit, r.w.Stats())
		}
	}
}

// local is every series of the local store with its points.
func (r *sensorRun) local() map[string][]pt {
	ss, err := r.st.Select([]store.Matcher{{Type: store.MatchRegexp, Name: store.MetricName, Value: ".+"}}, r.first, r.last)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string][]pt{}
	for _, s := range ss {
		ps, err := r.st.Points(s.Ref, r.first, r.last, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		ls := map[string]string{}
		for _, l := range s.Labels {
			ls[l.Name] = l.Value
		}
		k := labelKey(s.Name, ls)
		for _, p := range ps {
			out[k] = append(out[k], pt{p.T, p.V})
		}
	}
	return out
}

// compare checks that the backend holds exactly the local store's series
// and points.
// VictoriaMetrics keeps about 12 significant decimal digits of a float
// (its decimal mantissa); the others keep the float64 exactly.
func compare(t *testing.T, backend string, local, remote map[string][]pt) {
	t.Helper()
	if len(local) == 0 {
		t.Fatal("local store empty")
	}
	total := 0
	for k, lp := range local {
		rp := remote[k]
		total += len(lp)
		if len(rp) != len(lp) {
			t.Errorf("%s: series %s: %d points, the local store has %d", backend, k, len(rp), len(lp))
			continue
		}
		for i := range lp {
			if !samePoint(backend, lp[i], rp[i]) {
				t.Errorf("%s: series %s point %d: %v, the local store has %v", backend, k, i, rp[i], lp[i])
				break
			}
		}
	}
	for k := range remote {
		if _, ok := local[k]; !ok {
			t.Errorf("%s: series %s is not in the local store", backend, k)
		}
	}
	t.Logf("%s: %d series, %d points equal to the local store's", backend, len(local), total)
}

// outageRun runs one sensor against srv: ticks with the backend up, the
// backend stopped for outage (the sensor restarted halfway when
// restartSensor), started again; the queue must drain and every sample
// must be in the backend.
func outageRun(t *testing.T, srv *server, opt Options, outage time.Duration, restartSensor bool, read func(r *sensorRun) map[string][]pt) {
	r := newSensorRun(t, opt)
	r.tickFor(3 * time.Second)
	r.drain(10 * time.Second)
	srv.stop()
	down := time.Now()
	r.tickFor(outage / 2)
	if restartSensor {
		r.restart()
	}
	r.tickFor(outage - time.Since(down))
	st := r.w.Stats()
	if st.Queued == 0 || st.Retried == 0 {
		t.Fatalf("backend down for %s, yet nothing queued or retried: %+v", time.Since(down).Round(time.Second), st)
	}
	t.Logf("backend down %s: %d samples queued in %d bytes, %d retried", time.Since(down).Round(time.Second), st.Queued, st.QueuedBytes, st.Retried)
	srv.start()
	up := time.Now()
	r.tickFor(2 * time.Second)
	r.drain(30 * time.Second)
	t.Logf("queue drained %s after the backend came back", time.Since(up).Round(100*time.Millisecond))
	st = r.w.Stats()
	if st.Dropped != 0 || st.Failed != 0 {
		t.Errorf("dropped %d, failed %d samples", st.Dropped, st.Failed)
	}
	if sent := r.sent + st.Sent; sent != r.nsampl {
		t.Errorf("sent %d samples, appended %d", sent, r.nsampl)
	}
	// A backend may take a moment before a sample it took is searchable.
	local := r.local()
	remote := read(r)
	for end := time.Now().Add(15 * time.Second); !sameCounts(local, remote) && time.Now().Before(end); {
		time.Sleep(500 * time.Millisecond)
		remote = read(r)
	}
	compare(t, opt.Backend, local, remote)
}

func sameCounts(a, b map[string][]pt) bool {
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

func samePoint(backend string, a, b pt) bool {
	if backend == VictoriaMetrics {
		return a.t == b.t && math.Abs(a.v-b.v) <= 1e-11*math.Abs(a.v)
	}
	return a == b
}

func testOptions(backend, url, sensor string) Options {
	return Options{Backend: backend, URL: url, Sensor: sensor, MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}
}

// Each backend is stopped mid-run and started again: no sample is lost,
// the queue drains. Each is down for a minute (15 s with -short);
// VictoriaMetrics and InfluxDB with a restart of the sensor while they are
// down. The three run at once.
func TestBackendOutage(t *testing.T) {
	outage := 60 * time.Second
	if testing.Short() {
		outage = 15 * time.Second
	}
	t.Run("prometheus", func(t *testing.T) {
		t.Parallel()
		srv := startPrometheus(t)
		sensor := "prom-sensor"
		outageRun(t, srv, testOptions(Prometheus, srv.base, sensor), outage, false, func(r *sensorRun) map[string][]pt {
			return promSeries(t, srv.base, sensor, time.UnixMilli(r.last), time.Duration(r.last-r.first+1000)*time.Millisecond)
		})
	})
	t.Run("victoriametrics", func(t *testing.T) {
		t.Parallel()
		srv := startVictoriaMetrics(t)
		sensor := "vm-sensor"
		outageRun(t, srv, testOptions(VictoriaMetrics, srv.base, sensor), outage, true, func(r *sensorRun) map[string][]pt {
			return vmSeries(t, srv.base, sensor)
		})
	})
	t.Run("influxdb", func(t *testing.T) {
		t.Parallel()
		srv := startInfluxDB(t, "netsentry")
		sensor := "influx-sensor"
		opt := testOptions(InfluxDB, srv.base, sensor)
		opt.InfluxDatabase = "netsentry"
		outageRun(t, srv, opt, outage, true, func(r *sensorRun) map[string][]pt {
			return influxSeries(t, srv.base, "netsentry", sensor)
		})
	})
}
