package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/netsentry/netsentry/bench/trafficgen"
)

// options are the command-line flags.
type options struct {
	netsentry     string
	netsentryArgs string
	packets       int
	flows         int
	seed          uint64
	runs          int
	trace         string
	keep          bool
	tools         string
	cpuprofile    string // hidden
	memprofile    string // hidden
}

// hiddenFlags work but are left out of -h: they are for whoever profiles
// NetSentry, not for the benchmark's readers.
var hiddenFlags = map[string]bool{"cpuprofile": true, "memprofile": true}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "replay: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.netsentry, "netsentry", "", "netsentry binary to measure (empty: build one with go build into the temporary directory)")
	// TODO(detect): pass -netsentry-args "--detect=false" / "--detect=true" once
	// application detection can be switched, to show what it costs.
	fs.StringVar(&o.netsentryArgs, "netsentry-args", "", "extra arguments appended to the netsentry child's command line (shell-style quoting)")
	fs.IntVar(&o.packets, "packets", trafficgen.DefaultPackets, "packets in the generated trace")
	fs.IntVar(&o.flows, "flows", trafficgen.DefaultFlows, "flows in the generated trace")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated trace")
	fs.IntVar(&o.runs, "runs", 3, "measurements per tool; the table shows the median and the range")
	fs.StringVar(&o.trace, "trace", "", "measure this classic pcap file instead of generating one")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (trace, shifted copy, built binary) and print its path")
	fs.StringVar(&o.tools, "tools", strings.Join(allTools, ","), "tools to measure, comma-separated")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process during the runs (the in-process replays) to this file")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a profile of every allocation this process makes during the runs to this file (slows the in-process replays)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench/replay [flags]\n\nReplays one trace through netsentry, tcpdump and ndpiReader and compares their CPU cost.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			fmt.Fprintf(stderr, "  -%s\n    \t%s", f.Name, f.Usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(stderr, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replay: unexpected argument %q (see -h)\n", fs.Arg(0))
		return o, errors.New("unexpected argument")
	}
	if o.runs < 1 {
		fmt.Fprintf(stderr, "replay: -runs %d: want at least 1\n", o.runs)
		return o, errors.New("bad -runs")
	}
	return o, nil
}

// tool is one measurable program.
type tool struct {
	name  string
	label string
	argv  []string // child tools; nil for the in-process pipeline
}

// benchmark is one run of the whole benchmark.
type benchmark struct {
	o      options
	stderr io.Writer
	term   bool   // stderr is a terminal: progress is redrawn in place
	dir    string // temporary directory

	tools    []tool
	peers    map[string]string // tool name -> executable path
	trace    string
	packets  uint64
	truth    *trafficgen.Truth // nil for -trace
	warm     string            // time-shifted copies for the in-process passes
	bare     string
	versions []string
}

func (b *benchmark) logf(format string, args ...any) { fmt.Fprintf(b.stderr, format+"\n", args...) }

// bench runs the whole benchmark: checks, trace, tools, runs, report.
func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	b := &benchmark{o: o, stderr: stderr, term: isTerminal(stderr), peers: map[string]string{}}
	names, err := parseTools(o.tools)
	if err != nil {
		return err
	}
	extra, err := splitArgs(o.netsentryArgs)
	if err != nil {
		return fmt.Errorf("-netsentry-args: %w", err)
	}
	if err := b.findPeers(names); err != nil {
		return err
	}
	b.dir, err = os.MkdirTemp("", "netsentry-bench-")
	if err != nil {
		return fmt.Errorf("make temporary directory: %w", err)
	}
	if o.keep {
		defer b.logf("kept %s", b.dir)
	} else {
		defer os.RemoveAll(b.dir)
	}
	if err := b.prepareTrace(); err != nil {
		return err
	}
	if err := b.prepareTools(ctx, names, extra); err != nil {
		return err
	}
	b.header(stdout)
	if o.cpuprofile != "" {
		stop, err := startCPUProfile(o.cpuprofile)
		if err != nil {
			return err
		}
		defer func() {
			if err := stop(); err != nil {
				b.logf("%v", err)
				return
			}
			b.logf("CPU profile of this process in %s; the in-process passes carry the label pass=cold|warm|bare: go tool pprof -tagfocus pass=cold -top %s", o.cpuprofile, o.cpuprofile)
		}()
	}
	if o.memprofile != "" {
		runtime.MemProfileRate = 1
		defer func() {
			if err := writeAllocProfile(o.memprofile); err != nil {
				b.logf("%v", err)
				return
			}
			b.logf("allocation profile of the runs in %s (go tool pprof -sample_index=alloc_objects -top %s)", o.memprofile, o.memprofile)
		}()
	}
	rep, err := b.runAll(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	return rep.write(stdout)
}

