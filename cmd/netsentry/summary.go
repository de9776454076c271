package main

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/geo"
	"github.com/netsentry/netsentry/sensor"
)

// summary is what the terminal report shows.
type summary struct {
	counters  engine.Counters
	stats     flowtable.Stats
	top       []flowtable.Record
	hosts     []flowtable.HostCounters
	protocols []flowtable.ProtoStat
	scan      []flowtable.SourceStats
	drops     []queueDrops
	system    map[string]float64 // host metrics by dotted name; nil: none
}

// queueDrops is one queue's line: packets is the kernel's count for its
// sockets (drops included), captured what its worker took from the ring;
// after the capture stopped, packets = captured + drops exactly.
type queueDrops struct {
	queue          int
	packets, drops uint64
	freezes        uint64
	captured       uint64
}

// buildSummary merges the workers' counters, hosts, protocols and scan
// signals (one entry per source, its windows in every shard united). Call it
// after the workers stopped (their shards are read directly).
func buildSummary(workers []*engine.Worker, top *engine.TopFlows, n int) summary {
	var snaps []engine.Snapshot
	for _, w := range workers {
		sh := w.Shard()
		snaps = append(snaps, engine.Snapshot{Counters: w.Counters(), Stats: sh.Stats(),
			Hosts: sh.HostSnapshot(make([]flowtable.HostCounters, 0, sh.HostCount())), Protocols: sh.ProtocolSnapshot(), ScanWindows: sh.ScanExport(nil)})
	}
	m := engine.MergeSnapshots(snaps)
	s := summary{counters: m.Counters, stats: m.Stats, top: top.Top(), hosts: topHosts(m.Hosts, n), protocols: m.Protocols}
	s.scan = topScanners(m.Scan, 3)
	return s
}

// topHosts returns the n hosts with the most bytes, largest first, without
// sorting them all.
func topHosts(hs []flowtable.HostCounters, n int) []flowtable.HostCounters {
	var top []flowtable.HostCounters
	for _, h := range hs {
		if len(top) == n && (n == 0 || h.Bytes() <= top[n-1].Bytes()) {
			continue
		}
		if len(top) < n {
			top = append(top, h)
		} else {
			top[n-1] = h
		}
		flowtable.SortHosts(top)
	}
	return top
}

func endpoint(a *decode.Addr, v uint8, port uint16) string {
	ip := flowtable.IP(a, v)
	return netip.AddrPortFrom(ip, port).String()
}

// snapshotSummary is the summary of a running capture: its top open flows
// (the workers' selection, largest first), hosts and scan signals from the
// sensor's snapshot.
func snapshotSummary(snap *sensor.Snapshot, top []flowtable.Record, n int) summary {
	e := &snap.Engine
	s := summary{counters: e.Counters, stats: e.Stats, protocols: e.Protocols}
	s.top = top[:min(n, len(top))]
	s.hosts = topHosts(e.Hosts, n)
	s.scan = topScanners(e.Scan, 3)
	for _, q := range snap.Queues {
		s.drops = append(s.drops, queueDrops{queue: q.Queue, packets: q.KernelPackets, drops: q.KernelDrops, freezes: q.Freezes, captured: q.Packets})
	}
	return s
}

// topScanners returns the n sources with the most distinct destination
// ports among those that reached more than one port or host.
func topScanners(all []flowtable.SourceStats, n int) []flowtable.SourceStats {
	var out []flowtable.SourceStats
	for _, src := range all {
		if src.DistinctPorts > 1 || src.DistinctHosts > 1 {
			out = append(out, src)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].DistinctPorts > out[j].DistinctPorts })
	return out[:min(n, len(out))]
}

// printSystem prints the host metrics the product's summary shows: CPU
// usage (all and per core) and memory (MiB).
func printSystem(w io.Writer, m map[string]float64) {
	fmt.Fprintln(w, "System Metrics:")
	fmt.Fprintln(w, "--------------")
	line := func(name string, v float64) { fmt.Fprintf(w, "%-21s: %.2f\n", name, v) }
	if v, ok := m["cpu.usage"]; ok {
		line("cpu.usage", v)
	}
	for i := 0; ; i++ {
		k := "cpu.core." + strconv.Itoa(i) + ".usage"
		v, ok := m[k]
		if !ok {
			break
		}
		line(k, v)
	}
	for _, k := range []string{"memory.total", "memory.used", "memory.free"} {
		if v, ok := m[k]; ok {
			line(k, v/(1<<20))
		}
	}
	if v, ok := m["memory.usage_percent"]; ok {
		line("memory.usage_percent", v)
	}
	fmt.Fprintln(w)
}

