package decode

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/netsentry/netsentry/internal/testcorpus"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var corpusDir = testcorpus.PcapsDir()

// record is one frame of a capture file.
type record struct {
	data    []byte
	wireLen uint32
	link    uint16
}

// readCorpus reads every frame of every capture in the shared corpus, with
// gopacket's readers (an independent implementation).
func readCorpus(t testing.TB) map[string][]record {
	out, err := loadCorpus()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func loadCorpus() (map[string][]record, error) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap*"))
	if len(files) == 0 {
		return nil, errors.New("shared corpus not found")
	}
	out := map[string][]record{}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		var magic [4]byte
		if _, err := io.ReadFull(f, magic[:]); err != nil {
			f.Close()
			continue
		}
		f.Seek(0, io.SeekStart)
		var recs []record
		if binary.LittleEndian.Uint32(magic[:]) == 0x0a0d0d0a {
			r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{WantMixedLinkType: true})
			if err == nil {
				for {
					data, ci, err := r.ReadPacketData()
					if err != nil {
						break
					}
					iface, _ := r.Interface(ci.InterfaceIndex)
					recs = append(recs, record{data, uint32(ci.Length), uint16(iface.LinkType)})
				}
			}
		} else {
			r, err := pcapgo.NewReader(f)
			if err == nil {
				for {
					data, ci, err := r.ReadPacketData()
					if err != nil {
						break
					}
					recs = append(recs, record{data, uint32(ci.Length), uint16(r.LinkType())})
				}
			}
		}
		f.Close()
		out[filepath.Base(path)] = recs
	}
	return out, nil
}

func a4(s string) Addr {
	var a Addr
	b := netip.MustParseAddr(s).As4()
	copy(a[:], b[:])
	return a
}

func a6(s string) Addr { return netip.MustParseAddr(s).As16() }

// TestCrossCheckGopacket compares the innermost flow of every plain
// (untunnelled, unfragmented) TCP/UDP frame in the corpus with gopacket's
// decoding of the same frame.
func TestCrossCheckGopacket(t *testing.T) {
	var checked int
	for name, recs := range readCorpus(t) {
		for i, r := range recs {
			var first gopacket.LayerType
			switch r.link {
			case LinkEthernet:
				first = layers.LayerTypeEthernet
			case LinkSLL:
				first = layers.LayerTypeLinuxSLL
			default:
				continue
			}
			gp := gopacket.NewPacket(r.data, first, gopacket.DecodeOptions{Lazy: false, NoCopy: true})
			if gp.ErrorLayer() != nil || gp.Layer(layers.LayerTypeGRE) != nil || gp.Layer(layers.LayerTypeVXLAN) != nil {
				continue
			}
			var want Tuple
			var wantLen uint32
			switch n := gp.NetworkLayer().(type) {
			case *layers.IPv4:
				if n.Flags&layers.IPv4MoreFragments != 0 || n.FragOffset != 0 {
					continue
				}
				wantLen = uint32(n.Length)
				want.IPVersion = 4
				copy(want.Src[:], n.SrcIP.To4())
				copy(want.Dst[:], n.DstIP.To4())
			case *layers.IPv6:
				if gp.Layer(layers.LayerTypeIPv6Fragment) != nil {
					continue
				}
				wantLen = uint32(n.Length) + 40
				want.IPVersion = 6
				copy(want.Src[:], n.SrcIP.To16())
				copy(want.Dst[:], n.DstIP.To16())
			default:
				continue
			}
			switch l := gp.TransportLayer().(type) {
			case *layers.TCP:
				want.Proto, want.SrcPort, want.DstPort = 6, uint16(l.SrcPort), uint16(l.DstPort)
			case *layers.UDP:
				want.Proto, want.SrcPort, want.DstPort = 17, uint16(l.SrcPort), uint16(l.DstPort)
			default:
				continue
			}
			if want.Proto == 17 && (want.SrcPort == 4789 || want.DstPort == 4789 || want.SrcPort == 6081 || want.DstPort == 6081 || want.SrcPort == 2152 || want.DstPort == 2152) {
				continue // tunnels: checked below
			}
			var p Packet
			Parse(r.data, r.wireLen, r.link, &p)
			if !p.HasFlow || p.Flow != want {
				t.Errorf("%s frame %d: got %+v (err %v), gopacket says %+v", name, i+1, p.Flow, p.Err, want)
			}
			if p.WireLen != r.wireLen {
				t.Errorf("%s frame %d: wire length %d, want %d", name, i+1, p.WireLen, r.wireLen)
			}
			if got := p.IPLen[p.NumIP-1]; wantLen > 40 && got != wantLen {
				t.Errorf("%s frame %d: IP length %d, gopacket's header says %d", name, i+1, got, wantLen)
			}
			if l, ok := gp.TransportLayer().(*layers.UDP); ok && int(l.Length) == 8+len(l.LayerPayload()) {
				if got := p.Payload(r.data); string(got) != string(l.LayerPayload()) {
					t.Errorf("%s frame %d: UDP payload %d bytes, gopacket %d", name, i+1, len(got), len(l.LayerPayload()))
				}
			}
			checked++
		}
	}
	if checked < 5000 {
		t.Errorf("only %d frames cross-checked", checked)
	}
	t.Logf("%d frames agree with gopacket", checked)
}

