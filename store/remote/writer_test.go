package remote

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/netsentry/netsentry/store"
)

func memDB(t *testing.T) (*pebble.DB, vfs.FS) {
	fs := vfs.NewMem()
	db, err := pebble.Open("q", &pebble.Options{FS: fs, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	return db, fs
}

// quiet is a pebble logger that says nothing.
type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(f string, a ...any) {
	panic(fmt.Sprintf(f, a...))
}

// deadURL is a loopback address nothing listens on.
func deadURL(t *testing.T) string {
	return "http://127.0.0.1:" + freePort(t)
}

// Past its bound the queue drops its oldest ticks, counts them, and
// keeps the newest; a restart keeps the same queue; once a backend
// (a real VictoriaMetrics) answers, exactly the kept ticks arrive.
func TestQueueBound(t *testing.T) {
	db, fs := memDB(t)
	opt := testOptions(VictoriaMetrics, deadURL(t), "bound")
	opt.QueueBytes = 4000
	w, err := Open(db, opt)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	const ticks = 60
	per := uint64(len(genTick(0)))
	for i := range ticks {
		if err := w.Append(base.Add(time.Duration(i)*time.Second), genTick(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A request in flight when the last tick came holds the trim back until
	// it ends (trimLocked): wait for that, a backoff at most.
	st := w.Stats()
	for deadline := time.Now().Add(5 * time.Second); (st.Dropped == 0 || st.QueuedBytes > opt.QueueBytes+2000) && time.Now().Before(deadline); st = w.Stats() {
		time.Sleep(20 * time.Millisecond)
	}
	if st.Dropped == 0 || st.QueuedBytes > opt.QueueBytes+2000 || st.Queued+st.Dropped != ticks*per {
		t.Fatalf("bound %d: %+v", opt.QueueBytes, st)
	}
	if st.Dropped%per != 0 {
		t.Errorf("dropped %d samples: not whole ticks of %d", st.Dropped, per)
	}
	w.Close()
	// The same queue after a restart (the database closed and opened).
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = pebble.Open("q", &pebble.Options{FS: fs, Logger: quiet{}}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	vm := startVictoriaMetrics(t)
	opt.URL = vm.base
	w2, err := Open(db, opt)
	if err != nil {
		t.Fatal(err)
	}
	if st2 := w2.Stats(); st2.Queued != st.Queued || st2.QueuedBytes != st.QueuedBytes {
		t.Fatalf("after reopen: %+v, before %+v", st2, st)
	}
	for end := time.Now().Add(20 * time.Second); w2.Stats().Queued > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not drained: %+v", w2.Stats())
		}
	}
	w2.Close()
	kept := int(st.Queued / per)
	var got map[string][]pt
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		got = vmSeries(t, vm.base, "bound")
		if len(got["netsentry_up"]) == kept || time.Now().After(end) {
			break
		}
	}
	up := got["netsentry_up"]
	if len(up) != kept {
		t.Fatalf("victoriametrics has %d ticks, the queue kept %d", len(up), kept)
	}
	for i, p := range up {
		want := base.Add(time.Duration(ticks-kept+i) * time.Second).UnixMilli()
		if p.t != want {
			t.Fatalf("tick %d at %d, want %d (the newest %d of %d)", i, p.t, want, kept, ticks)
		}
	}
}

// A backend that takes the connection and never answers does not hold
// Append, and Close returns within its flush bound.
func TestDeadBackendDoesNotBlock(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	}()
	db, _ := memDB(t)
	defer db.Close()
	opt := testOptions(Prometheus, "http://"+l.Addr().String(), "stuck")
	opt.FlushTimeout = 300 * time.Millisecond
	w, err := Open(db, opt)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	for i := range 50 {
		start := time.Now()
		if err := w.Append(now.Add(time.Duration(i)*time.Second), genTick(i)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Append took %s with the backend stuck", d)
		}
	}
	time.Sleep(200 * time.Millisecond) // a request is in flight
	start := time.Now()
	w.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s with the backend stuck; bound %s", d, opt.FlushTimeout)
	}
	if st := w.Stats(); st.Queued != 50*uint64(len(genTick(0))) || st.Sent != 0 {
		t.Errorf("after a stuck backend: %+v", st)
	}
}

// Prometheus refuses an out-of-order sample for good (400): it is counted
// failed, not sent again, and the ticks after it go through.
func TestPermanentRefusal(t *testing.T) {
	srv := startPrometheus(t)
	db, _ := memDB(t)
	defer db.Close()
	w, err := Open(db, testOptions(Prometheus, srv.base, "refused"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now().Truncate(time.Second)
	one := []store.Sample{{Name: "netsentry_up", Value: 1}}
	steps := []struct {
		at         time.Time
		sent, fail uint64
	}{
		{now, 1, 0},
		{now.Add(-10 * time.Second), 1, 1}, // before the series' last sample
		{now.Add(time.Second), 2, 1},
	}
	for i, s := range steps {
		if err := w.Append(s.at, one); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(10 * time.Second); w.Stats().Queued > 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("step %d: not drained: %+v", i, w.Stats())
			}
		}
		if st := w.Stats(); st.Sent != s.sent || st.Failed != s.fail {
			t.Fatalf("step %d: sent %d failed %d, want %d %d", i, st.Sent, st.Failed, s.sent, s.fail)
		}
	}
	got := promSeries(t, srv.base, "refused", now.Add(time.Second), time.Minute)
	if p := got["netsentry_up"]; len(p) != 2 || p[0].t != now.UnixMilli() || p[1].t != now.Add(time.Second).UnixMilli() {
		t.Errorf("prometheus has %v", p)
	}
}

// The InfluxDB 2.x write API: POST /api/v2/write?org=&bucket=&precision=ms
// with "Authorization: Token ...". InfluxDB 2.x is not in Debian, so a
// front end that enforces that contract (InfluxDB 2.x's API document)
// passes the body to the real InfluxDB 1.x, which parses it; the test
// reads it back with InfluxQL. NaN and ±Inf, which InfluxDB cannot hold,
// are counted failed.
func TestInfluxV2(t *testing.T) {
	influx := startInfluxDB(t, "bucket1")
	var bad atomic.Value
	bad.Store("")
	var calls atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		q := r.URL.Query()
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/prefix/api/v2/write":
			bad.Store(r.Method + " " + r.URL.Path)
			http.Error(w, "not found", http.StatusNotFound)
			return
		case r.Header.Get("Authorization") != "Token s3cret":
			http.Error(w, `{"code":"unauthorized"}`, http.StatusUnauthorized)
			return
		case q.Get("org") != "my org" || q.Get("bucket") != "bucket1" || q.Get("precision") != "ms":
			bad.Store("query " + r.URL.RawQuery)
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		resp, err := http.Post(influx.base+"/write?"+url.Values{"db": {q.Get("bucket")}, "precision": {"ms"}}.Encode(), "text/plain", r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
	}))
	defer front.Close()

	db, _ := memDB(t)
	defer db.Close()
	opt := testOptions(InfluxDB, front.URL+"/prefix/", "v2")
	opt.InfluxOrg, opt.InfluxBucket, opt.Token = "my org", "bucket1", "wrong"
	// A wrong token is retried (the operator can fix it), not dropped.
	w, err := Open(db, opt)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	samples := append(genTick(7), store.Sample{Name: "nan", Value: math.NaN()}, store.Sample{Name: "inf", Value: math.Inf(1)})
	if err := w.Append(now, samples); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); w.Stats().Retried == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("a 401 was not retried: %+v", w.Stats())
		}
	}
	w.Close()
	opt.Token = "s3cret"
	if w, err = Open(db, opt); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for end := time.Now().Add(10 * time.Second); w.Stats().Queued > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not drained: %+v", w.Stats())
		}
	}
	if s := bad.Load().(string); s != "" {
		t.Fatalf("request off the 2.x contract: %s", s)
	}
	if st := w.Stats(); st.Sent != uint64(len(samples)-2) || st.Failed != 2 {
		t.Errorf("sent %d failed %d; want %d and 2 (NaN, Inf)", st.Sent, st.Failed, len(samples)-2)
	}
	got := influxSeries(t, influx.base, "bucket1", "v2")
	want := map[string][]pt{}
	for _, s := range samples[:len(samples)-2] {
		ls := map[string]string{}
		for _, l := range s.Labels {
			ls[l.Name] = l.Value
		}
		want[labelKey(s.Name, ls)] = []pt{{now.UnixMilli(), s.Value}}
	}
	compare(t, InfluxDB, want, got)
}

