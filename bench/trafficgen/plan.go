package trafficgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

type kind uint8

const (
	kindTCP kind = iota
	kindUDP      // bulk UDP: QUIC-like or RTP-like
	kindDNS      // one query, one answer
)

// Smallest flows, in packets: handshake 3 + request 1 + response 1 + FIN 4,
// or + RST 1; a DNS query and answer; a UDP request and three more.
const (
	minTCPFin = 9
	minTCPRst = 6
	minDNS    = 2
	minUDP    = 4
	maxFlows  = 1 << 24 // client and server address spaces are sized for this
)

// Zipf-Mandelbrot law of flow sizes: size(rank) ~ C / (rank + zipfQ)^zipfS,
// never below the flow kind's minimum.
const (
	zipfS = 1.1
	zipfQ = 8.0
)

// Shares of flows by kind, and of TCP flows that end with a RST.
const (
	shareDNS = 0.35
	shareUDP = 0.07
	shareRST = 0.12
	shareUp  = 0.10 // TCP flows where the client sends the data (uploads)
	shareV6  = 0.15
	shareTag = 0.10
)

// Golden-ratio steps: consecutive flows by size get well-spread values, so
// the shares of IPv6 and VLAN hold for packets as well as for flows.
const (
	stepV6  = 0.6180339887498949
	stepTag = 0.7548776662466927
)

var vlanIDs = [...]uint16{10, 20, 30, 100, 101, 200, 3001}

// flow is one flow's plan and its state while it is written.
type flow struct {
	next  int64 // µs since the start: time of the next packet
	first int64
	last  int64
	n, k  int32 // packets in all, packets written
	cycle int32 // TCP: middle packets per request/response cycle
	rtt   int32 // µs
	gap   int32 // µs between back-to-back segments

	kind         kind
	v6           bool
	rst          bool
	upload       bool // TCP: the client sends the bulk
	closerServer bool // TCP: the server sends the first FIN (or the RST)
	quic         bool // UDP bulk: QUIC-like (else RTP-like)
	aaaa         bool // DNS: asks for AAAA

	vlan   uint16
	cport  uint16
	sport  uint16
	cidx   uint32
	caddr  [16]byte
	saddr  [16]byte
	label  uint32 // IPv6 flow label
	name   uint32 // DNS name / HTTP object index
	seq    [2]uint32
	tsval  [2]uint32
	ipid   [2]uint16
	ttl    [2]uint8
	pkts   [2]int32
	bytes  [2]uint64
	opened bool
}

type gen struct {
	cfg   Config
	rng   *rand.Rand
	flows []flow
	heap  []int32
	pay   payload
	buf   []byte
	now   int64 // µs of the last packet written
	stats Truth
	open  int

	firstTS int64 // µs of the first packet
	frame   int   // bytes of g.buf that hold the current record
}

func newGen(cfg Config) *gen {
	return &gen{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e657473656e7472)),
		buf: make([]byte, 16+1518),
	}
}

// plan decides every flow's kind, size, endpoints and timing.
func (g *gen) plan() error {
	n := g.cfg.Flows
	g.flows = make([]flow, n)
	fs := g.flows
	minSum := 0
	for i := range fs {
		f := &fs[i]
		u := g.rng.Float64()
		switch {
		case i == 0 || u >= shareDNS+shareUDP:
			f.kind = kindTCP
			f.rst = g.rng.Float64() < shareRST
			f.n = minTCPFin
			if f.rst {
				f.n = minTCPRst
			}
		case u < shareDNS:
			f.kind, f.n = kindDNS, minDNS
		default:
			f.kind, f.n = kindUDP, minUDP
		}
		minSum += int(f.n)
	}
	if minSum > g.cfg.Packets {
		return fmt.Errorf("%d flows need at least %d packets, have %d (raise -packets or lower -flows): %w",
			n, minSum, g.cfg.Packets, ErrTooFewPackets)
	}
	g.sizes()

	// Spread IPv6 and VLAN tags over flows taken largest first.
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return int(fs[b].n - fs[a].n) })
	for p, i := range order {
		f := &fs[i]
		x := float64(p + 1)
		_, fr := math.Modf(x * stepV6)
		f.v6 = fr < shareV6
		_, fr = math.Modf(x * stepTag)
		if fr < shareTag {
			f.vlan = vlanIDs[g.rng.IntN(len(vlanIDs))]
		}
	}

	nClients := max(1, (n+4)/5)
	nServers := max(16, n/40)
	// Flows start uniformly over a window of 30 µs per packet (30 s for a
	// million), at least 10 s.
	window := max(int64(10*time.Second/time.Microsecond), int64(g.cfg.Packets)*30)
	for i := range fs {
		g.endpoints(&fs[i], uint32(i), nClients, nServers)
		g.timing(&fs[i])
		fs[i].next = g.rng.Int64N(window)
	}
	return nil
}

// sizes spreads the packets left after every flow's minimum over the
// non-DNS flows by a Zipf-Mandelbrot law of a random rank, so that the flows
// hold exactly cfg.Packets packets.
func (g *gen) sizes() {
	fs := g.flows
	var idx []int32
	budget := g.cfg.Packets
	for i := range fs {
		if fs[i].kind == kindDNS {
			budget -= int(fs[i].n)
		} else {
			idx = append(idx, int32(i))
		}
	}
	g.rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
	w := make([]float64, len(idx))
	for r := range w {
		w[r] = math.Pow(float64(r)+zipfQ, -zipfS)
	}
	total := func(c float64) int {
		s := 0
		for r, i := range idx {
			s += max(int(fs[i].n), int(c*w[r]))
		}
		return s
	}
	lo, hi := 0.0, float64(budget)/w[0]
	for range 100 {
		mid := (lo + hi) / 2
		if total(mid) <= budget {
			lo = mid
		} else {
			hi = mid
		}
	}
	left := budget
	for r, i := range idx {
		fs[i].n = int32(max(int(fs[i].n), int(lo*w[r])))
		left -= int(fs[i].n)
	}
	for r := 0; left > 0; r = (r + 1) % len(idx) {
		fs[idx[r]].n++
		left--
	}
}