// TestParseAllocs: decoding allocates nothing, on every frame of the corpus.
func TestParseAllocs(t *testing.T) {
	var all []record
	for _, recs := range readCorpus(t) {
		all = append(all, recs...)
	}
	var p Packet
	n := testing.AllocsPerRun(20, func() {
		for i := range all {
			Parse(all[i].data, all[i].wireLen, all[i].link, &p)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per corpus pass, want 0", n)
	}
}

// TestNeverPastCaptured decodes every prefix of every corpus frame: no
// panic, and every offset Parse reports lies inside what was captured.
func TestNeverPastCaptured(t *testing.T) {
	var p Packet
	for name, recs := range readCorpus(t) {
		for i, r := range recs {
			if i > 40 {
				break
			}
			for n := 0; n <= len(r.data) && n <= 200; n++ {
				cut := r.data[:n:n]
				Parse(cut, r.wireLen, r.link, &p)
				if int(p.PayloadOff+p.PayloadLen) > n {
					t.Fatalf("%s frame %d cut at %d: payload [%d,+%d) past the capture", name, i, n, p.PayloadOff, p.PayloadLen)
				}
				if p.WireLen < uint32(n) {
					t.Fatalf("%s frame %d: wire length %d below captured %d", name, i, p.WireLen, n)
				}
			}
		}
	}
}

// serialize builds a frame from gopacket layers (lengths and checksums fixed).
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

var (
	macA = net.HardwareAddr{0, 1, 2, 3, 4, 5}
	macB = net.HardwareAddr{0, 1, 2, 3, 4, 6}
)

func eth(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}
}

// ethHdr is a bare 14-byte Ethernet header (gopacket pads a lone header to 60 bytes).
func ethHdr(et layers.EthernetType) []byte {
	return cat(macB, macA, []byte{byte(et >> 8), byte(et)})
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func tcp(sp, dp uint16) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), SYN: true, Window: 1000}
}

