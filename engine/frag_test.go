package engine

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/flowtable"
)

// This file builds captures of fragmented datagrams byte by byte (tiny
// first fragments, a SYN split in two, out-of-order, overlapping with the
// same and with conflicting bytes, datagrams that never complete), plain,
// in a VLAN, in QinQ, in GRE and in VXLAN, over IPv4 and IPv6, and checks
// the replay against three oracles: the truth the builder knows (every
// frame in its flow), tshark's conversation table of the same file (built
// with the corpus's conv_exact.lua), and the shared compare_flows.py.

// fragCapture builds one capture.
type fragCapture struct {
	encap string // "", "vlan", "qinq", "gre", "vxlan"
	v6    bool
	buf   bytes.Buffer
	ts    int64
	ipID  uint16 // outer (tunnel) IP id
	dgID  uint32 // datagram ids
	// truth: frames and bytes per (proto, src endpoint, dst endpoint) as
	// NetSentry should count them (every fragment in its datagram's flow),
	// and as tshark does (only unfragmented and completing frames).
	ours, tshark conv
	// anomalies the bytes contain, computed with a naive byte-array model
	tiny, overlap, conflict uint64
	// reuseID gives every datagram that completes IP id 1
	reuseID bool
}

// incomplete reports whether pieces leave their datagram incomplete.
func incomplete(pieces []piece) bool {
	total := -1
	for _, p := range pieces {
		if p.last {
			total = p.off + p.n
		}
	}
	if total < 0 {
		return true
	}
	have := make([]bool, total)
	for _, p := range pieces {
		for i := p.off; i < p.off+p.n && i < total; i++ {
			have[i] = true
		}
	}
	for _, h := range have {
		if !h {
			return true
		}
	}
	return false
}

func newFragCapture(encap string, v6 bool) *fragCapture {
	c := &fragCapture{encap: encap, v6: v6, ts: 1_700_000_000_000_000, ipID: 100, dgID: 0x4000,
		ours: conv{}, tshark: conv{}}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], 1)
	c.buf.Write(h[:])
	return c
}

var (
	fragClient4, fragServer4 = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2")
	fragClient6, fragServer6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	tunClient, tunServer     = netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2")
)

func (c *fragCapture) addrs(fromClient bool) (src, dst netip.Addr) {
	s, d := fragClient4, fragServer4
	if c.v6 {
		s, d = fragClient6, fragServer6
	}
	if !fromClient {
		s, d = d, s
	}
	return s, d
}

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// ipv4 returns an IPv4 packet; off is the fragment offset in bytes.
func ipv4(src, dst netip.Addr, proto uint8, id uint16, off int, mf, df bool, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], id)
	fo := uint16(off / 8)
	if mf {
		fo |= 0x2000
	}
	if df {
		fo |= 0x4000
	}
	binary.BigEndian.PutUint16(h[6:], fo)
	h[8] = 64
	h[9] = proto
	s4, d4 := src.As4(), dst.As4()
	copy(h[12:], s4[:])
	copy(h[16:], d4[:])
	binary.BigEndian.PutUint16(h[10:], csum(h))
	return append(h, payload...)
}

// ipv6 returns an IPv6 packet, with a fragment header when frag is set.
func ipv6(src, dst netip.Addr, proto uint8, frag bool, id uint32, off int, mf bool, payload []byte) []byte {
	h := make([]byte, 40, 48+len(payload))
	h[0] = 0x60
	h[6] = proto
	h[7] = 64
	s6, d6 := src.As16(), dst.As16()
	copy(h[8:], s6[:])
	copy(h[24:], d6[:])
	n := len(payload)
	if frag {
		h[6] = 44
		fh := make([]byte, 8)
		fh[0] = proto
		fo := uint16(off)
		if mf {
			fo |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], id)
		h = append(h, fh...)
		n += 8
	}
	binary.BigEndian.PutUint16(h[4:], uint16(n))
	return append(h, payload...)
}

