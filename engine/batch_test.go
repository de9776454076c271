package engine

import (
	"reflect"
	"testing"

	"github.com/netsentry/netsentry/flowtable"
)

// runBatched accounts the frames of one link type in batches of
// BatchFrames (as the ring walker hands them over) and returns the records.
func runBatched(t *testing.T, data [][]byte, wire []uint32, link []uint16, ts []int64, batched bool) []flowtable.Record {
	t.Helper()
	var recs []flowtable.Record
	sh, err := flowtable.New(flowtable.Config{Detect: true}, func(r []flowtable.Record) { recs = append(recs, r...) })
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	for i := 0; i < len(data); {
		j := i + 1
		for j < len(data) && j-i < BatchFrames && link[j] == link[i] {
			j++
		}
		if batched {
			w.HandleBatch(data[i:j], wire[i:j], ts[i:j], link[i])
		} else {
			for k := i; k < j; k++ {
				w.Handle(data[k], wire[k], link[k], ts[k])
			}
		}
		w.EndBatch(ts[j-1])
		i = j
	}
	sh.Flush(flowtable.EndEndOfCapture)
	return recs
}

// TestHandleBatchAsHandle: the three-pass batch path gives the records the
// frame-by-frame path gives (which the corpus tests check against tshark),
// on captures with fragments, tunnels, VLANs and detection.
func TestHandleBatchAsHandle(t *testing.T) {
	for _, name := range []string{"ndpi-1kxun.pcap", "zeek-erspan.pcap", "ndpi-dns_fragmented.pcap", "ndpi-smtp-starttls.pcap", "zeek-vlan-collisions.pcap"} {
		data, wire, link, ts := frames(t, name)
		one := runBatched(t, data, wire, link, ts, false)
		many := runBatched(t, data, wire, link, ts, true)
		if len(one) == 0 || !reflect.DeepEqual(one, many) {
			t.Errorf("%s: %d records frame by frame, %d batched, or they differ", name, len(one), len(many))
		}
	}
}

// TestHandleBatchAllocs: in steady state a batch costs no allocation.
func TestHandleBatchAllocs(t *testing.T) {
	data, wire, link, ts := frames(t, "ndpi-1kxun.pcap")
	sh, err := flowtable.New(flowtable.Config{Detect: true}, func([]flowtable.Record) {})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	pass := func() {
		for i := 0; i+BatchFrames <= len(data); i += BatchFrames {
			w.HandleBatch(data[i:i+BatchFrames], wire[i:i+BatchFrames], ts[i:i+BatchFrames], link[i])
		}
	}
	pass() // warm up: create the flows
	if a := testing.AllocsPerRun(5, pass); a != 0 {
		t.Errorf("%v allocations per pass of %d frames, want 0", a, len(data))
	}
}

// BenchmarkHandleBatch is BenchmarkHandle's frames in batches of
// BatchFrames.
func BenchmarkHandleBatch(b *testing.B) {
	data, wire, link, ts := frames(b, "ndpi-1kxun.pcap")
	sh, _ := flowtable.New(flowtable.Config{}, func([]flowtable.Record) {})
	w := NewWorker(sh)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += BatchFrames {
		j := i % (len(data) - BatchFrames)
		w.HandleBatch(data[j:j+BatchFrames], wire[j:j+BatchFrames], ts[j:j+BatchFrames], link[j])
	}
}

// TestProtocolSnapshotOpen: the protocol distribution counts each open
// flow under the name and guess flag its full record shows (every
// protocol of the corpus captures, flows with and without a detection
// state, TCP, UDP and others), beside the ended flows' totals.
func TestProtocolSnapshotOpen(t *testing.T) {
	for _, name := range []string{"ndpi-1kxun.pcap", "zeek-erspan.pcap", "ndpi-smtp-starttls.pcap", "zeek-vlan-collisions.pcap"} {
		data, wire, link, ts := frames(t, name)
		sh, err := flowtable.New(flowtable.Config{Detect: true}, func([]flowtable.Record) {})
		if err != nil {
			t.Fatal(err)
		}
		w := NewWorker(sh)
		for i := range data[:len(data)*2/3] {
			w.Handle(data[i], wire[i], link[i], ts[i])
		}
		var open []flowtable.ProtoStat
		for _, r := range sh.Snapshot(nil, true) {
			open = append(open, flowtable.ProtoStat{Name: r.AppName(), Guess: r.AppGuess(), Flows: 1,
				Packets: r.PacketsTx + r.PacketsRx, Bytes: r.BytesTx + r.BytesRx})
		}
		want := flowtable.MergeProtocols(sh.EndedProtocols(), open)
		got := sh.ProtocolSnapshot()
		if len(open) == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %d open flows; protocols %+v, want %+v", name, len(open), got, want)
		}
	}
}
