// Command store is the store benchmark (make bench-store): the same
// host-metric data written to NetSentry's store, to Prometheus's TSDB
// (promtool tsdb create-blocks-from openmetrics, then the blocks compacted
// by a Prometheus server started on them) and to VictoriaMetrics
// (/api/v1/import/prometheus, then /internal/force_merge), in one run. It
// prints, for each: bytes per sample on disk after compaction, ingest CPU
// seconds per million samples, query_range latency for 24 h of one series
// and of 100 series (min/median/max of -repeat runs), and MB per day, for
// this data and for the sensor's default collection (every series its
// /metrics serves, at storage.interval's default).
//
// The data: node_exporter-shaped series (node_cpu_seconds_total,
// node_memory_*_bytes, node_load*, node_network_*, node_disk_*,
// node_vmstat_*) read from this host's /proc -readings times, -every
// apart; a day at -interval is made from them: a counter goes on by the
// real increments read (scaled from -every to -interval, in turn), a gauge
// takes the real values read, in turn. Every timestamp is aligned to
// -interval, as the sensor's ticks are.
//
// Queries: ours through the Prometheus engine over store.NewQueryable
// in-process; Prometheus's and VictoriaMetrics' over their HTTP API on
// loopback (VictoriaMetrics with nocache=1), so theirs include a loopback
// round trip and JSON (a fraction of a millisecond).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/netsentry/netsentry/store"
)

var (
	readings = flag.Int("readings", 120, "real /proc readings taken")
	every    = flag.Duration("every", 100*time.Millisecond, "time between two readings")
	interval = flag.Duration("interval", 5*time.Second, "sampling interval of the generated day (storage.interval's default)")
	span     = flag.Duration("span", 24*time.Hour, "length of the generated data")
	repeat   = flag.Int("repeat", 15, "runs of each query")
	step     = flag.Duration("step", time.Minute, "query_range step")
	// defaultSeries is the series count of the sensor's default collection
	// (what /metrics serves with the host samplers, the API's request
	// counters aside); 0: count it from -metrics-url or skip the line.
	netsentry = flag.String("netsentry", "", "NetSentry binary: run it (default configuration, capturing on lo of a namespace of its own) to count the series of its default collection; empty: no MB/day line for it")
	keep      = flag.Bool("keep", false, "keep the work directory")
	peers     = flag.Bool("peers", true, "also measure Prometheus and VictoriaMetrics (false: ours only, for quick iterations)")
	cpuProf   = flag.String("cpuprofile", "", "write a CPU profile of our store's ingest (the Appends and the Close) to this file")
	dataFile  = flag.String("data", "", "read the readings from this file if it exists, else take them and write them there (the same data across runs)")
)

// series is one generated series: its labels (name first) and its values,
// one per tick.
type series struct {
	name   string
	labels []store.Label // sorted, without the name
	vals   []float64
}

