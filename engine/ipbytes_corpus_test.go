package engine

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// ipBytesPcaps are captures the IP-bytes oracle reads without ambiguity
// (no IP fragments): Ethernet padding on short frames (zeek-http-bro.org),
// 802.1Q tags (zeek-vlan-collisions, ndpi-smtp-starttls), PPPoE, IPv6.
// (zeek-erspan, the corpus's tunnel, has fragmented outer GRE packets:
// there a fragment counts its own outer IP length, while tshark without
// reassembly reads the inner header's claim of the whole datagram.)
var ipBytesPcaps = []string{"zeek-http-bro.org.pcap", "zeek-vlan-collisions.pcap",
	"ndpi-smtp-starttls.pcap", "suri-pppoe-session-http.pcap", "ndpi-http_ipv6.pcap", "gopacket-test_dns.pcap"}

// TestCorpusIPBytes replays captures and checks every TCP and UDP
// conversation's IP bytes per direction (the records' IPBytesTx/Rx, summed
// over the conversation's records) against tshark's sums of the innermost
// IP header's length (testcorpus.TsharkIPBytes): not the frame, not the
// Ethernet padding, not the outer header of a tunnel.
func TestCorpusIPBytes(t *testing.T) {
	for _, name := range ipBytesPcaps {
		t.Run(name, func(t *testing.T) {
			path := testcorpus.Path(t, name)
			want := testcorpus.TsharkIPBytes(t, path)
			res := replayFile(t, path, flowtable.Config{})
			if res.err != nil {
				t.Fatal(res.err)
			}
			got := map[testcorpus.Direction]uint64{}
			var frameBytes, ipBytes uint64
			for i := range res.recs {
				r := &res.recs[i]
				if r.Proto != 6 && r.Proto != 17 {
					continue
				}
				src := testcorpus.Endpoint(addr(r.Src, r.IPVersion), r.SrcPort)
				dst := testcorpus.Endpoint(addr(r.Dst, r.IPVersion), r.DstPort)
				got[testcorpus.Direction{Proto: r.Proto, Src: src, Dst: dst}] += r.IPBytesTx
				got[testcorpus.Direction{Proto: r.Proto, Src: dst, Dst: src}] += r.IPBytesRx
				frameBytes += r.BytesTx + r.BytesRx
				ipBytes += r.IPBytesTx + r.IPBytesRx
			}
			for d, n := range want {
				if got[d] != n {
					t.Errorf("%v: %d IP bytes, tshark %d", d, got[d], n)
				}
			}
			for d, n := range got {
				if _, ok := want[d]; !ok && n != 0 {
					t.Errorf("%v: %d IP bytes, a direction tshark does not show", d, n)
				}
			}
			if ipBytes == 0 || ipBytes >= frameBytes {
				t.Errorf("%d IP bytes of %d frame bytes", ipBytes, frameBytes)
			}
			t.Logf("%d directions, %d IP bytes, %d frame bytes", len(want), ipBytes, frameBytes)
		})
	}
}

func addr(a [16]byte, v uint8) netip.Addr {
	if v == 4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(a)
}

// TestCorpusIPBytesFragments: captures with IP fragments (no tunnels), where
// a fragment counts its own IP length in whichever flow its datagram goes
// to. The oracle is tshark without reassembly summing every IP packet's
// length (ICMP included) per address pair and direction; the records' IP
// bytes summed the same way must match.
func TestCorpusIPBytesFragments(t *testing.T) {
	for _, name := range []string{"zeek-ipv4-fragmented-4.pcap", "cs-ip_frag_source.pcapng", "cs-ipv6_fragments.pcapng", "ndpi-dns_fragmented.pcap"} {
		t.Run(name, func(t *testing.T) {
			path := testcorpus.Path(t, name)
			out, err := exec.Command("tshark", "-r", path, "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
				"-T", "fields", "-E", "occurrence=f", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.len",
				"-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.plen").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			type dir struct{ src, dst netip.Addr }
			want := map[dir]uint64{}
			for line := range strings.Lines(string(out)) {
				f := strings.Split(strings.TrimRight(line, "\n"), "\t")
				if len(f) != 6 {
					t.Fatalf("tshark line %q", line)
				}
				switch {
				case f[0] != "":
					want[dir{netip.MustParseAddr(f[0]), netip.MustParseAddr(f[1])}] += uint64(atoi(t, f[2]))
				case f[3] != "":
					want[dir{netip.MustParseAddr(f[3]), netip.MustParseAddr(f[4])}] += uint64(atoi(t, f[5])) + 40
				}
			}
			res := replayFile(t, path, flowtable.Config{})
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.fs.Fragments == 0 {
				t.Fatalf("no fragments seen")
			}
			got := map[dir]uint64{}
			for i := range res.recs {
				r := &res.recs[i]
				s, d := addr(r.Src, r.IPVersion), addr(r.Dst, r.IPVersion)
				got[dir{s, d}] += r.IPBytesTx
				got[dir{d, s}] += r.IPBytesRx
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("%v -> %v: %d IP bytes, tshark %d", k.src, k.dst, got[k], n)
				}
			}
			for k, n := range got {
				if _, ok := want[k]; !ok && n != 0 {
					t.Errorf("%v -> %v: %d IP bytes, tshark shows none", k.src, k.dst, n)
				}
			}
			t.Logf("%d fragments, %d directions", res.fs.Fragments, len(want))
		})
	}
}
