package sampler

import (
	"bufio"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLiveHost samples this machine's /proc and /sys and checks the figures
// against sources the sampler does not use: getconf, df, and the files read
// directly with a parser of this test's own.
func TestLiveHost(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this machine")
	}
	s, err := New(Config{Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	loadBefore := readLoad(t)
	loRxBefore := readUint(t, "/sys/class/net/lo/statistics/rx_bytes")
	s.collect()
	time.Sleep(200 * time.Millisecond)
	snap := s.collect()
	loadAfter := readLoad(t)
	loRxAfter := readUint(t, "/sys/class/net/lo/statistics/rx_bytes")
	if len(snap.Errors) != 0 {
		t.Fatalf("errors: %v", snap.Errors)
	}
	m := snap.Metrics

	// CPUs: /proc/stat lists the online ones, as _NPROCESSORS_ONLN counts.
	if out, err := exec.Command("getconf", "_NPROCESSORS_ONLN").Output(); err != nil {
		t.Errorf("getconf: %v", err)
	} else if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); m.CPU.CoreCount != n {
		t.Errorf("core_count = %d, getconf _NPROCESSORS_ONLN = %d", m.CPU.CoreCount, n)
	}
	if len(m.CPU.Cores) != m.CPU.CoreCount {
		t.Errorf("%d per-core figures for %d cores", len(m.CPU.Cores), m.CPU.CoreCount)
	}
	for i, u := range append([]float64{m.CPU.UsagePercent}, m.CPU.Cores...) {
		if u < 0 || u > 100 || math.IsNaN(u) {
			t.Errorf("cpu usage %d = %v", i, u)
		}
	}
	for i, got := range []float64{m.CPU.LoadAvg1m, m.CPU.LoadAvg5m, m.CPU.LoadAvg15m} {
		lo, hi := min(loadBefore[i], loadAfter[i]), max(loadBefore[i], loadAfter[i])
		if got < lo-0.005 || got > hi+0.005 {
			t.Errorf("load average %d = %v, /proc/loadavg said %v then %v", i, got, loadBefore[i], loadAfter[i])
		}
	}
	zones, _ := filepath.Glob("/sys/class/thermal/thermal_zone*/temp")
	inputs, _ := filepath.Glob("/sys/class/hwmon/hwmon*/temp*_input")
	if len(zones)+len(inputs) == 0 && m.CPU.TemperatureCelsius != nil {
		t.Errorf("temperature = %v on a box with no sensor", *m.CPU.TemperatureCelsius)
	}

	if total := readMemTotal(t); m.Memory.TotalBytes != total {
		t.Errorf("memory total = %d, /proc/meminfo MemTotal = %d", m.Memory.TotalBytes, total)
	}
	if m.Memory.UsedBytes+m.Memory.AvailableBytes != m.Memory.TotalBytes || m.Memory.UsedPercent <= 0 || m.Memory.UsedPercent >= 100 {
		t.Errorf("memory = %+v", m.Memory)
	}

	// df -B1 /: size and used, within 1 % of the size.
	if out, err := exec.Command("df", "-B1", "--output=size,used", "/").Output(); err != nil {
		t.Errorf("df: %v", err)
	} else {
		f := strings.Fields(string(out))
		size, _ := strconv.ParseFloat(f[len(f)-2], 64)
		used, _ := strconv.ParseFloat(f[len(f)-1], 64)
		if math.Abs(float64(m.Disk.TotalBytes)-size) > size/100 || math.Abs(float64(m.Disk.UsedBytes)-used) > size/100 {
			t.Errorf("disk / = %d total %d used, df says %.0f %.0f", m.Disk.TotalBytes, m.Disk.UsedBytes, size, used)
		}
	}
	if u := m.Disk.IOUtilizationPercent; u != nil && (*u < 0 || *u > 100) {
		t.Errorf("io utilization = %v", *u)
	}

	lo, ok := m.Network["lo"]
	if !ok {
		t.Fatalf("no lo among %d interfaces", len(m.Network))
	}
	if lo.RxBytes < loRxBefore || lo.RxBytes > loRxAfter {
		t.Errorf("lo rx_bytes = %d, sysfs said %d then %d", lo.RxBytes, loRxBefore, loRxAfter)
	}

	self := m.Processes.Self
	if self == nil || self.PID != os.Getpid() {
		t.Fatalf("self = %+v, want pid %d", self, os.Getpid())
	}
	rss := readStatusKB(t, "VmRSS")
	if d := math.Abs(float64(self.RSSBytes) - float64(rss)); d > float64(rss)/5 {
		t.Errorf("self rss = %d, /proc/self/status VmRSS = %d", self.RSSBytes, rss)
	}
	if self.Threads < 1 || self.PeakRSSBytes < self.RSSBytes/2 || self.OpenFDs < 3 {
		t.Errorf("self = %+v", self)
	}
	if n := min(DefaultTopN, countProcs(t)); len(m.Processes.TopCPU) != n || len(m.Processes.TopMemory) != n {
		t.Errorf("top lists %d and %d long, want %d", len(m.Processes.TopCPU), len(m.Processes.TopMemory), n)
	}
	if host, _ := os.Hostname(); snap.Host != host {
		t.Errorf("host = %q, os.Hostname = %q", snap.Host, host)
	}
}

func readLoad(t *testing.T) [3]float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	var l [3]float64
	for i, f := range strings.Fields(string(b))[:3] {
		l[i], _ = strconv.ParseFloat(f, 64)
	}
	return l
}

func readUint(t *testing.T, path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readKB returns the "Key:   N kB" value of a /proc file in bytes.
func readKB(t *testing.T, path, key string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n * 1024
		}
	}
	t.Fatalf("%s: no %s", path, key)
	return 0
}

func readMemTotal(t *testing.T) uint64 { return readKB(t, "/proc/meminfo", "MemTotal") }

func readStatusKB(t *testing.T, key string) uint64 { return readKB(t, "/proc/self/status", key) }

func countProcs(t *testing.T) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}