func tcpSeg(sport, dport uint16, seq, ack uint32, flags uint8, opts, payload []byte) []byte {
	h := make([]byte, 20, 20+len(opts)+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = byte((20+len(opts))/4) << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 64240)
	h = append(h, opts...)
	return append(h, payload...)
}

func udpDgram(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// frame wraps an inner IP packet in the capture's encapsulation and writes it.
func (c *fragCapture) frame(ip []byte, fromClient bool) int {
	et := uint16(0x0800)
	if ip[0]>>4 == 6 {
		et = 0x86dd
	}
	var f []byte
	eth := func(et uint16, vlans ...uint16) {
		f = append(f, 0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1)
		if !fromClient {
			copy(f[len(f)-12:], []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2})
		}
		for i, v := range vlans {
			tpid := uint16(0x8100)
			if i == 0 && len(vlans) == 2 {
				tpid = 0x88a8
			}
			f = binary.BigEndian.AppendUint16(f, tpid)
			f = binary.BigEndian.AppendUint16(f, v)
		}
		f = binary.BigEndian.AppendUint16(f, et)
	}
	osrc, odst := tunClient, tunServer
	if !fromClient {
		osrc, odst = odst, osrc
	}
	c.ipID++
	switch c.encap {
	case "":
		eth(et)
		f = append(f, ip...)
	case "vlan":
		eth(et, 42)
		f = append(f, ip...)
	case "qinq":
		eth(et, 10, 20)
		f = append(f, ip...)
	case "gre":
		eth(0x0800)
		gre := binary.BigEndian.AppendUint16([]byte{0, 0}, et)
		f = append(f, ipv4(osrc, odst, 47, c.ipID, 0, false, true, append(gre, ip...))...)
	case "vxlan":
		eth(0x0800)
		inner := []byte{0x02, 0, 0, 0, 0, 4, 0x02, 0, 0, 0, 0, 3}
		inner = binary.BigEndian.AppendUint16(inner, et)
		vx := append([]byte{0x08, 0, 0, 0, 0, 0, 7, 0}, append(inner, ip...)...)
		sp, dp := uint16(50000), uint16(4789)
		if !fromClient {
			sp, dp = dp, sp
		}
		f = append(f, ipv4(osrc, odst, 17, c.ipID, 0, false, true, udpDgram(sp, dp, vx))...)
		c.count(true, "udp", endpoint{osrc, sp}, endpoint{odst, dp}, len(f))
	}
	var rh [16]byte
	c.ts += 1000_000 // 1 ms
	binary.LittleEndian.PutUint32(rh[0:], uint32(c.ts/1e9))
	binary.LittleEndian.PutUint32(rh[4:], uint32(c.ts%1e9/1000))
	binary.LittleEndian.PutUint32(rh[8:], uint32(len(f)))
	binary.LittleEndian.PutUint32(rh[12:], uint32(len(f)))
	c.buf.Write(rh[:])
	c.buf.Write(f)
	return len(f)
}

// count adds one frame of n bytes to the truth tables (ours; tshark's too
// when it puts the frame in the conversation).
func (c *fragCapture) count(inTshark bool, proto string, src, dst endpoint, n int) {
	k := mkPair(proto, src, dst)
	c.ours.add(k, src, 1, int64(n))
	if inTshark {
		c.tshark.add(k, src, 1, int64(n))
	}
}

// plain sends an unfragmented transport segment.
func (c *fragCapture) plain(proto string, fromClient bool, sport, dport uint16, l4 []byte) {
	src, dst := c.addrs(fromClient)
	pn := uint8(6)
	if proto == "udp" {
		pn = 17
	}
	var ip []byte
	if c.v6 {
		ip = ipv6(src, dst, pn, false, 0, 0, false, l4)
	} else {
		ip = ipv4(src, dst, pn, uint16(c.dgID), 0, false, true, l4)
	}
	c.dgID++
	n := c.frame(ip, fromClient)
	c.count(true, proto, endpoint{src, sport}, endpoint{dst, dport}, n)
}

