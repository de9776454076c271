// Command netsentry is the NetSentry network sensor: it captures live on
// interfaces or replays pcap files, tracks every flow, and reports them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/geo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type options struct {
	configPath  string
	checkConfig bool
	showVersion bool
	iface       string
	replay      string
	replaySpeed string
	flowsOut    string
	topN        int
	detect      bool
	cpuprofile  string
	storagePath string
	apiEnable   bool
	webEnable   bool
	apiFlag     bool    // --api-enable was given
	webFlag     bool    // --web-enable was given
	geo         *geo.DB // network_analysis.enable_geolocation's databases; nil when off
	ifaceNote   string  // how the capture interface was chosen, when not by flag or file; logged at start
}

// applyOverrides lays the command-line flags over a configuration.
func (o *options) applyOverrides(c *configs.Config) {
	if o.iface != "" {
		c.CaptureInterface = o.iface
		c.NetworkAnalysis.CaptureInterfaces = nil
		c.EnablePacketCapture = true
	}
	if o.apiFlag {
		c.EnableAPI = o.apiEnable
	}
	if o.webFlag {
		c.EnableWeb = o.webEnable
	}
	if o.storagePath != "" {
		c.Storage.LocalPath = o.storagePath
		if abs, err := filepath.Abs(o.storagePath); err == nil {
			c.Storage.LocalPath = abs
		}
	}
}

func main() {
	raiseCaps() // file capabilities of the container image; see caps_linux.go
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "tune" {
		return tune(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("netsentry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.configPath, "config", "", "configuration file (default: the embedded defaults, as in configs/netsentry.yaml)")
	fs.BoolVar(&o.checkConfig, "check-config", false, "check the configuration, print what is wrong or \"ok\", and exit")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&o.iface, "interface", "", "capture live on this interface (overrides capture_interface)")
	fs.StringVar(&o.replay, "replay", "", "replay this pcap or pcapng file instead of capturing live")
	fs.StringVar(&o.replaySpeed, "replay-speed", "max", "replay pace: max (as fast as possible) or 1x (real time)")
	fs.StringVar(&o.flowsOut, "flows-out", "", "write every ended flow as a JSON line to this file (- for stdout)")
	fs.IntVar(&o.topN, "top", 5, "how many connections and hosts the summary lists")
	fs.BoolVar(&o.apiEnable, "api-enable", false, "serve the REST API and /metrics (overrides enable_api; --api-enable=false turns it off)")
	fs.BoolVar(&o.webEnable, "web-enable", false, "serve the web dashboard (overrides enable_web)")
	fs.StringVar(&o.storagePath, "storage-path", "", "keep the local store in this directory (overrides storage.local_path)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file (for performance work)")
	fs.BoolVar(&o.detect, "detect", true, "detect application protocols from payload (overrides network_analysis.enable_protocol_detection when given)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "api-enable":
			o.apiFlag = true
		case "web-enable":
			o.webFlag = true
		}
	})
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "netsentry: unexpected argument %q (flags start with --; see --help)\n", fs.Arg(0))
		return 2
	}
	if o.showVersion {
		fmt.Fprintf(stdout, "netsentry %s (%s)\n", version, goVersion())
		return 0
	}
	cfg, warns, db, err := loadConfig(o.configPath)
	if o.checkConfig {
		if err != nil {
			fmt.Fprintln(stdout, err)
		}
		for _, w := range warns {
			fmt.Fprintln(stdout, "warning: "+w.String())
		}
		if err != nil {
			return 1
		}
		db.Close()
		fmt.Fprintln(stdout, "ok")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n(run netsentry --check-config --config FILE to list every problem)\n", err)
		return 2
	}
	defer db.Close()
	o.geo = db
	logWarnings(stderr, cfg, warns)
	if o.replaySpeed != "max" && o.replaySpeed != "1x" {
		fmt.Fprintf(stderr, "netsentry: --replay-speed %q: want max or 1x\n", o.replaySpeed)
		return 2
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "detect" {
			cfg.NetworkAnalysis.EnableProtocolDetection = o.detect
		}
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "netsentry: --cpuprofile: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "netsentry: --cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	if o.replay != "" {
		return replay(ctx, cfg, o, stdout, stderr)
	}
	o.applyOverrides(&cfg)
	if o.configPath == "" && o.iface == "" && cfg.EnablePacketCapture {
		o.ifaceNote = useDefaultRoute(&cfg, engine.ThreadNetDir)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "netsentry: with the command-line flags: %v\n", err)
		return 2
	}
	return live(ctx, cfg, o, stdout, stderr)
}

// loadConfig loads and checks the configuration file at path (the
// defaults when path is ""), and opens the geolocation databases it names.
// The error lists every problem; warnings are the settings accepted but
// not acted on (configs.Config.Warnings).
func loadConfig(path string) (configs.Config, []configs.Problem, *geo.DB, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return configs.Config{}, nil, nil, fmt.Errorf("read config: %w", err)
		}
	}
	return geo.CheckConfig(data, path, envTokens)
}

