package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
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
)

// The store end to end: the daemon keeps its history under a directory
// the test gives it (--storage-path), and the test reads it back through
// the API: the Prometheus query API and /api/v1/network/flows.

// storeDaemon is one run of the daemon on c0 of namespace ns.
type storeDaemon struct {
	p   *liveProc
	api *apiClient
}

// startStoreDaemon starts the daemon with config cfgPath and its store in
// storeDir, and waits until its API answers.
func startStoreDaemon(t *testing.T, bin, ns, cfgPath, storeDir, addr string) *storeDaemon {
	t.Helper()
	p := &liveProc{}
	p.cmd = exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", storeDir, "--config", cfgPath, "--api-enable")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	d := &storeDaemon{p: p, api: newAPIClient(t, ns, addr)}
	hc := d.api.http
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the daemon's API did not answer within 20 s:\n%s", p.stderr.String())
		}
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
	}
}

// kill ends the daemon with SIGKILL.
func (d *storeDaemon) kill() {
	d.p.cmd.Process.Signal(syscall.SIGKILL)
	d.p.cmd.Wait()
}

// promResult is a Prometheus API answer of type matrix or vector.
type promResult struct {
	Status    string `json:"status"`
	Error     string `json:"error"`
	ErrorType string `json:"errorType"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// point is one value of one series at one time, as a query returned it.
type point struct {
	series string
	t      string
}

func seriesKey(m map[string]string) string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s=%q,", n, m[n])
	}
	return b.String()
}

// promQuery runs a Prometheus API query and returns every point it gave.
func promQuery(t *testing.T, c *apiClient, path string, v url.Values) map[point]string {
	t.Helper()
	st, body := c.do("GET", path+"?"+v.Encode(), nil)
	if st != 200 {
		t.Fatalf("GET %s?%s: %d %s", path, v.Encode(), st, body)
	}
	var r promResult
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("GET %s: %v %s", path, err, body)
	}
	out := map[point]string{}
	for _, s := range r.Data.Result {
		k := seriesKey(s.Metric)
		vals := s.Values
		if s.Value != nil {
			vals = append(vals, s.Value)
		}
		for _, p := range vals {
			out[point{k, fmt.Sprint(p[0])}] = p[1].(string)
		}
	}
	return out
}

// storedFlows returns every record /api/v1/network/flows holds, all pages
// of limit records, newest first, as JSON lines.
func storedFlows(t *testing.T, c *apiClient, limit int) []string {
	t.Helper()
	var all []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 10000 {
			t.Fatal("more than 10000 pages")
		}
		v := url.Values{"limit": {strconv.Itoa(limit)}}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		st, body := c.do("GET", "/api/v1/network/flows?"+v.Encode(), nil)
		if st != 200 {
			t.Fatalf("GET /api/v1/network/flows: %d %s", st, body)
		}
		var r struct {
			Flows      []json.RawMessage `json:"flows"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("flows: %v: %s", err, body)
		}
		if len(r.Flows) > limit {
			t.Fatalf("a page of %d records, limit %d", len(r.Flows), limit)
		}
		for _, f := range r.Flows {
			var b bytes.Buffer
			json.Compact(&b, f)
			all = append(all, b.String())
		}
		if r.NextCursor == "" {
			return all
		}
		cursor = r.NextCursor
	}
}

