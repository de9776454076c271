// Command live is the live-capture benchmark (make bench-live): in a
// network namespace test bed, trafgen sends 64-byte and 600-byte UDP frames
// of 16384 flows flat out into one end of a veth pair for -duration, while
// one capturer at a time reads the other end: NetSentry (full decoding and
// flow tracking), `netsniff-ng -i IF -o /dev/null` and `tcpdump -i IF -w
// /dev/null`, all with the same ring memory. For each run it measures the
// frames the veth delivered, the frames the capturer saw and lost, and the
// capturer's CPU seconds per million frames (rusage of the child). It
// repeats -runs times and prints ranges and ratios to NetSentry.
//
// trafgen runs on the first allowed CPU, the capturer on the second
// (NetSentry with one worker): with 2 cores the sender and the kernel's
// receive path share one core, so the delivered rate is what one core can
// push through a veth.
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
	"strconv"
	"strings"
	"syscall"
	"time"
)

type result struct {
	delivered, seen, drops uint64
	cpu                    float64 // seconds
}

func (r result) cpuPerM() float64 {
	if r.seen == 0 {
		return 0
	}
	return r.cpu / (float64(r.seen) / 1e6)
}

var (
	netsentry = flag.String("netsentry", "bin/netsentry", "NetSentry binary")
	duration  = flag.Duration("duration", 15*time.Second, "how long trafgen sends per run")
	runs      = flag.Int("runs", 3, "repetitions per capturer and frame size")
	ringMB    = flag.Int("ring-mb", 32, "ring memory given to every capturer, MiB")
)

