package flowtable_test

import (
	"net/netip"
	"os"
	"reflect"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// fill feeds every frame of a corpus capture to a new shard and returns it
// with no flow expired: every flow of the capture is open.
func fill(t testing.TB, name string) *flowtable.Shard {
	t.Helper()
	cfg := flowtable.DefaultConfig()
	cfg.Detect = true
	sh, err := flowtable.New(cfg, func([]flowtable.Record) {})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(testcorpus.Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var p decode.Packet
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		decode.Parse(data, uint32(ci.Length), uint16(r.LinkType()), &p)
		sh.Packet(&p, data, ci.Timestamp.UnixNano())
	}
	return sh
}

// queries are the connections endpoint's sorts, limits and filters, some
// of them matching nothing.
func queries(recs []flowtable.Record) []flowtable.FlowQuery {
	var qs []flowtable.FlowQuery
	hosts := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	if a := flowtable.IP(&recs[0].Src, recs[0].IPVersion); a.Is4() {
		hosts = append(hosts, netip.AddrFrom16(a.As16())) // IPv4-mapped: compared unmapped
	}
	for i := 0; i < len(recs); i += len(recs)/5 + 1 {
		hosts = append(hosts, flowtable.IP(&recs[i].Src, recs[i].IPVersion), flowtable.IP(&recs[i].Dst, recs[i].IPVersion))
	}
	for _, by := range []flowtable.FlowOrder{flowtable.ByBytes, flowtable.ByPackets, flowtable.ByDuration} {
		for _, limit := range []int{1, 3, 10, 100, 1000} {
			qs = append(qs, flowtable.FlowQuery{Limit: limit, By: by})
		}
		for _, p := range []string{"tcp", "UDP", "icmp", "ICMPv6", "17", "SCTP"} {
			qs = append(qs, flowtable.FlowQuery{Limit: 20, By: by, Proto: p})
		}
		for _, a := range []string{"http", "DNS", "TLS", "HTTPS", "Unknown", "nosuch"} {
			qs = append(qs, flowtable.FlowQuery{Limit: 20, By: by, App: a})
		}
		for _, port := range []uint16{80, 53, 443, 0, 9} {
			qs = append(qs, flowtable.FlowQuery{Limit: 20, By: by, Port: port, HasPort: true})
		}
		for _, h := range hosts {
			qs = append(qs, flowtable.FlowQuery{Limit: 20, By: by, Host: h}, flowtable.FlowQuery{Limit: 5, By: by, Host: h, Proto: "tcp", App: "http"})
		}
	}
	return qs
}

// TestTopFlows: the bounded selection a shard makes on its live entries
// (with their whole detection state, as the API shows it)
// gives exactly what a full snapshot of its open flows, filtered and sorted,
// gives (the snapshot is the path the tshark cross-checks hold), and
// merging shards' selections gives the selection over all their flows.
func TestTopFlows(t *testing.T) {
	files := []string{"ndpi-1kxun.pcap", "zeek-http-bro.org.pcap", "ndpi-http_ipv6.pcap", "ndpi-synscan.pcap"}
	var shards []*flowtable.Shard
	var all [][]flowtable.Record
	for _, name := range files {
		sh := fill(t, name)
		recs := sh.Snapshot(nil, true)
		if len(recs) < 2 {
			t.Fatalf("%s: %d open flows", name, len(recs))
		}
		shards, all = append(shards, sh), append(all, recs)
		matched := 0
		for _, q := range queries(recs) {
			want := flowtable.TopRecords(&q, recs)
			got := sh.TopFlows(&q, nil)
			if len(want) > 0 {
				matched++
			}
			if !same(got, want) {
				t.Errorf("%s %+v: %d flows, the snapshot's selection %d", name, q, len(got), len(want))
				for i := range min(len(got), len(want)) {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Errorf("  first difference at %d: %+v, want %+v", i, got[i], want[i])
						break
					}
				}
			}
		}
		if matched < 10 {
			t.Errorf("%s: only %d queries matched a flow", name, matched)
		}
	}
	var concat []flowtable.Record
	for _, r := range all {
		concat = append(concat, r...)
	}
	for _, q := range queries(concat) {
		parts := make([][]flowtable.Record, len(shards))
		for i, sh := range shards {
			parts[i] = sh.TopFlows(&q, nil)
		}
		if got, want := flowtable.MergeTop(&q, parts...), flowtable.TopRecords(&q, concat); !same(got, want) {
			t.Errorf("merged %+v: %d flows, want %d", q, len(got), len(want))
		}
	}
}

func same(a, b []flowtable.Record) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

// TestTopFlowsAllocs: a selection allocates its heap and nothing per flow.
func TestTopFlowsAllocs(t *testing.T) {
	sh := fill(t, "ndpi-1kxun.pcap")
	n := len(sh.Snapshot(nil, true))
	for _, q := range []flowtable.FlowQuery{{Limit: 100}, {Limit: 10, App: "DNS", Proto: "udp"}, {Limit: 1000, By: flowtable.ByDuration}} {
		dst := make([]flowtable.Record, 0, q.Limit)
		if a := testing.AllocsPerRun(5, func() { sh.TopFlows(&q, dst[:0]) }); a > 1 {
			t.Errorf("%+v over %d flows: %v allocations, want at most 1", q, n, a)
		}
	}
}

// BenchmarkTopFlows: the selection over 100,000 open flows (UDP, distinct
// sources, one to 64 packets each), reported per flow of the table.
func BenchmarkTopFlows(b *testing.B) {
	const n = 100_000
	cfg := flowtable.DefaultConfig()
	cfg.Detect = true
	sh, err := flowtable.New(cfg, func([]flowtable.Record) {})
	if err != nil {
		b.Fatal(err)
	}
	p := decode.Packet{HasFlow: true, NumIP: 1}
	for i := range n {
		p.Flow = decode.Tuple{Src: decode.Addr{10, byte(i >> 16), byte(i >> 8), byte(i)}, Dst: decode.Addr{192, 0, 2, 1},
			SrcPort: uint16(1024 + i%50000), DstPort: 53, Proto: 17, IPVersion: 4}
		p.IP[0] = decode.IPLayer{Src: p.Flow.Src, Dst: p.Flow.Dst, IPVersion: 4}
		for k := range 1 + i%64 {
			p.WireLen = uint32(60 + k)
			sh.Packet(&p, nil, int64(i)*1000)
		}
	}
	for _, q := range []flowtable.FlowQuery{{Limit: 100}, {Limit: 100, App: "DNS"}} {
		name := "all"
		if q.App != "" {
			name = "app"
		}
		b.Run(name, func(b *testing.B) {
			dst := make([]flowtable.Record, 0, q.Limit)
			b.ReportAllocs()
			for b.Loop() {
				dst = sh.TopFlows(&q, dst[:0])
			}
			if len(dst) != q.Limit {
				b.Fatalf("%d flows selected", len(dst))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/flow")
		})
	}
}