// findPeers looks the peer tools up in PATH.
func (b *benchmark) findPeers(names []string) error {
	for _, p := range []struct{ tool, exe, deb string }{
		{toolTcpdump, "tcpdump", "tcpdump"},
		{toolNDPI, "ndpiReader", "libndpi-bin"},
	} {
		if !slices.Contains(names, p.tool) {
			continue
		}
		path, err := exec.LookPath(p.exe)
		if err != nil {
			return fmt.Errorf("%s not found: run make deps (Debian package %s), or leave it out with -tools", p.exe, p.deb)
		}
		b.peers[p.tool] = path
	}
	return nil
}

// prepareTrace generates the trace (or scans -trace) and reads it once so
// that every tool finds it in the page cache.
func (b *benchmark) prepareTrace() error {
	o := b.o
	b.trace = o.trace
	if b.trace == "" {
		b.trace = filepath.Join(b.dir, "trace.pcap")
		b.logf("generating %d packets in %d flows (seed %d) into %s", o.packets, o.flows, o.seed, b.trace)
		start := time.Now()
		cfg := trafficgen.Config{Packets: o.packets, Flows: o.flows, Seed: o.seed}
		if b.term {
			cfg.Progress = func(n, total int) {
				fmt.Fprintf(b.stderr, "\r\033[K  %d/%d packets (%.0f%%)", n, total, 100*float64(n)/float64(max(total, 1)))
			}
		}
		truth, err := trafficgen.WriteFile(b.trace, cfg)
		if b.term {
			fmt.Fprint(b.stderr, "\r\033[K")
		}
		if err != nil {
			return err
		}
		truth.FlowList = nil // not needed here; let the GC have it
		b.truth, b.packets = truth, uint64(truth.Packets)
		b.logf("  %s", truth)
		b.logf("  %.1f MB written in %.2f s", float64(truth.FileBytes)/1e6, time.Since(start).Seconds())
	} else {
		b.logf("scanning %s", b.trace)
		info, err := scanPcap(b.trace)
		if err != nil {
			return err
		}
		b.packets = info.packets
		b.logf("  %d packets, %d wire bytes", info.packets, info.wireBytes)
	}
	return warm(b.trace)
}

// prepareTools builds or checks the netsentry binary, writes the shifted
// copies for the in-process passes and lays out every tool's command line.
func (b *benchmark) prepareTools(ctx context.Context, names, extra []string) error {
	for _, name := range names {
		switch name {
		case toolNetSentry:
			bin := b.o.netsentry
			if bin == "" {
				bin = filepath.Join(b.dir, "netsentry")
				b.logf("building netsentry into %s", bin)
				if err := buildNetSentry(ctx, bin); err != nil {
					return err
				}
			} else if st, err := os.Stat(bin); err != nil || st.IsDir() {
				return fmt.Errorf("netsentry binary %s not found: run make build, or leave -netsentry empty to build one", bin)
			}
			v := firstLine(ctx, bin, "--version")
			if v == "" {
				return fmt.Errorf("netsentry binary %s does not answer --version: rebuild it with make build", bin)
			}
			b.versions = append(b.versions, v)
			argv := append([]string{bin, "--replay", b.trace}, extra...)
			b.tools = append(b.tools, tool{toolNetSentry, "netsentry", argv})
		case toolInProcess:
			b.warm = filepath.Join(b.dir, "trace+30d.pcap")
			b.bare = filepath.Join(b.dir, "trace+60d.pcap")
			b.logf("writing two copies shifted by 30 and 60 days for the warm (steady-state) passes")
			if err := shiftPcap(b.trace, b.warm, 30*24*time.Hour); err != nil {
				return err
			}
			if err := shiftPcap(b.trace, b.bare, 60*24*time.Hour); err != nil {
				return err
			}
			b.tools = append(b.tools, tool{name: toolInProcess, label: "netsentry in-process"})
		case toolTcpdump:
			exe := b.peers[toolTcpdump]
			b.versions = append(b.versions, firstLine(ctx, exe, "--version"))
			b.tools = append(b.tools, tool{toolTcpdump, "tcpdump -w /dev/null", []string{exe, "-r", b.trace, "-w", "/dev/null"}})
		case toolNDPI:
			exe := b.peers[toolNDPI]
			b.versions = append(b.versions, strings.TrimPrefix(firstLine(ctx, exe, "-h"), "Welcome to "))
			b.tools = append(b.tools, tool{toolNDPI, "ndpiReader -q", []string{exe, "-q", "-i", b.trace}})
		}
	}
	return nil
}