func udp(sp, dp uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// innerTCP is the tunnelled frame used below: 192.168.1.1:1234 -> 192.168.1.2:80.
func innerTCP(t testing.TB) []byte {
	return serialize(t, eth(layers.EthernetTypeIPv4), ip4("192.168.1.1", "192.168.1.2", layers.IPProtocolTCP), tcp(1234, 80), gopacket.Payload("GET /"))
}

func innerIP(t testing.TB) []byte { return innerTCP(t)[14:] }

func TestEncapsulations(t *testing.T) {
	inner := Tuple{Src: a4("192.168.1.1"), Dst: a4("192.168.1.2"), SrcPort: 1234, DstPort: 80, Proto: 6, IPVersion: 4}
	outer := func(sp, dp uint16) Tuple {
		return Tuple{Src: a4("10.0.0.1"), Dst: a4("10.0.0.2"), SrcPort: sp, DstPort: dp, Proto: 17, IPVersion: 4}
	}
	udpOuter := func(dp uint16, payload []byte) []byte {
		return serialize(t, eth(layers.EthernetTypeIPv4), ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP), udp(50000, dp), gopacket.Payload(payload))
	}
	greOuter := func(gre []byte) []byte {
		return serialize(t, eth(layers.EthernetTypeIPv4), ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolGRE), gopacket.Payload(gre))
	}
	for _, tc := range []struct {
		name      string
		frame     []byte
		link      uint16
		tunnel    Tunnel
		outer     *Tuple
		vlan      [2]uint16
		numIP     uint8
		wantInner Tuple
	}{
		{"vxlan", udpOuter(4789, cat([]byte{0x08, 0, 0, 0, 0, 0, 42, 0}, innerTCP(t))), LinkEthernet, TunnelVXLAN, &[]Tuple{outer(50000, 4789)}[0], [2]uint16{}, 2, inner},
		{"geneve", udpOuter(6081, cat([]byte{0x02, 0, 0x65, 0x58, 0, 0, 1, 0}, []byte{0, 1, 2, 1, 0xaa, 0xbb, 0xcc, 0xdd}, innerTCP(t))), LinkEthernet, TunnelGENEVE, &[]Tuple{outer(50000, 6081)}[0], [2]uint16{}, 2, inner},
		{"gtp-u with extension", udpOuter(2152, cat([]byte{0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0x10, 0x01, 0}, innerIP(t))), LinkEthernet, TunnelGTPU, &[]Tuple{outer(50000, 2152)}[0], [2]uint16{}, 2, inner},
		{"gre ipv4", greOuter(cat([]byte{0, 0, 0x08, 0}, innerIP(t))), LinkEthernet, TunnelGRE, nil, [2]uint16{}, 2, inner},
		{"gre key+seq teb", greOuter(cat([]byte{0x30, 0, 0x65, 0x58, 0, 0, 0, 7, 0, 0, 0, 9}, innerTCP(t))), LinkEthernet, TunnelGRE, nil, [2]uint16{}, 2, inner},
		{"erspan type II", greOuter(cat([]byte{0x10, 0, 0x88, 0xbe, 0, 0, 0, 1}, []byte{0x10, 0x64, 0, 1, 0, 0, 0, 0}, innerTCP(t))), LinkEthernet, TunnelERSPAN, nil, [2]uint16{}, 2, inner},
		{"erspan type I", greOuter(cat([]byte{0, 0, 0x88, 0xbe}, innerTCP(t))), LinkEthernet, TunnelERSPAN, nil, [2]uint16{}, 2, inner},
		{"erspan type III + subheader", greOuter(cat([]byte{0x10, 0, 0x22, 0xeb, 0, 0, 0, 1}, []byte{0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 8), innerTCP(t))), LinkEthernet, TunnelERSPAN, nil, [2]uint16{}, 2, inner},
		{"ip in ip", serialize(t, eth(layers.EthernetTypeIPv4), ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolIPv4), gopacket.Payload(innerIP(t))), LinkEthernet, TunnelIPIP, nil, [2]uint16{}, 2, inner},
		{"mpls 2 labels", cat(ethHdr(layers.EthernetTypeMPLSUnicast), []byte{0, 1, 0x40, 64, 0, 2, 0x01, 64}, innerIP(t)), LinkEthernet, TunnelNone, nil, [2]uint16{}, 1, inner},
		{"mpls pseudowire", cat(ethHdr(layers.EthernetTypeMPLSUnicast), []byte{0, 1, 0x01, 64}, []byte{0, 0, 0, 0}, innerTCP(t)), LinkEthernet, TunnelNone, nil, [2]uint16{}, 1, inner},
		{"pppoe", cat(ethHdr(layers.EthernetTypePPPoESession), []byte{0x11, 0, 0, 1, 0, 0, 0, 0x21}, innerIP(t)), LinkEthernet, TunnelNone, nil, [2]uint16{}, 1, inner},
		{"pppoe compressed protocol", cat(ethHdr(layers.EthernetTypePPPoESession), []byte{0x11, 0, 0, 1, 0, 0, 0x21}, innerIP(t)), LinkEthernet, TunnelNone, nil, [2]uint16{}, 1, inner},
		{"qinq", cat(ethHdr(layers.EthernetTypeQinQ), []byte{0, 10, 0x81, 0}, []byte{0, 20, 0x08, 0}, innerIP(t)), LinkEthernet, TunnelNone, nil, [2]uint16{10, 20}, 1, inner},
		{"linux sll2", cat([]byte{0x08, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0, 1, 2, 3, 4, 5, 0, 0}, innerIP(t)), LinkSLL2, TunnelNone, nil, [2]uint16{}, 1, inner},
		{"bsd null little endian", cat([]byte{2, 0, 0, 0}, innerIP(t)), LinkNull, TunnelNone, nil, [2]uint16{}, 1, inner},
		{"bsd null big endian", cat([]byte{0, 0, 0, 2}, innerIP(t)), LinkNull, TunnelNone, nil, [2]uint16{}, 1, inner},
		{"openbsd loop", cat([]byte{0, 0, 0, 2}, innerIP(t)), LinkLoop, TunnelNone, nil, [2]uint16{}, 1, inner},
		{"raw", innerIP(t), LinkRaw, TunnelNone, nil, [2]uint16{}, 1, inner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			Parse(tc.frame, uint32(len(tc.frame)), tc.link, &p)
			if p.Err != ReasonNone || !p.HasFlow {
				t.Fatalf("err %v hasFlow %v", p.Err, p.HasFlow)
			}
			if p.Flow != tc.wantInner {
				t.Errorf("flow %+v, want %+v", p.Flow, tc.wantInner)
			}
			if p.Tunnel != tc.tunnel {
				t.Errorf("tunnel %v, want %v", p.Tunnel, tc.tunnel)
			}
			if (tc.outer != nil) != p.HasOuter || (tc.outer != nil && p.Outer != *tc.outer) {
				t.Errorf("outer %v %+v, want %+v", p.HasOuter, p.Outer, tc.outer)
			}
			if [2]uint16{p.VLAN, p.InnerVLAN} != tc.vlan {
				t.Errorf("vlans %d/%d, want %v", p.VLAN, p.InnerVLAN, tc.vlan)
			}
			if p.NumIP != tc.numIP {
				t.Errorf("%d IP layers, want %d", p.NumIP, tc.numIP)
			}
			if string(p.Payload(tc.frame)) != "GET /" {
				t.Errorf("payload %q, want GET /", p.Payload(tc.frame))
			}
			// Every cut of the frame decodes without reading past it.
			for n := range tc.frame {
				var q Packet
				Parse(tc.frame[:n:n], uint32(len(tc.frame)), tc.link, &q)
				if int(q.PayloadOff+q.PayloadLen) > n {
					t.Fatalf("cut at %d: payload past the capture", n)
				}
			}
		})
	}
}

