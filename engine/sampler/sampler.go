package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
)

// Defaults and bounds of Config.
const (
	DefaultInterval = 5 * time.Second
	DefaultTopN     = 5
	MaxTopN         = 100
	// MaxInterfaces bounds the interfaces reported (the first ones by name),
	// so that a box with thousands of veths costs a bounded document.
	MaxInterfaces = 256
	// primeInterval is the gap between Run's baseline sample and its first
	// published one, so that the first snapshot already has rates.
	primeInterval = 250 * time.Millisecond
	// maxCmdline bounds a process's reported command line, in bytes.
	maxCmdline = 256
)

// Config says where to read and what to report. The zero value reads the
// live /proc and /sys every DefaultInterval.
type Config struct {
	// ProcRoot and SysRoot are the mount points of procfs and sysfs
	// ("/proc" and "/sys" when empty); tests point them at fixture trees.
	ProcRoot string
	SysRoot  string
	// HostRoot prefixes each DiskPaths entry for statfs (empty: none). Tests
	// point it at a directory; a containerised sensor at the host's root.
	HostRoot string
	// Interval between samples (DefaultInterval when 0).
	Interval time.Duration
	// DiskPaths are the mount points (or any paths) whose file systems are
	// reported; ["/"] when empty. The first one is Metrics.Disk.
	DiskPaths []string
	// TopN is the length of the top-CPU and top-memory process lists
	// (DefaultTopN when 0, at most MaxTopN, none when negative).
	TopN int
	// Self is the PID reported as Processes.Self (os.Getpid() when 0). Its
	// mountinfo also maps DiskPaths to block devices.
	Self int
}

// Sampler samples the host. Run is its only writer; Latest may be called
// from any goroutine.
type Sampler struct {
	cfg    Config
	proc   procfs.FS
	block  blockdevice.FS
	latest atomic.Pointer[Snapshot]
	now    func() time.Time

	// State of the previous sample, touched only by collect (Run's goroutine).
	prev *state
}

// state is what the next sample needs from the previous one for deltas.
type state struct {
	at    time.Time
	cpu   procfs.CPUStat
	cores map[int64]procfs.CPUStat
	disk  map[string]uint64 // device -> io_ticks (ms)
	net   procfs.NetDev
	procs map[procKey]uint // (pid, start time) -> utime+stime (ticks)
}

// procKey tells a reused PID from the process that had it before.
type procKey struct {
	pid   int
	start uint64
}

// New checks the configuration and opens the proc and sys trees. It reads
// nothing yet: the first snapshot is published by Run.
func New(cfg Config) (*Sampler, error) {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = procfs.DefaultMountPoint
	}
	if cfg.SysRoot == "" {
		cfg.SysRoot = "/sys"
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("sampler interval %v: must be positive", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if len(cfg.DiskPaths) == 0 {
		cfg.DiskPaths = []string{"/"}
	}
	paths := make([]string, len(cfg.DiskPaths))
	for i, p := range cfg.DiskPaths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sampler disk path %q: must be absolute", p)
		}
		paths[i] = filepath.Clean(p)
	}
	cfg.DiskPaths = paths
	switch {
	case cfg.TopN == 0:
		cfg.TopN = DefaultTopN
	case cfg.TopN < 0:
		cfg.TopN = 0
	case cfg.TopN > MaxTopN:
		cfg.TopN = MaxTopN
	}
	if cfg.Self == 0 {
		cfg.Self = os.Getpid()
	}
	s := &Sampler{cfg: cfg, now: time.Now}
	if err := s.open(cfg.ProcRoot, cfg.SysRoot); err != nil {
		return nil, err
	}
	return s, nil
}

// open (re)points the sampler at a proc and a sys tree.
func (s *Sampler) open(procRoot, sysRoot string) error {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return fmt.Errorf("open proc tree: %w", err)
	}
	bfs, err := blockdevice.NewFS(procRoot, sysRoot)
	if err != nil {
		return fmt.Errorf("open block device tree: %w", err)
	}
	s.proc, s.block = fs, bfs
	s.cfg.ProcRoot, s.cfg.SysRoot = procRoot, sysRoot
	return nil
}

