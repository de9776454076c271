// Command live is the live-capture benchmark (make bench-live): in a
// network namespace test bed, trafgen sends 64-byte frames (60 bytes
// without the FCS) flat out into one end of a veth pair for -duration, in
// two traffic shapes, while one capturer at a time reads the other end:
//
//   - flood: every frame a new 5-tuple (a random 16-bit host part of the
//     source in 198.18.0.0/16, random ports), TCP SYNs and UDP alternately;
//   - steady: 65,536 recurring 5-tuples per protocol (TCP ACKs and UDP).
//
// The capturers: NetSentry (full decoding, flow tracking and detection,
// default config but one worker: ended flows go to the store's flow
// history, as by default; -flows-out FILE adds the JSON lines sink too),
// `tcpdump -w /dev/null`, softflowd and
// argus (flow meters, the nearest peers), all with the same ring/buffer
// memory, alternating, -runs times each. For each run it measures the
// frames the veth delivered, the frames the capturer captured and the
// kernel dropped, and the capturer's CPU seconds per million delivered
// frames (user and system time of the capturer while the traffic ran, from
// /proc/PID/stat); it prints ranges and the ratio of each
// capturer's CPU per packet to tcpdump's.
//
// -baseline OLD_BINARY measures an older NetSentry build as netsentry-base
// in the same runs (before and after side by side). Each NetSentry run gets
// its own configuration and store directory.
//
// trafgen runs on the first allowed CPU, the capturer on the second: with
// 2 cores the sender and the kernel's receive path share one core, so the
// delivered rate is what one core can push through a veth.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type result struct {
	delivered, seen, drops uint64
	known                  bool    // seen and drops were reported by the capturer
	cpu                    float64 // seconds
}

// cpuPerM is CPU seconds per million frames delivered to the interface
// (what the capturer had to keep up with; captured frames when it dropped
// none).
func (r result) cpuPerM() float64 {
	n := r.delivered
	if r.known && r.seen > 0 {
		n = r.seen
	}
	if n == 0 {
		return 0
	}
	return r.cpu / (float64(n) / 1e6)
}

var (
	netsentry = flag.String("netsentry", "bin/netsentry", "NetSentry binary")
	duration  = flag.Duration("duration", 10*time.Second, "how long trafgen sends per run")
	runs      = flag.Int("runs", 3, "repetitions per capturer and traffic shape")
	ringMB    = flag.Int("ring-mb", 32, "ring memory given to every capturer, MiB")
	only      = flag.String("only", "", "comma-separated capturers to run (default all)")
	baseline  = flag.String("baseline", "", "a second NetSentry binary (e.g. the previous build) measured as netsentry-base in the same runs")
	shapesArg = flag.String("shapes", "flood,steady", "traffic shapes to run")
	flowsOut  = flag.String("flows-out", "", "also give NetSentry --flows-out FILE (e.g. /dev/null: the JSON lines sink's cost)")
	profDir   = flag.String("cpuprofile", "", "a directory: every NetSentry run writes its CPU profile there (netsentry-SHAPE-RUN.pprof)")
)

const ns = "nsbenchlive"

// shapes are the trafgen configurations. trafgen sends the packets of a
// configuration in turn; drnd() draws a new random value per frame, dinc()
// counts per packet template (so each template cycles through 65,536 source
// ports).
var shapes = map[string]string{
	"flood": `{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02), ipv4(sa=198.18.0.1, da=198.19.0.1, sa[2:2]=drnd()), tcp(sp=drnd(), dp=drnd(), syn), fill(0x00, 6) }
{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02), ipv4(sa=198.18.0.1, da=198.19.0.1, sa[2:2]=drnd()), udp(sp=drnd(), dp=drnd()), fill(0x41, 18) }
`,
	"steady": `{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02), ipv4(sa=198.18.0.1, da=198.19.0.1), tcp(sp=dinc(), dp=443, ack), fill(0x00, 6) }
{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02), ipv4(sa=198.18.0.2, da=198.19.0.1), udp(sp=dinc(), dp=53), fill(0x41, 18) }
`,
}