// piece is one fragment: bytes [off, off+n) of the datagram's payload,
// with more fragments unless last; alter flips its bytes in [alterLo, alterHi).
type piece struct {
	off, n           int
	last             bool
	alterLo, alterHi int
}

// fragmented sends l4 as the fragments given, in that order, and records
// what each oracle must count. orphan: the datagram's flow cannot be known
// (its head never arrives), so NetSentry counts it with ports 0.
func (c *fragCapture) fragmented(proto string, fromClient bool, sport, dport uint16, l4 []byte, hdrLen int, orphan bool, pieces ...piece) {
	src, dst := c.addrs(fromClient)
	pn := uint8(6)
	if proto == "udp" {
		pn = 17
	}
	id := c.dgID
	if c.reuseID && !orphan && pieces[len(pieces)-1].n > 0 && !incomplete(pieces) {
		id = 1 // as scapy sends every datagram: complete ones may share an id
	}
	c.dgID++
	total := -1
	have := make([]bool, len(l4))
	got := make([]byte, len(l4))
	done := false
	for _, pc := range pieces {
		data := append([]byte(nil), l4[pc.off:pc.off+pc.n]...)
		for i := pc.alterLo; i < pc.alterHi; i++ {
			data[i-pc.off] ^= 0xff
		}
		// naive model: overlap = a byte already received; conflict = one that differs
		if !done {
			if pc.off == 0 && !pc.last && pc.n < hdrLen {
				c.tiny++
			}
			ov, cf := false, false
			for i, b := range data {
				x := pc.off + i
				if have[x] {
					ov = true
					cf = cf || got[x] != b
				} else {
					have[x], got[x] = true, b
				}
			}
			if ov {
				c.overlap++
			}
			if cf {
				c.conflict++
			}
		}
		if pc.last {
			total = pc.off + pc.n
		}
		var ip []byte
		if c.v6 {
			ip = ipv6(src, dst, pn, true, id, pc.off, !pc.last, data)
		} else {
			ip = ipv4(src, dst, pn, uint16(id), pc.off, !pc.last, false, data)
		}
		n := c.frame(ip, fromClient)
		completes := false
		if !done && total > 0 {
			completes = true
			for _, h := range have[:total] {
				completes = completes && h
			}
			done = completes
		}
		a, b := endpoint{src, sport}, endpoint{dst, dport}
		if orphan {
			a.port, b.port = 0, 0
		}
		k := mkPair(proto, a, b)
		c.ours.add(k, a, 1, int64(n))
		if completes {
			k := mkPair(proto, endpoint{src, sport}, endpoint{dst, dport})
			c.tshark.add(k, endpoint{src, sport}, 1, int64(n))
		}
	}
}