// printSummary prints s; g, if not nil, adds where the top hosts are.
func printSummary(w io.Writer, s summary, g *geo.DB) {
	fmt.Fprintln(w, "NetSentry - Network Monitoring Tool")
	fmt.Fprintln(w, "==================================")
	fmt.Fprintln(w)
	if s.system != nil {
		printSystem(w, s.system)
	}
	fmt.Fprintln(w, "Network Statistics:")
	fmt.Fprintln(w, "------------------")
	fmt.Fprintf(w, "Packets captured: %d\n", s.counters.Packets)
	fmt.Fprintf(w, "Bytes captured: %d\n", s.counters.Bytes)
	fmt.Fprintf(w, "Flows: %d ended, %d evicted\n", s.stats.FlowsEnded, s.stats.FlowsEvicted)
	if s.stats.DetectSkipped > 0 {
		fmt.Fprintf(w, "Detection skipped (memory budget): %d flows, reported by port\n", s.stats.DetectSkipped)
	}
	if s.counters.NonIP > 0 {
		fmt.Fprintf(w, "Non-IP frames: %d\n", s.counters.NonIP)
	}
	for _, d := range s.drops {
		fmt.Fprintf(w, "Queue %d: %d packets, %d kernel drops, %d freezes; %d captured\n", d.queue, d.packets, d.drops, d.freezes, d.captured)
	}
	if m := s.counters.Malformed(); m > 0 {
		fmt.Fprintf(w, "Malformed frames: %d\n", m)
		for r := decode.ReasonNone + 1; r < decode.NumReasons; r++ {
			if n := s.counters.Decode[r]; n > 0 {
				fmt.Fprintf(w, "  %s: %d\n", r, n)
			}
		}
	}
	if s.stats.FragOrphans > 0 {
		fmt.Fprintf(w, "Fragments without a first fragment: %d\n", s.stats.FragOrphans)
	}
	if st := &s.stats; st.FragTiny+st.FragOverlap+st.FragConflict > 0 {
		fmt.Fprintf(w, "Fragment anomalies: %d tiny, %d overlapping, %d conflicting\n", st.FragTiny, st.FragOverlap, st.FragConflict)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Top Connections:")
	for i := range s.top {
		r := &s.top[i]
		name := r.AppName()
		if name == "Unknown" {
			name = flowtable.ProtoName(r.Proto)
		} else if r.AppGuess() {
			name += " (guess)"
		}
		fmt.Fprintf(w, "%d. %s -> %s [%s]\n", i+1, endpoint(&r.Src, r.IPVersion, r.SrcPort),
			endpoint(&r.Dst, r.IPVersion, r.DstPort), name)
		fmt.Fprintf(w, "   Sent: %d packets, %d bytes | Received: %d packets, %d bytes\n",
			r.PacketsTx, r.BytesTx, r.PacketsRx, r.BytesRx)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Top Hosts by Traffic:")
	for i := range s.hosts {
		h := &s.hosts[i]
		ip := flowtable.IP(&h.Addr, h.IPVersion)
		fmt.Fprintf(w, "%d. %s: %s bytes%s\n", i+1, ip, strconv.FormatUint(h.Bytes(), 10), geoNote(g.Lookup(ip)))
	}
	if len(s.protocols) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Protocol Distribution:")
		for _, p := range s.protocols {
			name := p.Name
			if p.Guess { // named by port only, kept apart from what payload showed
				name += " (guess)"
			}
			fmt.Fprintf(w, "  %-16s %d flows, %d packets, %d bytes\n", name+":", p.Flows, p.Packets, p.Bytes)
		}
	}
	if len(s.scan) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Scan Signals (sources by distinct destination ports, last window of packet time):")
		for _, src := range s.scan {
			approx := ""
			if src.Approximate {
				approx = " (approximate)"
			}
			fmt.Fprintf(w, "  %s: %d connections, %d distinct ports, %d distinct hosts%s\n",
				flowtable.IP(&src.Addr, src.IPVersion), src.Connections, src.DistinctPorts, src.DistinctHosts, approx)
		}
	}
}

// geoNote is where a host is, for the summary: " (DE Berlin, AS3320
// Deutsche Telekom AG)", as much as is known; "" when nothing is.
func geoNote(i geo.Info) string {
	var parts []string
	if loc := strings.TrimSpace(i.Country + " " + i.City); loc != "" {
		parts = append(parts, loc)
	}
	if i.ASN != 0 {
		parts = append(parts, strings.TrimSpace("AS"+strconv.FormatUint(uint64(i.ASN), 10)+" "+i.ASOrg))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