type capturer struct {
	name string
	args []string
}

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal("bench-live needs root (network namespace, AF_PACKET)")
	}
	for _, t := range []string{"trafgen", "tcpdump", "softflowd", "softflowctl", "argus", "ip", "taskset"} {
		if _, err := exec.LookPath(t); err != nil {
			fatal("bench-live needs %s (make deps installs it): %v", t, err)
		}
	}
	bin, err := filepath.Abs(*netsentry)
	if err != nil {
		fatal("%v", err)
	}
	cleanup()
	defer cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; cleanup(); os.Exit(1) }()
	setup()
	dir, err := os.MkdirTemp("", "bench-live")
	if err != nil {
		fatal("%v", err)
	}
	defer os.RemoveAll(dir)
	// NetSentry's configuration is written per run (configFile): its own
	// store directory each time, so that no other NetSentry on the machine,
	// nor the previous run still closing its store, holds the store's lock.
	cfg := "CONFIG"
	runDir = dir
	sender, capCPU := cpus()
	ctl := filepath.Join(dir, "softflowd.ctl")
	all := []capturer{
		{"netsentry", nsArgs(bin, cfg)},
		{"tcpdump", []string{"tcpdump", "-i", "c0", "-w", "/dev/null", "-n", "-B", strconv.Itoa(*ringMB << 10)}},
		// softflowd: full tracking, exporting NetFlow v9 to a port nobody
		// listens on inside the namespace; up to 1M flows.
		{"softflowd", []string{"softflowd", "-d", "-i", "c0", "-n", "127.0.0.1:9995", "-v", "9", "-m", "1048576",
			"-B", strconv.Itoa(*ringMB << 20), "-c", ctl, "-p", filepath.Join(dir, "softflowd.pid")}},
		// -X (no configuration file) must come first: it resets the options before it.
		{"argus", []string{"argus", "-X", "-i", "c0", "-w", "/dev/null"}},
	}
	if *baseline != "" {
		base, err := filepath.Abs(*baseline)
		if err != nil {
			fatal("%v", err)
		}
		all = append(all[:1], append([]capturer{{"netsentry-base", nsArgs(base, cfg)}}, all[1:]...)...)
	}
	var capturers []capturer
	for _, c := range all {
		if *only == "" || strings.Contains(","+*only+",", ","+c.name+",") {
			capturers = append(capturers, c)
		}
	}
	fmt.Printf("bench-live: trafgen on cpu %s, capturer on cpu %s, %s per run, %d runs, %d MiB ring each, 64-byte frames\n", sender, capCPU, *duration, *runs, *ringMB)
	for _, shape := range strings.Split(*shapesArg, ",") {
		tgCfg, ok := shapes[shape]
		if !ok {
			fatal("unknown shape %q", shape)
		}
		tg := filepath.Join(dir, shape+".cfg")
		os.WriteFile(tg, []byte(tgCfg), 0o644)
		res := map[string][]result{}
		for r := 1; r <= *runs; r++ {
			for _, c := range capturers {
				fmt.Fprintf(os.Stderr, "  %s, run %d/%d, %-10s ... ", shape, r, *runs, c.name)
				got, err := measure(c, tg, ctl, sender, capCPU)
				if err != nil {
					fmt.Fprintf(os.Stderr, "failed: %v\n", err)
					continue
				}
				fmt.Fprintf(os.Stderr, "delivered %d, captured %s, kernel drops %s, %.3f CPU-s/Mpkt\n", got.delivered, known(got, got.seen), known(got, got.drops), got.cpuPerM())
				res[c.name] = append(res[c.name], got)
			}
		}
		var order []string
		for _, c := range capturers {
			order = append(order, c.name)
		}
		report(shape, res, order)
	}
}

// nsArgs is a NetSentry command line: the interface, the run's
// configuration and, with -flows-out, the JSON lines sink.
func nsArgs(bin, cfg string) []string {
	a := []string{bin, "--interface", "c0", "--config", cfg}
	if *flowsOut != "" {
		a = append(a, "--flows-out", *flowsOut)
	}
	return a
}

