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