const ns = "nsbenchlive"

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal("bench-live needs root (network namespace, AF_PACKET)")
	}
	for _, t := range []string{"trafgen", "netsniff-ng", "tcpdump", "ip", "taskset"} {
		if _, err := exec.LookPath(t); err != nil {
			fatal("bench-live needs %s: %v", t, err)
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
	cfg := filepath.Join(dir, "netsentry.yaml")
	// performance.ring_size_mb sizes the rings (see cmd/netsentry/live.go).
	os.WriteFile(cfg, []byte(fmt.Sprintf("performance:\n  threads: 1\n  memory_limit_mb: %d\n  ring_size_mb: %d\nnetwork_analysis:\n  capture_snaplen: 65535\n", *ringMB*8, *ringMB)), 0o644)
	sender, capCPU := cpus()
	capturers := []struct {
		name string
		args []string
		stop syscall.Signal
	}{
		{"netsentry", []string{bin, "--interface", "c0", "--config", cfg, "--flows-out", "/dev/null"}, syscall.SIGINT},
		{"netsniff-ng", []string{"netsniff-ng", "-i", "c0", "-o", "/dev/null", "--ring-size", fmt.Sprintf("%dMiB", *ringMB), "-s"}, syscall.SIGINT},
		{"tcpdump", []string{"tcpdump", "-i", "c0", "-w", "/dev/null", "-n", "-B", strconv.Itoa(*ringMB << 10)}, syscall.SIGINT},
	}
	fmt.Printf("bench-live: trafgen on cpu %s, capturer on cpu %s, %s per run, %d runs, %d MiB ring each\n", sender, capCPU, *duration, *runs, *ringMB)
	for _, size := range []int{64, 600} {
		tg := filepath.Join(dir, fmt.Sprintf("tg%d.cfg", size))
		// 14 Ethernet + 20 IPv4 + 8 UDP + payload = frame without FCS; +4 FCS on a wire.
		payload := size - 4 - 42
		os.WriteFile(tg, []byte(fmt.Sprintf("{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02), ipv4(saddr=10.0.0.1, daddr=10.1.0.1, saddr[3]=drnd()), udp(sport=drnd(1024,1087), dport=80), fill(0x41, %d) }\n", payload)), 0o644)
		all := map[string][]result{}
		for r := 1; r <= *runs; r++ {
			for _, c := range capturers {
				fmt.Fprintf(os.Stderr, "  %d-byte frames, run %d/%d, %-11s ... ", size, r, *runs, c.name)
				res, err := measure(c.name, c.args, c.stop, tg, sender, capCPU)
				if err != nil {
					fmt.Fprintf(os.Stderr, "failed: %v\n", err)
					continue
				}
				fmt.Fprintf(os.Stderr, "delivered %d, seen %d, dropped %d, %.3f CPU-s/Mpkt\n", res.delivered, res.seen, res.drops, res.cpuPerM())
				all[c.name] = append(all[c.name], res)
			}
		}
		report(size, all, []string{"netsentry", "netsniff-ng", "tcpdump"})
	}
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

func measure(name string, args []string, stop syscall.Signal, tg, sender, capCPU string) (result, error) {
	var res result
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "taskset", "-c", capCPU}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	time.Sleep(700 * time.Millisecond) // let it open its ring
	before := rxPackets()
	tgCmd := exec.Command("ip", "netns", "exec", ns, "taskset", "-c", sender, "timeout", "-s", "INT",
		strconv.Itoa(int(duration.Seconds())), "trafgen", "-o", "s0", "-c", tg, "-P", "1", "-q")
	tgCmd.Run()
	time.Sleep(500 * time.Millisecond)
	res.delivered = rxPackets() - before
	cmd.Process.Signal(stop)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return res, fmt.Errorf("%s did not stop", name)
	}
	if st := cmd.ProcessState; st != nil {
		res.cpu = (st.UserTime() + st.SystemTime()).Seconds()
	}
	out := stdout.String() + stderr.String()
	var err error
	switch name {
	case "netsentry":
		res.seen, err = grab(out, `Packets captured: (\d+)`)
		res.drops, _ = grab(out, `Queue 0: \d+ packets, (\d+) kernel drops`)
	case "netsniff-ng":
		var passed uint64
		passed, err = grab(out, `(\d+)\s+packets passed filter`)
		res.drops, _ = grab(out, `(\d+)\s+packets failed filter`)
		res.seen = passed - res.drops
	case "tcpdump":
		res.seen, err = grab(out, `(\d+) packets captured`)
		res.drops, _ = grab(out, `(\d+) packets dropped by kernel`)
	}
	if err != nil {
		return res, fmt.Errorf("%v in output: %s", err, out)
	}
	return res, nil
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

func mid(rs []result, f func(result) float64) float64 {
	lo, hi := span(rs, f)
	return (lo + hi) / 2
}

func report(size int, all map[string][]result, order []string) {
	fmt.Printf("\n%d-byte frames (%d flows), %d runs of %s; ranges min-max\n", size, 16384, *runs, *duration)
	fmt.Printf("%-12s %-23s %-23s %-19s %-17s %s\n", "capturer", "delivered Mpps", "seen Mpps", "drops %", "CPU-s/Mpkt", "CPU/pkt vs netsentry")
	secs := duration.Seconds()
	ref := mid(all["netsentry"], result.cpuPerM)
	for _, name := range order {
		rs := all[name]
		if len(rs) == 0 {
			fmt.Printf("%-12s (no result)\n", name)
			continue
		}
		dl, dh := span(rs, func(r result) float64 { return float64(r.delivered) / secs / 1e6 })
		sl, shi := span(rs, func(r result) float64 { return float64(r.seen) / secs / 1e6 })
		pl, ph := span(rs, func(r result) float64 {
			if r.seen+r.drops == 0 {
				return 0
			}
			return 100 * float64(r.drops) / float64(r.seen+r.drops)
		})
		cl, ch := span(rs, result.cpuPerM)
		ratio := "-"
		if ref > 0 && name != "netsentry" {
			ratio = fmt.Sprintf("netsentry = %.2fx of %s", ref/mid(rs, result.cpuPerM), name)
		}
		fmt.Printf("%-12s %-23s %-23s %-19s %-17s %s\n", name, fmt.Sprintf("%.3f-%.3f", dl, dh), fmt.Sprintf("%.3f-%.3f", sl, shi),
			fmt.Sprintf("%.2f-%.2f", pl, ph), fmt.Sprintf("%.3f-%.3f", cl, ch), ratio)
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-live: "+format+"\n", args...)
	cleanup()
	os.Exit(1)
}