func known(r result, v uint64) string {
	if !r.known {
		return "?"
	}
	return strconv.FormatUint(v, 10)
}

func cpus() (sender, capturer string) {
	out, err := exec.Command("taskset", "-pc", strconv.Itoa(os.Getpid())).Output()
	if err != nil {
		return "0", "1"
	}
	_, list, _ := strings.Cut(strings.TrimSpace(string(out)), ": ")
	var c []string
	for _, part := range strings.Split(list, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		b := a
		if ok {
			b, _ = strconv.Atoi(hi)
		}
		for i := a; i <= b; i++ {
			c = append(c, strconv.Itoa(i))
		}
	}
	if len(c) < 2 {
		return c[0], c[0]
	}
	return c[0], c[1]
}

func sh(args ...string) {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		fatal("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func setup() {
	sh("ip", "netns", "add", ns)
	sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up") // softflowd exports to 127.0.0.1
	sh("ip", "netns", "exec", ns, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	for _, i := range []string{"s0", "c0"} {
		sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		sh("ip", "netns", "exec", ns, "ip", "link", "set", i, "up")
	}
}

func cleanup() { exec.Command("ip", "netns", "del", ns).Run() }

func rxPackets() uint64 {
	out, _ := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/c0/statistics/rx_packets").Output()
	v, _ := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	return v
}

// runDir holds the per-run files; runs numbers them.
var (
	runDir   string
	runCount int
)

// configFile writes a NetSentry configuration for one run: the default
// but one worker, memory_limit_mb 8× the ring, the ring of -ring-mb, and a
// store of its own.
func configFile() string {
	runCount++
	p := filepath.Join(runDir, fmt.Sprintf("netsentry-%d.yaml", runCount))
	// performance.ring_size_mb sizes the rings (see cmd/netsentry/live.go).
	os.WriteFile(p, []byte(fmt.Sprintf("performance:\n  threads: 1\n  memory_limit_mb: %d\n  ring_size_mb: %d\nnetwork_analysis:\n  capture_snaplen: 65535\nstorage:\n  local_path: %q\n",
		*ringMB*8, *ringMB, filepath.Join(runDir, fmt.Sprintf("store-%d", runCount)))), 0o644)
	return p
}

var profRun int

func measure(c capturer, tg, ctl, sender, capCPU string) (result, error) {
	var res result
	var stdout, stderr bytes.Buffer
	args := append([]string{"netns", "exec", ns, "taskset", "-c", capCPU}, c.args...)
	for i, a := range args {
		if a == "CONFIG" {
			args[i] = configFile()
		}
	}
	if *profDir != "" && strings.HasPrefix(c.name, "netsentry") {
		profRun++
		args = append(args, "--cpuprofile", filepath.Join(*profDir, fmt.Sprintf("%s-%d.pprof", c.name, profRun)))
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(1500 * time.Millisecond) // let it start and open its ring
	before := rxPackets()
	cpu0 := procCPU(cmd.Process.Pid)
	tgCmd := exec.Command("ip", "netns", "exec", ns, "taskset", "-c", sender, "timeout", "-s", "INT",
		strconv.Itoa(int(duration.Seconds())), "trafgen", "-o", "s0", "-c", tg, "-P", "1", "-q")
	tgOut, _ := tgCmd.CombinedOutput() // stopped by timeout's SIGINT: not an error
	if !bytes.Contains(tgOut, []byte("packets outgoing")) {
		return res, fmt.Errorf("trafgen: %s", tgOut)
	}
	time.Sleep(500 * time.Millisecond)
	res.delivered = rxPackets() - before
	// CPU while the traffic ran: start-up and shutdown (a store opened,
	// a summary written) are not per-packet costs.
	res.cpu = procCPU(cmd.Process.Pid) - cpu0
	var stats string
	if c.name == "softflowd" {
		// softflowd reports its pcap statistics through its control socket.
		out, _ := exec.Command("ip", "netns", "exec", ns, "softflowctl", "-c", ctl, "statistics").CombinedOutput()
		stats = string(out)
	}
	select {
	case <-done:
		return res, fmt.Errorf("%s exited before it was stopped: %s%s", c.name, stdout.String(), stderr.String())
	default:
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return res, fmt.Errorf("%s did not stop", c.name)
	}
	out := stdout.String() + stderr.String()
	var err error
	res.known = true
	switch c.name {
	case "netsentry", "netsentry-base":
		res.seen, err = grab(out, `Packets captured: (\d+)`)
		res.drops, _ = grab(out, `Queue 0: \d+ packets, (\d+) kernel drops`)
	case "tcpdump":
		res.seen, err = grab(out, `(\d+) packets captured`)
		res.drops, _ = grab(out, `(\d+) packets dropped by kernel`)
	case "softflowd":
		var recv, dropped uint64
		recv, err = grab(stats, `Packets received by libpcap: (\d+)`)
		dropped, _ = grab(stats, `Packets dropped by libpcap: (\d+)`)
		res.seen, res.drops = recv, dropped
		out = stats
	case "argus":
		// argus reports no capture statistics on its way out: CPU per
		// delivered frame only.
		res.known = false
	}
	if err != nil {
		return res, fmt.Errorf("%v in output: %s", err, out)
	}
	return res, nil
}

// procCPU returns the user and system CPU seconds so far of process pid,
// its threads and its descendants (ip netns exec and taskset exec the
// capturer in place; argus forks its worker).
func procCPU(pid int) float64 {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	parent := map[int]int{}
	cpu := map[int]float64{}
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): ppid is
		// the 4th field, utime the 14th, stime the 15th.
		head, rest, _ := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if len(f) < 13 {
			continue
		}
		p, _ := strconv.Atoi(strings.Fields(head)[0])
		parent[p], _ = strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cpu[p] = (ut + st) / 100 // USER_HZ
	}
	var sum float64
	for p, c := range cpu {
		for q, n := p, 0; q > 1 && n < 64; q, n = parent[q], n+1 {
			if q == pid {
				sum += c
				break
			}
		}
	}
	return sum
}

func grab(s, re string) (uint64, error) {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("no %q", re)
	}
	return strconv.ParseUint(m[1], 10, 64)
}

