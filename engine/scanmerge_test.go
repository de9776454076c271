package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
)

// tupleQueue picks a queue for a frame as the capture's fan-out does: by a
// hash of the 5-tuple that is the same in both directions (frames without
// one go to queue 0).
func tupleQueue(frame []byte, wire uint32, link uint16, n int) int {
	var p decode.Packet
	decode.Parse(frame, wire, link, &p)
	if !p.HasFlow {
		return 0
	}
	f := p.Flow
	a, b, pa, pb := f.Src, f.Dst, f.SrcPort, f.DstPort
	if c := bytes.Compare(a[:], b[:]); c > 0 || (c == 0 && pa > pb) {
		a, b, pa, pb = b, a, pb, pa
	}
	var h uint64 = 14695981039346656037 // FNV-1a over the ordered tuple
	var buf [37]byte
	copy(buf[:16], a[:])
	copy(buf[16:32], b[:])
	binary.BigEndian.PutUint16(buf[32:], pa)
	binary.BigEndian.PutUint16(buf[34:], pb)
	buf[36] = f.Proto
	for _, c := range buf {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return int(h % uint64(n))
}

// TestScanMergedOverShards replays ndpi-synscan.pcap (an nmap SYN scan by
// 172.16.0.8) through 2 workers, each frame to the worker its 5-tuple hashes
// to, asks both for a snapshot from another goroutine, as the API does, and
// merges them. The oracle is tshark:
//
//	tshark -r ndpi-synscan.pcap -Y 'ip.src==172.16.0.8 && tcp.flags.syn==1 && tcp.flags.ack==0' -T fields -e tcp.dstport
//
// whose lines are the SYNs the source sent (each a new connection) and
// whose distinct values are its destination ports (1994 and 1000 when this
// was written). The merged snapshot must hold 172.16.0.8 once, with exactly
// the SYN count as connections and the distinct ports within 3 HyperLogLog
// standard errors; each worker alone must hold only part of the scan.
func TestScanMergedOverShards(t *testing.T) {
	pcap := filepath.Join(corpusDir, "ndpi-synscan.pcap")
	out, err := exec.Command("tshark", "-n", "-r", pcap, "-Y", "ip.src==172.16.0.8 && tcp.flags.syn==1 && tcp.flags.ack==0",
		"-T", "fields", "-e", "tcp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Fields(string(out))
	ports := map[string]bool{}
	for _, l := range lines {
		ports[l] = true
	}
	syns, distinct := uint64(len(lines)), len(ports)
	if syns == 0 {
		t.Fatal("tshark found no SYNs from 172.16.0.8")
	}

	data, wire, link, ts := frames(t, "ndpi-synscan.pcap")
	const n = 2
	workers := make([]*Worker, n)
	for i := range workers {
		// A fixed seed (shared, as the process's is) keeps the estimate reproducible.
		cfg := flowtable.Config{Detect: true, Scan: flowtable.ScanConfig{Seed: 0x5ca9}}
		sh, err := flowtable.New(cfg, func([]flowtable.Record) {})
		if err != nil {
			t.Fatal(err)
		}
		workers[i] = NewWorker(sh)
	}
	per := make([][]int, n) // frame indices per worker
	for i := range data {
		q := tupleQueue(data[i], wire[i], link[i], n)
		per[q] = append(per[q], i)
	}
	stop := make(chan struct{})
	done := make(chan struct{}, n)
	for q, w := range workers {
		go func() { // the worker's goroutine
			defer func() { done <- struct{}{} }()
			var now int64
			for _, i := range per[q] {
				w.Handle(data[i], wire[i], link[i], ts[i])
				now = max(now, ts[i])
			}
			for {
				select {
				case <-stop:
					return
				default:
					w.EndBatch(now)
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snaps := make([]Snapshot, n)
	for q, w := range workers {
		for { // until the worker has handled its frames
			snaps[q], err = w.Snapshot(ctx, SnapshotParts{Scan: true})
			if err != nil {
				t.Fatal(err)
			}
			if snaps[q].Counters.Packets == uint64(len(per[q])) {
				break
			}
		}
	}
	close(stop)
	for range n {
		<-done
	}

	var sumPorts uint64
	for q, s := range snaps {
		if len(s.Scan) != 1 || s.Scan[0].Connections == 0 || s.Scan[0].Connections >= syns {
			t.Fatalf("worker %d: scan %+v, want part of the scan", q, s.Scan)
		}
		sumPorts += s.Scan[0].DistinctPorts
		t.Logf("worker %d alone: %+v", q, s.Scan[0])
	}
	m := MergeSnapshots(snaps)
	if len(m.Scan) != 1 {
		t.Fatalf("merged: %d sources, want 1: %+v", len(m.Scan), m.Scan)
	}
	s := m.Scan[0]
	t.Logf("merged: %+v; tshark: %d SYNs, %d distinct ports; sum of the workers' distinct ports %d", s, syns, distinct, sumPorts)
	lo, hi := float64(distinct)*(1-0.138), float64(distinct)*(1+0.138)
	if ip := flowtable.IP(&s.Addr, s.IPVersion).String(); ip != "172.16.0.8" || s.Connections != syns ||
		float64(s.DistinctPorts) < lo || float64(s.DistinctPorts) > hi || s.DistinctHosts != 1 || !s.Approximate {
		t.Errorf("merged %s: %+v, want %d connections, %d ports within [%.0f, %.0f], 1 host, approximate", ip, s, syns, distinct, lo, hi)
	}
	if m.ScanWindow != 60*time.Second {
		t.Errorf("merged scan window %v, want the default 60s", m.ScanWindow)
	}
}
