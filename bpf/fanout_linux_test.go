package bpf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/internal/testcorpus"

	"github.com/cilium/ebpf/rlimit"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var corpusDir = testcorpus.PcapsDir()

// maxTestFrame keeps test frames under BPF_PROG_TEST_RUN's one-page limit;
// the headers the program reads are all in front.
const maxTestFrame = 3000

func loadForTest(t *testing.T, n int) *Fanout {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading eBPF programs needs root")
	}
	rlimit.RemoveMemlock()
	f, err := LoadFanout(n)
	if err != nil {
		t.Fatalf("LoadFanout: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// frame is one Ethernet record of a capture, with the connection gopacket
// (the independent decoder) finds in it.
type frame struct {
	data []byte
	conn string // direction-free connection key; "" when not IP
	// fragment: "" not fragmented, else the datagram's key; first tells
	// whether it is the fragment at offset 0.
	frag  string
	first bool
}

func readFrames(t *testing.T, path string) []frame {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var src gopacket.PacketDataSource
	if r, err := pcapgo.NewReader(fh); err == nil {
		if r.LinkType() != layers.LinkTypeEthernet {
			return nil
		}
		src = r
	} else {
		fh.Seek(0, io.SeekStart)
		r, err := pcapgo.NewNgReader(fh, pcapgo.DefaultNgReaderOptions)
		if err != nil || r.LinkType() != layers.LinkTypeEthernet {
			return nil
		}
		src = r
	}
	var out []frame
	for {
		data, _, err := src.ReadPacketData()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Logf("%s: %v (keeping %d frames)", filepath.Base(path), err, len(out))
			}
			break
		}
		if len(data) < 14 {
			continue
		}
		out = append(out, describe(data))
	}
	return out
}

func sorted(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return a + "|" + b
}

// describe finds the outermost IP layer and what follows it, as the
// program must: VLAN/QinQ, PPPoE and MPLS are looked through, tunnels are
// not (GRE frames are one connection between the tunnel's ends).
func describe(data []byte) frame {
	f := frame{data: data[:min(len(data), maxTestFrame)]}
	p := gopacket.NewPacket(data, layers.LinkTypeEthernet, gopacket.Default)
	var src, dst, proto string
	var id uint32
	frag, first := false, false
	ls := p.Layers()
	i := 0
	for ; i < len(ls); i++ {
		switch l := ls[i].(type) {
		case *layers.IPv4:
			src, dst, proto = l.SrcIP.String(), l.DstIP.String(), l.Protocol.String()
			id = uint32(l.Id)
			if l.Flags&layers.IPv4MoreFragments != 0 || l.FragOffset != 0 {
				frag, first = true, l.FragOffset == 0
			}
		case *layers.IPv6:
			src, dst, proto = l.SrcIP.String(), l.DstIP.String(), l.NextHeader.String()
			for j := i + 1; j < len(ls); j++ {
				if fr, ok := ls[j].(*layers.IPv6Fragment); ok {
					frag, first, id = true, fr.FragmentOffset == 0, fr.Identification
				}
			}
		default:
			continue
		}
		break
	}
	if src == "" {
		return f
	}
	sp, dp := "", ""
	for _, l := range ls[i+1:] {
		switch l := l.(type) {
		case *layers.IPv6HopByHop, *layers.IPv6Destination, *layers.IPv6Routing, *layers.IPv6Fragment:
			continue
		case *layers.TCP:
			sp, dp, proto = fmt.Sprint(uint16(l.SrcPort)), fmt.Sprint(uint16(l.DstPort)), "tcp"
		case *layers.UDP:
			sp, dp, proto = fmt.Sprint(uint16(l.SrcPort)), fmt.Sprint(uint16(l.DstPort)), "udp"
			if tunnelPort(uint16(l.SrcPort)) || tunnelPort(uint16(l.DstPort)) {
				sp, dp = "", ""
			}
		case *layers.SCTP:
			sp, dp, proto = fmt.Sprint(uint16(l.SrcPort)), fmt.Sprint(uint16(l.DstPort)), "sctp"
		}
		break
	}
	if frag && first && sp == "" {
		// gopacket does not decode the transport header of a first
		// fragment; its ports are the first 4 bytes of the IP payload.
		if ip, ok := ls[i].(*layers.IPv4); ok && len(ip.Payload) >= 4 && (proto == "TCP" || proto == "UDP") {
			sp = fmt.Sprint(uint16(ip.Payload[0])<<8 | uint16(ip.Payload[1]))
			dp = fmt.Sprint(uint16(ip.Payload[2])<<8 | uint16(ip.Payload[3]))
			proto = strings.ToLower(proto)
		}
	}
	if sp == "" && (proto == "TCP" || proto == "UDP" || proto == "SCTP") {
		return f // transport header broken (ndpi-badpackets): gopacket has no ports to compare with
	}
	f.conn = proto + " " + sorted(src+" "+sp, dst+" "+dp)
	if frag {
		f.frag = fmt.Sprintf("%s>%s#%d", src, dst, id)
		f.first = first
		if !first {
			f.conn = "" // a later fragment has no ports: it follows its first fragment
		}
	}
	return f
}

func tunnelPort(p uint16) bool { return p == 4789 || p == 6081 || p == 2152 }

