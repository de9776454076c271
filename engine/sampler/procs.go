package sampler

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/procfs"
)

// userHZ is the unit of /proc/[pid]/stat times (fixed at 100 on Linux, as
// procfs assumes too).
const userHZ = 100

type procSample struct {
	p     procfs.Proc
	name  string
	cpu   float64
	rss   uint64
	nthr  int
	found bool
}

// processes reads every /proc/[pid]/stat once (one small file per process,
// the only part of a sample that grows with the host), keeps the top N by
// CPU and by RSS, and reads command lines for those alone.
func (s *Sampler) processes(ps *Processes, cur *state, elapsed time.Duration) error {
	ps.TopCPU, ps.TopMemory = []Process{}, []Process{}
	all, err := s.proc.AllProcs()
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	cur.procs = make(map[procKey]uint, len(all))
	list := make([]procSample, 0, len(all))
	var self procSample
	for _, p := range all {
		st, err := p.Stat()
		if err != nil {
			continue // it exited while we looked
		}
		ticks := st.UTime + st.STime
		key := procKey{st.PID, st.Starttime}
		cur.procs[key] = ticks
		smp := procSample{p: p, name: st.Comm, rss: uint64(max(st.ResidentMemory(), 0)), nthr: st.NumThreads, found: true}
		if s.prev != nil && elapsed > 0 {
			// A process missing from the previous sample started since:
			// all of its time falls in this interval.
			old := s.prev.procs[key]
			if ticks >= old {
				smp.cpu = round2(float64(ticks-old) / userHZ / elapsed.Seconds() * 100)
			}
		}
		if st.PID == s.cfg.Self {
			self = smp
		}
		list = append(list, smp)
	}

	top := func(less func(a, b *procSample) bool) []Process {
		sort.Slice(list, func(i, j int) bool {
			if less(&list[i], &list[j]) {
				return true
			}
			if less(&list[j], &list[i]) {
				return false
			}
			return list[i].p.PID < list[j].p.PID
		})
		n := min(s.cfg.TopN, len(list))
		out := make([]Process, n)
		for i := range out {
			out[i] = list[i].process()
		}
		return out
	}
	ps.TopCPU = top(func(a, b *procSample) bool { return a.cpu > b.cpu })
	ps.TopMemory = top(func(a, b *procSample) bool { return a.rss > b.rss })

	if !self.found {
		return fmt.Errorf("read own process %d: not found", s.cfg.Self)
	}
	sp := &SelfProcess{Process: self.process(), Threads: self.nthr}
	if st, err := self.p.NewStatus(); err == nil {
		sp.PeakRSSBytes = st.VmHWM
	}
	if n, err := self.p.FileDescriptorsLen(); err == nil {
		sp.OpenFDs = n
	}
	ps.Self = sp
	return nil
}

func (p *procSample) process() Process {
	out := Process{PID: p.p.PID, Name: p.name, CPUPercent: p.cpu, RSSBytes: p.rss}
	if args, err := p.p.CmdLine(); err == nil {
		out.Cmdline = truncate(strings.Join(args, " "), maxCmdline)
	}
	return out
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
