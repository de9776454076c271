package flowtable

import (
	"encoding/binary"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// fragFrame returns a raw IPv4 (or IPv6) frame carrying bytes [off, off+len(data))
// of datagram id's TCP payload from 192.0.2.1 (or 2001:db8::1) to the server.
func fragFrame(v6 bool, id uint32, off int, mf bool, data []byte) []byte {
	if v6 {
		h := make([]byte, 48, 48+len(data))
		h[0], h[6], h[7] = 0x60, 44, 64
		h[8], h[9], h[23] = 0x20, 0x01, 1
		h[24], h[25], h[39] = 0x20, 0x01, 2
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(data)))
		h[40] = 6
		fo := uint16(off) &^ 7
		if mf {
			fo |= 1
		}
		binary.BigEndian.PutUint16(h[42:], fo)
		binary.BigEndian.PutUint32(h[44:], id)
		return append(h, data...)
	}
	h := make([]byte, 20, 20+len(data))
	h[0], h[8], h[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(data)))
	binary.BigEndian.PutUint16(h[4:], uint16(id))
	fo := uint16(off / 8)
	if mf {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], fo)
	copy(h[12:], []byte{192, 0, 2, 1, 198, 51, 100, 2})
	return append(h, data...)
}

func synSegment() []byte {
	return []byte{0x9c, 0x40, 0, 80, 0, 0, 3, 0xe8, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0}
}

// TestTinySynFragments: a SYN whose first fragment holds 8 bytes of its
// header counts both frames in the connection, which the second names.
func TestTinySynFragments(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s, out := newShard(t, Config{})
		syn := synSegment()
		var p decode.Packet
		frames := [][]byte{fragFrame(v6, 7, 8, false, syn[8:]), fragFrame(v6, 7, 0, true, syn[:8])} // last first
		for i, f := range frames {
			decode.Parse(f, uint32(len(f)), decode.LinkRaw, &p)
			s.Packet(&p, f, int64(i+1))
		}
		s.Flush(EndShutdown)
		if len(out.recs) != 1 {
			t.Fatalf("v6=%v: %d records, want 1: %+v", v6, len(out.recs), out.recs)
		}
		r := out.recs[0]
		if r.SrcPort != 40000 || r.DstPort != 80 || r.PacketsTx != 2 || r.BytesTx != uint64(len(frames[0])+len(frames[1])) || r.FlagsTx != decode.TCPSyn || r.State != StateSynSent {
			t.Errorf("v6=%v: record %+v", v6, r)
		}
		if st := s.Stats(); st.FragTiny != 1 || st.FragOverlap != 0 || st.FragOrphans != 0 {
			t.Errorf("v6=%v: stats %+v", v6, st)
		}
	}
}

func TestFragRanges(t *testing.T) {
	s, _ := newShard(t, Config{})
	f := &s.frags
	var sl fragSlot
	for _, r := range [][2]uint32{{16, 24}, {0, 8}, {8, 16}, {40, 48}, {32, 40}, {24, 32}} {
		f.addRange(&sl, r[0], r[1], s)
	}
	if sl.nRanges != 1 || sl.ranges[0] != (fragRange{0, 48}) {
		t.Fatalf("ranges %v", sl.ranges[:sl.nRanges])
	}
	// More gaps than fit: the datagram moves to a bitmap, exact per block.
	sl = fragSlot{key: fragKey{id: 1}, used: true}
	for i := uint32(0); i < 3*fragMaxRanges; i++ {
		if f.overlaps(&sl, i*16, i*16+8) {
			t.Fatalf("false overlap at %d", i*16)
		}
		f.addRange(&sl, i*16, i*16+8, s)
	}
	if sl.bitmap == 0 || len(f.freeBM) != fragBitmaps-1 {
		t.Fatalf("bitmap %d, %d free", sl.bitmap, len(f.freeBM))
	}
	sl.total = 3 * fragMaxRanges * 16
	for i := uint32(0); i < 3*fragMaxRanges; i++ {
		if f.covered(&sl) {
			t.Fatal("covered with gaps")
		}
		if !f.overlaps(&sl, i*16, i*16+16) {
			t.Fatalf("overlap at %d missed", i*16)
		}
		f.addRange(&sl, i*16+8, i*16+16, s)
	}
	if !f.covered(&sl) {
		t.Fatal("not covered")
	}
	s.stats.Active = 0
	f.live++
	f.release(&sl, s)
	if len(f.freeBM) != fragBitmaps {
		t.Fatalf("bitmap not returned: %d free", len(f.freeBM))
	}
	// With the pool empty the closest ranges join; the count stays bounded.
	f.freeBM = f.freeBM[:0]
	sl = fragSlot{}
	for i := uint32(0); i < 3*fragMaxRanges; i++ {
		f.addRange(&sl, i*100, i*100+8+i, s)
		if sl.nRanges > fragMaxRanges {
			t.Fatalf("%d ranges", sl.nRanges)
		}
		for j := 1; j < int(sl.nRanges); j++ {
			if sl.ranges[j-1].hi >= sl.ranges[j].lo {
				t.Fatalf("ranges not sorted and disjoint: %v", sl.ranges[:sl.nRanges])
			}
		}
	}
	if s.stats.FragRangeOverflow == 0 {
		t.Error("range overflow not counted")
	}
}

