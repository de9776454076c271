package httpd

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/flowtable"
)

const defaultScanLimit = 10

// scanSorts are the orders of /network/scanners, by the ?sort= name.
var scanSorts = map[string]func(s *flowtable.SourceStats) uint64{
	"ports":       func(s *flowtable.SourceStats) uint64 { return s.DistinctPorts },
	"hosts":       func(s *flowtable.SourceStats) uint64 { return s.DistinctHosts },
	"connections": func(s *flowtable.SourceStats) uint64 { return s.Connections },
}

// parseScanQuery reads the query of /network/scanners: ?limit= (1 to
// MaxLimit, default 10) and ?sort=ports|hosts|connections|fragments
// (default ports).
// A problem comes back as a message for a 400.
func parseScanQuery(q query) (limit int, sort string, msg string) {
	limit, msg = q.limit(defaultScanLimit)
	if msg != "" {
		return 0, "", msg
	}
	sort = q.get("sort")
	if !q.has("sort") {
		sort = "ports"
	}
	if scanSorts[sort] == nil && sort != "fragments" {
		return 0, "", fmt.Sprintf("sort %q: want ports, hosts, connections or fragments", sort)
	}
	return limit, sort, ""
}

// scanners serves /api/v1/network/scanners: the sources with the most
// distinct destination ports (or hosts, or connections) in the scan window,
// each source once, its connections in every worker merged.
func (s *Server) scanners(ctx *fasthttp.RequestCtx) {
	q, msg := parseQuery(ctx, "limit", "sort")
	var limit int
	var sort string
	if msg == "" {
		limit, sort, msg = parseScanQuery(q)
	}
	if msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	c := s.snapshot(ctx, s.scanC)
	if c == nil {
		return
	}
	writeJSONBytes(ctx, c.render("s\x00"+strconv.Itoa(limit)+"\x00"+sort, func(c *cached) []byte { return renderScanners(c, limit, sort) }))
}

// topSources returns the n sources of ss largest by key, ties to more
// connections, then the lower address (as ScanTracker.Top orders them).
func topSources(ss []flowtable.SourceStats, n int, key func(*flowtable.SourceStats) uint64) []*flowtable.SourceStats {
	all := make([]*flowtable.SourceStats, len(ss))
	for i := range ss {
		all[i] = &ss[i]
	}
	slices.SortFunc(all, func(a, b *flowtable.SourceStats) int {
		if c := cmp.Compare(key(b), key(a)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Connections, a.Connections); c != 0 {
			return c
		}
		if c := cmp.Compare(a.IPVersion, b.IPVersion); c != 0 {
			return c
		}
		return bytes.Compare(a.Addr[:], b.Addr[:])
	})
	return all[:min(n, len(all))]
}

