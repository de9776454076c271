package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/netsentry/netsentry/bpf"
	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/decode/app"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/engine/sampler"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
)

// shutdownLimit is the longest a stop may take after SIGTERM or SIGINT.
const shutdownLimit = 5 * time.Second

// daemon is the running sensor: a capture that can be stopped and started
// again, the flow exporter shared by every capture, the API and the
// signal handling. It implements httpd.Sensor and httpd.ConfigStore.
type daemon struct {
	o       options
	cfgPath string
	stdout  io.Writer
	stderr  io.Writer
	level   *slog.LevelVar
	log     *slog.Logger
	exp     *engine.Exporter
	top     *engine.TopFlows
	api     *httpd.Server
	host    *hostSource // nil when the samplers could not start

	cfgMu sync.Mutex // guards cfg; held while a new config is written and applied
	cfg   configs.Config

	capMu sync.Mutex // guards cur and last; held while a capture starts or stops
	cur   *captureRun
	last  *captureRun // the latest capture that ran, for the final summary
}

// captureRun is one capture from start to stop.
type captureRun struct {
	l        *engine.Live
	ifaces   []string
	since    time.Time
	stopping atomic.Bool
	cancel   context.CancelFunc
	done     chan error
}

// live runs the sensor until ctx ends (SIGINT, SIGTERM): capture on the
// configured interfaces, the API when enabled, SIGHUP reloads.
func live(ctx context.Context, cfg configs.Config, o options, stdout, stderr io.Writer) int {
	lc := liveConfig(cfg)
	if cfg.EnablePacketCapture && len(lc.Interfaces) == 0 {
		fmt.Fprintln(stderr, "netsentry: no capture interface: set capture_interface or pass --interface IF (or --replay FILE)")
		return 2
	}
	if !cfg.EnablePacketCapture && !cfg.EnableAPI {
		fmt.Fprintln(stderr, "netsentry: nothing to do: enable_packet_capture and enable_api are both off")
		return 2
	}
	if lc.Filter != "" {
		if _, err := bpf.CompileFilter(lc.Filter, decode.LinkEthernet, max(lc.Snaplen, 64)); err != nil {
			fmt.Fprintf(stderr, "netsentry: config: network_analysis.bpf_filter: %v\n", err)
			return 2
		}
	}
	top, sinks, err := flowSinks(o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 1
	}
	d := &daemon{o: o, cfgPath: o.configPath, stdout: stdout, stderr: stderr, cfg: cfg, top: top,
		level: new(slog.LevelVar)}
	d.level.Set(parseLevel(cfg.LogLevel))
	d.log = newLogger(stderr, d.level)
	// Live workers never wait on a writer, except for a capture's final flush.
	// Its queue is sized by the memory budget (see flowtable.Budget).
	d.exp = engine.NewExporter(liveBudget(cfg).ExportBatches, false, sinks...)
	setMemoryLimit(cfg)
	d.log.Info(fmt.Sprintf("NetSentry %s starting up...", version), "go", goVersion())
	// A packet worker is locked to its thread and holds a P while it runs
	// Go code (a busy ring, a snapshot copy); with GOMAXPROCS = CPUs the
	// workers could take every P and stall the API. Give the rest of the
	// process as many Ps again, and let the kernel share the cores.
	if os.Getenv("GOMAXPROCS") == "" {
		workers := cfg.Performance.Threads
		if workers <= 0 {
			workers = allowedCPUs()
		}
		runtime.GOMAXPROCS(allowedCPUs() + workers)
	}

	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	if smp, err := sampler.New(sampler.Config{}); err != nil {
		d.log.Warn("host samplers not started; host metrics are not available", "err", err)
	} else {
		d.host = &hostSource{s: smp}
		bgWG.Add(1)
		go func() { defer bgWG.Done(); smp.Run(bg) }()
		d.log.Info("System collectors started", "interval", smp.Interval())
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if cfg.EnablePacketCapture {
		if _, err := d.StartCapture(nil); err != nil {
			stopBG()
			bgWG.Wait()
			d.exp.Close()
			fmt.Fprintf(stderr, "netsentry: %v\n", err)
			return 2
		}
	}
	if cfg.EnableAPI {
		if err := d.startAPI(); err != nil {
			stopBG()
			bgWG.Wait()
			d.StopCapture()
			d.exp.Close()
			fmt.Fprintf(stderr, "netsentry: %v (set api_port, or enable_api: false / --api-enable=false)\n", err)
			return 2
		}
	}
	if cfg.EnableWeb {
		d.log.Debug("web dashboard: not part of this build; enable_web is ignored", "web_port", cfg.WebPort)
	}
	if o.webFlag {
		d.log.Warn("web dashboard: not part of this build; --web-enable is ignored")
	}
	if ok, err := sdNotify("READY=1\nSTATUS=capturing"); err != nil {
		d.log.Warn("sd_notify READY", "err", err)
	} else if ok {
		d.log.Debug("told systemd we are ready")
	}
	d.log.Info("NetSentry is running. Press Ctrl+C to exit.")

	if iv := watchdogInterval(); iv > 0 {
		bgWG.Add(1)
		go func() { defer bgWG.Done(); d.watchdog(bg, iv) }()
	}
	switch {
	case isTerminal(stdout) && o.flowsOut != "-":
		bgWG.Add(1)
		go func() { defer bgWG.Done(); d.refreshSummary(bg) }()
	case isTerminal(stderr):
		bgWG.Add(1)
		go func() { defer bgWG.Done(); d.progress(bg) }()
	}

	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			d.reload()
		}
	}
	return d.shutdown(stopBG, &bgWG)
}

