package store

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/netsentry/netsentry/flowtable"
)

// legacyBlockV1 encodes recs as the builds before block version 2 did:
// records one after the other, the app result whole, zstd.
func legacyBlockV1(t testing.TB, recs []flowtable.Record, start int) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	v := binary.AppendUvarint([]byte{1}, uint64(len(recs)))
	v = binary.AppendUvarint(v, uint64(start))
	var raw []byte
	var prev int64
	for i := range recs {
		r := &recs[i]
		var fl byte
		short := r.IPVersion == 4 && allZero(r.Src[4:]) && allZero(r.Dst[4:])
		if short {
			fl |= 1
		}
		if r.AppLabelGuess {
			fl |= 2
		}
		fl |= 4
		raw = append(raw, fl, r.IPVersion)
		if short {
			raw = append(append(raw, r.Src[:4]...), r.Dst[:4]...)
		} else {
			raw = append(append(raw, r.Src[:]...), r.Dst[:]...)
		}
		raw = binary.BigEndian.AppendUint16(raw, r.SrcPort)
		raw = binary.BigEndian.AppendUint16(raw, r.DstPort)
		raw = binary.AppendUvarint(raw, uint64(r.VLAN))
		raw = binary.AppendUvarint(raw, uint64(r.InnerVLAN))
		raw = append(raw, r.Proto, byte(r.Tunnel), byte(r.State), byte(r.ConnState), byte(r.End), r.FlagsTx, r.FlagsRx)
		for _, c := range []uint64{r.PacketsTx, r.PacketsRx, r.BytesTx, r.BytesRx, r.IPBytesTx, r.IPBytesRx} {
			raw = binary.AppendUvarint(raw, c)
		}
		raw = binary.AppendVarint(raw, r.Last-prev)
		raw = binary.AppendVarint(raw, r.Last-r.First)
		prev = r.Last
		raw = r.App.AppendResult(raw)
		raw = binary.AppendUvarint(raw, uint64(len(r.AppLabel)))
		raw = append(raw, r.AppLabel...)
	}
	return enc.EncodeAll(raw, v)
}

// legacySummaryV1 encodes the summary of recs as summary version 1 did:
// ports and IPv4 addresses as sorted fixed-width entries.
func legacySummaryV1(seq uint64, recs []flowtable.Record) []byte {
	var protos [32]byte
	var apps []string
	var ports []uint16
	var ip4, ip16 [][]byte
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for i := range recs {
		r := &recs[i]
		protos[r.Proto>>3] |= 1 << (r.Proto & 7)
		if a := r.AppName(); !slices.Contains(apps, a) {
			apps = append(apps, a)
		}
		ports = append(ports, r.SrcPort, r.DstPort)
		for _, a := range []netip.Addr{flowtable.IP(&r.Src, r.IPVersion), flowtable.IP(&r.Dst, r.IPVersion)} {
			if a.Is4() {
				ip4 = append(ip4, a.AsSlice())
			} else {
				ip16 = append(ip16, a.AsSlice())
			}
		}
		lo, hi = min(lo, r.Last), max(hi, r.Last)
	}
	s := []byte{1}
	s = binary.AppendUvarint(s, seq)
	s = binary.AppendUvarint(s, uint64(len(recs)))
	s = binary.AppendVarint(s, lo)
	s = binary.AppendVarint(s, hi)
	s = append(s, protos[:]...)
	s = binary.AppendUvarint(s, uint64(len(apps)))
	for _, a := range apps {
		s = append(binary.AppendUvarint(s, uint64(len(a))), a...)
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	s = binary.AppendUvarint(s, uint64(len(ports)))
	for _, p := range ports {
		s = binary.BigEndian.AppendUint16(s, p)
	}
	for _, l := range [][][]byte{ip4, ip16} {
		slices.SortFunc(l, bytes.Compare)
		l = slices.CompactFunc(l, bytes.Equal)
		s = binary.AppendUvarint(s, uint64(len(l)))
		for _, a := range l {
			s = append(s, a...)
		}
	}
	return s
}

// toLegacy rewrites every block and summary of the flow history in db in
// the version 1 encodings, as a history written before version 2 holds
// them, and returns how many blocks it rewrote.
func toLegacy(t testing.TB, f *FlowLog) int {
	t.Helper()
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keyFlowSummary}, UpperBound: []byte{keyFlowSummary + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	b := f.db.NewBatch()
	defer b.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		bk := blockKey(it.Key())
		v, c, err := f.db.Get(bk)
		if err != nil {
			t.Fatal(err)
		}
		recs, start, err := f.decodeBlock(v, nil)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		s, err := decodeSummary(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Set(bk, legacyBlockV1(t, recs, start), nil); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(slices.Clone(it.Key()), legacySummaryV1(s.seq, recs), nil); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFlowReadsVersion1 stores real captures' records (and a flood's),
// rewrites the stored blocks and summaries in the version 1 encodings,
// and checks that every query (unfiltered, by address, port, protocol,
// application) returns what the naive model of the written records says,
// before and after the rewrite.
func TestFlowReadsVersion1(t *testing.T) {
	f, written := corpusLog(t, FlowOptions{BlockRecords: 64}, "zeek-http-bro.org.pcap", "ndpi-1kxun.pcap")
	flood := floodRecords(t, 700)
	for i := range flood {
		flood[i].Last, flood[i].First = written[len(written)-1].Last+int64(i), written[len(written)-1].Last+int64(i)
	}
	if err := f.WriteFlows(flood); err != nil {
		t.Fatal(err)
	}
	written = append(written, flood...)
	queries := []FlowQuery{anyQuery(1000), anyQuery(37)}
	for _, r := range []*flowtable.Record{&written[3], &written[len(written)/2], &flood[5]} {
		queries = append(queries,
			FlowQuery{Port: -1, Limit: 100, IP: flowtable.IP(&r.Src, r.IPVersion)},
			FlowQuery{Port: -1, Limit: 100, IP: flowtable.IP(&r.Dst, r.IPVersion)},
			FlowQuery{Port: int(r.SrcPort), Limit: 100},
			FlowQuery{Port: int(r.DstPort), Limit: 100, Protocol: flowtable.ProtoName(r.Proto)},
			FlowQuery{Port: -1, Limit: 100, AppProtocol: r.AppName()})
	}
	check := func(what string, f *FlowLog) {
		for _, q := range queries {
			diff(t, what+" "+queryString(q), all(t, f, q, nil), naive(written, q))
		}
	}
	check("version 2", f)
	if n := toLegacy(t, f); n < 10 {
		t.Fatalf("rewrote %d blocks, want many", n)
	}
	for _, k := range keysIn(t, f.db, keyFlowSummary, keyFlowBlock+1) {
		if v, c, err := f.db.Get(k); err != nil || v[0] != 1 {
			t.Fatalf("%x: not version 1 after the rewrite (%v)", k, err)
		} else {
			c.Close()
		}
	}
	check("version 1", openLog(t, f.db, FlowOptions{BlockRecords: 64}))
}
