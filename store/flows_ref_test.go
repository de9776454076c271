package store

// The block and summary encoders of the build before flows_enc.go, which
// coded a whole block from its records at every put: the encode-once
// encoder must write the same bytes (TestFlowEncodeOnceSameBytes).

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/netsentry/netsentry/flowtable"
)

// refSc is the reference encoders' scratch space (tests are not parallel).
var refSc refScratch

type refScratch struct {
	raw, val, sum   []byte
	prevApp, curApp []byte
	st              [numStreams][]byte
	deltas          []byte
	apps            []string
	portSet         [1 << 10]uint64
	ip4             []uint32
	ip16            []decode16
}

// encodeBlock encodes recs as a block value whose first record has index
// start in its block: version 2, the codec, the count and start
// (uvarints), then, compressed, the lengths of the streams (uvarints) and
// the streams. The result is in f's scratch space, valid until the next
// call.
func refEncodeBlock(recs []flowtable.Record, start int) []byte {
	sc := &refSc
	codec := blockCodec
	v := append(sc.val[:0], blockV2, codec)
	v = binary.AppendUvarint(v, uint64(len(recs)))
	v = binary.AppendUvarint(v, uint64(start))
	st := &sc.st
	for i := range st {
		st[i] = st[i][:0]
	}
	var prev int64
	prevApp, curApp := sc.prevApp[:0], sc.curApp
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
		b := append(st[stFlags], fl, r.IPVersion, r.Proto, byte(r.Tunnel), byte(r.State), byte(r.ConnState), byte(r.End), r.FlagsTx, r.FlagsRx)
		b = binary.AppendUvarint(b, uint64(r.VLAN))
		st[stFlags] = binary.AppendUvarint(b, uint64(r.InnerVLAN))
		if short {
			st[stAddr] = append(append(st[stAddr], r.Src[:4]...), r.Dst[:4]...)
		} else {
			st[stAddr] = append(append(st[stAddr], r.Src[:]...), r.Dst[:]...)
		}
		st[stPorts] = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(st[stPorts], r.SrcPort), r.DstPort)
		b = binary.AppendUvarint(st[stCount], r.PacketsTx)
		b = binary.AppendUvarint(b, r.PacketsRx)
		b = binary.AppendUvarint(b, r.BytesTx)
		b = binary.AppendUvarint(b, r.BytesRx)
		b = binary.AppendUvarint(b, r.IPBytesTx)
		st[stCount] = binary.AppendUvarint(b, r.IPBytesRx)
		st[stTime] = binary.AppendVarint(binary.AppendVarint(st[stTime], r.Last-prev), r.Last-r.First)
		prev = r.Last
		curApp = r.App.AppendResult(curApp[:0])
		st[stApp] = appendAppDiff(st[stApp], prevApp, curApp)
		prevApp, curApp = curApp, prevApp
		label := r.AppLabel[:min(len(r.AppLabel), maxAppLabel)]
		st[stLabel] = append(binary.AppendUvarint(st[stLabel], uint64(len(label))), label...)
	}
	sc.prevApp, sc.curApp = prevApp, curApp
	raw := sc.raw[:0]
	for i := range st {
		raw = binary.AppendUvarint(raw, uint64(len(st[i])))
	}
	for i := range st {
		raw = append(raw, st[i]...)
	}
	switch codec {
	case codecS2:
		n := len(v)
		v = slices.Grow(v, s2.MaxEncodedLen(len(raw)))
		v = v[:n+len(s2.Encode(v[n:cap(v)], raw))]
	default:
		v = flowEnc().EncodeAll(raw, v)
	}
	sc.raw, sc.val = raw, v
	return v
}

func refLastRange(recs []flowtable.Record) (lo, hi int64) {
	lo, hi = math.MaxInt64, math.MinInt64
	for i := range recs {
		lo, hi = min(lo, recs[i].Last), max(hi, recs[i].Last)
	}
	return lo, hi
}