// Interval is the configured sampling interval.
func (s *Sampler) Interval() time.Duration { return s.cfg.Interval }

// Latest returns the last published snapshot; its Timestamp is zero until
// Run has published the first one (about 250 ms after it starts). Safe from
// any goroutine; the returned value shares slices and maps with other
// readers and must not be modified.
func (s *Sampler) Latest() Snapshot {
	if p := s.latest.Load(); p != nil {
		return *p
	}
	return Snapshot{}
}

// Run samples until ctx is done, publishing a snapshot every Interval; the
// caller runs it on a goroutine of its own (go s.Run(ctx)). It takes a
// baseline sample first and publishes the first snapshot a short prime
// interval (250 ms, or Interval if shorter) later, so that every published
// snapshot has CPU, disk, network and process figures over a real interval.
// A source that cannot be read is named in Snapshot.Errors; Run goes on.
// Run returns nil when ctx is done. Only one Run may be active at a time.
func (s *Sampler) Run(ctx context.Context) error {
	s.collect()
	prime := min(primeInterval, s.cfg.Interval)
	t := time.NewTimer(prime)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		snap := s.collect()
		s.latest.Store(snap)
		t.Reset(s.cfg.Interval)
	}
}

// collect reads every source once and returns the snapshot; rates are over
// the time since the previous collect (zero on the first). Not safe for
// concurrent use.
func (s *Sampler) collect() *Snapshot {
	now := s.now()
	snap := &Snapshot{Timestamp: now.UTC().Truncate(time.Millisecond), Host: s.hostname()}
	cur := &state{at: now}
	var elapsed time.Duration
	if s.prev != nil {
		elapsed = now.Sub(s.prev.at)
	}
	fail := func(what string, err error) {
		snap.Errors = append(snap.Errors, what+": "+err.Error())
	}
	if err := s.cpu(&snap.Metrics.CPU, cur); err != nil {
		fail("cpu", err)
	}
	if err := s.memory(&snap.Metrics.Memory); err != nil {
		fail("memory", err)
	}
	if err := s.disks(&snap.Metrics, cur, elapsed); err != nil {
		fail("disk", err)
	}
	if err := s.network(&snap.Metrics, cur, elapsed); err != nil {
		fail("network", err)
	}
	if err := s.processes(&snap.Metrics.Processes, cur, elapsed); err != nil {
		fail("processes", err)
	}
	s.prev = cur
	return snap
}

// hostname reads the kernel's host name from the proc tree (so fixtures
// carry theirs), falling back to os.Hostname.
func (s *Sampler) hostname() string {
	b, err := os.ReadFile(filepath.Join(s.cfg.ProcRoot, "sys", "kernel", "hostname"))
	if err == nil {
		if h := strings.TrimSpace(string(b)); h != "" {
			return h
		}
	}
	h, _ := os.Hostname()
	return h
}