// endpoints chooses addresses and ports. Client i%nClients uses a port from
// the block i/nClients of the ephemeral range, so every flow's (client,
// client port) pair, and so its 5-tuple, is unique.
func (g *gen) endpoints(f *flow, i uint32, nClients, nServers int) {
	c := i % uint32(nClients)
	block := i / uint32(nClients)
	f.cidx = c
	f.cport = uint16(32768 + block*5000 + uint32(g.rng.IntN(5000))) // block <= 4
	s := uint32(float64(nServers) * math.Pow(g.rng.Float64(), 3))   // popular servers first
	if f.v6 {
		copy(f.caddr[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01})
		putU32(f.caddr[12:], c+1)
		copy(f.saddr[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0xff})
		putU32(f.saddr[12:], s+1)
	} else {
		// 10.0.0.0/8, never .0 or .255 in the last octet.
		putU32(f.caddr[:], 10<<24|(c/254)<<8|(c%254+1))
		// 198.18.0.0/15 (RFC 2544, benchmarking).
		putU32(f.saddr[:], (198<<24|18<<16)+s+1)
	}
	switch f.kind {
	case kindDNS:
		r := uint32(g.rng.IntN(4))
		if f.v6 {
			f.saddr = [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x53}
			f.saddr[15] = byte(r + 1)
		} else {
			f.saddr = [16]byte{}
			putU32(f.saddr[:], 198<<24|19<<16|53<<8|(r+1))
		}
		f.sport = 53
		f.aaaa = g.rng.IntN(3) == 0
	case kindUDP:
		f.quic = g.rng.Float64() < 0.6
		f.sport = 443
		if !f.quic {
			f.sport = uint16(16384 + 2*g.rng.IntN(8000))
		}
	default:
		switch u := g.rng.Float64(); {
		case u < 0.60:
			f.sport = 443
		case u < 0.85:
			f.sport = 80
		case u < 0.90:
			f.sport = 22
		case u < 0.95:
			f.sport = 993
		default:
			f.sport = 8443
		}
		f.upload = g.rng.Float64() < shareUp
		f.closerServer = g.rng.IntN(2) == 0
	}
	f.name = g.rng.Uint32N(1 << 20)
	f.label = g.rng.Uint32() & 0xfffff
	f.seq = [2]uint32{g.rng.Uint32(), g.rng.Uint32()}
	f.tsval = [2]uint32{g.rng.Uint32(), g.rng.Uint32()}
	f.ipid = [2]uint16{uint16(g.rng.Uint32()), uint16(g.rng.Uint32())}
	f.ttl[0] = 64
	if c%3 == 0 {
		f.ttl[0] = 128
	}
	f.ttl[1] = uint8(64 - 4 - g.rng.IntN(16))
	if s%2 == 1 {
		f.ttl[1] += 64
	}
}

// timing chooses the round-trip time, the segment spacing and, for TCP, the
// request/response cycles.
func (g *gen) timing(f *flow) {
	// Round trip 0.3..150 ms, log-uniform; a resolver is close by.
	f.rtt = int32(300 * math.Exp(g.rng.Float64()*math.Log(500)))
	if f.kind == kindDNS {
		f.rtt = int32(1000 + g.rng.IntN(40000))
	}
	// Bottleneck 2..1000 Mbit/s: a full frame every 12 µs .. 6 ms.
	mbps := 2 * math.Exp(g.rng.Float64()*math.Log(500))
	f.gap = int32(max(12, 1514*8/mbps))
	if f.kind == kindTCP {
		t := int32(4)
		if f.rst {
			t = 1
		}
		mid := f.n - 3 - t
		cycles := min(1+int32(g.rng.ExpFloat64()*1.5), 8, mid/2)
		f.cycle = max(2, (mid+cycles-1)/cycles)
	}
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// truth turns the written flows into the caller's Truth.
func (g *gen) truth() *Truth {
	t := g.stats
	t.Flows = len(g.flows)
	t.FlowList = make([]Flow, len(g.flows))
	start := g.cfg.Start
	at := func(us int64) time.Time { return start.Add(time.Duration(us) * time.Microsecond) }
	for i := range g.flows {
		f := &g.flows[i]
		o := &t.FlowList[i]
		o.Proto = 17
		switch {
		case f.kind == kindTCP && f.rst:
			o.Proto, o.End = 6, "rst"
			t.TCPFlows++
			t.RSTFlows++
		case f.kind == kindTCP:
			o.Proto, o.End = 6, "fin"
			t.TCPFlows++
		case f.kind == kindDNS:
			t.UDPFlows++
			t.DNSFlows++
		default:
			t.UDPFlows++
		}
		o.Client = netip.AddrPortFrom(addr(f.caddr, f.v6), f.cport)
		o.Server = netip.AddrPortFrom(addr(f.saddr, f.v6), f.sport)
		o.VLAN = f.vlan
		o.Packets = [2]int{int(f.pkts[0]), int(f.pkts[1])}
		o.Bytes = f.bytes
		o.First, o.Last = at(f.first), at(f.last)
		t.MaxFlowPackets = max(t.MaxFlowPackets, int(f.n))
	}
	if t.Packets > 0 {
		t.First, t.Last = at(g.firstTS), at(g.now)
	}
	return &t
}

func addr(b [16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}