func TestIPv6ExtensionChainAndFragments(t *testing.T) {
	hop := []byte{60, 0, 1, 4, 0, 0, 0, 0}                     // hop-by-hop -> destination options
	dst := []byte{44, 0, 1, 4, 0, 0, 0, 0}                     // destination options -> fragment
	frag0 := []byte{17, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef}       // offset 0, more fragments
	frag1 := []byte{17, 0, 0x05, 0x00, 0xde, 0xad, 0xbe, 0xef} // offset 160 units = 1280 bytes, last
	udpHdr := []byte{0x13, 0x88, 0, 53, 0, 20, 0, 0}
	mk := func(ext ...[]byte) []byte {
		body := cat(ext...)
		h := serialize(t, &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6HopByHop,
			SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")})
		binary.BigEndian.PutUint16(h[4:], uint16(len(body)))
		return cat(ethHdr(layers.EthernetTypeIPv6), h, body)
	}
	var p Packet
	f := mk(hop, dst, frag0, udpHdr, []byte("query"))
	Parse(f, uint32(len(f)), LinkEthernet, &p)
	want := Tuple{Src: a6("2001:db8::1"), Dst: a6("2001:db8::2"), SrcPort: 5000, DstPort: 53, Proto: 17, IPVersion: 6}
	if p.Err != ReasonNone || p.Flow != want || !p.IsFragment || !p.MoreFragments || p.FragOffset != 0 || p.FragID != 0xdeadbeef || p.NeedPorts {
		t.Fatalf("first fragment: %+v", p)
	}
	if p.FragDataLen != uint16(len(udpHdr)+5) {
		t.Errorf("fragment data %d, want %d", p.FragDataLen, len(udpHdr)+5)
	}
	f = mk(hop, dst, frag1, []byte("rest of the datagram"))
	Parse(f, uint32(len(f)), LinkEthernet, &p)
	if !p.HasFlow || !p.NeedPorts || p.FragOffset != 1280 || p.MoreFragments || p.Flow.Proto != 17 || p.Flow.SrcPort != 0 {
		t.Fatalf("later fragment: %+v", p)
	}
}

func TestMalformed(t *testing.T) {
	good := serialize(t, eth(layers.EthernetTypeIPv4), ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP), tcp(1, 2))
	badIHL := append([]byte(nil), good...)
	badIHL[14] = 0x43
	badVer := append([]byte(nil), good...)
	badVer[14] = 0x55
	badTCP := append([]byte(nil), good...)
	badTCP[14+20+12] = 0x20 // data offset 8 bytes
	for _, tc := range []struct {
		name  string
		frame []byte
		link  uint16
		want  Reason
	}{
		{"short ethernet", good[:10], LinkEthernet, ReasonTruncatedLink},
		{"cut ipv4", good[:20], LinkEthernet, ReasonTruncatedIPv4},
		{"ihl below 5", badIHL, LinkEthernet, ReasonBadIPv4Header},
		{"version 5", badVer, LinkEthernet, ReasonBadIPVersion},
		{"cut tcp", good[:14+20+10], LinkEthernet, ReasonTruncatedTCP},
		{"tcp data offset < 5", badTCP, LinkEthernet, ReasonBadTCPHeader},
		{"unknown link", good, 147, ReasonUnsupportedLink},
		{"cut vlan", cat(ethHdr(layers.EthernetTypeDot1Q), []byte{0}), LinkEthernet, ReasonTruncatedVLAN},
	} {
		var p Packet
		Parse(tc.frame, uint32(len(tc.frame)), tc.link, &p)
		if p.Err != tc.want {
			t.Errorf("%s: reason %v, want %v", tc.name, p.Err, tc.want)
		}
	}
	// A frame cut inside TCP still names its IP hosts.
	var p Packet
	Parse(good[:14+20+10], 1500, LinkEthernet, &p)
	if p.NumIP != 1 || p.WireLen != 1500 {
		t.Errorf("cut frame: %d IP layers, wire %d", p.NumIP, p.WireLen)
	}
}