func renderScanners(c *cached, limit int, sort string) []byte {
	type srcKey struct {
		addr [16]byte
		v    uint8
	}
	anoms := make(map[srcKey]*flowtable.FragAnomalies, len(c.snap.FragAnomalies))
	for i := range c.snap.FragAnomalies {
		a := &c.snap.FragAnomalies[i]
		anoms[srcKey{a.Addr, a.IPVersion}] = a
	}
	var top []*flowtable.SourceStats
	sources := len(c.snap.Scan)
	if sort == "fragments" {
		// Sources by fragment anomalies, largest first, with their scan
		// signals where they started connections in the window.
		byAddr := make(map[srcKey]*flowtable.SourceStats, len(c.snap.Scan))
		for i := range c.snap.Scan {
			st := &c.snap.Scan[i]
			byAddr[srcKey{st.Addr, st.IPVersion}] = st
		}
		as := make([]*flowtable.FragAnomalies, 0, len(c.snap.FragAnomalies))
		for i := range c.snap.FragAnomalies {
			if c.snap.FragAnomalies[i].Total() > 0 {
				as = append(as, &c.snap.FragAnomalies[i])
			}
		}
		slices.SortFunc(as, func(a, b *flowtable.FragAnomalies) int {
			if c := cmp.Compare(b.Total(), a.Total()); c != 0 {
				return c
			}
			if c := cmp.Compare(a.IPVersion, b.IPVersion); c != 0 {
				return c
			}
			return bytes.Compare(a.Addr[:], b.Addr[:])
		})
		sources = len(as)
		for _, a := range as[:min(limit, len(as))] {
			st := byAddr[srcKey{a.Addr, a.IPVersion}]
			if st == nil {
				st = &flowtable.SourceStats{Addr: a.Addr, IPVersion: a.IPVersion}
			}
			top = append(top, st)
		}
	} else {
		top = topSources(c.snap.Scan, limit, scanSorts[sort])
	}
	b := make([]byte, 0, 128+240*len(top))
	b = append(b, `{"timestamp":`...)
	b = appendTime(b, c.at)
	b = append(b, `,"window_seconds":`...)
	b = strconv.AppendFloat(b, c.snap.ScanWindow.Seconds(), 'f', -1, 64)
	b = append(b, `,"sort":"`...)
	b = append(b, sort...)
	b = append(b, `","sources":`...)
	b = strconv.AppendInt(b, int64(sources), 10)
	b = append(b, `,"scanners":[`...)
	for n, st := range top {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"src_ip":"`...)
		b = flowtable.IP(&st.Addr, st.IPVersion).AppendTo(b)
		b = append(b, `","ip_version":`...)
		b = strconv.AppendUint(b, uint64(st.IPVersion), 10)
		b = append(b, `,"connection_count":`...)
		b = strconv.AppendUint(b, st.Connections, 10)
		b = append(b, `,"unique_dest_port_count":`...)
		b = strconv.AppendUint(b, st.DistinctPorts, 10)
		b = append(b, `,"unique_dest_host_count":`...)
		b = strconv.AppendUint(b, st.DistinctHosts, 10)
		b = append(b, `,"approximate":`...)
		b = strconv.AppendBool(b, st.Approximate)
		var a flowtable.FragAnomalies
		if p := anoms[srcKey{st.Addr, st.IPVersion}]; p != nil {
			a = *p
		}
		b = append(b, `,"fragment_anomalies":{"tiny":`...)
		b = strconv.AppendUint(b, a.Tiny, 10)
		b = append(b, `,"overlap":`...)
		b = strconv.AppendUint(b, a.Overlap, 10)
		b = append(b, `,"conflict":`...)
		b = strconv.AppendUint(b, a.Conflict, 10)
		b = append(b, "}}"...)
	}
	return append(b, "]}"...)
}

// scanThresholds are the fixed thresholds of netsentry_scan_sources_over,
// the same for every signal (the product's port-scan rule: more than 100
// connections and more than 20 ports in 60 s).
var scanThresholds = []uint64{10, 20, 100, 1000, 10000}

// scanSignals are the signals of netsentry_scan_sources_over, by the
// product's metric names without "network.".
var scanSignals = []struct {
	name string
	get  func(s *flowtable.SourceStats) uint64
}{
	{"connection_count", scanSorts["connections"]},
	{"unique_dest_port_count", scanSorts["ports"]},
	{"unique_dest_host_count", scanSorts["hosts"]},
}

// writeScan writes the scan signals as bounded aggregates: how many sources
// the window holds and how many exceed each fixed threshold of each signal.
// No address is a label: the sources themselves are in
// /api/v1/network/scanners.
func (s *Server) writeScan(p *promWriter) {
	cctx, cancel := context.WithTimeout(context.Background(), snapshotWait)
	defer cancel()
	c, err := s.scanC.get(cctx)
	if err != nil {
		s.log.Warn("metrics: scan snapshot failed", "err", err)
		return
	}
	sn := &c.snap
	p.family("netsentry_scan_window_seconds", "gauge", "Sliding window of packet time the scan signals cover.")
	p.sample("netsentry_scan_window_seconds", sn.ScanWindow.Seconds())
	approx := 0
	over := make([]int, len(scanSignals)*len(scanThresholds))
	for i := range sn.Scan {
		st := &sn.Scan[i]
		if st.Approximate {
			approx++
		}
		for j, sig := range scanSignals {
			v := sig.get(st)
			for k, th := range scanThresholds {
				if v > th {
					over[j*len(scanThresholds)+k]++
				}
			}
		}
	}
	p.family("netsentry_scan_sources", "gauge", "Source addresses with a connection in the scan window.")
	p.sample("netsentry_scan_sources", float64(len(sn.Scan)))
	p.family("netsentry_scan_sources_approximate", "gauge", "Sources in the scan window whose distinct counts are HyperLogLog estimates (4.6 % standard error).")
	p.sample("netsentry_scan_sources_approximate", float64(approx))
	p.family("netsentry_scan_sources_over", "gauge", "Sources in the scan window whose signal (connections, distinct destination ports or hosts) is greater than the threshold.")
	for j, sig := range scanSignals {
		for k, th := range scanThresholds {
			p.sample("netsentry_scan_sources_over", float64(over[j*len(scanThresholds)+k]),
				"signal", sig.name, "threshold", strconv.FormatUint(th, 10))
		}
	}
}