// The line protocol escapes what the tags and measurement cannot hold.
func TestInfluxEscaping(t *testing.T) {
	e := &influxEncoder{sensor: "s 1"}
	body, skipped := e.encode(nil, []tick{{ts: 5, samples: []store.Sample{
		{Name: "m,x y", Labels: []store.Label{{Name: "a=b", Value: "c d,e=f"}, {Name: "nl", Value: "x\ny"}, {Name: "tail", Value: `z\`}, {Name: "zz", Value: ""}}, Value: 1.5},
		{Name: "n", Value: math.NaN()},
	}}})
	want := `m\,x\ y,a\=b=c\ d\,e\=f,nl=x\ y,sensor=s\ 1,tail=z_ value=1.5 5` + "\n"
	if string(body) != want || skipped != 1 {
		t.Errorf("line protocol:\n%q, %d skipped\nwant\n%q, 1", body, skipped, want)
	}
}

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		opt  Options
		want string
	}{
		{Options{Backend: Prometheus, URL: "http://p:9090"}, "http://p:9090/api/v1/write"},
		{Options{Backend: VictoriaMetrics, URL: "http://vm:8480/insert/0/prometheus/api/v1/write"}, "http://vm:8480/insert/0/prometheus/api/v1/write"},
		{Options{Backend: InfluxDB, URL: "http://i:8086", InfluxDatabase: "db"}, "http://i:8086/write?db=db&precision=ms"},
		{Options{Backend: InfluxDB, URL: "https://i/x/", InfluxOrg: "o", InfluxBucket: "b"}, "https://i/x/api/v2/write?bucket=b&org=o&precision=ms"},
	} {
		got, err := endpoint(tc.opt)
		if err != nil || got != tc.want {
			t.Errorf("%+v: %s %v, want %s", tc.opt, got, err, tc.want)
		}
	}
	for _, opt := range []Options{{Backend: "x", URL: "http://a"}, {Backend: Prometheus, URL: "a:1"}, {Backend: InfluxDB, URL: "http://i"}} {
		if _, err := endpoint(opt); err == nil {
			t.Errorf("%+v accepted", opt)
		}
	}
}