func TestICMPPorts(t *testing.T) {
	for _, tc := range []struct {
		typ, code uint8
		v6        bool
		sp, dp    uint16
		oneWay    bool
	}{
		{8, 0, false, 8, 0, false},
		{0, 0, false, 0, 8, false},
		{3, 1, false, 3, 1, true},
		{128, 0, true, 128, 129, false},
		{135, 0, true, 135, 136, false},
		{1, 4, true, 1, 4, true},
	} {
		sp, dp := icmpPorts(tc.typ, tc.code, tc.v6)
		if sp != tc.sp || dp != tc.dp || ICMPOneWay(tc.typ, tc.v6) != tc.oneWay {
			t.Errorf("type %d code %d v6 %v: got %d,%d oneWay %v", tc.typ, tc.code, tc.v6, sp, dp, ICMPOneWay(tc.typ, tc.v6))
		}
	}
}

func FuzzParse(f *testing.F) {
	corpus, _ := loadCorpus()
	for _, recs := range corpus {
		for i, r := range recs {
			if i%7 == 0 {
				f.Add(r.data, r.wireLen, r.link)
			}
		}
	}
	f.Add([]byte{0x45, 0, 0, 20}, uint32(4), LinkRaw)
	f.Fuzz(func(t *testing.T, data []byte, wireLen uint32, link uint16) {
		var p Packet
		Parse(data, wireLen, link, &p)
		if int(p.PayloadOff+p.PayloadLen) > len(data) {
			t.Fatalf("payload [%d,+%d) past %d captured bytes", p.PayloadOff, p.PayloadLen, len(data))
		}
		if p.NumIP > MaxIPLayers || p.Err >= NumReasons {
			t.Fatalf("bad packet state %+v", p)
		}
		for i, n := range p.IPLen {
			if i >= int(p.NumIP) && n != 0 || n > 0xffff+40 && n > p.WireLen {
				t.Fatalf("IP length %d of layer %d (%d layers, wire %d)", n, i, p.NumIP, p.WireLen)
			}
		}
		// A damaged record may claim fewer bytes on the wire than captured;
		// Parse keeps both as given (bytes are counted by the wire length).
		if p.WireLen != wireLen || p.CapLen != uint32(len(data)) {
			t.Fatalf("wire length %d, captured %d; want %d, %d", p.WireLen, p.CapLen, wireLen, len(data))
		}
		if p.IsFragment && (int(p.FragDataOff)+int(p.FragCapLen) > len(data) || p.FragCapLen > p.FragDataLen) {
			t.Fatalf("fragment data [%d,+%d) of %d past %d captured bytes", p.FragDataOff, p.FragCapLen, p.FragDataLen, len(data))
		}
		if p.TinyFragment && (p.Err != ReasonNone || !p.NeedPorts || p.NumIP != p.FragLayer+1) {
			t.Fatalf("tiny fragment state %+v", p)
		}
		if p.IsFragment {
			q := p
			ParseFragmentHead(data, &q)
			if q.NumIP > MaxIPLayers || q.Err >= NumReasons || q.PayloadLen != 0 {
				t.Fatalf("bad head decode %+v", q)
			}
		}
	})
}