// shutdown stops the API, the capture (flushing its flows) and the writers,
// and prints the summary; past shutdownLimit it gives up and exits.
func (d *daemon) shutdown(stopBG context.CancelFunc, bgWG *sync.WaitGroup) int {
	d.log.Info("shutting down")
	sdNotify("STOPPING=1")
	deadline := time.AfterFunc(shutdownLimit, func() {
		d.log.Error("shutdown took longer than " + shutdownLimit.String() + "; exiting without a clean stop")
		os.Exit(1)
	})
	defer deadline.Stop()
	stopBG()
	bgWG.Wait()
	if isTerminal(d.stderr) {
		fmt.Fprint(d.stderr, "\r\033[K")
	}
	code := 0
	if d.api != nil {
		if err := d.api.Close(time.Second); err != nil {
			d.log.Warn("api", "err", err)
		}
	}
	d.capMu.Lock()
	if d.cur != nil {
		if err := d.stopLocked(); err != nil {
			d.log.Error("stop capture", "err", err)
			code = 1
		}
	}
	last := d.last
	d.capMu.Unlock()
	if err := d.exp.Close(); err != nil {
		fmt.Fprintf(d.stderr, "netsentry: %v\n", err)
		return 1
	}
	if d.o.flowsOut != "-" && last != nil {
		printSummary(d.stdout, liveSummary(last.l, d.top, d.o.topN))
	}
	if n := d.exp.Dropped(); n > 0 {
		fmt.Fprintf(d.stderr, "netsentry: %d flow records dropped: the flow writer could not keep up\n", n)
	}
	return code
}

// StartCapture implements httpd.Sensor.
func (d *daemon) StartCapture(ifaces []string) (httpd.CaptureStatus, error) {
	d.capMu.Lock()
	defer d.capMu.Unlock()
	if d.cur != nil {
		return d.statusLocked(), fmt.Errorf("capture already running on %v; stop it first: %w", d.cur.ifaces, httpd.ErrConflict)
	}
	cfg := d.Config()
	if ifaces != nil {
		cfg.CaptureInterface = ifaces[0]
		cfg.NetworkAnalysis.CaptureInterfaces = ifaces
	}
	lc := liveConfig(cfg)
	if len(lc.Interfaces) == 0 {
		return d.statusLocked(), fmt.Errorf("no capture interface configured: %w", httpd.ErrInvalid)
	}
	run := &captureRun{ifaces: lc.Interfaces, done: make(chan error, 1)}
	onEnd := func(recs []flowtable.Record) {
		if run.stopping.Load() {
			d.exp.SendWait(recs)
			return
		}
		d.exp.Send(recs)
	}
	flowCfg := cfg
	flowCfg.Performance.MemoryLimitMB = tablesMB(cfg.Performance)
	nShards := lc.Queues
	if nShards <= 0 {
		nShards = allowedCPUs()
	}
	lc.NewShard = func(q int) (*flowtable.Shard, error) {
		return flowtable.New(shardConfig(flowCfg, nShards), onEnd)
	}
	lc.Logf = func(format string, args ...any) { d.log.Warn(fmt.Sprintf(format, args...)) }
	l, err := engine.NewLive(lc)
	if err != nil {
		return d.statusLocked(), invalidError{err}
	}
	run.l = l
	run.since = time.Now()
	var runCtx context.Context
	runCtx, run.cancel = context.WithCancel(context.Background())
	go func() { run.done <- l.Run(runCtx) }()
	d.cur, d.last = run, run
	d.log.Info(fmt.Sprintf("capturing on %v: %s; fan-out %s", lc.Interfaces, l.Geometry(), l.FanoutMode()))
	return d.statusLocked(), nil
}

