// Package sampler samples the host NetSentry runs on: CPU, memory, disks,
// network interfaces and processes, read through prometheus/procfs from a
// proc tree and a sys tree (Config.ProcRoot, Config.SysRoot) so that tests
// point it at fixture trees. It owns no packet path and imports no package
// of this module.
//
// # Threading and lifetimes
//
// New opens the trees and reads nothing. Run, on a goroutine of the
// caller's, takes a baseline sample, publishes the first snapshot 250 ms
// later (or after Interval if shorter) and then one every Interval, until
// its context is done. Each snapshot is built whole and then published by
// an atomic pointer swap, so Latest is safe from any goroutine, never
// blocks the sampler, and returns a value that no one modifies afterwards
// (callers must not modify it either). Before the first publication Latest
// returns the zero Snapshot (Timestamp.IsZero()).
//
// # What is measured, and how
//
//   - CPU usage (total and per core): busy ticks over all ticks of
//     /proc/stat between two samples, busy = all - idle - iowait; guest time
//     is inside user/nice and not counted twice. Load averages from
//     /proc/loadavg; core_count = online CPUs (cpuN lines of /proc/stat).
//   - CPU temperature: the hottest CPU sensor among
//     sys/class/thermal/thermal_zone*/temp (or, when there is no zone,
//     sys/class/hwmon/hwmon*/temp*_input); the hottest sensor of any kind
//     when none is a CPU's; null when the box has none.
//   - Memory: used = MemTotal - MemAvailable (as free(1) shows it), swap
//     used = SwapTotal - SwapFree; bytes.
//   - Disk: statfs(2) of each Config.DiskPaths entry (prefixed by
//     Config.HostRoot), with df(1)'s arithmetic (see Disk). I/O utilisation:
//     the path's mount is found in /proc/[Self]/mountinfo, its major:minor in
//     /proc/diskstats, and utilisation = io_ticks delta (ms) / elapsed (ms);
//     null when the file system is on no block device.
//   - Network: /proc/net/dev counters per interface, and rates between
//     samples; at most MaxInterfaces interfaces, first by name.
//   - Processes: every /proc/[pid]/stat is read once per sample (the only
//     work that grows with the host: one small file per process; command
//     lines are read for the reported ones only). CPU percent is the
//     utime+stime delta over wall time, as a share of one CPU (top(1)'s
//     convention); RSS is the stat file's rss pages. Processes are told
//     apart by PID and start time, so a reused PID does not inherit
//     another process's CPU time. Self adds VmHWM (peak RSS), threads and
//     open file descriptors.
//
// Percentages are 0–100 (a process's CPU percent may exceed 100), rounded
// to 0.01; rates are per second. The wall-clock interval is measured, not assumed,
// so a late sample still gives right rates.
//
// # Dotted names
//
// Snapshot.Dotted flattens a snapshot into the names that the store and
// alert rules use. All sizes are bytes (the terminal summary may print them
// in MiB, but the stored and alerted values are bytes).
//
//	cpu.usage                      percent, all CPUs
//	cpu.core.N.usage               percent, N = 0.. in /proc/stat order
//	cpu.load_avg_1m                load average
//	cpu.load_avg_5m
//	cpu.load_avg_15m
//	cpu.core_count                 online CPUs
//	cpu.temperature                °C; absent when the box has no sensor
//	memory.total                   bytes
//	memory.used                    bytes, total - available
//	memory.free                    bytes, available (= total - used)
//	memory.usage_percent           percent
//	swap.total                     bytes
//	swap.used                      bytes
//	swap.usage_percent             percent (0 without swap)
//	disk.total                     bytes, first DiskPaths entry ("/")
//	disk.used                      bytes
//	disk.free                      bytes available to unprivileged users
//	disk.usage_percent             percent, used / (used + free)
//	disk.inodes_usage_percent      percent
//	disk.io_utilization_percent    percent busy; absent when not a block device
//	disk.NAME.*                    the same six for each further DiskPaths
//	                               entry, NAME = DiskName(path) ("/var/lib" -> "var_lib")
//	net.IF.rx_bytes                counters, for each interface IF
//	net.IF.rx_packets
//	net.IF.rx_errors
//	net.IF.rx_drops
//	net.IF.tx_bytes
//	net.IF.tx_packets
//	net.IF.tx_errors
//	net.IF.tx_drops
//	net.IF.rx_bytes_per_second     rates over the last interval
//	net.IF.tx_bytes_per_second
//	net.IF.rx_packets_per_second
//	net.IF.tx_packets_per_second
//	process.self.cpu_percent       NetSentry's own process, percent of one CPU
//	process.self.rss_bytes
//	process.self.peak_rss_bytes
//	process.self.threads
//	process.self.open_fds
//
// An interface name may itself contain dots (a VLAN such as eth0.100): IF
// is everything between "net." and the last dot. The top-process lists are
// not flattened (their names would be unbounded).
package sampler