// TestOverlapFirstLowerOffsetWins: on a conflicting overlap the bytes of the
// fragment with the lower offset make the head, whatever came first (as
// Wireshark reassembles): a fragment at offset 8 that rewrites the flags to
// RST does not change the SYN, even when it comes first.
func TestOverlapLowerOffsetWins(t *testing.T) {
	s, out := newShard(t, Config{})
	syn := synSegment()
	evil := append([]byte(nil), syn[8:]...)
	evil[13-8] = decode.TCPRst
	var p decode.Packet
	frames := [][]byte{fragFrame(false, 9, 8, false, evil), fragFrame(false, 9, 0, true, syn[:16]), fragFrame(false, 9, 8, false, syn[8:])}
	for i, f := range frames {
		decode.Parse(f, uint32(len(f)), decode.LinkRaw, &p)
		s.Packet(&p, f, int64(i+1))
	}
	s.Flush(EndShutdown)
	// Frames 1 and 2 make the datagram; frame 3 comes after it completed and
	// starts a new datagram whose head never comes (ports 0), as in Wireshark.
	if len(out.recs) != 2 {
		t.Fatalf("records %+v", out.recs)
	}
	for _, r := range out.recs {
		switch {
		case r.SrcPort == 40000 && r.FlagsTx == decode.TCPSyn && r.PacketsTx == 2:
		case r.SrcPort == 0 && r.PacketsTx == 1:
		default:
			t.Errorf("record %+v", r)
		}
	}
	// frame 2 overlaps 1 (conflicting byte 13); frame 3 is not compared.
	if st := s.Stats(); st.FragTiny != 1 || st.FragOverlap != 1 || st.FragConflict != 1 {
		t.Errorf("stats tiny %d overlap %d conflict %d, want 1 1 1", st.FragTiny, st.FragOverlap, st.FragConflict)
	}
	a := s.FragmentAnomalies(nil)
	if len(a) != 1 || a[0].Tiny != 1 || a[0].Overlap != 1 || a[0].Conflict != 1 || a[0].Addr != (decode.Addr{192, 0, 2, 1}) {
		t.Errorf("per source %+v", a)
	}
}

func TestFragSourcesBound(t *testing.T) {
	var tb fragSources
	tb.init(64)
	for i := range 1000 {
		a := decode.Addr{10, byte(i >> 8), byte(i), 1}
		tb.add(&a, 4, anomOverlap, int64(i))
	}
	if tb.live > len(tb.slots) || tb.evicted == 0 {
		t.Errorf("live %d of %d slots, %d evicted", tb.live, len(tb.slots), tb.evicted)
	}
}