// buildFragCapture writes the scenario of every case into one capture.
// Client ports are shifted by shift, so that several captures hold different connections.
func buildFragCapture(encap string, v6 bool, shift uint16) *fragCapture {
	c := newFragCapture(encap, v6)
	c.dgID += uint32(shift) << 6
	c.reuseID = shift%2 == 1
	cli, srv := 40000+shift, uint16(80)
	opts := []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7} // MSS, SACK ok, TS, NOP, WS
	// 1. SYN split in two fragments, tiny first: 8 bytes of TCP header (ports, seq).
	syn := tcpSeg(cli, srv, 1000, 0, 0x02, opts, nil)
	c.fragmented("tcp", true, cli, srv, syn, 20, false, piece{off: 0, n: 8}, piece{off: 8, n: 32, last: true})
	c.plain("tcp", false, srv, cli, tcpSeg(srv, cli, 5000, 1001, 0x12, opts, nil))
	c.plain("tcp", true, cli, srv, tcpSeg(cli, srv, 1001, 5001, 0x10, nil, nil))
	// 2. out of order, last first.
	d := tcpSeg(cli, srv, 1001, 5001, 0x18, nil, fill(100, 1))
	c.fragmented("tcp", true, cli, srv, d, 20, false, piece{off: 64, n: 56, last: true}, piece{off: 0, n: 64})
	// 3. out of order and tiny: the 8-byte head comes last.
	d = tcpSeg(cli, srv, 1101, 5001, 0x18, nil, fill(100, 2))
	c.fragmented("tcp", true, cli, srv, d, 20, false, piece{off: 8, n: 112, last: true}, piece{off: 0, n: 8})
	// 4. overlapping fragments, same bytes: [0,48) and [40,80).
	d = tcpSeg(cli, srv, 1201, 5001, 0x18, nil, fill(60, 3))
	c.fragmented("tcp", true, cli, srv, d, 20, false, piece{off: 0, n: 48}, piece{off: 40, n: 40, last: true})
	// 5. overlapping fragments, conflicting bytes in the overlap.
	d = tcpSeg(cli, srv, 1261, 5001, 0x18, nil, fill(60, 4))
	c.fragmented("tcp", true, cli, srv, d, 20, false, piece{off: 0, n: 48}, piece{off: 40, n: 40, last: true, alterLo: 40, alterHi: 48})
	// 6. a conflicting overlap of the TCP header itself (RFC 1858's flag rewrite):
	// the second copy of bytes 8..15 (ack, offset, flags) differs; the first wins.
	d = tcpSeg(cli, srv, 1321, 5001, 0x10, nil, fill(40, 5))
	c.fragmented("tcp", true, cli, srv, d, 20, false, piece{off: 0, n: 16}, piece{off: 8, n: 52, last: true, alterLo: 8, alterHi: 16})
	c.plain("tcp", false, srv, cli, tcpSeg(srv, cli, 5001, 1361, 0x18, nil, fill(10, 6)))
	// 7. a UDP datagram that never completes: its first fragment only.
	u := udpDgram(40002+shift, 9999, fill(200, 7))
	c.fragmented("udp", true, 40002+shift, 9999, u, 8, false, piece{off: 0, n: 96})
	// 8. a tiny first fragment that is never followed: its flow is never known.
	syn = tcpSeg(40003+shift, 81, 7000, 0, 0x02, opts, nil)
	c.fragmented("tcp", true, 40003+shift, 81, syn, 20, true, piece{off: 0, n: 8})
	// 9. a UDP datagram whose head never arrives: the last fragment only.
	u = udpDgram(40004+shift, 9998, fill(100, 8))
	c.fragmented("udp", true, 40004+shift, 9998, u, 8, true, piece{off: 56, n: 52, last: true})
	// 10. 8-byte fragments in a scrambled order (fragroute's "ip_frag 8" and
	// "order random"), more gaps than a slot's ranges hold; one repeated.
	u = udpDgram(40005+shift, 9997, fill(192, 9))
	var ps []piece
	for i := range 25 {
		j := (i * 7) % 25
		ps = append(ps, piece{off: j * 8, n: 8, last: j == 24})
		if i == 20 {
			ps = append(ps, piece{off: 7 * 8, n: 8})
		}
	}
	c.fragmented("udp", true, 40005+shift, 9997, u, 8, false, ps...)
	// 11. two first fragments, the second naming another source port
	// (a conflicting overlap of the whole header): the first copy decides.
	d = tcpSeg(cli, srv, 1361, 5001, 0x18, nil, fill(20, 10))
	c.fragmented("tcp", true, cli, srv, d, 20, false, piece{off: 0, n: 24}, piece{off: 0, n: 24, alterLo: 0, alterHi: 2}, piece{off: 24, n: 16, last: true})
	return c
}