// TestFanoutSymmetric runs the program on every Ethernet frame of the
// corpus: all frames of a connection, both directions, get one queue, and a
// fragmented datagram's later fragments get its first fragment's queue.
func TestFanoutSymmetric(t *testing.T) {
	const n = 4
	fo := loadForTest(t, n)
	files := testcorpus.Files(t, "*.pcap*")
	perQueue := make([]int, n)
	conns, frags := 0, 0
	for _, path := range files {
		frames := readFrames(t, path)
		queueOf := map[string]int{}
		fragQueue := map[string]int{}
		for _, f := range frames {
			q, err := fo.Queue(f.data)
			if err != nil {
				t.Fatalf("%s: %v", filepath.Base(path), err)
			}
			if q < 0 || q >= n {
				t.Fatalf("%s: queue %d of %d", filepath.Base(path), q, n)
			}
			if f.frag != "" {
				frags++
				if f.first {
					fragQueue[f.frag] = q
				} else if fq, ok := fragQueue[f.frag]; ok && fq != q {
					t.Errorf("%s: fragment of %s on queue %d, its first fragment on %d", filepath.Base(path), f.frag, q, fq)
				}
			}
			if f.conn == "" {
				continue
			}
			if cq, ok := queueOf[f.conn]; ok {
				if cq != q {
					t.Errorf("%s: %s on queues %d and %d", filepath.Base(path), f.conn, cq, q)
				}
				continue
			}
			queueOf[f.conn] = q
			perQueue[q]++
			conns++
		}
	}
	t.Logf("%d connections over %d queues: %v; %d fragments", conns, n, perQueue, frags)
	for q, c := range perQueue {
		if c < conns/n/2 {
			t.Errorf("queue %d has %d of %d connections: the hash does not spread", q, c, conns)
		}
	}
	if frags == 0 {
		t.Error("the corpus gave no fragment to test")
	}
}

// TestFanoutFragmentsWithoutFirst: later fragments whose first fragment was
// never seen hash on the addresses only, so they still stay together.
func TestFanoutFragmentsWithoutFirst(t *testing.T) {
	fo := loadForTest(t, 8)
	frames := readFrames(t, filepath.Join(corpusDir, "cs-ipv6_fragments.pcapng"))
	frames = append(frames, readFrames(t, filepath.Join(corpusDir, "cs-ip_frag_source.pcapng"))...)
	byPair := map[string]int{}
	n := 0
	for _, f := range frames {
		if f.frag == "" || f.first {
			continue
		}
		q, err := fo.Queue(f.data)
		if err != nil {
			t.Fatal(err)
		}
		n++
		// The datagram key without the id: the address pair.
		pair := f.frag[:len(f.frag)-len(fmt.Sprint(f.frag[lastHash(f.frag):]))]
		if pq, ok := byPair[pair]; ok && pq != q {
			t.Errorf("fragments of %s on queues %d and %d", pair, pq, q)
		}
		byPair[pair] = q
	}
	if n == 0 {
		t.Fatal("no later fragment in the test captures")
	}
}

func lastHash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '#' {
			return i
		}
	}
	return len(s)
}

// TestFanoutFirstFragmentFollowsLater: when a later fragment comes before
// its first fragment (out of order), the first fragment takes the later
// one's queue, so that the whole datagram reaches one flow table; the next
// fragments of the datagram follow too.
func TestFanoutFirstFragmentFollowsLater(t *testing.T) {
	fo := loadForTest(t, 8)
	ipFrame := func(id uint16, off int, mf bool, sport uint16, payload int) []byte {
		f := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0}
		h := []byte{0x45, 0, 0, 0, byte(id >> 8), byte(id), 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2}
		total := 20 + payload
		h[2], h[3] = byte(total>>8), byte(total)
		fv := uint16(off / 8)
		if mf {
			fv |= 0x2000
		}
		h[6], h[7] = byte(fv>>8), byte(fv)
		body := make([]byte, payload)
		if off == 0 {
			body[0], body[1], body[2], body[3] = byte(sport>>8), byte(sport), 0, 80
		}
		return append(append(f, h...), body...)
	}
	differ := 0
	for i := uint16(0); i < 64; i++ {
		sport := 40000 + i
		plain, err := fo.Queue(ipFrame(0x100+i, 0, false, sport, 20)) // the connection's own queue
		if err != nil {
			t.Fatal(err)
		}
		id := 0x200 + i
		ql, err := fo.Queue(ipFrame(id, 64, false, 0, 16)) // last fragment first
		if err != nil {
			t.Fatal(err)
		}
		qf, err := fo.Queue(ipFrame(id, 0, true, sport, 8)) // then the tiny first one
		if err != nil {
			t.Fatal(err)
		}
		qm, err := fo.Queue(ipFrame(id, 8, true, 0, 56)) // then the middle
		if err != nil {
			t.Fatal(err)
		}
		if qf != ql || qm != ql {
			t.Errorf("datagram %#x: last fragment on queue %d, first on %d, middle on %d", id, ql, qf, qm)
		}
		if plain != ql {
			differ++
		}
		// In order, the datagram goes with its connection.
		id = 0x300 + i
		qf, _ = fo.Queue(ipFrame(id, 0, true, sport, 8))
		ql, _ = fo.Queue(ipFrame(id, 8, false, 0, 16))
		if qf != plain || ql != plain {
			t.Errorf("in-order datagram %#x: first on %d, last on %d, connection on %d", id, qf, ql, plain)
		}
		// A second first fragment naming other ports follows the first copy.
		id = 0x400 + i
		qf, _ = fo.Queue(ipFrame(id, 0, true, sport, 24))
		q2, _ := fo.Queue(ipFrame(id, 0, true, sport+1000, 24))
		ql, _ = fo.Queue(ipFrame(id, 24, false, 0, 16))
		if q2 != qf || ql != qf {
			t.Errorf("datagram %#x: first copy on %d, second on %d, last on %d", id, qf, q2, ql)
		}
	}
	if differ == 0 {
		t.Error("no connection hashed apart from its address pair: the test shows nothing")
	}
}
