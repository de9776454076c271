package sampler

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

const eps = 1e-9

func near(a, b float64) bool { return math.Abs(a-b) < eps }

// fixture returns a sampler on testdata/t0, with a clock the test moves, and
// a function that points it at testdata/t1 two seconds later.
func fixture(t *testing.T) (s *Sampler, next func()) {
	t.Helper()
	host := t.TempDir()
	for _, d := range []string{"data/logs", "dev/shm"} {
		if err := os.MkdirAll(filepath.Join(host, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{
		ProcRoot:  "testdata/t0/proc",
		SysRoot:   "testdata/t0/sys",
		HostRoot:  host,
		DiskPaths: []string{"/", "/data/logs/", "/dev/shm"},
		TopN:      3,
		Self:      300,
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 4, 26, 14, 32, 10, 0, time.UTC)
	s.now = func() time.Time { return now }
	return s, func() {
		if err := s.open("testdata/t1/proc", "testdata/t1/sys"); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Second)
	}
}

func pids(ps []Process) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.PID)
	}
	return out
}

// TestFirstSample checks the baseline: levels are read, rates are zero.
func TestFirstSample(t *testing.T) {
	s, _ := fixture(t)
	snap := s.collect()
	if len(snap.Errors) != 0 {
		t.Fatalf("errors: %v", snap.Errors)
	}
	m := snap.Metrics
	if snap.Host != "sensor-01" {
		t.Errorf("host = %q", snap.Host)
	}
	if m.CPU.UsagePercent != 0 || !slices.Equal(m.CPU.Cores, []float64{0, 0}) || m.CPU.CoreCount != 2 {
		t.Errorf("cpu = %+v, want zero usage on 2 cores", m.CPU)
	}
	if m.CPU.LoadAvg1m != 0.52 || m.CPU.LoadAvg5m != 0.38 || m.CPU.LoadAvg15m != 0.21 {
		t.Errorf("load = %v %v %v", m.CPU.LoadAvg1m, m.CPU.LoadAvg5m, m.CPU.LoadAvg15m)
	}
	// 8192000 of 16384000 kB available; no swap used.
	if m.Memory.UsedPercent != 50 || m.Memory.SwapUsedPercent != 0 {
		t.Errorf("memory = %+v", m.Memory)
	}
	if m.Disk.IOUtilizationPercent != nil {
		t.Errorf("io utilization on the first sample = %v, want nil", *m.Disk.IOUtilizationPercent)
	}
	if eth := m.Network["eth0"]; eth.RxBytes != 5000000 || eth.RxBytesPerSecond != 0 {
		t.Errorf("eth0 = %+v", eth)
	}
	// No CPU figures yet: ties broken by PID.
	if got := pids(m.Processes.TopCPU); !slices.Equal(got, []int{1, 2, 42}) {
		t.Errorf("top cpu = %v", got)
	}
}

