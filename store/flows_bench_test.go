package store

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// benchHistory writes n records over 24 h (random hosts of a /16 and
// 1000 servers, 512-record blocks) to an in-memory DB.
func benchHistory(b *testing.B, n int) (*FlowLog, time.Time) {
	f := openLog(b, memDB(b), FlowOptions{})
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(11, 12))
	step := int64(24*time.Hour) / int64(n)
	recs := make([]flowtable.Record, 0, 1000)
	for i := range n {
		r := flowtable.Record{IPVersion: 4, Proto: []uint8{6, 17}[rng.IntN(2)], End: flowtable.EndIdle}
		r.Src = [16]byte{10, 1, byte(rng.IntN(256)), byte(rng.IntN(256))}
		r.Dst = [16]byte{192, 0, byte(rng.IntN(4)), byte(rng.IntN(250))}
		r.SrcPort, r.DstPort = uint16(32768+rng.IntN(28000)), []uint16{443, 80, 53, 22}[rng.IntN(4)]
		r.PacketsTx, r.PacketsRx = rng.Uint64N(100), rng.Uint64N(100)
		r.BytesTx, r.BytesRx = r.PacketsTx*700, r.PacketsRx*900
		r.Last = base.UnixNano() + int64(i)*step
		r.First = r.Last - rng.Int64N(int64(time.Minute))
		recs = append(recs, r)
		if len(recs) == cap(recs) || i == n-1 {
			if err := f.WriteFlows(recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	return f, base
}

// BenchmarkFlowQuery: one page of 100 from a 24 h history of 200 k
// records, unfiltered, by a host's address (a few records a day), and by
// port (a quarter of the records) in an hour 12 h back.
func BenchmarkFlowQuery(b *testing.B) {
	f, base := benchHistory(b, 200_000)
	for _, c := range []struct {
		name string
		q    FlowQuery
	}{
		{"newest", FlowQuery{Port: -1, Limit: 100}},
		{"ip", FlowQuery{Port: -1, Limit: 100, IP: netip.MustParseAddr("10.1.7.7")}},
		{"port-hour", FlowQuery{Port: 22, Limit: 100, Start: base.Add(11 * time.Hour), End: base.Add(12 * time.Hour)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := f.Query(c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFlowWrite: batches of 100 records, each synced (pebble on an
// in-memory FS, so the sync costs nothing here).
func BenchmarkFlowWrite(b *testing.B) {
	f := openLog(b, memDB(b), FlowOptions{})
	recs := synth(1, 100, func(i int) int64 { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano() + int64(i) })
	b.ReportAllocs()
	for b.Loop() {
		for i := range recs {
			recs[i].Last += 100
		}
		if err := f.WriteFlows(recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
