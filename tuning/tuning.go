package tuning

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Status is how a finding stands.
type Status int

// Statuses, from good to bad.
const (
	OK Status = iota
	Info
	Warn
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Info:
		return "info"
	default:
		return "warn"
	}
}

// Finding is the result of one check.
type Finding struct {
	Check     string // offload, ring, irq, rp_filter, memlock
	Interface string // empty for host-wide checks
	Status    Status
	Detail    string
	Fix       string // the command that fixes it, when Status is Warn
	Applied   bool   // --apply changed it
}

// Options say what to check.
type Options struct {
	Interfaces []string
	// CPUs the capture workers are pinned to; empty = every CPU the
	// process may run on.
	CPUs []int
	// Proc is the proc file system root; empty = /proc.
	Proc string
}

func (o Options) proc() string {
	if o.Proc == "" {
		return "/proc"
	}
	return o.Proc
}

// Check runs every check and changes nothing.
func Check(o Options) []Finding { return run(o, false) }

// Apply runs every check and fixes what is safe to fix on a running
// system: offloads off and NIC rings at their maximum on the capture
// interfaces, rp_filter off on them. IRQ affinity (irqbalance would undo
// it) and memlock (a limit of the service, not of this process) are left
// to the operator with their commands.
func Apply(o Options) []Finding { return run(o, true) }

func run(o Options, apply bool) []Finding {
	var out []Finding
	for _, ifname := range o.Interfaces {
		out = append(out, offloads(ifname, apply)...)
		out = append(out, rings(ifname, apply))
		out = append(out, irqs(o, ifname)...)
		out = append(out, rpFilter(o, ifname, apply))
	}
	out = append(out, memlock())
	return out
}

// rpFilter checks the effective rp_filter (the larger of all and the
// interface's value): strict mode (1) drops mirrored traffic whose source
// does not route back through the interface before the IP stack and any
// socket filter on IP sees it.
func rpFilter(o Options, ifname string, apply bool) Finding {
	f := Finding{Check: "rp_filter", Interface: ifname}
	dir := filepath.Join(o.proc(), "sys/net/ipv4/conf")
	all, err1 := readInt(filepath.Join(dir, "all", "rp_filter"))
	one, err2 := readInt(filepath.Join(dir, ifname, "rp_filter"))
	if err1 != nil || err2 != nil {
		f.Status, f.Detail = Info, "rp_filter not readable (no IPv4 on this interface?)"
		return f
	}
	eff := max(all, one)
	f.Detail = fmt.Sprintf("rp_filter %d (all %d, %s %d)", eff, all, ifname, one)
	if eff != 1 {
		return f
	}
	f.Status = Warn
	f.Fix = fmt.Sprintf("sysctl -w net.ipv4.conf.%s.rp_filter=0", ifname)
	if all == 1 {
		f.Fix += " net.ipv4.conf.all.rp_filter=0"
	}
	if apply && all != 1 {
		if err := os.WriteFile(filepath.Join(dir, ifname, "rp_filter"), []byte("0\n"), 0o644); err == nil {
			f.Applied, f.Status = true, OK
			f.Detail += " -> 0"
		}
	}
	return f
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

// irqs finds the interface's interrupts in /proc/interrupts and checks that
// each is delivered to a CPU the capture workers run on: a packet then
// lands in the ring from the cache of the core that reads it.
func irqs(o Options, ifname string) []Finding {
	f, err := os.Open(filepath.Join(o.proc(), "interrupts"))
	if err != nil {
		return []Finding{{Check: "irq", Interface: ifname, Status: Info, Detail: "no /proc/interrupts"}}
	}
	defer f.Close()
	var nums []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !strings.HasSuffix(fields[0], ":") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(fields[0], ":"))
		if err != nil {
			continue
		}
		name := fields[len(fields)-1]
		if name == ifname || strings.HasPrefix(name, ifname+"-") || strings.HasPrefix(name, ifname+"@") {
			nums = append(nums, n)
		}
	}
	if len(nums) == 0 {
		return []Finding{{Check: "irq", Interface: ifname, Status: Info, Detail: "no interrupt of its own (virtual interface, or the driver names its IRQs otherwise)"}}
	}
	workers := o.CPUs
	if len(workers) == 0 {
		workers = allowedCPUs()
	}
	in := map[int]bool{}
	for _, c := range workers {
		in[c] = true
	}
	var out []Finding
	for _, n := range nums {
		fd := Finding{Check: "irq", Interface: ifname}
		list, err := os.ReadFile(filepath.Join(o.proc(), "irq", strconv.Itoa(n), "smp_affinity_list"))
		if err != nil {
			fd.Status, fd.Detail = Info, fmt.Sprintf("irq %d: affinity not readable", n)
			out = append(out, fd)
			continue
		}
		cpus := parseCPUList(strings.TrimSpace(string(list)))
		outside := 0
		for _, c := range cpus {
			if !in[c] {
				outside++
			}
		}
		fd.Detail = fmt.Sprintf("irq %d on cpus %s; workers on %s", n, strings.TrimSpace(string(list)), formatCPUs(workers))
		if outside > 0 {
			fd.Status = Warn
			fd.Fix = fmt.Sprintf("echo %s > /proc/irq/%d/smp_affinity_list  # and keep irqbalance off it", formatCPUs(workers), n)
		}
		out = append(out, fd)
	}
	return out
}

// parseCPUList parses a kernel CPU list such as "0-3,8,10-11".
func parseCPUList(s string) []int {
	var out []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, ok := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if ok {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out
}

func formatCPUs(cpus []int) string {
	c := append([]int(nil), cpus...)
	sort.Ints(c)
	var parts []string
	for i := 0; i < len(c); {
		j := i
		for j+1 < len(c) && c[j+1] == c[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", c[i], c[j]))
		} else {
			parts = append(parts, strconv.Itoa(c[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
