package sampler

import (
	"strconv"
	"strings"
	"time"
)

// Snapshot is one sample of the host: the /api/v1/metrics document. A
// Snapshot handed out by Latest is shared between readers and must not be
// modified.
type Snapshot struct {
	Timestamp time.Time `json:"timestamp"`
	Host      string    `json:"host"`
	Metrics   Metrics   `json:"metrics"`
	// Errors lists the sources that could not be read in this sample (the
	// sample is published anyway with what could be read).
	Errors []string `json:"errors,omitempty"`
}

// Metrics groups the host metrics by subsystem.
type Metrics struct {
	CPU    CPU    `json:"cpu"`
	Memory Memory `json:"memory"`
	// Disk is the first of Config.DiskPaths ("/" by default); Disks holds
	// every configured path, Disk included, in configuration order.
	Disk      Disk                 `json:"disk"`
	Disks     []Disk               `json:"disks"`
	Network   map[string]Interface `json:"network"`
	Processes Processes            `json:"processes"`
}

// CPU is host CPU usage. Percentages are 0–100 over the last sampling
// interval, from /proc/stat tick deltas: busy = total - idle - iowait.
type CPU struct {
	UsagePercent float64 `json:"usage_percent"`
	// Cores holds each online CPU's usage, in /proc/stat order (cpu0, cpu1, ...).
	Cores      []float64 `json:"cores"`
	LoadAvg1m  float64   `json:"load_avg_1m"`
	LoadAvg5m  float64   `json:"load_avg_5m"`
	LoadAvg15m float64   `json:"load_avg_15m"`
	// CoreCount is the number of online CPUs (cpuN lines of /proc/stat).
	CoreCount int `json:"core_count"`
	// TemperatureCelsius is nil (JSON null) when the box exposes no thermal
	// zone or hwmon sensor.
	TemperatureCelsius *float64 `json:"temperature_celsius"`
}

// Memory is host memory in bytes. Used is MemTotal - MemAvailable, as
// free(1) shows it.
type Memory struct {
	TotalBytes      uint64  `json:"total_bytes"`
	UsedBytes       uint64  `json:"used_bytes"`
	AvailableBytes  uint64  `json:"available_bytes"`
	UsedPercent     float64 `json:"used_percent"`
	SwapTotalBytes  uint64  `json:"swap_total_bytes"`
	SwapUsedBytes   uint64  `json:"swap_used_bytes"`
	SwapUsedPercent float64 `json:"swap_used_percent"`
}

// Disk is one mounted file system, from statfs(2) of Path, with the same
// arithmetic as df(1): total = blocks*bsize, used = (blocks-bfree)*bsize,
// free = bavail*bsize (what an unprivileged user may still write), and
// used_percent = used / (used + free) * 100.
type Disk struct {
	Path              string  `json:"path"`
	Device            string  `json:"device,omitempty"`
	TotalBytes        uint64  `json:"total_bytes"`
	UsedBytes         uint64  `json:"used_bytes"`
	FreeBytes         uint64  `json:"free_bytes"`
	UsedPercent       float64 `json:"used_percent"`
	InodesUsedPercent float64 `json:"inodes_used_percent"`
	// IOUtilizationPercent is the share of the interval the block device
	// under Path was busy (io_ticks delta of /proc/diskstats / elapsed). It
	// is nil when Path is on no block device (tmpfs, overlay, NFS, ...).
	IOUtilizationPercent *float64 `json:"io_utilization_percent"`
}

// Interface is one network interface from /proc/net/dev: the kernel's
// cumulative counters, and byte/packet rates over the last interval.
type Interface struct {
	RxBytes            uint64  `json:"rx_bytes"`
	RxPackets          uint64  `json:"rx_packets"`
	RxErrors           uint64  `json:"rx_errors"`
	RxDrops            uint64  `json:"rx_drops"`
	TxBytes            uint64  `json:"tx_bytes"`
	TxPackets          uint64  `json:"tx_packets"`
	TxErrors           uint64  `json:"tx_errors"`
	TxDrops            uint64  `json:"tx_drops"`
	RxBytesPerSecond   float64 `json:"rx_bytes_per_second"`
	TxBytesPerSecond   float64 `json:"tx_bytes_per_second"`
	RxPacketsPerSecond float64 `json:"rx_packets_per_second"`
	TxPacketsPerSecond float64 `json:"tx_packets_per_second"`
}

// Processes holds the busiest processes and NetSentry's own.
type Processes struct {
	// TopCPU is sorted by CPUPercent, then PID; TopMemory by RSSBytes, then
	// PID. Each has at most Config.TopN entries.
	TopCPU    []Process `json:"top_cpu"`
	TopMemory []Process `json:"top_memory"`
	// Self is the process Config.Self (NetSentry itself by default); nil
	// if it could not be read.
	Self *SelfProcess `json:"self"`
}