func writeStoreConfig(t *testing.T, dir string, port int, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "netsentry.yaml")
	text := fmt.Sprintf(`log_level: info
api_port: %d
capture_interface: c0
performance:
  threads: 1
  memory_limit_mb: 64
storage:
  interval: 1s
`, port) + extra
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStoreSurvivesKill: the daemon captures a replay and stores its
// metrics every second and its ended flows; the test queries the history
// (raw samples of every series with a range selector, query_range points
// of rate and sum by, every stored flow), kills the daemon with SIGKILL at
// a random moment, restarts it, and checks that every sample, point and
// flow a query returned before a kill is returned, unchanged, after it; 22
// times.
func TestStoreSurvivesKill(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	const addr = "127.0.0.1:18091"
	cfg := writeStoreConfig(t, dir, 18091, `flows:
  idle_timeout: 1s
  udp_idle_timeout: 1s
  active_timeout: 2s
  tcp_closed_linger: 1s
`)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	pcap := filepath.Join(corpus, "zeek-http-bro.org.pcap")

	samples := map[point]string{} // raw samples returned so far
	ranged := map[string]map[point]string{}
	flows := map[string]bool{}
	var firstT time.Time
	var lastE time.Time
	exprs := []string{`sum by (queue) (rate(netsentry_engine_packets_total[5s]))`, `netsentry_flows_created_total`, `sum(netsentry_protocol_bytes_total)`}

	// check queries the history as of lastE and fails on anything returned
	// before that is missing or changed.
	check := func(c *apiClient, round int) {
		if lastE.IsZero() {
			return
		}
		rng := fmt.Sprintf("%ds", int(lastE.Sub(firstT).Seconds())+5)
		got := promQuery(t, c, "/api/v1/query", url.Values{"query": {`{__name__=~"netsentry_.+"}[` + rng + `]`}, "time": {strconv.FormatInt(lastE.Unix(), 10)}})
		lost := 0
		for p, v := range samples {
			if g, ok := got[p]; !ok || g != v {
				if lost++; lost <= 5 {
					t.Errorf("round %d: sample %s@%s was %s, now %q (present %v)", round, p.series, p.t, v, g, ok)
				}
			}
		}
		for _, e := range exprs {
			got := promQuery(t, c, "/api/v1/query_range", url.Values{"query": {e}, "start": {strconv.FormatInt(firstT.Unix(), 10)},
				"end": {strconv.FormatInt(lastE.Unix(), 10)}, "step": {"1"}})
			for p, v := range ranged[e] {
				if g, ok := got[p]; !ok || g != v {
					if lost++; lost <= 10 {
						t.Errorf("round %d: %s at %s was %s, now %q (present %v)", round, e, p.t, v, g, ok)
					}
				}
			}
		}
		now := map[string]bool{}
		for _, f := range storedFlows(t, c, 1000) {
			now[f] = true
		}
		for f := range flows {
			if !now[f] {
				if lost++; lost <= 15 {
					t.Errorf("round %d: flow lost: %s", round, f)
				}
			}
		}
		if lost > 0 {
			t.Fatalf("round %d: %d samples, points or flows returned before the kill are lost or changed", round, lost)
		}
	}

	const rounds = 22
	for round := 0; round < rounds; round++ {
		d := startStoreDaemon(t, bin, ns, cfg, storeDir, addr)
		if round > 0 && !strings.Contains(d.p.stderr.String(), "recovered") {
			t.Errorf("round %d: the store did not say what it recovered after a kill:\n%s", round, d.p.stderr.String())
		}
		check(d.api, round)
		if firstT.IsZero() {
			firstT = time.Now().Truncate(time.Second)
		}
		done := make(chan struct{})
		go func() { defer close(done); sendFile(ns, pcap, 5000) }()
		time.Sleep(time.Duration(1500+rng.IntN(2500)) * time.Millisecond)
		// As of three ticks ago: every tick up to then is stored.
		e := time.Now().Add(-3 * time.Second).Truncate(time.Second)
		if e.Before(firstT) {
			e = firstT // a short first round: no range can end before it starts
		}
		if e.After(lastE) {
			lastE = e
		}
		rs := fmt.Sprintf("%ds", int(lastE.Sub(firstT).Seconds())+5)
		for p, v := range promQuery(t, d.api, "/api/v1/query", url.Values{"query": {`{__name__=~"netsentry_.+"}[` + rs + `]`}, "time": {strconv.FormatInt(lastE.Unix(), 10)}}) {
			if old, ok := samples[p]; ok && old != v {
				t.Fatalf("round %d: sample %s@%s changed from %s to %s", round, p.series, p.t, old, v)
			}
			samples[p] = v
		}
		for _, ex := range exprs {
			if ranged[ex] == nil {
				ranged[ex] = map[point]string{}
			}
			for p, v := range promQuery(t, d.api, "/api/v1/query_range", url.Values{"query": {ex}, "start": {strconv.FormatInt(firstT.Unix(), 10)},
				"end": {strconv.FormatInt(lastE.Unix(), 10)}, "step": {"1"}}) {
				ranged[ex][p] = v
			}
		}
		for _, f := range storedFlows(t, d.api, 1000) {
			flows[f] = true
		}
		// Kill it mid-write: ticks every second, flows ending, a replay
		// perhaps still running.
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		d.kill()
		<-done
	}
	d := startStoreDaemon(t, bin, ns, cfg, storeDir, addr)
	check(d.api, rounds)
	t.Logf("%d samples, %d query_range points and %d flows returned before a kill, all there after %d kills",
		len(samples), len(ranged[exprs[0]])+len(ranged[exprs[1]])+len(ranged[exprs[2]]), len(flows), rounds)
	if len(samples) < 1000 || len(flows) < 10 {
		t.Errorf("too little was checked: %d samples, %d flows", len(samples), len(flows))
	}
	d.p.interrupt(t)
}

