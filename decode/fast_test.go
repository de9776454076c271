package decode

import (
	"encoding/binary"
	"testing"
)

// parseBoth decodes frame with Parse (its fast path first) and with the
// general decoder alone, each into a Packet left dirty by another frame,
// and reports whether it has the fast path's shape; they must agree on every field.
func parseBoth(t testing.TB, frame []byte, wireLen uint32, link uint16) bool {
	t.Helper()
	var got, want Packet
	for _, p := range []*Packet{&got, &want} {
		*p = dirtyPacket
	}
	Parse(frame, wireLen, link, &got)
	parse(frame, wireLen, link, &want)
	if got != want {
		t.Fatalf("frame % x (wire %d, link %d):\nParse %+v\nparse %+v", frame, wireLen, link, got, want)
	}
	return link == LinkEthernet && got.Err == ReasonNone && got.NumIP == 1 && got.InnerVLAN == 0 &&
		got.Tunnel == TunnelNone && !got.IsFragment && (got.Flow.Proto == protoTCP || got.Flow.Proto == protoUDP)
}

// dirtyPacket has every byte set, so that a field Parse leaves alone shows.
var dirtyPacket = func() Packet {
	var p Packet
	for i := range MaxIPLayers {
		p.IP[i] = IPLayer{Src: Addr{0: 0xee, 15: 0xee}, Dst: Addr{4: 0xee, 15: 0xee}, IPVersion: 9}
		p.IPLen[i] = 0xeeee
	}
	p.Flow = Tuple{Src: p.IP[0].Src, Dst: p.IP[0].Dst, SrcPort: 1, DstPort: 2, Proto: 3, IPVersion: 9}
	p.Outer = p.Flow
	p.WireLen, p.CapLen, p.Err, p.HasFlow, p.NonIP = 1, 2, ReasonTooManyLayers, true, true
	p.VLAN, p.InnerVLAN, p.Tunnel, p.TCPFlags, p.ICMPType, p.ICMPCode = 7, 8, TunnelGRE, 0xff, 3, 4
	p.IsFragment, p.MoreFragments, p.NeedPorts, p.FragLayer, p.FragProto = true, true, true, 3, 6
	p.FragOffset, p.FragDataLen, p.FragID, p.FragDataOff, p.FragCapLen, p.FragVLAN = 8, 9, 10, 11, 12, 13
	p.TinyFragment, p.HasOuter, p.OuterLayer, p.NumIP = true, true, 2, 4
	p.PayloadOff, p.PayloadLen = 5, 6
	return p
}()

// TestParseFastAgrees holds Parse's fast path to the general decoder on
// every frame of the corpus and on variants of its Ethernet frames: cut
// at every length, with a VLAN tag, with their IP length, header length,
// fragment and port fields changed, and a longer wire length.
func TestParseFastAgrees(t *testing.T) {
	fast, all := 0, 0
	for _, recs := range readCorpus(t) {
		for i, r := range recs {
			all++
			if parseBoth(t, r.data, r.wireLen, r.link) {
				fast++
			}
			if r.link != LinkEthernet || i%40 != 0 {
				continue
			}
			for _, f := range variants(r.data) {
				for n := 0; n <= len(f) && n <= 120; n++ {
					parseBoth(t, f[:n], uint32(len(f)), LinkEthernet)
					parseBoth(t, f[:n], uint32(len(f))+1000, LinkEthernet)
				}
			}
		}
	}
	if fast == 0 || fast == all {
		t.Fatalf("%d of %d corpus frames have the fast path's shape", fast, all)
	}
	t.Logf("%d of %d corpus frames have the fast path's shape", fast, all)
}

// variants returns frame, frame with an 802.1Q tag, and copies of both
// with the fields parseFast reads changed.
func variants(frame []byte) [][]byte {
	if len(frame) < 14 {
		return [][]byte{frame}
	}
	tagged := append(append(append([]byte(nil), frame[:12]...), 0x81, 0x00, 0x20, 0x05), frame[12:]...)
	out := [][]byte{frame, tagged}
	for _, base := range [][]byte{frame, tagged} {
		off := 14
		if be16(base[12:]) == etVLAN {
			off = 18
		}
		if len(base) < off+40 {
			continue
		}
		mod := func(f func(b []byte)) {
			b := append([]byte(nil), base...)
			f(b)
			out = append(out, b)
		}
		var l4 int
		switch base[off] >> 4 {
		case 4:
			l4 = off + int(base[off]&0x0f)*4
			for _, tl := range []uint16{0, 1, 19, 20, 21, 39, 40, 41, 48, 0xffff} {
				mod(func(b []byte) { binary.BigEndian.PutUint16(b[off+2:], tl) })
			}
			for _, v := range []byte{0x44, 0x46, 0x4f, 0x55, 0x65} {
				mod(func(b []byte) { b[off] = v })
			}
			for _, fo := range []uint16{0x4000, 0x2000, 0x0001, 0x8000, 0x1fff} {
				mod(func(b []byte) { binary.BigEndian.PutUint16(b[off+6:], fo) })
			}
			for _, pr := range []byte{1, 4, 6, 17, 41, 47, 58, 132, 136} {
				mod(func(b []byte) { b[off+9] = pr })
			}
		case 6:
			l4 = off + 40
			for _, pl := range []uint16{0, 1, 7, 8, 19, 20, 21, 0xffff} {
				mod(func(b []byte) { binary.BigEndian.PutUint16(b[off+4:], pl) })
			}
			for _, pr := range []byte{0, 6, 17, 43, 44, 58, 59, 60, 136} {
				mod(func(b []byte) { b[off+6] = pr })
			}
			mod(func(b []byte) { b[off] = 0x45 })
		default:
			continue
		}
		if len(base) < l4+14 {
			continue
		}
		for _, port := range []uint16{portVXLAN, portGENEVE, portGTPU, 53, 443} {
			mod(func(b []byte) { binary.BigEndian.PutUint16(b[l4:], port) })
			mod(func(b []byte) { binary.BigEndian.PutUint16(b[l4+2:], port) })
		}
		for _, hl := range []byte{0x00, 0x40, 0x50, 0x60, 0xf0} {
			mod(func(b []byte) { b[l4+12] = hl })
		}
	}
	return out
}

// FuzzParseFast: Parse (fast path first) and the general decoder agree on
// every Ethernet frame.
func FuzzParseFast(f *testing.F) {
	corpus, _ := loadCorpus()
	for _, recs := range corpus {
		for i, r := range recs {
			if r.link == LinkEthernet && i%7 == 0 {
				f.Add(r.data, r.wireLen)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, wireLen uint32) {
		parseBoth(t, data, wireLen, LinkEthernet)
	})
}
