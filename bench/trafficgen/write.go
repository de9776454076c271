package trafficgen

import (
	"bufio"
	"encoding/binary"
	"strconv"
)

// TCP flag bits.
const (
	fin = 0x01
	syn = 0x02
	rst = 0x04
	psh = 0x08
	ack = 0x10
)

const (
	maxThink = 15_000_000 // µs: the longest pause between two requests of a flow
	maxIdle  = 20_000_000 // µs: the longest keep-alive pause before a teardown
	minFrame = 60         // Ethernet minimum without the FCS
)

var (
	gatewayMAC = [6]byte{0x02, 0x42, 0xac, 0x10, 0x00, 0x01}
	domains    = [...]string{"example", "cdn-edge", "api", "mail", "static", "video", "updates", "login", "shop", "news", "maps", "files", "chat"}
	tlds       = [...]string{"com", "net", "org"}
)

// write emits every flow's packets in time order.
func (g *gen) write(bw *bufio.Writer) error {
	if err := writeFileHeader(bw); err != nil {
		return err
	}
	g.pay.init(g.rng)
	g.heap = make([]int32, len(g.flows))
	for i := range g.heap {
		g.heap[i] = int32(i)
	}
	for i := len(g.heap)/2 - 1; i >= 0; i-- {
		g.down(i)
	}
	g.now = -1
	total := g.cfg.Packets
	for written := 0; written < total; written++ {
		i := g.heap[0]
		f := &g.flows[i]
		ts := max(f.next, g.now+1) // strictly increasing timestamps
		if written == 0 {
			g.firstTS = ts
		}
		g.now = ts
		gap := g.packet(f, ts)
		if err := g.flush(bw); err != nil {
			return err
		}
		f.k++
		if f.k < f.n {
			f.next = ts + gap
			g.down(0)
		} else {
			g.pop()
		}
		if g.cfg.Progress != nil && written&0xffff == 0xffff {
			g.cfg.Progress(written+1, total)
		}
	}
	if g.cfg.Progress != nil {
		g.cfg.Progress(total, total)
	}
	return nil
}

func (g *gen) less(a, b int32) bool {
	fa, fb := g.flows[a].next, g.flows[b].next
	return fa < fb || fa == fb && a < b
}