// TestTinyFirstFragment: a first fragment holding 8 bytes of a TCP header
// (RFC 1858) is not a truncated frame; the head decoded from the datagram's
// first bytes gives its ports and flags.
func TestTinyFirstFragment(t *testing.T) {
	tcp := []byte{0x9c, 0x40, 0, 80, 0, 0, 3, 0xe8, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0}
	ip := []byte{0x45, 0, 0, 28, 0x12, 0x34, 0x20, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2}
	var p Packet
	Parse(append(ip, tcp[:8]...), 28, LinkRaw, &p)
	if p.Err != ReasonNone || !p.TinyFragment || !p.NeedPorts || !p.HasFlow || p.Flow.SrcPort != 0 || p.Flow.Proto != 6 {
		t.Fatalf("tiny first fragment: %+v", p)
	}
	if p.FragDataOff != 20 || p.FragCapLen != 8 || p.FragDataLen != 8 {
		t.Fatalf("fragment data at %d, %d of %d bytes; want 20, 8 of 8", p.FragDataOff, p.FragCapLen, p.FragDataLen)
	}
	ParseFragmentHead(tcp, &p)
	if p.Err != ReasonNone || !p.HasFlow || p.Flow.SrcPort != 40000 || p.Flow.DstPort != 80 || p.TCPFlags != TCPSyn {
		t.Fatalf("head: %+v", p)
	}
	// IPv6: a destination options header in the fragmentable part, then 8
	// bytes of the TCP header.
	v6 := make([]byte, 48)
	v6[0], v6[4], v6[5], v6[6], v6[7] = 0x60, 0, 24, 44, 64
	v6[8], v6[23], v6[24], v6[39] = 0x20, 1, 0x20, 2
	v6[40], v6[43], v6[47] = 60, 1, 9 // fragment header: next 60, offset 0, M, id 9
	dst := []byte{6, 0, 1, 4, 0, 0, 0, 0}
	f6 := append(append(append([]byte(nil), v6...), dst...), tcp[:8]...)
	Parse(f6, uint32(len(f6)), LinkRaw, &p)
	if p.Err != ReasonNone || !p.TinyFragment || p.FragProto != 60 || p.FragDataOff != 48 || p.FragCapLen != 16 || p.NumIP != 1 {
		t.Fatalf("IPv6 tiny first fragment: %+v", p)
	}
	ParseFragmentHead(append(dst, tcp...), &p)
	if p.Err != ReasonNone || p.Flow.SrcPort != 40000 || p.Flow.Proto != 6 || p.TCPFlags != TCPSyn || p.Flow.IPVersion != 6 {
		t.Fatalf("IPv6 head: %+v", p)
	}
	// Cut by the capture (snaplen), not by the fragment: still truncated.
	Parse(append(ip[:2:2], 0, 40, 0x12, 0x34, 0x20, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2, 1, 2, 3, 4, 5, 6, 7, 8), 60, LinkRaw, &p)
	if p.Err != ReasonTruncatedTCP || p.TinyFragment {
		t.Fatalf("snaplen-cut first fragment: err %v tiny %v", p.Err, p.TinyFragment)
	}
}

