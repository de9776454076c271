package engine

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/flowtable"
)

// fakeBlock lays frames out as the kernel fills a TPACKET_V3 block: block
// descriptor, then per frame a tpacket3_hdr and the frame at tp_mac. A
// frame with an 802.1Q or 802.1ad outer tag has it moved to tp_vlan_tci and
// tp_vlan_tpid with TP_STATUS_VLAN_VALID, as the kernel does on receive.
func fakeBlock(t testing.TB, frames [][]byte, ts []int64) []byte {
	t.Helper()
	const first = 48
	b := make([]byte, 4<<20)
	off := first
	var prev *tpacket3Hdr
	for i, f := range frames {
		h := (*tpacket3Hdr)(unsafe.Pointer(&b[off]))
		if prev != nil {
			prev.Next_offset = uint32(uintptr(unsafe.Pointer(h)) - uintptr(unsafe.Pointer(prev)))
		}
		h.Sec, h.Nsec = uint32(ts[i]/1e9), uint32(ts[i]%1e9)
		h.Status = unix.TP_STATUS_USER
		h.Len = uint32(len(f))
		if et := binary.BigEndian.Uint16(f[12:]); len(f) >= 18 && (et == 0x8100 || et == 0x88a8) {
			h.Status |= unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID
			h.Hv1.Vlan_tci = uint32(binary.BigEndian.Uint16(f[14:]))
			h.Hv1.Vlan_tpid = et
			g := append(append([]byte{}, f[:12]...), f[16:]...)
			f = g
			h.Len -= 4
		}
		h.Mac = uint16(align16(unix.SizeofTpacket3Hdr + 2))
		h.Snaplen = uint32(len(f))
		copy(b[off+int(h.Mac):], f)
		prev = h
		off += align16(int(h.Mac) + len(f))
		if off+unix.SizeofTpacket3Hdr+len(f)+64 > len(b) {
			t.Fatal("frames do not fit one test block")
		}
	}
	binary.NativeEndian.PutUint32(b[bdStatus:], unix.TP_STATUS_USER)
	binary.NativeEndian.PutUint32(b[bdNumPkts:], uint32(len(frames)))
	binary.NativeEndian.PutUint32(b[bdFirstPkt:], first)
	return b[:off+64]
}

func corpusFrames(t testing.TB, name string) (data [][]byte, ts []int64) {
	t.Helper()
	rf, err := OpenFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	defer rf.Close()
	for {
		d, ci, _, err := rf.next()
		if err != nil {
			break
		}
		data = append(data, append([]byte{}, d...))
		ts = append(ts, ci.Timestamp.UnixNano())
	}
	return data, ts
}

// TestWalkRestoresVLAN: frames whose tag the kernel moved to the header come
// out of the walk as they were on the wire: same flows (VLANs kept apart),
// same packets and bytes as a replay of the capture.
func TestWalkRestoresVLAN(t *testing.T) {
	data, ts := corpusFrames(t, "zeek-vlan-collisions.pcap")
	blk := fakeBlock(t, data, ts)
	var got []flowtable.Record
	sh, err := flowtable.New(flowtable.DefaultConfig(), func(r []flowtable.Record) { got = append(got, r...) })
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	n, bytes, last := newWalker(w, 65535).walk(blk, 1)
	sh.Flush(flowtable.EndShutdown)
	want, frames := expected(t, []string{filepath.Join(corpusDir, "zeek-vlan-collisions.pcap")}, nil)
	var wantBytes uint64
	for _, r := range want {
		wantBytes += r.BytesTx + r.BytesRx
	}
	if uint64(n) != frames || bytes != wantBytes || last != ts[len(ts)-1] {
		t.Errorf("walk: %d frames, %d bytes, last %d; want %d, %d, %d", n, bytes, last, frames, wantBytes, ts[len(ts)-1])
	}
	if bytes != 6087+6143+6199 {
		t.Errorf("walk: %d bytes; the capture holds 6087 untagged + 6143 VLAN + 6199 QinQ", bytes)
	}
	compareFlows(t, got, want)
}

// TestWalkAllocs: walking a block allocates nothing, tagged frames included.
func TestWalkAllocs(t *testing.T) {
	var data [][]byte
	var ts []int64
	for _, f := range []string{"zeek-vlan-collisions.pcap", "ndpi-smtp-starttls.pcap", "zeek-http-bro.org.pcap"} {
		d, s := corpusFrames(t, f)
		data, ts = append(data, d...), append(ts, s...)
	}
	blk := fakeBlock(t, data, ts)
	sh, err := flowtable.New(flowtable.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wk := newWalker(NewWorker(sh), 65535)
	wk.walk(blk, 1) // the flows exist from here on
	if a := testing.AllocsPerRun(50, func() { wk.walk(blk, 1) }); a != 0 {
		t.Errorf("walk of a %d-frame block: %.1f allocations", len(data), a)
	}
}

func BenchmarkWalk(b *testing.B) {
	data, ts := corpusFrames(b, "ndpi-1kxun.pcap")
	blk := fakeBlock(b, data, ts)
	sh, err := flowtable.New(flowtable.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	wk := newWalker(NewWorker(sh), 65535)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		wk.walk(blk, 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(data)), "ns/frame")
}

func TestRingGeometry(t *testing.T) {
	for _, c := range []struct {
		snap, batch, ring   int
		block, blocks, fram int
	}{
		{65535, 1024, 4 << 20, 256 << 10, 16, 65600},
		{96, 1024, 64 << 20, 256 << 10, 256, 160},
		{262144, 1024, 64 << 20, 512 << 10, 128, 262208},
		{96, 16, 1 << 20, 128 << 10, 8, 160},
		{65535, 65536, 1 << 20, 4 << 20, 4, 65600},
	} {
		g := ringGeometry(c.snap, c.batch, c.ring, 0)
		if g.BlockSize != c.block || g.Blocks != c.blocks || g.FrameSize != c.fram {
			t.Errorf("ringGeometry(%d, %d, %d) = %+v, want block %d x %d, frame %d", c.snap, c.batch, c.ring, g, c.block, c.blocks, c.fram)
		}
	}
}