// invalidError is an engine error caused by the request (an interface that
// does not exist): its message unchanged, and httpd.ErrInvalid for errors.Is.
type invalidError struct{ err error }

func (e invalidError) Error() string        { return e.err.Error() }
func (e invalidError) Unwrap() error        { return e.err }
func (e invalidError) Is(target error) bool { return target == httpd.ErrInvalid }

// StopCapture implements httpd.Sensor.
func (d *daemon) StopCapture() (httpd.CaptureStatus, error) {
	d.capMu.Lock()
	defer d.capMu.Unlock()
	if d.cur == nil {
		return d.statusLocked(), nil
	}
	err := d.stopLocked()
	return d.statusLocked(), err
}

// stopLocked stops the current capture: the workers drain their rings and
// flush every open flow (reason shutdown) to the writers.
func (d *daemon) stopLocked() error {
	run := d.cur
	d.cur = nil
	run.stopping.Store(true)
	run.cancel()
	err := <-run.done
	tot := engine.TotalStats(run.l.Stats())
	d.log.Info(fmt.Sprintf("capture on %v stopped", run.ifaces), "packets", tot.Packets, "kernel_drops", tot.KernelDrops)
	if cerr := run.l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("stop capture: %w", err)
	}
	return nil
}

// Capture implements httpd.Sensor.
func (d *daemon) Capture() httpd.CaptureStatus {
	d.capMu.Lock()
	defer d.capMu.Unlock()
	return d.statusLocked()
}

func (d *daemon) statusLocked() httpd.CaptureStatus {
	run := d.cur
	if run == nil {
		st := httpd.CaptureStatus{}
		if d.last != nil {
			st.Interfaces, st.Since = d.last.ifaces, d.last.since
		}
		return st
	}
	return httpd.CaptureStatus{Running: true, Interfaces: run.ifaces, Since: run.since,
		Queues: len(run.l.Workers()), Fanout: run.l.FanoutMode()}
}

func (d *daemon) running() *captureRun {
	d.capMu.Lock()
	defer d.capMu.Unlock()
	return d.cur
}

// Queues implements httpd.Sensor.
func (d *daemon) Queues() []httpd.QueueStats {
	run := d.running()
	if run == nil {
		return nil
	}
	st := run.l.Stats()
	out := make([]httpd.QueueStats, len(st))
	for i, q := range st {
		out[i] = httpd.QueueStats{Queue: q.Queue, CPU: q.CPU, Packets: q.Packets, Bytes: q.Bytes,
			KernelPackets: q.KernelPackets, KernelDrops: q.KernelDrops, Freezes: q.Freezes}
	}
	return out
}

// Snapshot implements httpd.Sensor: every worker copies its state between
// two batches, all at once; the copies are merged.
func (d *daemon) Snapshot(ctx context.Context, parts httpd.Parts) (httpd.Snapshot, error) {
	run := d.running()
	if run == nil {
		return toAPISnapshot(engine.Snapshot{}), nil
	}
	snaps, err := workerSnapshots(ctx, run.l.Workers(), engine.SnapshotParts{Flows: parts.Flows, Hosts: parts.Hosts, Protocols: parts.Protocols})
	if err != nil {
		return httpd.Snapshot{}, err
	}
	// Flows stay per worker: merging would copy every record once more.
	flows := make([][]flowtable.Record, len(snaps))
	for i := range snaps {
		flows[i], snaps[i].Flows = snaps[i].Flows, nil
	}
	out := toAPISnapshot(engine.MergeSnapshots(snaps))
	out.Flows = flows
	return out, nil
}