func (g *gen) down(i int) {
	h := g.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && g.less(h[r], h[l]) {
			c = r
		}
		if !g.less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func (g *gen) pop() {
	last := len(g.heap) - 1
	g.heap[0] = g.heap[last]
	g.heap = g.heap[:last]
	if last > 0 {
		g.down(0)
	}
}

// jitter returns d ± 25 %, at least 1.
func (g *gen) jitter(d int32) int64 {
	return max(1, int64(d)*3/4+g.rng.Int64N(int64(d)/2+1))
}

// think is the pause between a response and the next request.
func (g *gen) think(f *flow) int64 {
	return max(int64(f.rtt), min(maxThink, int64(g.rng.ExpFloat64()*2e6)))
}

// idle is the keep-alive pause between a connection's last response and
// its teardown: none for a fifth of the connections, else about 10 s.
func (g *gen) idle(f *flow) int64 {
	if g.rng.IntN(5) == 0 {
		return max(1, int64(f.rtt)/2)
	}
	return max(int64(f.rtt), min(maxIdle, int64(g.rng.ExpFloat64()*10e6)))
}

// packet writes the next packet of f at ts into g.buf and returns the gap
// to the flow's following packet.
func (g *gen) packet(f *flow, ts int64) (gap int64) {
	k := f.k
	mss := 1448 // 1500 - 20 (IPv4) - 20 (TCP) - 12 (timestamps option)
	if f.v6 {
		mss = 1428
	}
	switch f.kind {
	case kindDNS:
		if k == 0 {
			g.udp(f, 0, g.pay.dnsQuery(f), ts)
			return int64(f.rtt)
		}
		g.udp(f, 1, g.pay.dnsAnswer(f), ts)
		return 0
	case kindUDP:
		maxPay := 1472
		if f.v6 {
			maxPay = 1452
		}
		if !f.quic { // RTP-like: 20 ms voice frames both ways
			g.udp(f, int(k%2), g.pay.pattern(172), ts)
			return g.jitter(10_000)
		}
		switch {
		case k == 0: // an Initial, padded to 1200 bytes
			g.udp(f, 0, g.pay.pattern(1200+g.rng.IntN(50)), ts)
			return int64(f.rtt)
		case k%4 == 0:
			g.udp(f, 0, g.pay.pattern(30+g.rng.IntN(30)), ts)
		default:
			g.udp(f, 1, g.pay.pattern(min(maxPay, 1200+g.rng.IntN(150))), ts)
		}
		if k%32 == 31 {
			return int64(f.rtt)
		}
		return g.jitter(f.gap)
	}

	tear := int32(4)
	if f.rst {
		tear = 1
	}
	mid := f.n - 3 - tear
	closer := 0
	if f.closerServer {
		closer = 1
	}
	switch {
	case k == 0:
		g.tcp(f, 0, syn, seg{}, ts)
		return int64(f.rtt)
	case k == 1:
		g.tcp(f, 1, syn|ack, seg{}, ts)
		return 20 + g.rng.Int64N(60)
	case k == 2:
		g.tcp(f, 0, ack, seg{}, ts)
		return 30 + g.rng.Int64N(170)
	case k < 3+mid:
		j := k - 3
		p := j % f.cycle
		sender := 1
		if f.upload {
			sender = 0
		}
		if p == 0 {
			g.tcp(f, 0, psh|ack, g.pay.request(f, g.rng), ts)
			if f.upload {
				return g.jitter(f.gap)
			}
			return int64(f.rtt)
		}
		end := p == f.cycle-1 || j == mid-1
		if q := (p - 1) % 3; q < 2 {
			n, flags := mss, uint8(ack)
			if end {
				n, flags = 1+g.rng.IntN(mss), psh|ack
			}
			g.tcp(f, sender, flags, g.pay.pattern(n), ts)
		} else {
			g.tcp(f, 1-sender, ack, seg{}, ts)
		}
		switch {
		case j == mid-1:
			return g.idle(f)
		case end:
			return g.think(f)
		case (p-1)%48 == 47:
			return int64(f.rtt) // waiting for the window to open
		}
		return g.jitter(f.gap)
	case f.rst:
		g.tcp(f, closer, rst|ack, seg{}, ts)
		return 0
	}
	switch k - 3 - mid {
	case 0:
		g.tcp(f, closer, fin|ack, seg{}, ts)
		return max(1, int64(f.rtt)/2)
	case 1:
		g.tcp(f, 1-closer, ack, seg{}, ts)
		return 20 + g.rng.Int64N(200)
	case 2:
		g.tcp(f, 1-closer, fin|ack, seg{}, ts)
		return max(1, int64(f.rtt)/2)
	}
	g.tcp(f, closer, ack, seg{}, ts)
	return 0
}

// l2l3 writes the pcap record header (lengths filled in by finish), the
// Ethernet header, an optional 802.1Q tag and the IP header for a transport
// segment of l4len bytes. It returns the offset of the transport header.
func (g *gen) l2l3(f *flow, dir int, proto uint8, l4len int) int {
	b := g.buf
	src, dst := f.caddr[:], f.saddr[:]
	if dir == 1 {
		src, dst = dst, src
	}
	// Ethernet: the client's MAC is made from its index; the far side is the gateway.
	cmac := [6]byte{0x02, 0x00, byte(f.cidx >> 24), byte(f.cidx >> 16), byte(f.cidx >> 8), byte(f.cidx)}
	if dir == 0 {
		copy(b[16:], gatewayMAC[:])
		copy(b[22:], cmac[:])
	} else {
		copy(b[16:], cmac[:])
		copy(b[22:], gatewayMAC[:])
	}
	off := 28
	if f.vlan != 0 {
		binary.BigEndian.PutUint16(b[off:], 0x8100)
		binary.BigEndian.PutUint16(b[off+2:], f.vlan)
		off += 4
	}
	if f.v6 {
		binary.BigEndian.PutUint16(b[off:], 0x86dd)
		off += 2
		binary.BigEndian.PutUint32(b[off:], 6<<28|f.label)
		binary.BigEndian.PutUint16(b[off+4:], uint16(l4len))
		b[off+6] = proto
		b[off+7] = f.ttl[dir]
		copy(b[off+8:], src)
		copy(b[off+24:], dst)
		return off + 40
	}
	binary.BigEndian.PutUint16(b[off:], 0x0800)
	off += 2
	h := b[off : off+20]
	h[0], h[1] = 0x45, 0
	binary.BigEndian.PutUint16(h[2:], uint16(20+l4len))
	binary.BigEndian.PutUint16(h[4:], f.ipid[dir])
	f.ipid[dir]++
	binary.BigEndian.PutUint16(h[6:], 0x4000) // DF
	if proto == 17 {
		binary.BigEndian.PutUint16(h[6:], 0)
	}
	h[8], h[9] = f.ttl[dir], proto
	h[10], h[11] = 0, 0
	copy(h[12:16], src[:4])
	copy(h[16:20], dst[:4])
	binary.BigEndian.PutUint16(h[10:], fold(sum16(h, 0)))
	return off + 20
}

// pseudo sums the IPv4 or IPv6 pseudo header of a transport segment.
func pseudo(f *flow, proto uint8, l4len int) uint64 {
	var s uint64
	if f.v6 {
		s = sum16(f.caddr[:], 0)
		s = sum16(f.saddr[:], s)
	} else {
		s = sum16(f.caddr[:4], 0)
		s = sum16(f.saddr[:4], s)
	}
	return s + uint64(proto) + uint64(l4len)
}

// tcp writes a TCP segment in direction dir carrying payload p.
func (g *gen) tcp(f *flow, dir int, flags uint8, p seg, ts int64) {
	hl := 32 // with the timestamps option
	switch {
	case flags&syn != 0:
		hl = 40
	case flags&rst != 0:
		hl = 20
	}
	l4len := hl + len(p.b)
	off := g.l2l3(f, dir, 6, l4len)
	b := g.buf[off : off+hl]
	binary.BigEndian.PutUint16(b[0:], f.cport)
	binary.BigEndian.PutUint16(b[2:], f.sport)
	if dir == 1 {
		binary.BigEndian.PutUint16(b[0:], f.sport)
		binary.BigEndian.PutUint16(b[2:], f.cport)
	}
	binary.BigEndian.PutUint32(b[4:], f.seq[dir])
	var a uint32
	if flags&ack != 0 {
		a = f.seq[1-dir]
	}
	binary.BigEndian.PutUint32(b[8:], a)
	b[12] = byte(hl/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 64240-uint16(dir)*1024)
	b[16], b[17], b[18], b[19] = 0, 0, 0, 0
	tsv := f.tsval[dir] + uint32(ts/1000)
	switch hl {
	case 40: // MSS, SACK permitted, timestamps, NOP, window scale
		binary.BigEndian.PutUint32(b[20:], 0x020405b4)
		if f.v6 {
			binary.BigEndian.PutUint32(b[20:], 0x020405a0)
		}
		b[24], b[25], b[26], b[27] = 4, 2, 8, 10
		binary.BigEndian.PutUint32(b[28:], tsv)
		binary.BigEndian.PutUint32(b[32:], 0)
		if dir == 1 {
			binary.BigEndian.PutUint32(b[32:], f.tsval[0]+uint32(ts/1000))
		}
		b[36], b[37], b[38], b[39] = 1, 3, 3, 7
	case 32: // NOP, NOP, timestamps
		b[20], b[21], b[22], b[23] = 1, 1, 8, 10
		binary.BigEndian.PutUint32(b[24:], tsv)
		binary.BigEndian.PutUint32(b[28:], f.tsval[1-dir]+uint32(ts/1000))
	}
	s := sum16(b, pseudo(f, 6, l4len)) + p.sum
	binary.BigEndian.PutUint16(b[16:], fold(s))
	copy(g.buf[off+hl:], p.b)
	f.seq[dir] += uint32(len(p.b))
	if flags&(syn|fin) != 0 {
		f.seq[dir]++
	}
	g.finish(f, dir, off+l4len, ts)
}

// udp writes a UDP datagram in direction dir carrying payload p.
func (g *gen) udp(f *flow, dir int, p seg, ts int64) {
	l4len := 8 + len(p.b)
	off := g.l2l3(f, dir, 17, l4len)
	b := g.buf[off : off+8]
	binary.BigEndian.PutUint16(b[0:], f.cport)
	binary.BigEndian.PutUint16(b[2:], f.sport)
	if dir == 1 {
		binary.BigEndian.PutUint16(b[0:], f.sport)
		binary.BigEndian.PutUint16(b[2:], f.cport)
	}
	binary.BigEndian.PutUint16(b[4:], uint16(l4len))
	b[6], b[7] = 0, 0
	c := fold(sum16(b, pseudo(f, 17, l4len)) + p.sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[6:], c)
	copy(g.buf[off+8:], p.b)
	g.finish(f, dir, off+l4len, ts)
}

// finish pads the frame that ends at buffer offset end, fills in the pcap
// record header and accounts the packet.
func (g *gen) finish(f *flow, dir, end int, ts int64) {
	n := end - 16
	if n < minFrame {
		clear(g.buf[end : 16+minFrame])
		n = minFrame
	}
	g.frame = 16 + n
	abs := g.cfg.Start.UnixMicro() + ts
	binary.LittleEndian.PutUint32(g.buf[0:], uint32(abs/1e6))
	binary.LittleEndian.PutUint32(g.buf[4:], uint32(abs%1e6))
	binary.LittleEndian.PutUint32(g.buf[8:], uint32(n))
	binary.LittleEndian.PutUint32(g.buf[12:], uint32(n))

	if !f.opened {
		f.opened, f.first = true, ts
		g.open++
		g.stats.PeakOpenFlows = max(g.stats.PeakOpenFlows, g.open)
	}
	if f.k == f.n-1 {
		g.open--
	}
	f.last = ts
	f.pkts[dir]++
	f.bytes[dir] += uint64(n)
	st := &g.stats
	st.Packets++
	st.WireBytes += uint64(n)
	if f.v6 {
		st.IPv6Packets++
	}
	if f.vlan != 0 {
		st.VLANPackets++
	}
	if st.MinFrame == 0 || n < st.MinFrame {
		st.MinFrame = n
	}
	st.MaxFrame = max(st.MaxFrame, n)
}

func (g *gen) flush(bw *bufio.Writer) error {
	_, err := bw.Write(g.buf[:g.frame])
	return err
}

// sum16 adds b as big-endian 16-bit words (a last odd byte as the high half) to s.
func sum16(b []byte, s uint64) uint64 {
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint16(b)) + uint64(binary.BigEndian.Uint16(b[2:])) +
			uint64(binary.BigEndian.Uint16(b[4:])) + uint64(binary.BigEndian.Uint16(b[6:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold folds a one's-complement sum to 16 bits and complements it.
func fold(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// seg is a transport payload with its one's-complement sum.
type seg struct {
	b   []byte
	sum uint64
}

// payload builds payloads: slices of one random pattern (whose prefix sums
// are precomputed, so a checksum costs nothing per byte), DNS messages and
// HTTP requests.
type payload struct {
	pat    [1504]byte
	prefix [1505]uint64 // prefix[n] = sum16(pat[:n])
	scr    []byte
}

func (p *payload) init(rng interface{ Uint64() uint64 }) {
	for i := 0; i < len(p.pat); i += 8 {
		binary.LittleEndian.PutUint64(p.pat[i:], rng.Uint64())
	}
	for n := 1; n <= len(p.pat); n++ {
		if n%2 == 0 {
			p.prefix[n] = p.prefix[n-2] + uint64(binary.BigEndian.Uint16(p.pat[n-2:]))
		} else {
			p.prefix[n] = p.prefix[n-1] + uint64(p.pat[n-1])<<8
		}
	}
	p.scr = make([]byte, 0, 512)
}

func (p *payload) pattern(n int) seg { return seg{p.pat[:n], p.prefix[n]} }

func (p *payload) text(b []byte) seg {
	p.scr = b
	return seg{b, sum16(b, 0)}
}

// request is a client's request: an HTTP GET on port 80, else opaque bytes
// of a TLS-like size.
func (p *payload) request(f *flow, rng interface{ IntN(int) int }) seg {
	if f.sport != 80 {
		return p.pattern(60 + rng.IntN(840))
	}
	b := append(p.scr[:0], "GET /o/"...)
	b = strconv.AppendUint(b, uint64(f.name), 10)
	b = append(b, " HTTP/1.1\r\nHost: www."...)
	b = append(b, domains[f.name%uint32(len(domains))]...)
	b = append(b, '.')
	b = append(b, tlds[f.name%uint32(len(tlds))]...)
	b = append(b, "\r\nUser-Agent: trafficgen/1\r\nAccept: */*\r\n\r\n"...)
	return p.text(b)
}

// dnsID appends the DNS message id of f's query.
func dnsID(b []byte, f *flow) []byte {
	return binary.BigEndian.AppendUint16(b, uint16(f.name*2654435761>>16)^f.cport)
}

// qname appends the question: name, type and class.
func (p *payload) qname(b []byte, f *flow) []byte {
	at := len(b)
	b = append(b, 0, 'h')
	b = strconv.AppendUint(b, uint64(f.name), 10)
	b[at] = byte(len(b) - at - 1)
	d := domains[f.name%uint32(len(domains))]
	b = append(b, byte(len(d)))
	b = append(b, d...)
	t := tlds[f.name%uint32(len(tlds))]
	b = append(b, byte(len(t)))
	b = append(b, t...)
	b = append(b, 0)
	qtype := uint16(1)
	if f.aaaa {
		qtype = 28
	}
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1) // class IN
}

// dnsQuery is a recursive query for h<name>.<domain>.<tld>, A or AAAA.
func (p *payload) dnsQuery(f *flow) seg {
	b := dnsID(p.scr[:0], f)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	return p.text(p.qname(b, f))
}

// dnsAnswer answers dnsQuery with one address record.
func (p *payload) dnsAnswer(f *flow) seg {
	b := dnsID(p.scr[:0], f)
	b = append(b, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0) // QR RD RA; one question, one answer
	b = p.qname(b, f)
	b = append(b, 0xc0, 0x0c) // the name at offset 12
	if f.aaaa {
		b = append(b, 0, 28, 0, 1, 0, 0, 0x01, 0x2c, 0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0xff, 0, 0, 0, 0, 0, 0)
		b = binary.BigEndian.AppendUint32(b, f.name)
	} else {
		b = append(b, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 18)
		b = binary.BigEndian.AppendUint16(b, uint16(f.name))
	}
	return p.text(b)
}
