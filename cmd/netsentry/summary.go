package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
)

// summary is what the terminal report shows.
type summary struct {
	counters engine.Counters
	stats    flowtable.Stats
	top      []flowtable.Record
	hosts    []flowtable.HostCounters
	drops    []queueDrops
}

type queueDrops struct {
	queue          int
	packets, drops uint64
	freezes        uint64
}

func summaryOf(w *engine.Worker, top *engine.TopFlows, n int) summary {
	hs := w.Shard().HostSnapshot(nil)
	flowtable.SortHosts(hs)
	if len(hs) > n {
		hs = hs[:n]
	}
	return summary{counters: w.Counters(), stats: w.Shard().Stats(), top: top.Top(), hosts: hs}
}

func endpoint(a *decode.Addr, v uint8, port uint16) string {
	ip := flowtable.IP(a, v)
	return netip.AddrPortFrom(ip, port).String()
}

func printSummary(w io.Writer, s summary) {
	fmt.Fprintln(w, "NetSentry - Network Monitoring Tool")
	fmt.Fprintln(w, "==================================")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Network Statistics:")
	fmt.Fprintln(w, "------------------")
	fmt.Fprintf(w, "Packets captured: %d\n", s.counters.Packets)
	fmt.Fprintf(w, "Bytes captured: %d\n", s.counters.Bytes)
	fmt.Fprintf(w, "Flows: %d ended, %d evicted\n", s.stats.FlowsEnded, s.stats.FlowsEvicted)
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
		fmt.Fprintf(w, "%d. %s -> %s [%s]\n", i+1, endpoint(&r.Src, r.IPVersion, r.SrcPort),
			endpoint(&r.Dst, r.IPVersion, r.DstPort), flowtable.ProtoName(r.Proto))
		fmt.Fprintf(w, "   Sent: %d packets, %d bytes | Received: %d packets, %d bytes\n",
			r.PacketsTx, r.BytesTx, r.PacketsRx, r.BytesRx)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Top Hosts by Traffic:")
	for i := range s.hosts {
		h := &s.hosts[i]
		fmt.Fprintf(w, "%d. %s: %s bytes\n", i+1, flowtable.IP(&h.Addr, h.IPVersion), strconv.FormatUint(h.Bytes(), 10))
	}
}