// tsharkConv runs tshark with the corpus's conv_exact.lua on pcap and
// returns its table, as oracleConv reads the corpus's.
func tsharkConv(t *testing.T, pcap string) (conv, string) {
	t.Helper()
	lua := filepath.Join(corpusDir, "oracle", "conv_exact.lua")
	out, err := exec.Command("tshark", "-q", "-n", "-r", pcap, "-X", "lua_script:"+lua).Output()
	if err != nil {
		t.Fatalf("tshark conv_exact.lua on %s: %v", pcap, err)
	}
	tsv := pcap + ".conv_exact.tsv"
	if err := os.WriteFile(tsv, out, 0o644); err != nil {
		t.Fatal(err)
	}
	c := conv{}
	for _, r := range readTSV(t, tsv) {
		a := endpoint{netip.MustParseAddr(r["addr_a"]), uint16(atoi(t, r["port_a"]))}
		b := endpoint{netip.MustParseAddr(r["addr_b"]), uint16(atoi(t, r["port_b"]))}
		k := mkPair(r["proto"], a, b)
		c.add(k, a, atoi(t, r["frames_a_to_b"]), atoi(t, r["bytes_a_to_b"]))
		c.add(k, b, atoi(t, r["frames_b_to_a"]), atoi(t, r["bytes_b_to_a"]))
	}
	return c, tsv
}

// tsharkOverlaps counts the fragments tshark marks as overlapping and as
// conflicting in the datagrams it reassembles.
func tsharkOverlaps(t *testing.T, pcap string) (overlap, conflict int) {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", pcap, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "ip.fragment.overlap", "-e", "ipv6.fragment.overlap",
		"-e", "ip.fragment.overlap.conflict", "-e", "ipv6.fragment.overlap.conflict").Output()
	if err != nil {
		t.Fatalf("tshark overlaps: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		for i, f := range strings.Split(line, "\t") {
			for _, v := range strings.Split(f, ",") {
				if v == "1" || v == "True" {
					if i < 2 {
						overlap++
					} else {
						conflict++
					}
				}
			}
		}
	}
	return overlap, conflict
}

func diffConv(t *testing.T, what string, want, got conv) {
	t.Helper()
	keys := map[pairKey]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	for k := range keys {
		for _, ep := range []endpoint{k.a, k.b} {
			if w, g := want[k][ep], got[k][ep]; w != g {
				t.Errorf("%s: %s %v -> other: want %d pkts %d bytes, got %d pkts %d bytes", what, k.proto, ep, w.pkts, w.bytes, g.pkts, g.bytes)
			}
		}
	}
}