// TestDeltas checks every figure of the second sample against values worked
// out by hand from the t0 and t1 files (2 s apart).
func TestDeltas(t *testing.T) {
	s, next := fixture(t)
	s.collect()
	next()
	snap := s.collect()
	if len(snap.Errors) != 0 {
		t.Fatalf("errors: %v", snap.Errors)
	}
	m := snap.Metrics
	page := uint64(os.Getpagesize())

	// cpu0: +200 ticks, busy = 100 user + 20 system = 120 (the 40 guest
	// ticks are inside user) -> 60 %. cpu1: +200, busy = 10+10+5 -> 12.5 %.
	// All: +400, busy 145 -> 36.25 %.
	if !near(m.CPU.UsagePercent, 36.25) || !near(m.CPU.Cores[0], 60) || !near(m.CPU.Cores[1], 12.5) {
		t.Errorf("cpu usage = %v cores %v, want 36.25 [60 12.5]", m.CPU.UsagePercent, m.CPU.Cores)
	}
	if m.CPU.LoadAvg1m != 1.23 || m.CPU.LoadAvg5m != 1.15 || m.CPU.LoadAvg15m != 0.98 {
		t.Errorf("load = %v %v %v", m.CPU.LoadAvg1m, m.CPU.LoadAvg5m, m.CPU.LoadAvg15m)
	}
	// x86_pkg_temp (55 °C) wins over the hotter Wi-Fi zone (61 °C).
	if m.CPU.TemperatureCelsius == nil || *m.CPU.TemperatureCelsius != 55 {
		t.Errorf("temperature = %v, want 55", m.CPU.TemperatureCelsius)
	}

	wantMem := Memory{
		TotalBytes:      16384000 * 1024,
		UsedBytes:       (16384000 - 6144000) * 1024,
		AvailableBytes:  6144000 * 1024,
		UsedPercent:     62.5,
		SwapTotalBytes:  2000000 * 1024,
		SwapUsedBytes:   500000 * 1024,
		SwapUsedPercent: 25,
	}
	if m.Memory != wantMem {
		t.Errorf("memory = %+v\nwant %+v", m.Memory, wantMem)
	}

	// "/" is on vda1 (io_ticks +500 ms in 2 s), /data/logs under /data on
	// vda (+600 ms), /dev/shm on tmpfs (no block device).
	wantIO := []struct {
		path, dev string
		util      float64
	}{{"/", "vda1", 25}, {"/data/logs", "vda", 30}, {"/dev/shm", "", -1}}
	if len(m.Disks) != 3 {
		t.Fatalf("disks = %+v", m.Disks)
	}
	for i, w := range wantIO {
		d := m.Disks[i]
		if d.Path != w.path || d.Device != w.dev {
			t.Errorf("disk %d = %s on %q, want %s on %q", i, d.Path, d.Device, w.path, w.dev)
		}
		switch {
		case w.util < 0 && d.IOUtilizationPercent != nil:
			t.Errorf("%s: io utilization = %v, want nil", d.Path, *d.IOUtilizationPercent)
		case w.util >= 0 && (d.IOUtilizationPercent == nil || !near(*d.IOUtilizationPercent, w.util)):
			t.Errorf("%s: io utilization = %v, want %v", d.Path, d.IOUtilizationPercent, w.util)
		}
		if d.TotalBytes == 0 || d.UsedBytes+d.FreeBytes > d.TotalBytes || d.UsedPercent <= 0 || d.UsedPercent > 100 {
			t.Errorf("%s: statfs figures %+v", d.Path, d)
		}
	}
	if m.Disk.Path != "/" || m.Disk.Device != "vda1" {
		t.Errorf("disk = %+v, want the first path", m.Disk)
	}

	wantEth := Interface{
		RxBytes: 7000000, RxPackets: 5000, RxErrors: 1, RxDrops: 3,
		TxBytes: 2400000, TxPackets: 3600, TxErrors: 0, TxDrops: 5,
		RxBytesPerSecond: 1000000, TxBytesPerSecond: 200000,
		RxPacketsPerSecond: 500, TxPacketsPerSecond: 300,
	}
	if m.Network["eth0"] != wantEth {
		t.Errorf("eth0 = %+v\nwant %+v", m.Network["eth0"], wantEth)
	}
	if v := m.Network["veth1"]; v.RxBytes != 300 || v.RxBytesPerSecond != 0 {
		t.Errorf("new interface veth1 = %+v, want counters and no rate", v)
	}
	if len(m.Network) != 4 {
		t.Errorf("interfaces = %d, want 4", len(m.Network))
	}

	// Ticks over 2 s: 42 +150 -> 75 %, 300 (self) +70 -> 35 %, 500 (new)
	// 40 -> 20 %, 60 (PID reused by a new process) 30 -> 15 %, 77 +4 -> 2 %.
	wantCPU := []Process{
		{PID: 42, Name: "busy worker", Cmdline: "/usr/bin/busy --work", CPUPercent: 75, RSSBytes: 5000 * page},
		{PID: 300, Name: "netsentry", Cmdline: "/usr/local/bin/netsentry --config /etc/netsentry/netsentry.yaml", CPUPercent: 35, RSSBytes: 10000 * page},
		{PID: 500, Name: "newproc", Cmdline: "newproc -x", CPUPercent: 20, RSSBytes: 3000 * page},
	}
	if len(m.Processes.TopCPU) != len(wantCPU) {
		t.Fatalf("top cpu = %+v", m.Processes.TopCPU)
	}
	for i, w := range wantCPU {
		g := m.Processes.TopCPU[i]
		if g.PID != w.PID || g.Name != w.Name || g.Cmdline != w.Cmdline || !near(g.CPUPercent, w.CPUPercent) || g.RSSBytes != w.RSSBytes {
			t.Errorf("top cpu %d = %+v\nwant %+v", i, g, w)
		}
	}
	if got := pids(m.Processes.TopMemory); !slices.Equal(got, []int{77, 300, 42}) {
		t.Errorf("top memory = %v, want [77 300 42]", got)
	}
	self := m.Processes.Self
	if self == nil {
		t.Fatal("self missing")
	}
	if self.PID != 300 || !near(self.CPUPercent, 35) || self.RSSBytes != 10000*page ||
		self.PeakRSSBytes != 51200*1024 || self.Threads != 9 || self.OpenFDs != 5 {
		t.Errorf("self = %+v", self)
	}
}