func TestFragmentAllocs(t *testing.T) {
	s, _ := newShard(t, Config{})
	syn := synSegment()
	data := make([]byte, 100)
	var frames [][]byte
	for id := uint32(1); id <= 64; id++ {
		frames = append(frames,
			fragFrame(id%2 == 0, id, 8, false, syn[8:]), fragFrame(id%2 == 0, id, 0, true, syn[:8]), // tiny, out of order
			fragFrame(id%2 == 0, id+1000, 0, true, append(syn[:20:20], data[:44]...)), fragFrame(id%2 == 0, id+1000, 40, false, data), // overlap
		)
	}
	ps := make([]decode.Packet, len(frames))
	for i, f := range frames {
		decode.Parse(f, uint32(len(f)), decode.LinkRaw, &ps[i])
	}
	var ts int64
	n := testing.AllocsPerRun(200, func() {
		for i := range frames {
			ts += 1e6
			s.Packet(&ps[i], frames[i], ts)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}

// FuzzFragments feeds random fragment sequences (offsets, lengths, ids,
// order, overlaps, both IP versions) through a shard with a tiny fragment
// table: it must never panic, keep every frame in exactly one flow, and keep
// its bounds.
func FuzzFragments(f *testing.F) {
	f.Add([]byte{1, 0, 1, 1, 1, 1, 8, 0}, false)
	f.Add([]byte{0, 0, 1, 3, 0x81, 2, 5, 3, 0, 1, 3, 1}, true)
	f.Fuzz(func(t *testing.T, ops []byte, v6 bool) {
		out := &sink{}
		s, err := New(Config{MaxFragments: 4, FragmentTimeout: 10 * 1e9}, out.take)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, 512)
		copy(payload, synSegment())
		for i := 20; i < len(payload); i++ {
			payload[i] = byte(i)
		}
		var p decode.Packet
		var fed uint64
		ts := int64(1)
		for len(ops) >= 4 {
			op := ops[:4]
			ops = ops[4:]
			id := uint32(op[0] & 7)
			off := int(op[1]&0x3f) * 8
			n := int(op[2]) % 80
			mf := op[3]&1 != 0
			if off+n > len(payload) {
				n = len(payload) - off
			}
			data := append([]byte(nil), payload[off:off+n]...)
			if op[3]&2 != 0 && n > 0 {
				data[0] ^= 0xff // a conflicting copy
			}
			ts += int64(op[3]>>2) * 1e8
			fr := fragFrame(v6, id, off, mf, data)
			decode.Parse(fr, uint32(len(fr)), decode.LinkRaw, &p)
			s.Packet(&p, fr, ts)
			if p.HasFlow {
				fed++ // a frame cut before its TCP header is in no flow
			}
			if op[3]&0x80 != 0 {
				s.Expire(ts)
			}
			ft := &s.frags
			live := 0
			for i := range ft.slots {
				sl := &ft.slots[i]
				if sl.used {
					live++
				}
				if sl.nRanges > fragMaxRanges {
					t.Fatalf("%d ranges", sl.nRanges)
				}
				for j := 1; j < int(sl.nRanges); j++ {
					if sl.ranges[j-1].hi >= sl.ranges[j].lo {
						t.Fatalf("ranges %v", sl.ranges[:sl.nRanges])
					}
				}
			}
			bms := len(ft.freeBM)
			for i := range ft.slots {
				if ft.slots[i].bitmap != 0 {
					bms++
				}
			}
			if bms != fragBitmaps {
				t.Fatalf("%d bitmaps accounted, want %d", bms, fragBitmaps)
			}
			if live != ft.live || live > len(ft.slots) || ft.anom.live > len(ft.anom.slots) {
				t.Fatalf("live %d counted %d of %d slots", live, ft.live, len(ft.slots))
			}
		}
		s.Flush(EndShutdown)
		var inFlows uint64
		for _, r := range out.recs {
			inFlows += r.PacketsTx + r.PacketsRx
		}
		if inFlows != fed {
			t.Fatalf("%d frames fed, %d in flows", fed, inFlows)
		}
	})
}

// TestFragSlotSize pins the per-datagram memory that docs/accounting.md states.
func TestFragSlotSize(t *testing.T) {
	if fragSlotBytes > 512 {
		t.Errorf("fragment slot is %d bytes, the documented bound is 512", fragSlotBytes)
	}
	t.Logf("fragment slot %d bytes; default table %d slots = %d KiB per shard", fragSlotBytes, 16384, fragSlotBytes*16384>>10)
}

func TestMergeFragAnomalies(t *testing.T) {
	a := FragAnomalies{Addr: decode.Addr{10, 0, 0, 1}, IPVersion: 4, Tiny: 1, Last: 5}
	b := FragAnomalies{Addr: decode.Addr{10, 0, 0, 1}, IPVersion: 4, Overlap: 2, Conflict: 1, Last: 7}
	c := FragAnomalies{Addr: decode.Addr{10, 0, 0, 2}, IPVersion: 4, Tiny: 3}
	got := MergeFragAnomalies([]FragAnomalies{a, c}, []FragAnomalies{b})
	want := []FragAnomalies{{Addr: a.Addr, IPVersion: 4, Tiny: 1, Overlap: 2, Conflict: 1, Last: 7}, c}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("merged %+v, want %+v", got, want)
	}
}
