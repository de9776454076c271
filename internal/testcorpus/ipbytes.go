package testcorpus

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Direction names one direction of a TCP or UDP conversation: protocol
// (6, 17), sender and receiver as "addr:port" (netip's form of the address).
type Direction struct {
	Proto    uint8
	Src, Dst string
}

// Endpoint returns the "addr:port" form Direction uses.
func Endpoint(a netip.Addr, port uint16) string {
	return net.JoinHostPort(a.Unmap().String(), strconv.Itoa(int(port)))
}

// TsharkIPBytes is the oracle of flow records' IP bytes: tshark's reading
// of the capture at path, summing per direction of each TCP and UDP
// conversation the IP length of the innermost IP header of every frame
// (ip.len; IPv6: ipv6.plen + 40), the header the transport header comes
// from, so a tunnelled frame counts its inner packet. Frames that carry
// ICMP (whose quoted headers would name another conversation) and frames
// with no TCP or UDP header are left out; so is reassembly (each frame
// counts its own header). A capture with an IP fragment is not one this
// oracle reads without ambiguity: the test fails.
func TsharkIPBytes(t testing.TB, path string) map[Direction]uint64 {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatalf("needs tshark (make deps installs it): %v", err)
	}
	cmd := exec.Command("tshark", "-r", path, "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
		"-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=/t",
		"-e", "frame.number", "-e", "frame.protocols",
		"-e", "ip.src", "-e", "ip.dst", "-e", "ip.len", "-e", "ip.flags.mf", "-e", "ip.frag_offset",
		"-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ipv6.plen", "-e", "ipv6.fraghdr.nxt",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", path, err, stderr.String())
	}
	sums := map[Direction]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 15 {
			t.Fatalf("tshark %s: line %q has %d fields, want 15", path, sc.Text(), len(f))
		}
		// Any IP header of the frame fragmented (an outer one too) makes it
		// ambiguous; of the others, the last occurrence is the innermost.
		frag := f[10] != ""
		for _, v := range strings.Split(f[5], ",") {
			frag = frag || v == "1" || v == "True"
		}
		for _, v := range strings.Split(f[6], ",") {
			frag = frag || v != "" && v != "0"
		}
		if frag {
			t.Fatalf("tshark %s frame %s: an IP fragment: not an unambiguous capture for this oracle", path, f[0])
		}
		for i := range f {
			f[i] = f[i][strings.LastIndexByte(f[i], ',')+1:]
		}
		protos := ":" + f[1] + ":"
		if strings.Contains(protos, ":icmp:") || strings.Contains(protos, ":icmpv6:") {
			continue
		}
		var d Direction
		var sp, dp string
		switch {
		case strings.Contains(protos, ":tcp:") && f[11] != "":
			d.Proto, sp, dp = 6, f[11], f[12]
		case strings.Contains(protos, ":udp:") && f[13] != "":
			d.Proto, sp, dp = 17, f[13], f[14]
		default:
			continue
		}
		// The innermost IP header is the last of the protocol chain.
		v4, v6 := strings.LastIndex(protos, ":ip:"), strings.LastIndex(protos, ":ipv6:")
		var src, dst string
		var n uint64
		switch {
		case v4 > v6 && f[2] != "":
			src, dst, n = f[2], f[3], atou(t, f[4])
		case v6 > v4 && f[7] != "":
			src, dst, n = f[7], f[8], atou(t, f[9])+40
		default:
			t.Fatalf("tshark %s frame %s: no IP header in %s", path, f[0], f[1])
		}
		d.Src, d.Dst = endpoint(t, src, sp), endpoint(t, dst, dp)
		sums[d] += n
	}
	if len(sums) == 0 {
		t.Fatalf("tshark %s: no TCP or UDP frame", path)
	}
	return sums
}

func atou(t testing.TB, s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("tshark: %q is not a number", s)
	}
	return n
}

func endpoint(t testing.TB, ip, port string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("tshark: address %q: %v", ip, err)
	}
	return Endpoint(a, uint16(atou(t, port)))
}