// snapshotWorkers asks every worker for a snapshot at once and merges them.
func snapshotWorkers(ctx context.Context, ws []*engine.Worker, parts engine.SnapshotParts) (engine.Snapshot, error) {
	snaps, err := workerSnapshots(ctx, ws, parts)
	if err != nil {
		return engine.Snapshot{}, err
	}
	return engine.MergeSnapshots(snaps), nil
}

// workerSnapshots asks every worker for a snapshot at once.
func workerSnapshots(ctx context.Context, ws []*engine.Worker, parts engine.SnapshotParts) ([]engine.Snapshot, error) {
	snaps := make([]engine.Snapshot, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps[i], errs[i] = w.Snapshot(ctx, parts)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("queue %d: %w", i, err)
		}
	}
	return snaps, nil
}

func toAPISnapshot(s engine.Snapshot) httpd.Snapshot {
	out := httpd.Snapshot{Packets: s.Counters.Packets, Bytes: s.Counters.Bytes, NonIP: s.Counters.NonIP,
		Stats: s.Stats, Hosts: s.Hosts, Protocols: s.Protocols}
	if s.Flows != nil {
		out.Flows = [][]flowtable.Record{s.Flows}
	}
	for r := decode.ReasonNone + 1; r < decode.NumReasons; r++ {
		out.DecodeErrors = append(out.DecodeErrors, httpd.NamedCount{Name: r.String(), Count: s.Counters.Decode[r]})
	}
	return out
}

// appProtocols is the bounded set of application-protocol names flows
// show, for metric labels.
func appProtocols() []string {
	names := []string{app.Unknown.String()}
	for p := app.Unknown + 1; p.String() != app.Unknown.String(); p++ {
		names = append(names, p.String())
	}
	return append(names, app.Name(app.TLS, 443)) // "HTTPS"
}

func (d *daemon) startAPI() error {
	cfg := d.Config()
	addr := net.JoinHostPort(cfg.APIListen, strconv.Itoa(cfg.APIPort))
	api, err := httpd.New(httpd.Options{Listen: addr, Token: cfg.APIToken, Version: version, GoVersion: goVersion(),
		Sensor: d, Config: d, Host: d.hostMetrics(), Protocols: appProtocols(), Logger: d.log})
	if err != nil {
		return err
	}
	if err := api.Start(); err != nil {
		return err
	}
	d.api = api
	d.log.Info("REST API server started on port "+strconv.Itoa(cfg.APIPort), "addr", api.Addr().String())
	return nil
}

// hostMetrics returns the host samplers for the API, nil when there are none.
func (d *daemon) hostMetrics() httpd.HostMetrics {
	if d.host == nil {
		return nil
	}
	return d.host
}

// Config implements httpd.ConfigStore.
func (d *daemon) Config() configs.Config {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.cfg.Clone()
}

// Replace implements httpd.ConfigStore: c is written to the configuration
// file (a temporary file renamed over it, so the file is whole at every
// instant), then applied.
func (d *daemon) Replace(c configs.Config) (httpd.ApplyResult, error) {
	if d.cfgPath == "" {
		return httpd.ApplyResult{}, fmt.Errorf("started without --config, so there is no file to write the configuration to: %w", httpd.ErrConflict)
	}
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	data, err := configs.Encode(c)
	if err != nil {
		return httpd.ApplyResult{}, err
	}
	data = append([]byte("# Written by the NetSentry API (PUT /api/v1/config); see configs/netsentry.yaml for every key.\n"), data...)
	if err := writeFileAtomic(d.cfgPath, data); err != nil {
		return httpd.ApplyResult{}, err
	}
	return d.applyLocked(c), nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced, then renamed over path.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	mode := os.FileMode(0o640)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write config: %w", err)
	}
	if df, err := os.Open(dir); err == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// liveKeys are the keys applied at once; every other change waits for a
// restart.
var liveKeys = map[string]bool{"log_level": true, "api_token": true}

