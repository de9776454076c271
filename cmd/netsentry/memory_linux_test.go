package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fixedOverheadMB is the memory the process holds besides the tables' budget
// and the capture rings: the binary's pages (a 48 MiB binary since the store
// and PromQL: about 34 MiB resident), the Go runtime, goroutine stacks,
// garbage between collections and the API (docs/memory.md).
const fixedOverheadMB = 64

// storeOverheadMB is what the local store and alerting hold, outside the
// budget for now: pebble's memtables and block cache (about 8 MiB), the flow
// history's zstd coders and open block, the final flush into the store at
// shutdown, and the alert evaluator's signals (docs/memory.md).
const storeOverheadMB = 48

// memFlood is the random-source flood of TestMemoryBound: every frame a new
// 5-tuple (random 16-bit host part of 198.18.0.0/16, random ports), a TCP
// SYN and a UDP datagram with 18 bytes of payload in turn.
const memFlood = `{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02), ipv4(sa=198.18.0.1, da=198.19.0.1, sa[2:2]=drnd()), tcp(sp=drnd(), dp=drnd(), syn) }
{ eth(da=02:00:00:00:00:01, sa=02:00:00:00:00:02), ipv4(sa=198.18.0.1, da=198.19.0.1, sa[2:2]=drnd()), udp(sp=drnd(), dp=drnd()), fill(0x41, 18) }
`

// TestMemoryBound floods the real binary with new flows through a veth pair
// and checks that its peak resident memory (VmHWM, the kernel's own figure)
// stays within performance.memory_limit_mb, the capture rings and the
// stated fixed overhead, with detection on and off, and that the flow table
// evicted instead of growing.
func TestMemoryBound(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, AF_PACKET)")
	}
	if _, err := exec.LookPath("trafgen"); err != nil {
		t.Fatal("this test needs trafgen (Debian package netsniff-ng)")
	}
	bin := buildBinary(t)
	tg := filepath.Join(t.TempDir(), "flood.cfg")
	if err := os.WriteFile(tg, []byte(memFlood), 0o644); err != nil {
		t.Fatal(err)
	}
	const ringMB = 4
	for _, limit := range []int{64, 256} {
		for _, detect := range []bool{true, false} {
			t.Run(fmt.Sprintf("limit%d/detect=%v", limit, detect), func(t *testing.T) {
				hwm, sum, metrics, sent := floodRun(t, bin, tg, limit, ringMB, detect)
				bound := limit + ringMB + fixedOverheadMB + storeOverheadMB
				t.Logf("memory_limit_mb %d, ring %d MiB, detection %v: VmHWM %.1f MiB (bound %d MiB), %d frames sent",
					limit, ringMB, detect, float64(hwm)/1024, bound, sent)
				if hwm > bound<<10 {
					t.Errorf("VmHWM %d KiB is over memory_limit_mb + rings + fixed overhead + store = %d MiB", hwm, bound)
				}
				m := regexp.MustCompile(`Flows: (\d+) ended, (\d+) evicted`).FindStringSubmatch(sum)
				if m == nil {
					t.Fatalf("no flow counts in the summary:\n%s", sum)
				}
				evicted, _ := strconv.ParseUint(m[2], 10, 64)
				t.Logf("summary: %s", m[0])
				if evicted == 0 {
					t.Errorf("no flow was evicted: the flood did not fill the table\n%s", sum)
				}
				m = regexp.MustCompile(`(?m)^netsentry_flows_evicted_total (\S+)$`).FindStringSubmatch(metrics)
				if m == nil || m[1] == "0" {
					t.Errorf("/metrics after the flood: netsentry_flows_evicted_total %v, want > 0", m)
				} else {
					t.Logf("/metrics: %s", m[0])
				}
				if m := regexp.MustCompile(`Detection skipped \(memory budget\): \d+ flows`).FindString(sum); m != "" {
					t.Logf("summary: %s", m)
				}
			})
		}
	}
}