func TestFragmentCases(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatalf("tshark is the oracle of this test: %v", err)
	}
	for _, encap := range []string{"", "vlan", "qinq", "gre", "vxlan"} {
		for _, v6 := range []bool{false, true} {
			name := "plain"
			if encap != "" {
				name = encap
			}
			if v6 {
				name += "-ipv6"
			} else {
				name += "-ipv4"
			}
			// IPv4 datagrams share IP id 1, as scapy sends them; IPv6 ids are unique.
			shift := uint16(0)
			if !v6 {
				shift = 1
			}
			t.Run(name, func(t *testing.T) {
				c := buildFragCapture(encap, v6, shift)
				pcap := filepath.Join(t.TempDir(), "frag-"+name+".pcap")
				if err := os.WriteFile(pcap, c.buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				res := replayFile(t, pcap, flowtable.Config{})
				if res.err != nil {
					t.Fatalf("replay: %v", res.err)
				}
				if m := res.c.Malformed(); m != 0 {
					t.Errorf("%d frames counted malformed, want 0 (tiny fragments are not truncated headers)", m)
				}
				// 1. Every frame in its datagram's flow: exactly what the builder sent.
				diffConv(t, "netsentry vs the capture's contents", c.ours, ourConv(res.recs))
				// 2. tshark's own table of the file: the builder's model of it is right.
				tconv, tsv := tsharkConv(t, pcap)
				diffConv(t, "tshark vs the builder's model of tshark", c.tshark, tconv)
				// 3. The shared checker, with its fragment allowance.
				flows := filepath.Join(t.TempDir(), "flows.jsonl")
				fh, err := os.Create(flows)
				if err != nil {
					t.Fatal(err)
				}
				j := NewJSONLines(fh, fh)
				if err := j.WriteFlows(res.recs); err != nil {
					t.Fatal(err)
				}
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command("python3", filepath.Join(corpusDir, "..", "check", "compare_flows.py"), pcap, flows, tsv).CombinedOutput()
				if err != nil {
					t.Errorf("compare_flows.py: %v\n%s", err, out)
				}
				// 4. The SYN split over two fragments names the initiator and the state.
				for _, r := range res.recs {
					if r.Proto == 6 && r.SrcPort == 40000 {
						if cl, _ := c.addrs(true); flowtable.IP(&r.Src, r.IPVersion) != cl || r.FlagsTx&0x02 == 0 {
							t.Errorf("split SYN: initiator %v flags %#x, want the client with SYN", flowtable.IP(&r.Src, r.IPVersion), r.FlagsTx)
						}
					}
				}
				// 5. Anomalies, per source and in total, as the bytes hold them.
				want := [3]uint64{c.tiny, c.overlap, c.conflict}
				if got := [3]uint64{res.fs.FragTiny, res.fs.FragOverlap, res.fs.FragConflict}; got != want {
					t.Errorf("stats tiny/overlap/conflict = %v, want %v", got, want)
				}
				cl, _ := c.addrs(true)
				var bySrc [3]uint64
				for _, a := range res.anom {
					if flowtable.IP(&a.Addr, a.IPVersion) != cl {
						t.Errorf("anomaly for %v, only the client sent fragments", flowtable.IP(&a.Addr, a.IPVersion))
						continue
					}
					bySrc = [3]uint64{a.Tiny, a.Overlap, a.Conflict}
				}
				if bySrc != want {
					t.Errorf("client's anomalies tiny/overlap/conflict = %v, want %v", bySrc, want)
				}
				// tshark marks the same overlaps in the datagrams it reassembles
				// (every overlapping datagram here completes).
				if ov, cf := tsharkOverlaps(t, pcap); uint64(ov) != c.overlap || uint64(cf) != c.conflict {
					t.Errorf("tshark marks %d overlapping and %d conflicting fragments, the builder %d and %d", ov, cf, c.overlap, c.conflict)
				}
				// 6. Hosts: tshark's endpoint table of the same file.
				compareHosts(t, pcap, res.hosts)
				t.Logf("%s: %d frames, anomalies tiny %d overlap %d conflict %d, orphans %d", name,
					res.st.Packets, c.tiny, c.overlap, c.conflict, res.fs.FragOrphans)
			})
		}
	}
}

// compareHosts checks hosts against tshark's endpoint table of pcap
// (endpoints_exact.lua of the corpus).
func compareHosts(t *testing.T, pcap string, hosts []flowtable.HostCounters) {
	t.Helper()
	lua := filepath.Join(corpusDir, "oracle", "endpoints_exact.lua")
	out, err := exec.Command("tshark", "-q", "-n", "-r", pcap, "-X", "lua_script:"+lua).Output()
	if err != nil {
		t.Fatalf("tshark endpoints_exact.lua: %v", err)
	}
	tsv := pcap + ".endpoints_exact.tsv"
	if err := os.WriteFile(tsv, out, 0o644); err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]flowtable.HostCounters{}
	for _, h := range hosts {
		got[flowtable.IP(&h.Addr, h.IPVersion)] = h
	}
	for _, r := range readTSV(t, tsv) {
		a := netip.MustParseAddr(r["address"])
		h := got[a]
		delete(got, a)
		w := [4]int64{atoi(t, r["frames_tx"]), atoi(t, r["bytes_tx"]), atoi(t, r["frames_rx"]), atoi(t, r["bytes_rx"])}
		g := [4]int64{int64(h.PacketsTx), int64(h.BytesTx), int64(h.PacketsRx), int64(h.BytesRx)}
		if w != g {
			t.Errorf("host %v: tshark tx %d/%d rx %d/%d, netsentry tx %d/%d rx %d/%d", a, w[0], w[1], w[2], w[3], g[0], g[1], g[2], g[3])
		}
	}
	for a, h := range got {
		t.Errorf("host %v not in tshark's table (netsentry tx %d rx %d frames)", a, h.PacketsTx, h.PacketsRx)
	}
}