// Process is one process. CPUPercent is utime+stime over the interval as a
// share of one CPU (as top(1) shows it: a process busy on two cores is 200).
type Process struct {
	PID        int     `json:"pid"`
	Name       string  `json:"name"`
	Cmdline    string  `json:"cmdline"`
	CPUPercent float64 `json:"cpu_percent"`
	RSSBytes   uint64  `json:"rss_bytes"`
}

// SelfProcess is NetSentry's own process, with a few more fields.
type SelfProcess struct {
	Process
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`
	Threads      int    `json:"threads"`
	OpenFDs      int    `json:"open_fds"`
}

// Dotted returns the snapshot under the dotted names that the store and the
// alert rules use (see the package documentation for the list). Sizes are
// in bytes, percentages 0–100. Names whose value is unknown (temperature,
// I/O utilisation) are left out rather than reported as 0.
func (s Snapshot) Dotted() map[string]float64 {
	m := s.Metrics
	d := make(map[string]float64, 32+len(m.CPU.Cores)+12*len(m.Network)+8*len(m.Disks))

	d["cpu.usage"] = m.CPU.UsagePercent
	for i, u := range m.CPU.Cores {
		d["cpu.core."+strconv.Itoa(i)+".usage"] = u
	}
	d["cpu.load_avg_1m"] = m.CPU.LoadAvg1m
	d["cpu.load_avg_5m"] = m.CPU.LoadAvg5m
	d["cpu.load_avg_15m"] = m.CPU.LoadAvg15m
	d["cpu.core_count"] = float64(m.CPU.CoreCount)
	if m.CPU.TemperatureCelsius != nil {
		d["cpu.temperature"] = *m.CPU.TemperatureCelsius
	}

	d["memory.total"] = float64(m.Memory.TotalBytes)
	d["memory.used"] = float64(m.Memory.UsedBytes)
	d["memory.free"] = float64(m.Memory.AvailableBytes)
	d["memory.usage_percent"] = m.Memory.UsedPercent
	d["swap.total"] = float64(m.Memory.SwapTotalBytes)
	d["swap.used"] = float64(m.Memory.SwapUsedBytes)
	d["swap.usage_percent"] = m.Memory.SwapUsedPercent

	for i, disk := range m.Disks {
		prefix := "disk."
		if i > 0 {
			prefix += DiskName(disk.Path) + "."
		}
		d[prefix+"total"] = float64(disk.TotalBytes)
		d[prefix+"used"] = float64(disk.UsedBytes)
		d[prefix+"free"] = float64(disk.FreeBytes)
		d[prefix+"usage_percent"] = disk.UsedPercent
		d[prefix+"inodes_usage_percent"] = disk.InodesUsedPercent
		if disk.IOUtilizationPercent != nil {
			d[prefix+"io_utilization_percent"] = *disk.IOUtilizationPercent
		}
	}

	for name, n := range m.Network {
		p := "net." + name + "."
		d[p+"rx_bytes"] = float64(n.RxBytes)
		d[p+"rx_packets"] = float64(n.RxPackets)
		d[p+"rx_errors"] = float64(n.RxErrors)
		d[p+"rx_drops"] = float64(n.RxDrops)
		d[p+"tx_bytes"] = float64(n.TxBytes)
		d[p+"tx_packets"] = float64(n.TxPackets)
		d[p+"tx_errors"] = float64(n.TxErrors)
		d[p+"tx_drops"] = float64(n.TxDrops)
		d[p+"rx_bytes_per_second"] = n.RxBytesPerSecond
		d[p+"tx_bytes_per_second"] = n.TxBytesPerSecond
		d[p+"rx_packets_per_second"] = n.RxPacketsPerSecond
		d[p+"tx_packets_per_second"] = n.TxPacketsPerSecond
	}

	if self := m.Processes.Self; self != nil {
		d["process.self.cpu_percent"] = self.CPUPercent
		d["process.self.rss_bytes"] = float64(self.RSSBytes)
		d["process.self.peak_rss_bytes"] = float64(self.PeakRSSBytes)
		d["process.self.threads"] = float64(self.Threads)
		d["process.self.open_fds"] = float64(self.OpenFDs)
	}
	return d
}

// DiskName is the name a disk path takes in dotted names when it is not the
// first configured path: the path without its leading and trailing slashes,
// inner slashes and dots turned into underscores ("/var/lib" -> "var_lib"),
// and "root" for "/".
func DiskName(path string) string {
	p := strings.Trim(path, "/")
	if p == "" {
		return "root"
	}
	return strings.NewReplacer("/", "_", ".", "_").Replace(p)
}