func main() {
	flag.Parse()
	for _, t := range []string{"promtool", "prometheus", "victoria-metrics"} {
		if _, err := exec.LookPath(t); err != nil {
			fatal("bench-store needs %s (make deps: Debian packages prometheus, victoria-metrics): %v", t, err)
		}
	}
	work, err := os.MkdirTemp("", "bench-store")
	check(err)
	if !*keep {
		defer os.RemoveAll(work)
	}
	ticks := int(*span / *interval)
	fmt.Printf("reading /proc %d times, %v apart...\n", *readings, *every)
	ss := generate(readingsFrom(*dataFile), ticks)
	start := time.Now().Add(-*span - time.Hour).Truncate(*interval)
	nsamples := len(ss) * ticks
	fmt.Printf("data: %d series x %d ticks at %v = %d samples, from %s\n\n", len(ss), ticks, *interval, nsamples, start.UTC().Format(time.RFC3339))

	one := pickOne(ss)
	hundred := pickHundred(ss)
	queries := []struct{ name, expr string }{
		{"24 h of one series", one},
		{"24 h of 100 series", hundred},
	}
	qstart, qend := start, start.Add(time.Duration(ticks-1)**interval)

	// Every system must hold every sample: count them with PromQL.
	// (one query per metric name: count_over_time drops the name, so
	// series of different names would collide).
	var countExprs []string
	for i, s := range ss {
		if i == 0 || ss[i-1].name != s.name {
			countExprs = append(countExprs, fmt.Sprintf(`sum(count_over_time(%s[%ds]))`, s.name, int((time.Duration(ticks)**interval).Seconds())+60))
		}
	}
	countAt := qend.Add(30 * time.Second)

	type result struct {
		name        string
		bytes       int64
		cpu         time.Duration
		lat         [][]time.Duration
		note        string
		pointsFirst []int
		held        int // samples a count_over_time query finds
	}
	var results []result

	// Ours.
	{
		dir := filepath.Join(work, "ours")
		if *cpuProf != "" {
			f, err := os.Create(*cpuProf)
			check(err)
			check(pprof.StartCPUProfile(f))
		}
		cpu0 := selfCPU()
		st, err := store.Open(dir, store.Options{Interval: *interval, Retention: 30 * 24 * time.Hour})
		check(err)
		tick := make([]store.Sample, len(ss))
		for i, s := range ss {
			tick[i] = store.Sample{Name: s.name, Labels: s.labels}
		}
		for k := 0; k < ticks; k++ {
			for i := range ss {
				tick[i].Value = ss[i].vals[k]
			}
			check(st.Append(start.Add(time.Duration(k)**interval), tick))
		}
		check(st.Close())
		cpu := selfCPU() - cpu0
		if *cpuProf != "" {
			pprof.StopCPUProfile()
		}
		st, err = store.Open(dir, store.Options{Interval: *interval, Retention: 30 * 24 * time.Hour})
		check(err)
		// After compaction, as the peers are measured (pebble compacts on
		// its own in time; here at once).
		check(st.DB().Compact(context.Background(), []byte{0}, []byte{0xff}, true))
		r := result{name: "netsentry store", cpu: cpu}
		eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
		q := store.NewQueryable(st)
		for _, e := range countExprs {
			iq, err := eng.NewInstantQuery(context.Background(), q, nil, e, countAt)
			check(err)
			ir := iq.Exec(context.Background())
			check(ir.Err)
			vec, err := ir.Vector()
			check(err)
			if len(vec) == 1 {
				r.held += int(vec[0].F)
			}
			iq.Close()
		}
		for _, qq := range queries {
			var lat []time.Duration
			n := 0
			for range *repeat {
				t0 := time.Now()
				rq, err := eng.NewRangeQuery(context.Background(), q, nil, qq.expr, qstart, qend, *step)
				check(err)
				res := rq.Exec(context.Background())
				check(res.Err)
				m, err := res.Matrix()
				check(err)
				n = len(m)
				rq.Close()
				lat = append(lat, time.Since(t0))
			}
			r.lat = append(r.lat, lat)
			r.pointsFirst = append(r.pointsFirst, n)
		}
		check(st.Close())
		// Measured closed: pebble deletes the files a compaction made
		// obsolete in the background, and is done with them at Close.
		r.bytes = dirBytes(dir, nil)
		r.note = fmt.Sprintf("tables %d bytes, WAL %d bytes, the rest %d bytes",
			dirBytes(dir, func(rel string) bool { return !strings.HasSuffix(rel, ".sst") }),
			dirBytes(dir, func(rel string) bool { return !strings.HasSuffix(rel, ".log") }),
			dirBytes(dir, func(rel string) bool { return strings.HasSuffix(rel, ".sst") || strings.HasSuffix(rel, ".log") }))
		results = append(results, r)
	}

	// Prometheus: promtool backfill, then a server compacts and answers.
	if *peers {
		om := filepath.Join(work, "data.om")
		writeText(om, ss, start, ticks, true)
		blocks := filepath.Join(work, "prom")
		cmd := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", om, blocks)
		out, err := cmd.CombinedOutput()
		if err != nil {
			fatal("promtool: %v\n%s", err, out)
		}
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		os.Remove(om)
		promBlocks := dirBytes(blocks, nil)
		port := freePort()
		conf := filepath.Join(work, "prometheus.yml")
		check(os.WriteFile(conf, []byte("global:\n  scrape_interval: 1m\n"), 0o644))
		srv := exec.Command("prometheus", "--config.file="+conf, "--storage.tsdb.path="+blocks,
			"--storage.tsdb.retention.time=30d", "--web.listen-address=127.0.0.1:"+port, "--log.level=warn")
		srv.Stdout, srv.Stderr = io.Discard, io.Discard
		check(srv.Start())
		base := "http://127.0.0.1:" + port
		waitHTTP(base + "/-/ready")
		// Prometheus compacts the backfilled 2 h blocks at start-up and
		// then once a minute; wait until the block count stays put.
		nblocks := settleBlocks(base)
		skip := func(rel string) bool {
			return strings.HasPrefix(rel, "wal") || strings.HasPrefix(rel, "chunks_head") || rel == "queries.active" || rel == "lock"
		}
		r := result{name: "Prometheus TSDB", bytes: dirBytes(blocks, skip), cpu: cpu, held: httpCount(base, countExprs, countAt),
			note: fmt.Sprintf("promtool's blocks %.3f bytes/sample before compaction; %d blocks after", float64(promBlocks)/float64(nsamples), nblocks)}
		for _, qq := range queries {
			lat, n := httpQueries(base+"/api/v1/query_range", qq.expr, qstart, qend, false)
			r.lat = append(r.lat, lat)
			r.pointsFirst = append(r.pointsFirst, n)
		}
		stop(srv)
		results = append(results, r)
	}

	// VictoriaMetrics.
	if *peers {
		dir := filepath.Join(work, "vm")
		port := freePort()
		srv := exec.Command("victoria-metrics", "-storageDataPath="+dir, "-httpListenAddr=127.0.0.1:"+port,
			"-retentionPeriod=100y", "-loggerLevel=ERROR", "-search.latencyOffset=0s")
		srv.Stdout, srv.Stderr = io.Discard, io.Discard
		check(srv.Start())
		base := "http://127.0.0.1:" + port
		waitHTTP(base + "/health")
		cpu0 := procCPU(srv.Process.Pid)
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTextTo(pw, ss, start, ticks, false)) }()
		resp, err := http.Post(base+"/api/v1/import/prometheus", "text/plain", pr)
		check(err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			fatal("victoria-metrics import: %s %s", resp.Status, body)
		}
		get(base + "/internal/force_flush")
		get(base + "/internal/force_merge")
		settleVM(base)
		cpu := procCPU(srv.Process.Pid) - cpu0
		skip := func(rel string) bool {
			return strings.HasPrefix(rel, "cache") || strings.HasPrefix(rel, "snapshots") || rel == "flock.lock" || strings.Contains(rel, "/tmp")
		}
		r := result{name: "VictoriaMetrics", bytes: dirBytes(dir, skip), cpu: cpu, held: httpCount(base, countExprs, countAt)}
		for _, qq := range queries {
			lat, n := httpQueries(base+"/api/v1/query_range", qq.expr, qstart, qend, true)
			r.lat = append(r.lat, lat)
			r.pointsFirst = append(r.pointsFirst, n)
		}
		stop(srv)
		results = append(results, r)
	}

	defSeries := 0
	if *netsentry != "" {
		defSeries = countSeries(daemonMetrics(*netsentry, work))
	}
	perDay := float64(24 * time.Hour / *interval)
	fmt.Printf("%-18s %12s %14s %22s %22s %12s", "", "bytes/sample", "CPU s/M samp", "1 series 24h (ms)", "100 series 24h (ms)", "MB/day data")
	if defSeries > 0 {
		fmt.Printf(" %16s", fmt.Sprintf("MB/day %d ser", defSeries))
	}
	fmt.Println()
	for _, r := range results {
		bps := float64(r.bytes) / float64(nsamples)
		fmt.Printf("%-18s %12.3f %14.3f %22s %22s %12.2f", r.name, bps, r.cpu.Seconds()/(float64(nsamples)/1e6),
			spread(r.lat[0]), spread(r.lat[1]), bps*float64(len(ss))*perDay/1e6)
		if defSeries > 0 {
			fmt.Printf(" %16.2f", bps*float64(defSeries)*perDay/1e6)
		}
		fmt.Println()
	}
	fmt.Println()
	for _, r := range results {
		fmt.Printf("%s: %d bytes on disk; holds %d of the %d samples; series returned %v", r.name, r.bytes, r.held, nsamples, r.pointsFirst)
		if r.note != "" {
			fmt.Printf("; %s", r.note)
		}
		fmt.Println()
	}
	fmt.Printf("queries: %q and a selector of 100 series; step %v; %d runs each (min/median/max)\n", one, *step, *repeat)
}