// summarize encodes what Query needs to skip the block (or segment) of
// recs (summary version 2: the sorted distinct ports and IPv4 addresses as
// deltas, a byte or two each instead of two and four). The result is in
// f's scratch space, valid until the next call (pebble's Batch.Set copies
// it).
func refSummarize(seq uint64, recs []flowtable.Record) []byte {
	sc := &refSc
	var protos [32]byte
	apps := sc.apps[:0]
	ip4 := sc.ip4[:0]
	ip16 := sc.ip16[:0]
	pm := &sc.portSet
	var lastApp string
	var lastSrc, lastDst uint32
	for i := range recs {
		r := &recs[i]
		protos[r.Proto>>3] |= 1 << (r.Proto & 7)
		if a := r.AppName(); (i == 0 || a != lastApp) && !slices.Contains(apps, a) {
			apps = append(apps, a)
			lastApp = a
		}
		pm[r.SrcPort>>6] |= 1 << (r.SrcPort & 63)
		pm[r.DstPort>>6] |= 1 << (r.DstPort & 63)
		if r.IPVersion == 4 {
			// consecutive repeats (a busy server) sorted once
			if a := binary.BigEndian.Uint32(r.Src[:4]); i == 0 || a != lastSrc {
				ip4, lastSrc = append(ip4, a), a
			}
			if a := binary.BigEndian.Uint32(r.Dst[:4]); i == 0 || a != lastDst {
				ip4, lastDst = append(ip4, a), a
			}
		} else {
			ip16 = append(ip16, r.Src, r.Dst)
		}
	}
	minLast, maxLast := refLastRange(recs)
	s := append(sc.sum[:0], summaryV2)
	s = binary.AppendUvarint(s, seq)
	s = binary.AppendUvarint(s, uint64(len(recs)))
	s = binary.AppendVarint(s, minLast)
	s = binary.AppendVarint(s, maxLast)
	s = append(s, protos[:]...)
	s = binary.AppendUvarint(s, uint64(len(apps)))
	for _, a := range apps {
		s = binary.AppendUvarint(s, uint64(len(a)))
		s = append(s, a...)
	}
	d := sc.deltas[:0]
	var prev uint64
	for w := range pm {
		for x := pm[w]; x != 0; x &= x - 1 {
			p := uint64(w)<<6 | uint64(bits.TrailingZeros64(x))
			d = binary.AppendUvarint(d, p-prev)
			prev = p
		}
		pm[w] = 0
	}
	s = append(binary.AppendUvarint(s, uint64(len(d))), d...)
	slices.Sort(ip4)
	ip4 = slices.Compact(ip4)
	d, prev = d[:0], 0
	for _, a := range ip4 {
		d = binary.AppendUvarint(d, uint64(a)-prev)
		prev = uint64(a)
	}
	s = append(binary.AppendUvarint(s, uint64(len(d))), d...)
	slices.SortFunc(ip16, func(a, b decode16) int { return bytes.Compare(a[:], b[:]) })
	ip16 = slices.Compact(ip16)
	s = binary.AppendUvarint(s, uint64(len(ip16)))
	for i := range ip16 {
		s = append(s, ip16[i][:]...)
	}
	clear(apps) // no label strings kept alive
	sc.apps, sc.ip4, sc.ip16, sc.sum, sc.deltas = apps[:0], ip4, ip16, s, d
	return s
}

// TestFlowEncodeOnceSameBytes writes a flood's records and real captures'
// (IPv4 and IPv6, app results of every size), in batches of random sizes
// across three partitions, so that bases, segments and their
// consolidations all occur, and after each write reads every stored
// block and segment value and summary: each is byte for byte what the
// encoder of the build before (refEncodeBlock, refSummarize) writes for
// the records it holds, and the records read back are the records written.
func TestFlowEncodeOnceSameBytes(t *testing.T) {
	db := memDB(t)
	f := openLog(t, db, FlowOptions{BlockRecords: 128, Partition: time.Hour})
	recs := append(floodRecords(t, 3000), replay(t, "zeek-http-bro.org.pcap")...)
	recs = append(recs, replay(t, "ndpi-1kxun.pcap")...)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range recs {
		recs[i].Last = base + int64(i*3/len(recs))*int64(time.Hour) + int64(i)
		recs[i].First = recs[i].Last - int64(i%7)*int64(time.Millisecond)
	}
	// check reads every stored value and summary and compares them with
	// the reference encoder's; it returns the records read.
	values, segs := 0, 0
	check := func() []flowtable.Record {
		it, err := db.NewIter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var got []flowtable.Record
		for it.SeekGE([]byte{keyFlowSummary}); it.Valid() && it.Key()[0] == keyFlowSummary; it.Next() {
			sk := it.Key()
			bv, c, err := db.Get(blockKey(sk))
			if err != nil {
				t.Fatal(err)
			}
			bv = bytes.Clone(bv)
			c.Close()
			dec, start, err := f.decodeBlock(bv, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := refEncodeBlock(dec, start); !bytes.Equal(bv, want) {
				t.Fatalf("block %x: value differs from the reference encoder's", sk)
			}
			if want := refSummarize(binary.BigEndian.Uint64(sk[17:25]), dec); !bytes.Equal(it.Value(), want) {
				t.Fatalf("block %x: summary differs from the reference encoder's", sk)
			}
			values++
			if len(sk) > 25 {
				segs++
			}
			got = append(got, dec...)
		}
		return got
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(recs); {
		n := []int{1, 2, 5, 17, 64, 127, 129, 300}[rng.IntN(8)]
		n = min(n, len(recs)-i)
		if err := f.WriteFlows(recs[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
		check()
	}
	got := check()
	if len(got) != len(recs) {
		t.Fatalf("read %d records, wrote %d", len(got), len(recs))
	}
	key := func(r *flowtable.Record) string { return js(r) }
	var a, b []string
	for i := range recs {
		a, b = append(a, key(&recs[i])), append(b, key(&got[i]))
	}
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Fatal("the records read back differ from the records written")
	}
	if segs == 0 {
		t.Fatal("bad test: no segment stored")
	}
	t.Logf("%d values read (%d of them segments) after each of the writes of %d records match the reference encoder", values, segs, len(recs))
}