// header prints what is measured, and where.
func (b *benchmark) header(w io.Writer) {
	fmt.Fprintf(w, "trace: %s", b.trace)
	if b.truth != nil {
		fmt.Fprintf(w, " (generated, seed %d): %s, %.1f MB", b.o.seed, b.truth, float64(b.truth.FileBytes)/1e6)
	} else {
		fmt.Fprintf(w, ": %d packets", b.packets)
	}
	fmt.Fprintf(w, "\nhost: %d CPUs, %s, %s, %s, load average %s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOARCH, loadAverage())
	if len(b.versions) > 0 {
		fmt.Fprintf(w, "tools: %s\n", strings.Join(b.versions, "; "))
	}
	fmt.Fprintf(w, "runs: %d per tool, interleaved; file in the page cache; CPU = user + system of the whole process\n", b.o.runs)
}

// runAll measures every tool -runs times, one at a time, the order
// rotating from round to round.
func (b *benchmark) runAll(ctx context.Context) (*report, error) {
	samples := map[string][]sample{}
	var inproc []inprocResult
	runs := b.o.runs
	for r := 0; r < runs; r++ {
		for j := range b.tools {
			t := b.tools[(j+r)%len(b.tools)]
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if t.argv == nil {
				res, err := replayInProcess(ctx, b.trace, b.warm, b.bare)
				if err != nil {
					return nil, err
				}
				inproc = append(inproc, res)
				samples[t.name] = append(samples[t.name], res.cold.sample)
				b.logf("run %d/%d  %-22s CPU %6.3f s (user %.3f sys %.3f)  wall %6.3f s  allocs %d; warm: CPU %.3f s, allocs %d; bare: CPU %.3f s, allocs %d",
					r+1, runs, t.label, res.cold.cpu.Seconds(), res.cold.user.Seconds(), res.cold.sys.Seconds(), res.cold.wall.Seconds(),
					res.cold.allocs, res.warm.cpu.Seconds(), res.warm.allocs, res.bare.cpu.Seconds(), res.bare.allocs)
				continue
			}
			s, err := runChild(ctx, t.argv)
			if err != nil {
				return nil, err
			}
			samples[t.name] = append(samples[t.name], s)
			b.logf("run %d/%d  %-22s CPU %6.3f s (user %.3f sys %.3f)  wall %6.3f s  max RSS %6.1f MB",
				r+1, runs, t.label, s.cpu.Seconds(), s.user.Seconds(), s.sys.Seconds(), s.wall.Seconds(), float64(s.maxRSS)/(1<<20))
		}
	}
	return buildReport(b.tools, samples, inproc, b.packets, b.truth), nil
}

// startCPUProfile starts profiling this process into path; stop ends it.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("write CPU profile: %w", err)
		}
		return nil
	}, nil
}

