package engine

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// frames reads every record of a corpus file into memory.
func frames(t testing.TB, name string) (data [][]byte, wire []uint32, link []uint16, ts []int64) {
	t.Helper()
	rf, err := OpenFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	for {
		d, ci, l, err := rf.next()
		if err != nil {
			break
		}
		data = append(data, append([]byte(nil), d...))
		wire = append(wire, uint32(ci.Length))
		link = append(link, l)
		ts = append(ts, ci.Timestamp.UnixNano())
	}
	return
}

// TestHandleAllocs: in steady state (flows known), a frame costs no allocation
// from the file's bytes to the flow update.
func TestHandleAllocs(t *testing.T) {
	for _, name := range []string{"ndpi-1kxun.pcap", "zeek-erspan.pcap", "ndpi-dns_fragmented.pcap", "ndpi-smtp-starttls.pcap"} {
		data, wire, link, ts := frames(t, name)
		sh, err := flowtable.New(flowtable.Config{}, func([]flowtable.Record) {})
		if err != nil {
			t.Fatal(err)
		}
		w := NewWorker(sh)
		for i := range data { // warm up: create the flows
			w.Handle(data[i], wire[i], link[i], ts[i])
		}
		allocs := testing.AllocsPerRun(5, func() {
			for i := range data {
				w.Handle(data[i], wire[i], link[i], ts[len(ts)-1])
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per pass of %d frames, want 0", name, allocs, len(data))
		}
	}
}

func BenchmarkHandle(b *testing.B) {
	data, wire, link, ts := frames(b, "ndpi-1kxun.pcap")
	sh, _ := flowtable.New(flowtable.Config{}, func([]flowtable.Record) {})
	w := NewWorker(sh)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(data)
		w.Handle(data[j], wire[j], link[j], ts[j])
	}
}

// TestExporterReusesBatches: once warm, sending ended flows through the
// exporter allocates nothing.
func TestExporterReusesBatches(t *testing.T) {
	x := NewExporter(4, true, NewTopFlows(5))
	recs := make([]flowtable.Record, 256)
	for range 20 {
		x.Send(recs)
	}
	n := testing.AllocsPerRun(100, func() { x.Send(recs) })
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%v allocations per batch, want 0", n)
	}
}

// TestSnapshotFromAnotherGoroutine: a reader gets a copy of the worker's
// flows and hosts, made by the worker between batches.
func TestSnapshotFromAnotherGoroutine(t *testing.T) {
	data, wire, link, ts := frames(t, "zeek-http-bro.org.pcap")
	var ended []flowtable.Record // written by the worker's goroutine
	sh, err := flowtable.New(flowtable.Config{Detect: true}, func(r []flowtable.Record) { ended = append(ended, r...) })
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the worker's goroutine
		defer close(done)
		for i := range data {
			w.Handle(data[i], wire[i], link[i], ts[i])
		}
		for {
			select {
			case <-stop:
				return
			default:
				w.EndBatch(ts[len(ts)-1])
				time.Sleep(time.Millisecond)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var snap Snapshot
	for { // until the worker has handled every frame
		snap, err = w.Snapshot(ctx, SnapshotParts{Flows: true, Hosts: true, Protocols: true, Scan: true})
		if err != nil {
			t.Fatal(err)
		}
		if snap.Counters.Packets == uint64(len(data)) {
			break
		}
	}
	close(stop)
	<-done
	// zeek-http-bro.org.pcap: 13 HTTP connections (tshark's conversation
	// table); those closed more than the linger ago have ended.
	all := append(snap.Flows, ended...)
	if len(all) != 13 || len(snap.Flows) == 0 {
		t.Errorf("%d open + %d ended flows, want 13 with some open", len(snap.Flows), len(ended))
	}
	var pkts uint64
	for _, r := range all {
		pkts += r.PacketsTx + r.PacketsRx
		if r.AppName() != "HTTP" {
			t.Errorf("flow %d -> %d: %s, want HTTP", r.SrcPort, r.DstPort, r.AppName())
		}
	}
	if pkts != uint64(len(data)) {
		t.Errorf("flows hold %d of %d packets", pkts, len(data))
	}
	// tshark: 8 of the 13 connections carry HTTP, 5 no payload (port guesses, kept apart).
	if len(snap.Protocols) != 2 || snap.Protocols[0] != (flowtable.ProtoStat{Name: "HTTP", Flows: 8, Packets: 716, Bytes: 492413}) ||
		snap.Protocols[1].Name != "HTTP" || !snap.Protocols[1].Guess || snap.Protocols[1].Flows != 5 {
		t.Errorf("protocols %+v, want HTTP on 8 flows detected and 5 guessed", snap.Protocols)
	}
	if len(snap.Hosts) != 2 {
		t.Errorf("%d hosts, want 2", len(snap.Hosts))
	}
	if len(snap.Scan) != 1 || snap.Scan[0].Connections != 13 {
		t.Errorf("scan signals %+v, want one source with 13 connections", snap.Scan)
	}
}

// TestSynScanSignals: ndpi-synscan.pcap is an nmap SYN scan of one host by
// 172.16.0.8, about 1000 ports (tshark: 1994 TCP conversations, 1000
// distinct destination ports from that source, 1 destination host). The
// scan window ends at the last packet and the scan lasts seconds, so all of it
// is inside the 60 s window.
func TestSynScanSignals(t *testing.T) {
	data, wire, link, ts := frames(t, "ndpi-synscan.pcap")
	sh, err := flowtable.New(flowtable.Config{Detect: true}, func([]flowtable.Record) {})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	for i := range data {
		w.Handle(data[i], wire[i], link[i], ts[i])
	}
	top := sh.ScanTop(1, "ports")
	if len(top) != 1 {
		t.Fatalf("no scan source")
	}
	s := top[0]
	if got := flowtable.IP(&s.Addr, s.IPVersion).String(); got != "172.16.0.8" {
		t.Errorf("top source %s, want 172.16.0.8", got)
	}
	// Distinct ports are approximate past 64 (HyperLogLog, p=9: 4.6 % standard
	// error); 3 standard errors around 1000.
	if s.DistinctPorts < 862 || s.DistinctPorts > 1138 || s.DistinctHosts != 1 || s.Connections != 1994 {
		t.Errorf("scan signals %+v, want ~1000 ports (862..1138), 1 host, 1994 connections", s)
	}
}