func span(rs []result, f func(result) float64) (lo, hi float64) {
	for i, r := range rs {
		v := f(r)
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

func report(shape string, all map[string][]result, order []string) {
	fmt.Printf("\n%s (64-byte frames), %d runs of %s; ranges min-max\n", shape, *runs, *duration)
	fmt.Printf("%-14s %-15s %-15s %-13s %-13s %s\n", "capturer", "delivered Mpps", "captured Mpps", "kernel drops %", "CPU-s/Mpkt", "CPU/pkt vs tcpdump (median)")
	secs := duration.Seconds()
	ref := median(all["tcpdump"], result.cpuPerM)
	for _, name := range order {
		rs := all[name]
		if len(rs) == 0 {
			fmt.Printf("%-14s (no result)\n", name)
			continue
		}
		dl, dh := span(rs, func(r result) float64 { return float64(r.delivered) / secs / 1e6 })
		capt, drops := "?", "?"
		if rs[0].known {
			sl, shi := span(rs, func(r result) float64 { return float64(r.seen) / secs / 1e6 })
			pl, ph := span(rs, func(r result) float64 {
				if r.seen+r.drops == 0 {
					return 0
				}
				return 100 * float64(r.drops) / float64(r.seen+r.drops)
			})
			capt, drops = fmt.Sprintf("%.3f-%.3f", sl, shi), fmt.Sprintf("%.2f-%.2f", pl, ph)
		}
		cl, ch := span(rs, result.cpuPerM)
		ratio := "-"
		if ref > 0 {
			ratio = fmt.Sprintf("%.2fx", median(rs, result.cpuPerM)/ref)
		}
		fmt.Printf("%-14s %-15s %-15s %-13s %-13s %s\n", name, fmt.Sprintf("%.3f-%.3f", dl, dh), capt, drops, fmt.Sprintf("%.3f-%.3f", cl, ch), ratio)
	}
}

// median of f over rs.
func median(rs []result, f func(result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-live: "+format+"\n", args...)
	cleanup()
	os.Exit(1)
}