// buildReport turns the samples into table rows and notes.
func buildReport(tools []tool, samples map[string][]sample, inproc []inprocResult, packets uint64, truth *trafficgen.Truth) *report {
	rep := &report{bareAllocs: -1}
	for _, t := range tools {
		ss := samples[t.name]
		var wall, cpu, rss []float64
		for _, s := range ss {
			wall = append(wall, s.wall.Seconds())
			cpu = append(cpu, s.cpu.Seconds())
			if s.maxRSS > 0 {
				rss = append(rss, float64(s.maxRSS))
			}
		}
		r := row{tool: t.name, label: t.label, packets: packets, wall: summarize(wall), cpu: summarize(cpu), maxRSS: summarize(rss), allocs: -1}
		if t.name == toolInProcess && len(inproc) > 0 {
			r.packets = inproc[0].cold.packets
			r.allocs, rep.bareAllocs, rep.notes = inprocNotes(inproc, truth)
		}
		rep.rows = append(rep.rows, r)
	}
	return rep
}

// inprocNotes sums up the in-process runs: the steady-state allocations
// per packet for the table (the warm pass, or the cold one without copies),
// and notes on each pass and on the flow count.
func inprocNotes(runs []inprocResult, truth *trafficgen.Truth) (steady, bare float64, notes []string) {
	bare = -1
	perPacket := func(sel func(*inprocResult) *pass) (allocs float64, perRun uint64, cpu summary, ok bool) {
		var a, pk uint64
		var c []float64
		for i := range runs {
			p := sel(&runs[i])
			a += p.allocs
			pk += p.packets
			c = append(c, p.cpu.Seconds())
		}
		if pk == 0 {
			return 0, 0, summary{}, false
		}
		return float64(a) / float64(pk), a / uint64(len(runs)), summarize(c), true
	}
	nsPer := func(c summary, p *pass) float64 { return c.med * 1e9 / float64(max(p.packets, 1)) }

	headline, n, _, _ := perPacket(func(r *inprocResult) *pass { return &r.cold })
	notes = append(notes, fmt.Sprintf("in-process cold  (new pipeline; file opened, table grown, flows flushed, exporter drained): %d allocations per replay, %s per packet",
		n, formatAllocs(headline)))
	if a, n, c, ok := perPacket(func(r *inprocResult) *pass { return &r.warm }); ok {
		headline = a
		notes = append(notes, fmt.Sprintf("in-process warm  (same table, clock continued by a time-shifted copy; exporter and final flush included): %d allocations per replay, %s per packet; CPU %.3f s, %.0f ns/packet",
			n, formatAllocs(a), c.med, nsPer(c, &runs[0].warm)))
	}
	if a, n, c, ok := perPacket(func(r *inprocResult) *pass { return &r.bare }); ok {
		bare = a
		notes = append(notes, fmt.Sprintf("in-process bare  (as warm, ended flows dropped instead of exported: reader + decode + flow table): %d allocations per replay, %s per packet; CPU %.3f s, %.0f ns/packet",
			n, formatAllocs(a), c.med, nsPer(c, &runs[0].bare)))
	}
	flows, packets := runs[0].flows, runs[0].cold.packets
	switch {
	case truth == nil:
		notes = append(notes, fmt.Sprintf("in-process: %d packets, %d flows", packets, flows))
	case flows == uint64(truth.Flows) && packets == uint64(truth.Packets):
		notes = append(notes, fmt.Sprintf("in-process: %d packets and %d flows, as the generator wrote", packets, flows))
	default:
		notes = append(notes, fmt.Sprintf("WARNING in-process: %d packets and %d flows, the generator wrote %d and %d", packets, flows, truth.Packets, truth.Flows))
	}
	return headline, bare, notes
}

// writeAllocProfile writes the allocs profile (every allocation since
// MemProfileRate was set to 1) to path.
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create allocation profile: %w", err)
	}
	runtime.GC() // the profile is as of the last GC
	err = pprof.Lookup("allocs").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write allocation profile: %w", err)
	}
	return nil
}

// buildNetSentry builds cmd/netsentry into bin.
func buildNetSentry(ctx context.Context, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/netsentry/netsentry/cmd/netsentry")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build netsentry (go build ./cmd/netsentry): %w\n%s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// firstLine runs a command briefly and returns the first line it prints
// (stdout and stderr), "" if it could not run.
func firstLine(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil && out.Len() == 0 {
		return ""
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// loadAverage returns the 1, 5 and 15 minute load averages: other work on
// the machine makes every figure noisier.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
