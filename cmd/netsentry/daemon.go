package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/netsentry/netsentry/bpf"
	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/decode/app"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/engine/sampler"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/httpd"
	"github.com/netsentry/netsentry/sensor"
	"github.com/netsentry/netsentry/store"
)

// shutdownLimit is the longest a stop may take after SIGTERM or SIGINT.
const shutdownLimit = 5 * time.Second

// daemon is the running sensor as the command wires it: the sensor (the
// capture's lifecycle and the periodic snapshot), the flow exporter
// shared by every capture, the API, the host samplers and the signal
// handling. It implements httpd.ConfigStore.
type daemon struct {
	o       options
	cfgPath string
	stdout  io.Writer
	stderr  io.Writer
	level   *slog.LevelVar
	log     *slog.Logger
	exp     *engine.Exporter
	top     *engine.TopFlows
	sensor  *sensor.Sensor
	api     *httpd.Server
	host    *hostSource     // nil when the samplers could not start
	alerts  *alerts         // nil when alerting is off
	hist    *sensor.History // the local store (storage.*)
	// collectors are the flows.export IPFIX senders (sinks of exp).
	collectors collectors

	cfgMu sync.Mutex // guards cfg; held while a new config is written and applied
	cfg   configs.Config
}

// live runs the sensor until ctx ends (SIGINT, SIGTERM): capture on the
// configured interfaces, the API when enabled, SIGHUP reloads.
func live(ctx context.Context, cfg configs.Config, o options, stdout, stderr io.Writer) int {
	lc := liveConfig(cfg)
	if cfg.EnablePacketCapture && len(lc.Interfaces) == 0 {
		fmt.Fprintln(stderr, "netsentry: no capture interface: set capture_interface or pass --interface IF (or --replay FILE)")
		return 2
	}
	if !cfg.EnablePacketCapture && !cfg.EnableAPI && !cfg.EnableWeb {
		fmt.Fprintln(stderr, "netsentry: nothing to do: enable_packet_capture, enable_api and enable_web are all off")
		return 2
	}
	if lc.Filter != "" {
		if _, err := bpf.CompileFilter(lc.Filter, decode.LinkEthernet, max(lc.Snaplen, 64)); err != nil {
			fmt.Fprintf(stderr, "netsentry: config: network_analysis.bpf_filter: %v\n", err)
			return 2
		}
	}
	top, cs, sinks, err := flowSinks(o, cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 1
	}
	d := &daemon{o: o, cfgPath: o.configPath, stdout: stdout, stderr: stderr, cfg: cfg, top: top,
		level: new(slog.LevelVar), collectors: cs}
	d.level.Set(parseLevel(cfg.LogLevel))
	d.log = newLogger(stderr, d.level)
	if d.hist, err = sensor.OpenHistory(cfg.Storage, d.log); err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 2
	}
	sinks = append(sinks, d.hist.FlowSink()) // the exporter closes it
	// Live workers never wait on a writer, except for a capture's final flush.
	// Its queues are sized by the memory budget (see flowtable.Budget): a
	// batch is shared by every sink's queue, but queues that fall behind
	// hold different batches, so the budget's batches are split among them.
	d.exp = engine.NewExporter(max(liveBudget(cfg).ExportBatches/len(sinks), 2), false, sinks...)
	setMemoryLimit(cfg)
	// Scan signals are in every snapshot: alerting reads them each
	// interval. Every host's counters are copied only while a reader asks
	// for them (the hosts API and page, the terminal summary): under a flood
	// a copy and merge of every host each second was a tenth of the
	// daemon's CPU.
	d.sensor, err = sensor.New(sensor.Options{Config: d.Config, Prepare: prepareCapture, Exporter: d.exp, Log: d.log,
		Always: sensor.PartScan})
	if err != nil {
		panic("BUG: " + err.Error())
	}
	d.log.Info(fmt.Sprintf("NetSentry %s starting up...", version), "go", goVersion())
	if o.ifaceNote != "" {
		d.log.Info(o.ifaceNote)
	}
	for _, e := range cfg.Flows.Export {
		d.log.Info("Exporting flows as IPFIX", "collector", e.Address, "transport", e.ExportTransport())
	}
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
	bgWG.Add(1)
	go func() { defer bgWG.Done(); d.sensor.Run(bg) }()
	if smp, err := sampler.New(sampler.Config{}); err != nil {
		d.log.Warn("host samplers not started; host metrics are not available", "err", err)
	} else {
		d.host = &hostSource{s: smp}
		bgWG.Add(1)
		go func() { defer bgWG.Done(); smp.Run(bg) }()
		d.log.Info("System collectors started", "interval", smp.Interval())
	}
	d.startAlerts(bg, &bgWG)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if cfg.EnablePacketCapture {
		if _, err := d.sensor.StartCapture(nil); err != nil {
			stopBG()
			bgWG.Wait()
			d.exp.Close()
			d.hist.Close()
			fmt.Fprintf(stderr, "netsentry: %v%s\n", err, interfaceHint(err, o))
			return 2
		}
	}
	if cfg.EnableAPI || cfg.EnableWeb {
		if err := d.startAPI(); err != nil {
			stopBG()
			bgWG.Wait()
			d.sensor.Close()
			d.exp.Close()
			d.hist.Close()
			fmt.Fprintf(stderr, "netsentry: %v (set api_port and web_port, or enable_api: false / --api-enable=false, enable_web: false / --web-enable=false)\n", err)
			return 2
		}
	}
	if err := d.startRecorder(bg, &bgWG); err != nil {
		panic("BUG: " + err.Error())
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
	// The final flush into slow sinks (the store under a flood) must not
	// cost the clean exit: what they cannot take by then is dropped and
	// counted (the exit says how many).
	d.exp.GiveUpAt(time.Now().Add(shutdownLimit - 1500*time.Millisecond))
	stopBG()
	bgWG.Wait()
	// The recorder has stopped: the remote writer's bounded final flush
	// runs beside the rest of the stop; the store closes after it.
	remoteDone := make(chan error, 1)
	go func() { remoteDone <- d.hist.CloseRemote() }()
	if isTerminal(d.stderr) {
		fmt.Fprint(d.stderr, "\r\033[K")
	}
	code := 0
	if d.api != nil {
		if err := d.api.Close(time.Second); err != nil {
			d.log.Warn("api", "err", err)
		}
	}
	if err := d.sensor.Close(); err != nil {
		d.log.Error("stop capture", "err", err)
		code = 1
	}
	d.stopAlerts()
	expErr := d.exp.Close()
	if err := <-remoteDone; err != nil {
		d.log.Warn("remote storage", "err", err)
	}
	// After the exporter: the flow history has every flow the capture's
	// final flush wrote.
	if err := d.hist.Close(); err != nil {
		fmt.Fprintf(d.stderr, "netsentry: close the store: %v\n", err)
		code = 1
	}
	if expErr != nil {
		fmt.Fprintf(d.stderr, "netsentry: %v\n", expErr)
		return 1
	}
	if last, _ := d.sensor.LastCapture(); d.o.flowsOut != "-" && last != nil {
		printSummary(d.stdout, liveSummary(last, d.top, d.o.topN), d.o.geo)
	}
	if n := d.exp.Dropped(); n > 0 {
		fmt.Fprintf(d.stderr, "netsentry: %d flow records dropped: the flow writer could not keep up\n", n)
	}
	return code
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

// apiOptions are the API server's options, listening on addr.
func (d *daemon) apiOptions(addr string) httpd.Options {
	cfg := d.Config()
	opt := httpd.Options{Listen: addr, Token: cfg.APIToken, ReadToken: cfg.APIReadToken, Version: version, GoVersion: goVersion(),
		Sensor: d.sensor, Config: d, Host: d.hostMetrics(), Protocols: appProtocols(), Logger: d.log, Geo: d.o.geo,
		Query: store.NewQueryable(d.hist.Store), Flows: d.hist.Flows, StoreMetrics: d.hist}
	if d.hist.Remote != nil {
		opt.Remote = d.hist.Remote
	}
	if len(d.collectors) > 0 {
		opt.Export = d.collectors
	}
	d.alertOptions(&opt)
	return opt
}

// startAPI starts the API server: on api_port when enable_api, and the web
// dashboard on web_port (same api_listen address) when enable_web; the
// dashboard serves the API to its pages on its own port too.
func (d *daemon) startAPI() error {
	cfg := d.Config()
	addr := ""
	if cfg.EnableAPI {
		addr = net.JoinHostPort(cfg.APIListen, strconv.Itoa(cfg.APIPort))
	}
	opt := d.apiOptions(addr)
	if cfg.EnableWeb {
		opt.WebListen = net.JoinHostPort(cfg.APIListen, strconv.Itoa(cfg.WebPort))
	}
	api, err := httpd.New(opt)
	if err != nil {
		return err
	}
	if err := api.Start(); err != nil {
		return err
	}
	d.api = api
	if a := api.Addr(); a != nil {
		d.log.Info("REST API server started on port "+strconv.Itoa(cfg.APIPort), "addr", a.String())
	}
	if a := api.WebAddr(); a != nil {
		d.log.Info("Web dashboard started on port "+strconv.Itoa(cfg.WebPort), "addr", a.String(), "url", "http://"+a.String()+"/")
	}
	return nil
}

// startRecorder stores a tick of what /metrics serves every
// storage.interval, from the API server (or, with the API off, one that
// never listens), until bg ends.
func (d *daemon) startRecorder(bg context.Context, wg *sync.WaitGroup) error {
	mw := d.api
	if mw == nil {
		var err error
		if mw, err = httpd.New(d.apiOptions("127.0.0.1:0")); err != nil {
			return err
		}
	}
	ro := sensor.RecorderOptions{Metrics: mw, Interval: d.hist.Interval, Enforce: d.hist.Flows.Enforce, Log: d.log}
	if d.hist.Local {
		ro.Store = d.hist.Store
	}
	if d.hist.Remote != nil {
		ro.Remote = d.hist.Remote
	}
	rec, err := sensor.NewRecorder(ro)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); rec.Run(bg) }()
	st := d.Config().Storage
	if d.hist.Local {
		d.log.Info("Storing metrics", "path", st.LocalPath, "interval", d.hist.Interval)
	}
	if d.hist.Remote != nil {
		d.log.Info("Sending metrics to "+st.Type, "url", st.RemoteURL, "sensor", d.hist.Remote.Sensor(), "interval", d.hist.Interval,
			"queue_mb", st.RemoteQueueMB)
	}
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
	if err := d.checkTokensLocked(c); err != nil {
		return httpd.ApplyResult{}, fmt.Errorf("nothing was changed: %w: %w", err, httpd.ErrConflict)
	}
	data, err := configs.Encode(c)
	if err != nil {
		return httpd.ApplyResult{}, err
	}
	data = append([]byte("# Written by the NetSentry API (PUT /api/v1/config); see configs/netsentry.yaml for every key.\n"), data...)
	if err := configs.WriteFile(d.cfgPath, data); err != nil {
		return httpd.ApplyResult{}, err
	}
	return d.applyLocked(c), nil
}