func BenchmarkParse(b *testing.B) {
	var all []record
	for _, recs := range readCorpus(b) {
		all = append(all, recs...)
	}
	var p Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &all[i%len(all)]
		Parse(r.data, r.wireLen, r.link, &p)
	}
}

// TestIPLen: each IP layer's length is its header's (IPv4 total length,
// IPv6 payload length + 40), not the frame's: Ethernet padding, a VLAN tag
// and a tunnel's outer headers are not in the inner layer's; a header
// that gives no length (0, as segmentation offload leaves) counts the
// bytes to the end of the frame on the wire.
func TestIPLen(t *testing.T) {
	ip := innerIP(t) // 20 + 20 + 5 bytes, and 1 byte of Ethernet padding (gopacket pads to 60)
	v6 := serialize(t, eth(layers.EthernetTypeIPv6), &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}, udp(53, 5353), gopacket.Payload("abc"))
	tso := append([]byte(nil), innerTCP(t)...)
	tso[14+2], tso[14+3] = 0, 0
	for _, tc := range []struct {
		name  string
		frame []byte
		wire  uint32
		want  []uint32
	}{
		{"padded", cat(innerTCP(t), make([]byte, 15)), 0, []uint32{45}},
		{"vlan", cat(ethHdr(layers.EthernetTypeDot1Q), []byte{0, 10, 0x08, 0}, ip), 0, []uint32{45}},
		{"ipv6", v6, 0, []uint32{40 + 8 + 3}},
		{"gre", serialize(t, eth(layers.EthernetTypeIPv4), ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolGRE), gopacket.Payload(cat([]byte{0, 0, 0x08, 0}, ip))), 0, []uint32{20 + 4 + 46, 45}},
		{"total length 0, snapped", tso[:40], uint32(len(tso)) + 100, []uint32{46 + 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := tc.wire
			if wire == 0 {
				wire = uint32(len(tc.frame))
			}
			var p Packet
			Parse(tc.frame, wire, LinkEthernet, &p)
			if int(p.NumIP) != len(tc.want) {
				t.Fatalf("%d IP layers (err %v), want %d", p.NumIP, p.Err, len(tc.want))
			}
			for i, w := range tc.want {
				if p.IPLen[i] != w {
					t.Errorf("layer %d: IP length %d, want %d", i, p.IPLen[i], w)
				}
			}
		})
	}
}