// applyLocked makes c the configuration in force: what can change live
// does, the rest is reported (and logged) as needing a restart.
func (d *daemon) applyLocked(c configs.Config) httpd.ApplyResult {
	var res httpd.ApplyResult
	for _, k := range changedKeys(d.cfg, c) {
		if !liveKeys[k] {
			res.RestartRequired = append(res.RestartRequired, k)
			continue
		}
		switch k {
		case "log_level":
			d.level.Set(parseLevel(c.LogLevel))
		case "api_token":
			if d.api != nil {
				if err := d.api.SetToken(c.APIToken); err != nil {
					d.log.Error("apply api_token", "err", err)
					res.RestartRequired = append(res.RestartRequired, k)
					continue
				}
			}
		}
		res.Applied = append(res.Applied, k)
	}
	d.cfg = c.Clone()
	if len(res.Applied) > 0 {
		d.log.Info("configuration applied", "keys", res.Applied)
	}
	if len(res.RestartRequired) > 0 {
		d.log.Warn("configuration changed; takes effect after a restart", "keys", res.RestartRequired)
	}
	return res
}

// changedKeys lists the dotted keys (down to the second level) whose
// values differ between a and b.
func changedKeys(a, b configs.Config) []string {
	ma, mb := configMap(a), configMap(b)
	var out []string
	for _, k := range sortedKeys(ma, mb) {
		va, vb := ma[k], mb[k]
		sa, aok := va.(map[string]any)
		sb, bok := vb.(map[string]any)
		if aok && bok {
			for _, sk := range sortedKeys(sa, sb) {
				if !reflect.DeepEqual(sa[sk], sb[sk]) {
					out = append(out, k+"."+sk)
				}
			}
			continue
		}
		if !reflect.DeepEqual(va, vb) {
			out = append(out, k)
		}
	}
	return out
}

func configMap(c configs.Config) map[string]any {
	data, err := configs.Encode(c)
	if err != nil {
		panic("BUG: encode config: " + err.Error())
	}
	m := map[string]any{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		panic("BUG: decode encoded config: " + err.Error())
	}
	return m
}

func sortedKeys(a, b map[string]any) []string {
	seen := map[string]bool{}
	var ks []string
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				ks = append(ks, k)
			}
		}
	}
	slices.Sort(ks)
	return ks
}

// reload re-reads the configuration file (SIGHUP) and applies it; a file
// with problems is refused whole and the configuration in force stays.
func (d *daemon) reload() {
	if d.cfgPath == "" {
		d.log.Warn("SIGHUP: started without --config; nothing to reload")
		return
	}
	c, err := configs.LoadChecked(d.cfgPath)
	if err != nil {
		d.log.Error("SIGHUP: configuration not reloaded; the one in force stays", "err", err)
		return
	}
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	// Command-line overrides stay in force.
	d.o.applyOverrides(&c)
	res := d.applyLocked(c)
	d.log.Info("SIGHUP: configuration reloaded", "applied", len(res.Applied), "restart_required", len(res.RestartRequired))
}

// watchdog pings systemd's watchdog every interval while every packet
// worker answers a snapshot request within half the interval, which it
// does only while its loop turns; a stuck worker stops the pings and
// systemd restarts the service.
func (d *daemon) watchdog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if run := d.running(); run != nil {
			pctx, cancel := context.WithTimeout(ctx, interval/2)
			_, err := snapshotWorkers(pctx, run.l.Workers(), engine.SnapshotParts{})
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error("watchdog: a packet worker made no progress; not pinging", "err", err)
				}
				continue
			}
		}
		if _, err := sdNotify("WATCHDOG=1"); err != nil {
			d.log.Warn("watchdog", "err", err)
		}
	}
}

// progress writes a one-line live status on a terminal stderr.
func (d *daemon) progress(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		run := d.running()
		if run == nil {
			continue
		}
		tot := engine.TotalStats(run.l.Stats())
		fmt.Fprintf(d.stderr, "\r\033[Klive: %d packets  %.0f pps  %d kernel drops", tot.Packets, float64(tot.Packets-last), tot.KernelDrops)
		last = tot.Packets
	}
}

// refreshSummary redraws the terminal summary every two seconds (stdout is
// a terminal), from worker snapshots.
func (d *daemon) refreshSummary(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	host := d.hostMetrics()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var s summary
		if run := d.running(); run != nil {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			snap, err := snapshotWorkers(sctx, run.l.Workers(), engine.SnapshotParts{Flows: true, Hosts: true})
			cancel()
			if err != nil {
				continue
			}
			s = snapshotSummary(snap, run.l.Stats(), d.o.topN)
		}
		if host != nil {
			if _, flat, err := host.HostMetrics(); err == nil {
				s.system = flat
			}
		}
		fmt.Fprint(d.stdout, "\033[H\033[2J")
		printSummary(d.stdout, s)
	}
}
