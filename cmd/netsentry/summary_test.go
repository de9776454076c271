package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/engine"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// TestSummaryScanMerged: the terminal summary's Scan Signals list a
// source once with its connections from every worker. ndpi-synscan.pcap
// is split over 2 workers by a symmetric 5-tuple hash, as the fan-out
// splits live traffic; the oracle is tshark's count of SYNs (new
// connections) 172.16.0.8 sent.
func TestSummaryScanMerged(t *testing.T) {
	pcap := testcorpus.Path(t, "ndpi-synscan.pcap")
	out, err := exec.Command("tshark", "-n", "-r", pcap, "-Y", "ip.src==172.16.0.8 && tcp.flags.syn==1 && tcp.flags.ack==0",
		"-T", "fields", "-e", "tcp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	syns := len(strings.Fields(string(out)))

	f, err := os.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var workers []*engine.Worker
	for range 2 {
		sh, err := flowtable.New(flowtable.Config{}, func([]flowtable.Record) {})
		if err != nil {
			t.Fatal(err)
		}
		workers = append(workers, engine.NewWorker(sh))
	}
	link := uint16(r.LinkType())
	var p decode.Packet
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		decode.Parse(data, uint32(ci.Length), link, &p)
		q := 0
		if p.HasFlow { // the two ends in a fixed order, so both directions meet
			a, b := p.Flow.Src, p.Flow.Dst
			pa, pb := p.Flow.SrcPort, p.Flow.DstPort
			if c := bytes.Compare(a[:], b[:]); c > 0 || (c == 0 && pa > pb) {
				pa, pb = pb, pa
			}
			q = int((uint32(pa)*2654435761 ^ uint32(pb)*40503) >> 31)
		}
		workers[q].Handle(data, uint32(ci.Length), link, ci.Timestamp.UnixNano())
	}
	for i, w := range workers {
		if ss := w.Shard().ScanSnapshot(nil); len(ss) != 1 || ss[0].Connections == 0 || ss[0].Connections >= uint64(syns) {
			t.Fatalf("worker %d alone: %+v; want part of the scan (the split is not a split)", i, ss)
		}
	}
	s := buildSummary(workers, engine.NewTopFlows(3), 3)
	if len(s.scan) != 1 {
		t.Fatalf("summary scan signals %+v, want one source", s.scan)
	}
	if src := s.scan[0]; flowtable.IP(&src.Addr, src.IPVersion).String() != "172.16.0.8" || src.Connections != uint64(syns) || src.DistinctHosts != 1 {
		t.Errorf("summary scan signals %+v, want 172.16.0.8 with %d connections (tshark's SYNs), 1 host", src, syns)
	}
	var b strings.Builder
	printSummary(&b, s, nil)
	_, sig, _ := strings.Cut(b.String(), "Scan Signals")
	if want := "172.16.0.8: " + strconv.Itoa(syns) + " connections"; strings.Count(sig, "172.16.0.8:") != 1 || !strings.Contains(sig, want) {
		t.Errorf("summary's Scan Signals lack a single %q:\n%s", want, b.String())
	}
}

// TestSummaryKeepsGuessesApart: the replay summary's protocol distribution
// shows port-based guesses on their own row. tshark: of the 13 connections
// of zeek-http-bro.org.pcap, 8 carry HTTP and 5 no payload at all.
func TestSummaryKeepsGuessesApart(t *testing.T) {
	var out bytes.Buffer
	if rc := run([]string{"--replay", testcorpus.Path(t, "zeek-http-bro.org.pcap")}, &out, io.Discard); rc != 0 {
		t.Fatalf("replay exit %d", rc)
	}
	_, dist, ok := strings.Cut(out.String(), "Protocol Distribution:\n")
	if !ok {
		t.Fatalf("no protocol distribution in the summary:\n%s", out.String())
	}
	for _, want := range []string{"  HTTP:            8 flows,", "  HTTP (guess):    5 flows,"} {
		if !strings.Contains(dist, want) {
			t.Errorf("distribution lacks %q:\n%s", want, dist)
		}
	}
}
