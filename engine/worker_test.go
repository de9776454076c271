package engine

import (
	"path/filepath"
	"testing"

	"github.com/netsentry/netsentry/flowtable"
)

// frames reads every record of a corpus file into memory.
func frames(t testing.TB, name string) (data [][]byte, wire []uint32, link []uint16, ts []int64) {
	t.Helper()
	rf, err := OpenFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Skip(err)
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