// Environment variables that set the API tokens over the file's
// api_token and api_read_token (a container takes them from a secret, so
// the configuration itself can be a plain ConfigMap).
const (
	envAPIToken     = "NETSENTRY_API_TOKEN"
	envAPIReadToken = "NETSENTRY_API_READ_TOKEN"
)

// envTokens lays NETSENTRY_API_TOKEN and NETSENTRY_API_READ_TOKEN, when
// set and not empty, over the configuration, before it is validated.
func envTokens(c *configs.Config) {
	if v := os.Getenv(envAPIToken); v != "" {
		c.APIToken = v
	}
	if v := os.Getenv(envAPIReadToken); v != "" {
		c.APIReadToken = v
	}
}

// logWarnings logs each configuration warning at start-up.
func logWarnings(w io.Writer, cfg configs.Config, warns []configs.Problem) {
	if len(warns) == 0 {
		return
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.LogLevel))
	log := newLogger(w, level)
	for _, p := range warns {
		log.Warn("config: " + p.String())
	}
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown go"
}

// tableBudget splits cfg's performance.memory_limit_mb (the capture rings
// already taken out by the caller, see StartCapture) between the tables of
// nShards shards.
func tableBudget(cfg configs.Config, nShards int) flowtable.Budget {
	return flowtable.NewBudget(int64(cfg.Performance.MemoryLimitMB)<<20, nShards,
		cfg.NetworkAnalysis.EnableProtocolDetection, cfg.Flows.MaxFragments)
}

// shardConfig derives a flow-table configuration for nShards shards from cfg.
func shardConfig(cfg configs.Config, nShards int) flowtable.Config {
	c := flowtable.Config{
		IdleTimeout:     cfg.Flows.IdleTimeout.Duration,
		UDPIdleTimeout:  cfg.Flows.UDPIdleTimeout.Duration,
		ActiveTimeout:   cfg.Flows.ActiveTimeout.Duration,
		Linger:          cfg.Flows.TCPClosedLinger.Duration,
		FragmentTimeout: cfg.Flows.FragmentTimeout.Duration,
		Protocols:       cfg.NetworkAnalysis.Protocols,
	}
	tableBudget(cfg, nShards).Apply(&c)
	return c
}

// flowSinks opens the --flows-out writer (if any), the summary's top-N
// sink and the flows.export collectors.
func flowSinks(o options, cfg configs.Config, stdout io.Writer) (*engine.TopFlows, collectors, []engine.Sink, error) {
	top := engine.NewTopFlows(o.topN)
	cs, sinks, err := exportSinks(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	sinks = append([]engine.Sink{top}, sinks...)
	switch o.flowsOut {
	case "":
	case "-":
		sinks = append(sinks, geoLines(engine.NewJSONLines(stdout, nil), o.geo))
	default:
		f, err := os.Create(o.flowsOut)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open --flows-out: %w", err)
		}
		sinks = append(sinks, geoLines(engine.NewJSONLines(f, f), o.geo))
	}
	return top, cs, sinks, nil
}

func replay(ctx context.Context, cfg configs.Config, o options, stdout, stderr io.Writer) int {
	rf, err := engine.OpenFile(o.replay)
	if err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 1
	}
	defer rf.Close()
	top, _, sinks, err := flowSinks(o, cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 1
	}
	exp := engine.NewExporter(64, true, sinks...)
	shard, err := flowtable.New(shardConfig(cfg, 1), nil)
	if err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 1
	}
	shard.SetEndSwap(exp.Swap)
	w := engine.NewWorker(shard)
	opt := engine.ReplayOptions{RealTime: o.replaySpeed == "1x", BatchSize: cfg.Performance.PacketBatchSize}
	if isTerminal(stderr) {
		opt.Progress = func(st engine.ReplayStats) { progress(stderr, st) }
	}
	st, rerr := engine.Replay(ctx, rf, w, opt)
	if opt.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err := exp.Close(); err != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", err)
		return 1
	}
	if o.flowsOut != "-" {
		printSummary(stdout, buildSummary([]*engine.Worker{w}, top, o.topN), o.geo)
	}
	if st.Stop != nil {
		fmt.Fprintf(stderr, "netsentry: %s: %v\n", o.replay, st.Stop)
	}
	if rerr != nil {
		fmt.Fprintf(stderr, "netsentry: %v\n", rerr)
		return 1
	}
	return 0
}

func progress(w io.Writer, st engine.ReplayStats) {
	pct := 0.0
	if st.Size > 0 {
		pct = 100 * float64(st.Offset) / float64(st.Size)
	}
	rate := float64(st.Packets) / st.Duration.Seconds()
	fmt.Fprintf(w, "\r\033[Kreplay: %5.1f%%  %d packets  %.1f MB  %.2f Mpps", pct, st.Packets, float64(st.Offset)/1e6, rate/1e6)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && fileIsTerminal(f)
}