// liveKeys are the keys applied at once; every other change waits for a
// restart.
var liveKeys = map[string]bool{"log_level": true, "api_token": true, "api_read_token": true}

// checkTokensLocked says whether the API can enforce c's tokens now (an
// empty api_token is refused while it listens beyond loopback); a change it
// cannot enforce is refused whole, so that the configuration shown is the
// one in force.
func (d *daemon) checkTokensLocked(c configs.Config) error {
	if d.api == nil || (c.APIToken == d.cfg.APIToken && c.APIReadToken == d.cfg.APIReadToken) {
		return nil
	}
	return d.api.CheckTokens(c.APIToken, c.APIReadToken)
}

// applyLocked makes c the configuration in force: what can change live
// does, the rest is reported (and logged) as needing a restart.
func (d *daemon) applyLocked(c configs.Config) httpd.ApplyResult {
	var res httpd.ApplyResult
	// A key the new configuration warns about (e.g. storage.remote_url
	// with storage.type local) is not acted on, by a restart either.
	warned := map[string]bool{}
	for _, w := range c.Warnings() {
		warned[w.Key] = true
	}
	for _, k := range configs.Diff(d.cfg, c) {
		if configs.Inert(k) || warned[k] {
			res.NotActedOn = append(res.NotActedOn, k) // nothing to restart: no feature reads it yet
			continue
		}
		if !liveKeys[k] {
			res.RestartRequired = append(res.RestartRequired, k)
			continue
		}
		switch k {
		case "log_level":
			d.level.Set(parseLevel(c.LogLevel))
		case "api_token", "api_read_token":
			if d.api != nil {
				// checkTokensLocked passed, so this does not fail.
				if err := d.api.SetTokens(c.APIToken, c.APIReadToken); err != nil {
					panic("BUG: tokens checked, then refused: " + err.Error())
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

// reload re-reads the configuration file (SIGHUP) and applies it; a file
// with problems is refused whole and the configuration in force stays.
func (d *daemon) reload() {
	if d.cfgPath == "" {
		d.log.Warn("SIGHUP: started without --config; nothing to reload")
		return
	}
	c, warns, db, err := loadConfig(d.cfgPath) // the geolocation databases are checked, then closed
	db.Close()
	if err != nil {
		d.log.Error("SIGHUP: configuration not reloaded; the one in force stays", "err", err)
		return
	}
	for _, w := range warns {
		d.log.Warn("config: " + w.String())
	}
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	// Command-line overrides stay in force.
	d.o.applyOverrides(&c)
	if err := d.checkTokensLocked(c); err != nil {
		d.log.Error("SIGHUP: configuration not reloaded; the one in force stays", "err", err)
		return
	}
	res := d.applyLocked(c)
	d.log.Info("SIGHUP: configuration reloaded", "applied", len(res.Applied), "restart_required", len(res.RestartRequired))
}

// watchdog pings systemd's watchdog every interval while the sensor is
// healthy: every packet worker answered the latest snapshot request, which
// it does only while its loop turns, and the capture that should run does.
// A stuck worker stops the pings and systemd restarts the service.
func (d *daemon) watchdog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ok, reason := d.sensor.Health(); !ok {
			if ctx.Err() == nil {
				d.log.Error("watchdog: not pinging: " + reason)
			}
			continue
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
		snap := d.sensor.Latest()
		if !snap.Capture.Running {
			continue
		}
		tot := engine.TotalStats(snap.Queues)
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
		if d.sensor.Running() {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			snap, err := d.sensor.Wait(sctx, sensor.PartHosts|sensor.PartScan, 2*time.Second)
			var top []flowtable.Record
			if err == nil {
				// The workers' top-N, not a copy of every open flow.
				top, err = d.sensor.TopFlows(sctx, flowtable.FlowQuery{Limit: d.o.topN, By: flowtable.ByBytes})
			}
			cancel()
			if err != nil {
				continue
			}
			s = snapshotSummary(snap, top, d.o.topN)
		}
		if host != nil {
			if _, flat, err := host.HostMetrics(); err == nil {
				s.system = flat
			}
		}
		fmt.Fprint(d.stdout, "\033[H\033[2J")
		printSummary(d.stdout, s, d.o.geo)
	}
}