// TestPIDReuse: a process whose PID had another owner in the previous
// sample is charged its own ticks, not the difference with the old one's.
func TestPIDReuse(t *testing.T) {
	s, next := fixture(t)
	s.cfg.TopN = MaxTopN
	s.collect()
	next()
	for _, p := range s.collect().Metrics.Processes.TopCPU {
		if p.PID == 60 {
			if p.Name != "newjob" || !near(p.CPUPercent, 15) {
				t.Errorf("pid 60 = %+v, want newjob at 15 %%", p)
			}
			return
		}
	}
	t.Error("pid 60 not listed")
}

func TestDotted(t *testing.T) {
	s, next := fixture(t)
	s.collect()
	next()
	d := s.collect().Dotted()
	want := map[string]float64{
		"cpu.usage":                             36.25,
		"cpu.core.0.usage":                      60,
		"cpu.core.1.usage":                      12.5,
		"cpu.load_avg_1m":                       1.23,
		"cpu.load_avg_5m":                       1.15,
		"cpu.load_avg_15m":                      0.98,
		"cpu.core_count":                        2,
		"cpu.temperature":                       55,
		"memory.total":                          16384000 * 1024,
		"memory.used":                           10240000 * 1024,
		"memory.free":                           6144000 * 1024,
		"memory.usage_percent":                  62.5,
		"swap.total":                            2000000 * 1024,
		"swap.used":                             500000 * 1024,
		"swap.usage_percent":                    25,
		"disk.io_utilization_percent":           25,
		"disk.data_logs.io_utilization_percent": 30,
		"net.eth0.rx_bytes":                     7000000,
		"net.eth0.rx_drops":                     3,
		"net.eth0.tx_drops":                     5,
		"net.eth0.rx_bytes_per_second":          1000000,
		"net.eth0.tx_packets_per_second":        300,
		"net.eth0.100.rx_bytes":                 10000,
		"net.lo.tx_packets":                     15,
		"process.self.cpu_percent":              35,
		"process.self.rss_bytes":                float64(10000 * os.Getpagesize()),
		"process.self.peak_rss_bytes":           51200 * 1024,
		"process.self.threads":                  9,
		"process.self.open_fds":                 5,
	}
	for k, v := range want {
		got, ok := d[k]
		if !ok || !near(got, v) {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for _, k := range []string{"disk.total", "disk.used", "disk.free", "disk.usage_percent", "disk.inodes_usage_percent",
		"disk.dev_shm.usage_percent", "disk.data_logs.total"} {
		if _, ok := d[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	if _, ok := d["disk.dev_shm.io_utilization_percent"]; ok {
		t.Error("disk.dev_shm.io_utilization_percent present for a tmpfs")
	}
	// 8 basic cpu + 7 memory/swap + 3x6 disk - 1 (tmpfs io) + 4x12 net + 5 self.
	if n := 8 + 7 + 17 + 48 + 5; len(d) != n {
		t.Errorf("%d names, want %d", len(d), n)
	}
}

// TestJSONShape checks the document against the description's
// /api/v1/metrics example, and that a box with no sensor says null.
func TestJSONShape(t *testing.T) {
	s, next := fixture(t)
	s.collect()
	next()
	snap := s.collect()
	snap.Metrics.CPU.TemperatureCelsius = temperature(t.TempDir())
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["timestamp"] != "2025-04-26T14:32:12Z" || doc["host"] != "sensor-01" {
		t.Errorf("timestamp, host = %v, %v", doc["timestamp"], doc["host"])
	}
	metrics := doc["metrics"].(map[string]any)
	want := map[string][]string{
		"cpu":    {"usage_percent", "cores", "load_avg_1m", "load_avg_5m", "load_avg_15m", "core_count", "temperature_celsius"},
		"memory": {"total_bytes", "used_bytes", "used_percent", "swap_used_percent"},
		"disk":   {"total_bytes", "used_bytes", "used_percent", "inodes_used_percent", "io_utilization_percent"},
	}
	for group, keys := range want {
		g, ok := metrics[group].(map[string]any)
		if !ok {
			t.Fatalf("metrics.%s missing in %s", group, b)
		}
		for _, k := range keys {
			if _, ok := g[k]; !ok {
				t.Errorf("metrics.%s.%s missing", group, k)
			}
		}
	}
	if v := metrics["cpu"].(map[string]any)["temperature_celsius"]; v != nil {
		t.Errorf("temperature_celsius = %v, want null", v)
	}
	procs := metrics["processes"].(map[string]any)
	for _, k := range []string{"top_cpu", "top_memory", "self"} {
		if procs[k] == nil {
			t.Errorf("metrics.processes.%s missing", k)
		}
	}
	if _, ok := metrics["network"].(map[string]any)["eth0"].(map[string]any)["rx_drops"]; !ok {
		t.Error("metrics.network.eth0.rx_drops missing")
	}
}

func TestTemperature(t *testing.T) {
	write := func(root, rel, text string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hwmon := t.TempDir()
	write(hwmon, "class/hwmon/hwmon0/name", "nvme\n")
	write(hwmon, "class/hwmon/hwmon0/temp1_input", "70000\n")
	write(hwmon, "class/hwmon/hwmon1/name", "coretemp\n")
	write(hwmon, "class/hwmon/hwmon1/temp1_input", "60000\n")
	write(hwmon, "class/hwmon/hwmon1/temp2_input", "58000\n")
	write(hwmon, "class/hwmon/hwmon1/temp3_input", "-273000\n")

	board := t.TempDir()
	write(board, "class/hwmon/hwmon0/name", "nvme\n")
	write(board, "class/hwmon/hwmon0/temp1_input", "40000\n")
	write(board, "class/thermal/thermal_zone0/type", "acpitz\n")
	write(board, "class/thermal/thermal_zone0/temp", "27800\n")

	for _, c := range []struct {
		name, root string
		want       float64 // NaN: nil
	}{
		{"thermal zones, cpu zone preferred", "testdata/t0/sys", 52.5},
		{"hwmon coretemp preferred over nvme", hwmon, 60},
		{"zones before hwmon; no cpu sensor", board, 27.8},
		{"no sensor", t.TempDir(), math.NaN()},
	} {
		got := temperature(c.root)
		switch {
		case math.IsNaN(c.want) && got != nil:
			t.Errorf("%s: %v, want nil", c.name, *got)
		case !math.IsNaN(c.want) && (got == nil || !near(*got, c.want)):
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{Interval: -time.Second},
		{DiskPaths: []string{"var"}},
		{ProcRoot: t.TempDir() + "/missing"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) = nil error", c)
		}
	}
	s, err := New(Config{TopN: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.TopN != MaxTopN || s.Interval() != DefaultInterval || !slices.Equal(s.cfg.DiskPaths, []string{"/"}) || s.cfg.Self != os.Getpid() {
		t.Errorf("defaults = %+v", s.cfg)
	}
}

// TestRunLatest runs the sampler with readers racing it (go test -race).
func TestRunLatest(t *testing.T) {
	s, err := New(Config{ProcRoot: "testdata/t1/proc", SysRoot: "testdata/t1/sys", Interval: 5 * time.Millisecond, Self: 300, DiskPaths: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Latest().Timestamp.IsZero() {
		t.Fatal("snapshot before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[time.Time]bool{}
			deadline := time.Now().Add(5 * time.Second)
			for len(seen) < 3 && time.Now().Before(deadline) {
				snap := s.Latest()
				if !snap.Timestamp.IsZero() {
					if snap.Metrics.CPU.CoreCount != 2 || snap.Metrics.Processes.Self == nil {
						t.Errorf("snapshot %+v", snap.Metrics.CPU)
						return
					}
					_ = snap.Dotted()
					seen[snap.Timestamp] = true
				}
				time.Sleep(time.Millisecond)
			}
			if len(seen) < 3 {
				t.Errorf("saw %d snapshots in 5 s", len(seen))
			}
		}()
	}
	wg.Wait()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
