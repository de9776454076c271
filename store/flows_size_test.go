package store

import (
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/netsentry/netsentry/flowtable"
)

// TestFlowBytesPerRecord measures the stored bytes per record (keys,
// summaries, blocks, totals) of real captures for several block sizes,
// beside the same records as JSON lines zstd-compressed in blocks of the
// same size (the alternative encoding), and checks the binary form is the
// smaller.
func TestFlowBytesPerRecord(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string][]flowtable.Record{}
	var every []flowtable.Record
	for _, n := range roundTripCaptures {
		recs := replay(t, n)
		sets[n] = recs
		every = append(every, recs...)
	}
	sets["all"] = every
	for _, name := range []string{"ndpi-1kxun.pcap", "zeek-http-bro.org.pcap", "ndpi-synscan.pcap", "all"} {
		recs := sets[name]
		var jsonl int
		for i := range recs {
			jsonl += len(js(&recs[i])) + 1
		}
		for _, n := range []int{64, 256, 512, 1024} {
			f := openLog(t, memDB(t), FlowOptions{BlockRecords: n})
			for i := 0; i < len(recs); i += 100 { // batches as the exporter hands them
				if err := f.WriteFlows(recs[i:min(i+100, len(recs))]); err != nil {
					t.Fatal(err)
				}
			}
			st := f.Stats()
			var zj int
			for i := 0; i < len(recs); i += n {
				var b []byte
				for j := i; j < min(i+n, len(recs)); j++ {
					b = append(recs[j].AppendJSON(b, nil), '\n')
				}
				zj += len(enc.EncodeAll(b, nil))
			}
			ours, alt := float64(st.Bytes)/float64(len(recs)), float64(zj)/float64(len(recs))
			t.Logf("%-24s %5d records, blocks of %4d: %6.1f bytes/record stored; JSONL %6.1f, JSONL+zstd blocks alone %6.1f",
				name, len(recs), n, ours, float64(jsonl)/float64(len(recs)), alt)
			if n == defaultBlockRecords && ours > alt {
				t.Errorf("%s: binary blocks %.1f bytes/record, more than zstd JSON %.1f", name, ours, alt)
			}
		}
		// WAL bytes per record by write size, at the default block size.
		for _, batch := range []int{1, 10, 100, 1000} {
			f := openLog(t, memDB(t), FlowOptions{})
			for i := 0; i < len(recs); i += batch {
				if err := f.WriteFlows(recs[i:min(i+batch, len(recs))]); err != nil {
					t.Fatal(err)
				}
			}
			st := f.Stats()
			t.Logf("%-24s writes of %4d records: %8.1f WAL bytes/record for %6.1f stored", name, batch,
				float64(st.Committed)/float64(len(recs)), float64(st.Bytes)/float64(len(recs)))
		}
	}
}
