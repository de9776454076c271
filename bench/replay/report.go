package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Tool names, as in -tools and the table.
const (
	toolNetSentry = "netsentry"
	toolInProcess = "inprocess"
	toolTcpdump   = "tcpdump"
	toolNDPI      = "ndpireader"
)

var allTools = []string{toolNetSentry, toolInProcess, toolTcpdump, toolNDPI}

// Targets of issue 3.
const (
	targetVsTcpdump = 1.0 // NetSentry CPU / tcpdump CPU
	targetVsNDPI    = 0.2 // NetSentry CPU / ndpiReader CPU
	aimNsPerPacket  = 100.0
)

// row is one tool's line in the table.
type row struct {
	tool    string
	label   string
	packets uint64
	wall    summary // seconds
	cpu     summary // seconds
	allocs  float64 // allocations per packet, steady state; < 0 when not measured
	maxRSS  summary // bytes; n == 0 when not measured
}

func (r *row) nsPerPacket() float64 {
	if r.packets == 0 {
		return 0
	}
	return r.cpu.med * 1e9 / float64(r.packets)
}

// report is what the benchmark prints.
type report struct {
	rows  []row
	notes []string
	// bareAllocs is allocations per packet of the packet path alone (reader,
	// decode, flow table) in steady state; < 0 when not measured.
	bareAllocs float64
}

func (rep *report) find(tool string) *row {
	for i := range rep.rows {
		if rep.rows[i].tool == tool {
			return &rep.rows[i]
		}
	}
	return nil
}

// ratio is a's median CPU over b's, 0 when either is missing.
func ratio(a, b *row) float64 {
	if a == nil || b == nil || b.cpu.med == 0 {
		return 0
	}
	return a.cpu.med / b.cpu.med
}

// write prints the table, the notes and the verdict.
func (rep *report) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tpackets\twall s\tCPU s [min..max]\tMpkt/CPU-s\tns/pkt\tCPU s/Mpkt\tallocs/pkt\tmax RSS MB\tCPU÷tcpdump\tCPU÷ndpiReader\t")
	tcpdump, ndpi := rep.find(toolTcpdump), rep.find(toolNDPI)
	for i := range rep.rows {
		r := &rep.rows[i]
		allocs := "-"
		if r.allocs >= 0 {
			allocs = formatAllocs(r.allocs)
		}
		rss := "-"
		if r.maxRSS.n > 0 {
			rss = strconv.FormatFloat(r.maxRSS.med/(1<<20), 'f', 1, 64)
		}
		mpps, nspp, perM := "-", "-", "-"
		if r.cpu.med > 0 && r.packets > 0 {
			mpps = strconv.FormatFloat(float64(r.packets)/r.cpu.med/1e6, 'f', 2, 64)
			nspp = strconv.FormatFloat(r.nsPerPacket(), 'f', 0, 64)
			perM = strconv.FormatFloat(r.cpu.med/float64(r.packets)*1e6, 'f', 3, 64)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f [%.3f..%.3f]\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.label, r.packets, r.wall.med, r.cpu.med, r.cpu.min, r.cpu.max,
			mpps, nspp, perM, allocs, rss, formatRatio(ratio(r, tcpdump)), formatRatio(ratio(r, ndpi)))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, n := range rep.notes {
		fmt.Fprintln(w, n)
	}
	_, err := fmt.Fprintln(w, rep.verdict())
	return err
}

func formatRatio(x float64) string {
	if x == 0 {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', 2, 64) + "x"
}

// formatAllocs prints 0 as "0" and anything else with two significant digits.
func formatAllocs(x float64) string {
	if x == 0 {
		return "0"
	}
	return strconv.FormatFloat(x, 'g', 2, 64)
}

// verdict judges NetSentry (the child process; the in-process pipeline when
// the child was not run) against the targets, in one line.
func (rep *report) verdict() string {
	ns := rep.find(toolNetSentry)
	if ns == nil {
		ns = rep.find(toolInProcess)
	}
	if ns == nil {
		return "verdict: n/a (NetSentry was not measured)"
	}
	var parts []string
	ok := true
	check := func(pass bool, what, after string) {
		mark := "ok"
		if !pass {
			mark, ok = "FAIL", false
		}
		parts = append(parts, what+" "+mark+after)
	}
	if r := ratio(ns, rep.find(toolTcpdump)); r > 0 {
		check(r <= targetVsTcpdump, fmt.Sprintf("CPU %.2fx tcpdump (target <= %.2f)", r, targetVsTcpdump), "")
	}
	if r := ratio(ns, rep.find(toolNDPI)); r > 0 {
		check(r <= targetVsNDPI, fmt.Sprintf("CPU %.2fx ndpiReader (target <= %.2f)", r, targetVsNDPI), "")
	}
	if ip := rep.find(toolInProcess); ip != nil && ip.allocs >= 0 {
		var after string
		if rep.bareAllocs >= 0 {
			after = fmt.Sprintf(" [packet path alone %s]", formatAllocs(rep.bareAllocs))
		}
		check(ip.allocs == 0, fmt.Sprintf("steady-state allocs/packet %s (target 0)", formatAllocs(ip.allocs)), after)
	}
	aim := "met"
	if ns.nsPerPacket() > aimNsPerPacket {
		aim = "missed"
	}
	parts = append(parts, fmt.Sprintf("%.0f ns/packet (aim <= %.0f) %s", ns.nsPerPacket(), aimNsPerPacket, aim))
	head := "verdict: PASS"
	if !ok {
		head = "verdict: FAIL"
	}
	return head + " (" + ns.label + ") - " + strings.Join(parts, "; ")
}
