package main

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
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

type queueDrops struct {
	queue          int
	packets, drops uint64
	freezes        uint64
}

// buildSummary merges the workers' counters, hosts, protocols and scan
// signals. Call it after the workers stopped (their shards are read directly).
func buildSummary(workers []*engine.Worker, top *engine.TopFlows, n int) summary {
	var snaps []engine.Snapshot
	for _, w := range workers {
		sh := w.Shard()
		snaps = append(snaps, engine.Snapshot{Counters: w.Counters(), Stats: sh.Stats(),
			Hosts: sh.HostSnapshot(make([]flowtable.HostCounters, 0, sh.HostCount())), Protocols: sh.ProtocolSnapshot(), Scan: sh.ScanTop(3, "ports")})
	}
	m := engine.MergeSnapshots(snaps)
	s := summary{counters: m.Counters, stats: m.Stats, top: top.Top(), hosts: topHosts(m.Hosts, n), protocols: m.Protocols}
	for _, src := range m.Scan {
		if src.DistinctPorts > 1 || src.DistinctHosts > 1 {
			s.scan = append(s.scan, src)
		}
	}
	sort.Slice(s.scan, func(i, j int) bool { return s.scan[i].DistinctPorts > s.scan[j].DistinctPorts })
	if len(s.scan) > 3 {
		s.scan = s.scan[:3]
	}
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

// snapshotSummary is the summary of a running capture: its open flows and
// hosts from worker snapshots.
func snapshotSummary(snap engine.Snapshot, qs []engine.QueueStats, n int) summary {
	s := summary{counters: snap.Counters, stats: snap.Stats}
	flows := snap.Flows
	sort.Slice(flows, func(i, j int) bool {
		return flows[i].BytesTx+flows[i].BytesRx > flows[j].BytesTx+flows[j].BytesRx
	})
	s.top = flows[:min(n, len(flows))]
	flowtable.SortHosts(snap.Hosts)
	s.hosts = snap.Hosts[:min(n, len(snap.Hosts))]
	for _, q := range qs {
		s.drops = append(s.drops, queueDrops{queue: q.Queue, packets: q.KernelPackets, drops: q.KernelDrops, freezes: q.Freezes})
	}
	return s
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

func printSummary(w io.Writer, s summary) {
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
		fmt.Fprintf(w, "Queue %d: %d packets, %d kernel drops, %d freezes\n", d.queue, d.packets, d.drops, d.freezes)
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
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Top Connections:")
	for i := range s.top {
		r := &s.top[i]
		name := r.AppName()
		if name == "Unknown" {
			name = flowtable.ProtoName(r.Proto)
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
		fmt.Fprintf(w, "%d. %s: %s bytes\n", i+1, flowtable.IP(&h.Addr, h.IPVersion), strconv.FormatUint(h.Bytes(), 10))
	}
	if len(s.protocols) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Protocol Distribution:")
		for _, p := range s.protocols {
			fmt.Fprintf(w, "  %-10s %d flows, %d packets, %d bytes\n", p.Name+":", p.Flows, p.Packets, p.Bytes)
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