// floodRun runs the binary in a new namespace while trafgen floods its veth,
// and returns its VmHWM in KiB, its output and the frames trafgen sent.
func floodRun(t *testing.T, bin, tg string, limitMB, ringMB int, detect bool) (hwm int, out, metrics string, sent uint64) {
	t.Helper()
	ns := fmt.Sprintf("nsmem%d-%d", os.Getpid(), nsSeq.Add(1))
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up") // the API, inside the namespace
	sh("ip", "netns", "exec", ns, "ip", "link", "add", "m0", "type", "veth", "peer", "name", "m1")
	for _, i := range []string{"m0", "m1"} {
		sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		sh("ip", "netns", "exec", ns, "ip", "link", "set", i, "up")
	}
	cfg := filepath.Join(t.TempDir(), "netsentry.yaml")
	// As a new user runs it: the API on (scraped during the flood), every
	// other setting at its default but the two under test.
	yaml := fmt.Sprintf("api_port: 18090\nperformance:\n  memory_limit_mb: %d\n  ring_size_mb: %d\nnetwork_analysis:\n  enable_protocol_detection: %v\n", limitMB, ringMB, detect)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "--storage-path", t.TempDir(), "--interface", "m1", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid) // ip netns exec execs the binary
	// VmRSS, RssAnon and RssFile at the highest VmRSS seen.
	var split [3]int
	peak := func() {
		b, err := os.ReadFile(status)
		if err != nil {
			return
		}
		kb := func(field string) int {
			m := regexp.MustCompile(field + `:\s+(\d+) kB`).FindSubmatch(b)
			if m == nil {
				return 0
			}
			v, _ := strconv.Atoi(string(m[1]))
			return v
		}
		hwm = max(hwm, kb("VmHWM"))
		if rss := kb("VmRSS"); rss > split[0] {
			split = [3]int{rss, kb("RssAnon"), kb("RssFile")}
		}
	}
	time.Sleep(time.Second) // let it open its ring
	before := linkCounter(t, ns, "m0", "tx_packets")
	tgCmd := exec.Command("ip", "netns", "exec", ns, "timeout", "-s", "INT", "15", "trafgen", "-o", "m0", "-c", tg, "-P", "1", "-q")
	var tgOut bytes.Buffer
	tgCmd.Stdout, tgCmd.Stderr = &tgOut, &tgOut
	if err := tgCmd.Start(); err != nil {
		t.Fatal(err)
	}
	tgDone := make(chan error, 1)
	go func() { tgDone <- tgCmd.Wait() }()
	api := &memAPI{newAPIClient(t, ns, "127.0.0.1:18090")}
	n := 0
	for waiting := true; waiting; {
		select {
		case <-tgDone:
			waiting = false
		case err := <-done:
			t.Fatalf("netsentry exited during the flood: %v\n%s%s", err, stdout.String(), stderr.String())
		case <-time.After(200 * time.Millisecond):
			peak()
			if n++; n%5 == 0 {
				api.metrics() // a scrape each second
			}
		}
	}
	sent = linkCounter(t, ns, "m0", "tx_packets") - before
	if sent == 0 {
		t.Fatalf("trafgen sent nothing: %s", tgOut.String())
	}
	// The API shares a snapshot for half a second (httpd.DefaultTTL): wait
	// past it, so that the last scrape sees the whole flood.
	time.Sleep(1200 * time.Millisecond)
	peak()
	metrics = api.metrics()
	peak()
	cmd.Process.Signal(syscall.SIGTERM)
	stopBy := time.After(20 * time.Second)
	for exited := false; !exited; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("netsentry: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			exited = true
		case <-time.After(50 * time.Millisecond):
			peak() // the final flush may be the peak
		case <-stopBy:
			t.Fatalf("netsentry did not stop\n%s", stderr.String())
		}
	}
	if hwm == 0 {
		t.Fatal("could not read VmHWM")
	}
	t.Logf("highest VmRSS sampled %.1f MiB: anonymous %.1f MiB, file and ring %.1f MiB",
		float64(split[0])/1024, float64(split[1])/1024, float64(split[2])/1024)
	return hwm, stdout.String() + stderr.String(), metrics, sent
}

type memAPI struct{ c *apiClient }

// metrics scrapes /metrics, tolerating a daemon that is busy or not yet
// listening: the scrapes are load, not the test's oracle.
func (a *memAPI) metrics() string {
	resp, err := a.c.http.Get("http://" + a.c.addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func linkCounter(t *testing.T, ns, link, name string) uint64 {
	t.Helper()
	b, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+link+"/statistics/"+name).Output()
	if err != nil {
		t.Fatalf("read %s counter %s: %v", link, name, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("parse %s counter %s: %v", link, name, err)
	}
	return v
}