// reading is one read of every source: series key -> value.
type reading map[string]float64

// readingsFrom takes -readings readings, or reads them from path if it
// exists (written there the first time, with which keys are counters).
func readingsFrom(path string) []reading {
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			var d struct {
				Readings []reading
				Counters map[string]bool
			}
			check(json.Unmarshal(b, &d))
			for k, v := range d.Counters {
				counterKey[k] = v
			}
			return d.Readings
		}
	}
	rs := record(*readings, *every)
	if path != "" {
		b, err := json.Marshal(struct {
			Readings []reading
			Counters map[string]bool
		}{rs, counterKey})
		check(err)
		check(os.WriteFile(path, b, 0o644))
	}
	return rs
}

// counterKey marks counters among the keys (the rest are gauges).
var counterKey = map[string]bool{}

// record reads /proc n times, d apart.
func record(n int, d time.Duration) []reading {
	var rs []reading
	for i := 0; i < n; i++ {
		r := reading{}
		readStat(r)
		readMeminfo(r)
		readLoad(r)
		readNetDev(r)
		readDiskstats(r)
		readVmstat(r)
		rs = append(rs, r)
		time.Sleep(d)
	}
	return rs
}

func key(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

func lines(path string) []string {
	b, err := os.ReadFile(path)
	check(err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func readStat(r reading) {
	modes := []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}
	for _, l := range lines("/proc/stat") {
		f := strings.Fields(l)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		for i, m := range modes {
			v, _ := strconv.ParseFloat(f[i+1], 64)
			k := key("node_cpu_seconds_total", "cpu", f[0][3:], "mode", m)
			counterKey[k] = true
			r[k] = v / 100
		}
	}
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9_]`)

func readMeminfo(r reading) {
	for _, l := range lines("/proc/meminfo") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		if len(f) == 3 && f[2] == "kB" {
			v *= 1024
		}
		r[key("node_memory_"+nonName.ReplaceAllString(strings.TrimSuffix(f[0], ":"), "_")+"_bytes")] = v
	}
}

func readLoad(r reading) {
	f := strings.Fields(lines("/proc/loadavg")[0])
	for i, n := range []string{"node_load1", "node_load5", "node_load15"} {
		v, _ := strconv.ParseFloat(f[i], 64)
		r[n] = v
	}
}

func readNetDev(r reading) {
	names := []string{"receive_bytes", "receive_packets", "receive_errs", "receive_drop", "", "", "", "",
		"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop"}
	for _, l := range lines("/proc/net/dev")[2:] {
		dev, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		for i, n := range names {
			if n == "" || i >= len(f) {
				continue
			}
			v, _ := strconv.ParseFloat(f[i], 64)
			k := key("node_network_"+n+"_total", "device", strings.TrimSpace(dev))
			counterKey[k] = true
			r[k] = v
		}
	}
}

func readDiskstats(r reading) {
	names := []string{"reads_completed_total", "reads_merged_total", "read_bytes_total", "read_time_seconds_total",
		"writes_completed_total", "writes_merged_total", "written_bytes_total", "write_time_seconds_total",
		"io_now", "io_time_seconds_total", "io_time_weighted_seconds_total"}
	for _, l := range lines("/proc/diskstats") {
		f := strings.Fields(l)
		if len(f) < 14 || strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") {
			continue
		}
		for i, n := range names {
			v, _ := strconv.ParseFloat(f[3+i], 64)
			switch {
			case strings.HasSuffix(n, "bytes_total"):
				v *= 512
			case strings.HasSuffix(n, "seconds_total"):
				v /= 1000
			}
			k := key("node_disk_"+n, "device", f[2])
			counterKey[k] = n != "io_now"
			r[k] = v
		}
	}
}

func readVmstat(r reading) {
	for _, l := range lines("/proc/vmstat") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		k := "node_vmstat_" + f[0]
		// nr_* are gauges (pages now); the rest count events.
		counterKey[k] = !strings.HasPrefix(f[0], "nr_")
		r[k] = v
	}
}

// generate makes ticks values per series from the readings, with a fixed
// seed: at each tick a counter goes on by one of its real increments and a
// gauge moves by one of its real changes (kept within the range read),
// each picked at random, so the day has the readings' statistics without
// repeating them in a cycle (which a block compressor would find).
func generate(rs []reading, ticks int) []series {
	scale := float64(*interval) / float64(*every)
	rng := rand.New(rand.NewPCG(1, 2))
	var keys []string
	for k := range rs[0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []series
	for _, k := range keys {
		s := series{vals: make([]float64, ticks)}
		s.name, s.labels = parseKey(k)
		lo, hi := rs[0][k], rs[0][k]
		for _, r := range rs {
			lo, hi = min(lo, r[k]), max(hi, r[k])
		}
		v := rs[0][k]
		for t := 0; t < ticks; t++ {
			s.vals[t] = v
			i := rng.IntN(len(rs) - 1)
			d := rs[i+1][k] - rs[i][k]
			if counterKey[k] {
				v += math.Round(max(d, 0)*scale*100) / 100
			} else {
				v = min(max(v+d, lo), hi)
			}
		}
		out = append(out, s)
	}
	return out
}

func parseKey(k string) (string, []store.Label) {
	name, rest, ok := strings.Cut(k, "{")
	if !ok {
		return k, nil
	}
	var ls []store.Label
	for _, p := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		n, v, _ := strings.Cut(p, "=")
		uv, err := strconv.Unquote(v)
		check(err)
		ls = append(ls, store.Label{Name: n, Value: uv})
	}
	slices.SortFunc(ls, func(a, b store.Label) int { return strings.Compare(a.Name, b.Name) })
	return name, ls
}

func seriesText(s *series) string {
	if len(s.labels) == 0 {
		return s.name
	}
	var b strings.Builder
	b.WriteString(s.name)
	b.WriteByte('{')
	for i, l := range s.labels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// pickOne is a gauge that changes: node_memory_MemFree_bytes.
func pickOne(ss []series) string { return "node_memory_MemFree_bytes" }

// pickHundred is a selector of exactly 100 series: whole metric names,
// taken in order, skipping a name that would pass 100.
func pickHundred(ss []series) string {
	count := map[string]int{}
	var names []string
	for _, s := range ss {
		if count[s.name] == 0 {
			names = append(names, s.name)
		}
		count[s.name]++
	}
	var pick []string
	n := 0
	for _, nm := range names {
		if n+count[nm] <= 100 {
			pick = append(pick, regexp.QuoteMeta(nm))
			n += count[nm]
		}
	}
	if n != 100 {
		fatal("cannot pick 100 series (got %d)", n)
	}
	return `{__name__=~"` + strings.Join(pick, "|") + `"}`
}

// writeText writes every sample as text with timestamps: OpenMetrics
// (seconds, "# EOF") for promtool, else the Prometheus text format
// (milliseconds) for VictoriaMetrics. Each series' samples are together,
// in time order.
func writeText(path string, ss []series, start time.Time, ticks int, om bool) {
	f, err := os.Create(path)
	check(err)
	check(writeTextTo(f, ss, start, ticks, om))
	check(f.Close())
}

func writeTextTo(w io.Writer, ss []series, start time.Time, ticks int, om bool) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	buf := make([]byte, 0, 256)
	t0 := start.UnixMilli()
	step := interval.Milliseconds()
	for i := range ss {
		head := seriesText(&ss[i])
		for t := 0; t < ticks; t++ {
			buf = append(buf[:0], head...)
			buf = append(buf, ' ')
			buf = strconv.AppendFloat(buf, ss[i].vals[t], 'g', -1, 64)
			buf = append(buf, ' ')
			ms := t0 + int64(t)*step
			if om {
				buf = strconv.AppendFloat(buf, float64(ms)/1000, 'f', 3, 64)
			} else {
				buf = strconv.AppendInt(buf, ms, 10)
			}
			buf = append(buf, '\n')
			if _, err := bw.Write(buf); err != nil {
				return err
			}
		}
	}
	if om {
		bw.WriteString("# EOF\n")
	}
	return bw.Flush()
}

// httpCount runs exprs, counts, as instant queries at t and sums them.
func httpCount(base string, exprs []string, t time.Time) int {
	n := 0
	for _, e := range exprs {
		n += httpCount1(base, e, t)
	}
	return n
}

func httpCount1(base, expr string, t time.Time) int {
	v := url.Values{"query": {expr}, "time": {strconv.FormatInt(t.Unix(), 10)}, "nocache": {"1"}}
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	check(json.Unmarshal([]byte(get(base+"/api/v1/query?"+v.Encode())), &out))
	if len(out.Data.Result) != 1 {
		return 0
	}
	f, _ := strconv.ParseFloat(out.Data.Result[0].Value[1].(string), 64)
	return int(f)
}

// httpQueries runs expr as query_range -repeat times; it returns the
// latencies and the series count of the answer.
func httpQueries(u, expr string, start, end time.Time, nocache bool) ([]time.Duration, int) {
	v := url.Values{"query": {expr}, "start": {strconv.FormatInt(start.Unix(), 10)},
		"end": {strconv.FormatInt(end.Unix(), 10)}, "step": {strconv.Itoa(int(step.Seconds()))}}
	if nocache {
		v.Set("nocache", "1")
	}
	var lat []time.Duration
	n := 0
	for range *repeat {
		t0 := time.Now()
		resp, err := http.Get(u + "?" + v.Encode())
		check(err)
		var out struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		if err != nil || out.Status != "success" {
			fatal("query %s: %v %s", u, err, out.Error)
		}
		n = len(out.Data.Result)
	}
	return lat, n
}

func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return fmt.Sprintf("%.2f/%.2f/%.2f", ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)-1]))
}

// dirBytes sums the sizes of the files under dir, skipping those skip
// says (by path relative to dir).
func dirBytes(dir string, skip func(rel string) bool) int64 {
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if skip != nil && skip(rel) {
			return nil
		}
		n += fi.Size()
		return nil
	})
	return n
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// settleBlocks waits for Prometheus to compact the backfilled blocks: its
// first compaction pass runs a minute after start; then until the block
// count stays put and no compaction runs.
func settleBlocks(base string) int {
	time.Sleep(65 * time.Second)
	last, same := -1, 0
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(2 * time.Second) {
		m := get(base + "/metrics")
		n := metricValue(m, "prometheus_tsdb_blocks_loaded")
		running := metricValue(m, "prometheus_tsdb_compactions_triggered_total") - metricValue(m, "prometheus_tsdb_compactions_total") - metricValue(m, "prometheus_tsdb_compactions_failed_total")
		if int(n) == last && running <= 0 {
			same++
			if same >= 5 {
				return last
			}
		} else {
			same = 0
		}
		last = int(n)
	}
	return last
}

func settleVM(base string) {
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
		m := get(base + "/metrics")
		if metricSum(m, "vm_active_merges") == 0 && metricSum(m, "vm_pending_rows") == 0 {
			time.Sleep(2 * time.Second)
			m = get(base + "/metrics")
			if metricSum(m, "vm_active_merges") == 0 {
				return
			}
		}
	}
}

func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+" ") {
			v, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return v
		}
	}
	return 0
}

func metricSum(text, name string) float64 {
	var s float64
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			s += v
		}
	}
	return s
}

// daemonMetrics runs the sensor with its default configuration in a
// network namespace of its own (capturing on its lo, the API on 127.0.0.1
// there, the store in work) and returns its /metrics once a tick was
// stored.
func daemonMetrics(bin, work string) string {
	const ns = "nsbenchstore"
	exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		fatal("ip netns add (bench-store runs the sensor as root): %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").Run()
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "--interface", "lo", "--api-enable", "--storage-path", filepath.Join(work, "daemon"))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	check(cmd.Start())
	defer stop(cmd)
	time.Sleep(2**interval + time.Second)
	out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-sf", "http://127.0.0.1:8080/metrics").Output()
	if err != nil {
		fatal("the sensor's /metrics: %v", err)
	}
	return string(out)
}

func countSeries(text string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "netsentry_api_requests_total") {
			n++
		}
	}
	return n
}

func get(u string) string {
	resp, err := http.Get(u)
	check(err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

func waitHTTP(u string) {
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	fatal("%s not ready within 60 s", u)
}

func stop(c *exec.Cmd) {
	c.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.Process.Kill()
		<-done
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func check(err error) {
	if err != nil {
		fatal("%v", err)
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-store: "+format+"\n", args...)
	os.Exit(1)
}