func (s *Sampler) cpu(c *CPU, cur *state) error {
	st, err := s.proc.Stat()
	if err != nil {
		return fmt.Errorf("read stat: %w", err)
	}
	cur.cpu, cur.cores = st.CPUTotal, st.CPU
	ids := make([]int64, 0, len(st.CPU))
	for id := range st.CPU {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	c.CoreCount = len(ids)
	c.Cores = make([]float64, len(ids))
	if p := s.prev; p != nil {
		c.UsagePercent = busyPercent(p.cpu, st.CPUTotal)
		for i, id := range ids {
			if old, ok := p.cores[id]; ok {
				c.Cores[i] = busyPercent(old, st.CPU[id])
			}
		}
	}
	var errs []error
	if la, err := s.proc.LoadAvg(); err != nil {
		errs = append(errs, fmt.Errorf("read loadavg: %w", err))
	} else {
		c.LoadAvg1m, c.LoadAvg5m, c.LoadAvg15m = la.Load1, la.Load5, la.Load15
	}
	c.TemperatureCelsius = temperature(s.cfg.SysRoot)
	return errors.Join(errs...)
}

// busyPercent is the share of ticks between a and b not spent idle or
// waiting for I/O. Guest time is already inside user and nice, so it is not
// added again.
func busyPercent(a, b procfs.CPUStat) float64 {
	total := func(c procfs.CPUStat) float64 {
		return c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal
	}
	dt := total(b) - total(a)
	idle := (b.Idle + b.Iowait) - (a.Idle + a.Iowait)
	if dt <= 0 {
		return 0
	}
	return clampPercent((dt - idle) / dt * 100)
}

// clampPercent bounds v to 0..100 and rounds it to 0.01.
func clampPercent(v float64) float64 {
	return round2(max(0, min(v, 100)))
}

// percent is part/whole in percent, rounded to 0.01; 0 when whole is 0.
func percent(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return round2(float64(part) / float64(whole) * 100)
}

// round2 rounds to two decimals, as the document shows figures.
func round2(v float64) float64 { return math.Round(v*100) / 100 }

func (s *Sampler) memory(m *Memory) error {
	mi, err := s.proc.Meminfo()
	if err != nil {
		return fmt.Errorf("read meminfo: %w", err)
	}
	kib := func(p *uint64) uint64 {
		if p == nil {
			return 0
		}
		return *p * 1024
	}
	m.TotalBytes = kib(mi.MemTotal)
	avail := kib(mi.MemAvailable)
	if mi.MemAvailable == nil { // kernels before 3.14
		avail = kib(mi.MemFree) + kib(mi.Buffers) + kib(mi.Cached)
	}
	avail = min(avail, m.TotalBytes)
	m.AvailableBytes = avail
	m.UsedBytes = m.TotalBytes - avail
	m.UsedPercent = percent(m.UsedBytes, m.TotalBytes)
	m.SwapTotalBytes = kib(mi.SwapTotal)
	m.SwapUsedBytes = m.SwapTotalBytes - min(kib(mi.SwapFree), m.SwapTotalBytes)
	m.SwapUsedPercent = percent(m.SwapUsedBytes, m.SwapTotalBytes)
	return nil
}

func (s *Sampler) network(m *Metrics, cur *state, elapsed time.Duration) error {
	nd, err := s.proc.NetDev()
	if err != nil {
		m.Network = map[string]Interface{}
		return fmt.Errorf("read net/dev: %w", err)
	}
	names := make([]string, 0, len(nd))
	for name := range nd {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) > MaxInterfaces {
		names = names[:MaxInterfaces]
	}
	cur.net = make(procfs.NetDev, len(names))
	m.Network = make(map[string]Interface, len(names))
	for _, name := range names {
		l := nd[name]
		cur.net[name] = l
		i := Interface{
			RxBytes: l.RxBytes, RxPackets: l.RxPackets, RxErrors: l.RxErrors, RxDrops: l.RxDropped,
			TxBytes: l.TxBytes, TxPackets: l.TxPackets, TxErrors: l.TxErrors, TxDrops: l.TxDropped,
		}
		if old, ok := s.prevNet(name); ok && elapsed > 0 {
			sec := elapsed.Seconds()
			i.RxBytesPerSecond = rate(old.RxBytes, l.RxBytes, sec)
			i.TxBytesPerSecond = rate(old.TxBytes, l.TxBytes, sec)
			i.RxPacketsPerSecond = rate(old.RxPackets, l.RxPackets, sec)
			i.TxPacketsPerSecond = rate(old.TxPackets, l.TxPackets, sec)
		}
		m.Network[name] = i
	}
	return nil
}

func (s *Sampler) prevNet(name string) (procfs.NetDevLine, bool) {
	if s.prev == nil || s.prev.net == nil {
		return procfs.NetDevLine{}, false
	}
	l, ok := s.prev.net[name]
	return l, ok
}

// rate is (b-a)/sec; a counter that went backwards (reset) gives 0.
func rate(a, b uint64, sec float64) float64 {
	if b < a || sec <= 0 {
		return 0
	}
	return float64(b-a) / sec
}