// TestStoredFlowsMatchTshark: a replay into the live daemon, a clean stop
// (the capture's open flows are flushed into the flow history) and a
// restart; the records /api/v1/network/flows returns, every page of 50,
// equal tshark's conversation table (../shared/check/compare_flows.py).
func TestStoredFlowsMatchTshark(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	const addr = "127.0.0.1:18092"
	cfg := writeStoreConfig(t, dir, 18092, `flows:
  idle_timeout: 1h
  udp_idle_timeout: 1h
  active_timeout: 2h
  tcp_closed_linger: 1h
`)
	name := "ndpi-1kxun.pcap"
	file := filepath.Join(corpus, name)
	d := startStoreDaemon(t, bin, ns, cfg, storeDir, addr)
	sendFile(ns, file, 5000)
	var stats struct {
		Packets uint64 `json:"packets"`
		Drops   uint64 `json:"drops"`
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		d.api.getJSON("/api/v1/network/stats", &stats)
		if stats.Packets >= 1723 || time.Now().After(end) {
			break
		}
	}
	if stats.Packets != 1723 || stats.Drops != 0 {
		t.Fatalf("stats: %d packets, %d drops; want 1723 and 0", stats.Packets, stats.Drops)
	}
	d.p.interrupt(t)
	d = startStoreDaemon(t, bin, ns, cfg, storeDir, addr)
	recs := storedFlows(t, d.api, 50)
	out := filepath.Join(dir, "stored.jsonl")
	if err := os.WriteFile(out, []byte(strings.Join(recs, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command("python3", filepath.Join(corpus, "..", "check", "compare_flows.py"), file, out,
		filepath.Join(corpus, "oracle", name+".conv_exact.tsv")).CombinedOutput()
	if err != nil {
		t.Errorf("compare_flows.py: %v\n%s", err, res)
	}
	t.Logf("%d stored records; %s", len(recs), strings.TrimSpace(lastLine(string(res))))
	// Newest first, by last_seen.
	var prev string
	for i, r := range recs {
		var f struct {
			LastSeen string `json:"last_seen"`
		}
		json.Unmarshal([]byte(r), &f)
		if i > 0 && f.LastSeen > prev {
			t.Errorf("record %d last_seen %s after %s: not newest first", i, f.LastSeen, prev)
			break
		}
		prev = f.LastSeen
	}
	d.p.interrupt(t)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// TestStoreLikePrometheus: a real Prometheus (Debian prometheus, in the
// test's namespace) scrapes the daemon's /metrics every second while the
// daemon stores the same values every second; the same PromQL on both
// agrees. Scrapes and ticks are up to a second apart, so the comparison is
// on what does not depend on that: query_range point by point (step 1 s)
// over the quiet second half of the run (the replay is over, the counters
// stand still), and instant queries at its end over the whole run
// (max_over_time, min_over_time, the final values, sum by, count).
func TestStoreLikePrometheus(t *testing.T) {
	ns := liveNet(t)
	bin := buildBinary(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not installed (Debian package prometheus; make deps): %v", err)
	}
	dir := t.TempDir()
	const addr = "127.0.0.1:18093"
	cfg := writeStoreConfig(t, dir, 18093, "")
	d := startStoreDaemon(t, bin, ns, cfg, filepath.Join(dir, "store"), addr)

	conf := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(conf, []byte("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: ns\n    static_configs:\n      - targets: [\""+addr+"\"]\n"), 0o644)
	const promAddr = "127.0.0.1:19093"
	prom := exec.Command("ip", "netns", "exec", ns, promBin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "prom"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	var plog bytes.Buffer
	prom.Stdout, prom.Stderr = &plog, &plog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prom.Process.Signal(os.Interrupt); prom.Wait() })
	pc := newAPIClient(t, ns, promAddr)
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("Prometheus did not scrape the daemon within 30 s:\n%s", plog.String())
		}
		resp, err := pc.http.Get("http://" + promAddr + "/api/v1/query?query=up")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `"1"]`) {
			break
		}
	}
	start := time.Now().Add(time.Second).Truncate(time.Second)
	time.Sleep(2 * time.Second)
	sendFile(ns, filepath.Join(corpus, "ndpi-1kxun.pcap"), 400) // about 4 s
	time.Sleep(3 * time.Second)
	quiet := time.Now().Add(time.Second).Truncate(time.Second) // counters stand still from here
	time.Sleep(15 * time.Second)
	end := time.Now().Add(-3 * time.Second).Truncate(time.Second)
	whole := fmt.Sprintf("%ds", int(end.Sub(start).Seconds()))

	// Prometheus adds job and instance; ours has neither.
	strip := func(m map[point]string) map[point]string {
		out := map[point]string{}
		for p, v := range m {
			var kept []string
			for _, f := range strings.SplitAfter(p.series, `",`) {
				if f != "" && !strings.HasPrefix(f, "instance=") && !strings.HasPrefix(f, "job=") {
					kept = append(kept, f)
				}
			}
			out[point{strings.Join(kept, ""), p.t}] = v
		}
		return out
	}
	compared := 0
	compare := func(what string, ours, theirs map[point]string) {
		ours, theirs = strip(ours), strip(theirs)
		compared += len(theirs)
		if len(theirs) == 0 {
			t.Errorf("%s: Prometheus returned nothing", what)
		}
		bad := 0
		for p, tv := range theirs {
			ov, ok := ours[p]
			a, _ := strconv.ParseFloat(ov, 64)
			b, _ := strconv.ParseFloat(tv, 64)
			if !ok || !(a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))) {
				if bad++; bad <= 5 {
					t.Errorf("%s: %s at %s: ours %q (present %v), Prometheus %s", what, p.series, p.t, ov, ok, tv)
				}
			}
		}
		for p := range ours {
			if _, ok := theirs[p]; !ok {
				if bad++; bad <= 10 {
					t.Errorf("%s: %s at %s: ours only", what, p.series, p.t)
				}
			}
		}
	}
	ranged := []string{
		`netsentry_engine_packets_total`,
		`rate(netsentry_engine_packets_total[5s])`,
		`sum by (protocol) (netsentry_protocol_packets_total)`,
		`sum by (guessed) (rate(netsentry_protocol_bytes_total[5s]))`,
		`avg_over_time(netsentry_flows_created_total[4s])`,
		`netsentry_flows_active`,
	}
	for _, e := range ranged {
		v := url.Values{"query": {e}, "start": {strconv.FormatInt(quiet.Add(4*time.Second).Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}, "step": {"1"}}
		compare("query_range "+e, promQuery(t, d.api, "/api/v1/query_range", v), promQuery(t, pc, "/api/v1/query_range", v))
	}
	instant := []string{
		`max_over_time(netsentry_engine_packets_total[` + whole + `])`,
		`min_over_time(netsentry_engine_packets_total[` + whole + `])`,
		`sum by (protocol) (max_over_time(netsentry_protocol_flows_total[` + whole + `]))`,
		`count(netsentry_protocol_bytes_total)`,
		`sum(netsentry_decode_errors_total)`,
		`netsentry_flows_created_total`,
	}
	for _, e := range instant {
		v := url.Values{"query": {e}, "time": {strconv.FormatInt(end.Unix(), 10)}}
		compare("query "+e, promQuery(t, d.api, "/api/v1/query", v), promQuery(t, pc, "/api/v1/query", v))
	}
	t.Logf("%d points compared, %d expressions", compared, len(ranged)+len(instant))
	// The replay was counted at all.
	got := promQuery(t, d.api, "/api/v1/query", url.Values{"query": {"sum(netsentry_engine_packets_total)"}, "time": {strconv.FormatInt(end.Unix(), 10)}})
	for _, v := range got {
		if v != "1723" {
			t.Errorf("stored packets %s, want 1723", v)
		}
	}
	d.p.interrupt(t)
}
