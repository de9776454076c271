package trafficgen

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tsharkFields are read from every frame, first occurrence only.
var tsharkFields = []string{
	"frame.len", "frame.time_delta", "vlan.id",
	"ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
	"tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
	"ip.checksum.status", "tcp.checksum.status", "udp.checksum.status", "_ws.malformed",
}

type convKey struct {
	proto          uint8
	client, server netip.AddrPort
}

// TestTraceMatchesTshark writes a small trace and checks with tshark, an
// independent reader, that it holds exactly the flows, packets and bytes the
// generator says it wrote, with valid checksums and increasing timestamps.
func TestTraceMatchesTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed: run make deps")
	}
	path := filepath.Join(t.TempDir(), "trace.pcap")
	truth, err := WriteFile(path, Config{Packets: 20_000, Flows: 1_500, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if truth.Packets != 20_000 || truth.Flows != 1_500 || len(truth.FlowList) != 1_500 {
		t.Fatalf("truth says %d packets, %d flows (%d listed); want 20000 and 1500", truth.Packets, truth.Flows, len(truth.FlowList))
	}
	args := []string{"-n", "-r", path,
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}

	want := map[convKey]*Flow{}
	for i := range truth.FlowList {
		f := &truth.FlowList[i]
		want[convKey{f.Proto, f.Client, f.Server}] = f
	}
	type counts struct {
		pkts  [2]int
		bytes [2]uint64
	}
	got := map[convKey]*counts{}
	var frames, vlanFrames, v6Frames int
	var wire uint64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		frames++
		c := strings.Split(sc.Text(), "\t")
		if len(c) != len(tsharkFields) {
			t.Fatalf("frame %d: %d fields, want %d: %q", frames, len(c), len(tsharkFields), sc.Text())
		}
		n, err := strconv.Atoi(c[0])
		if err != nil {
			t.Fatalf("frame %d: frame.len %q: %v", frames, c[0], err)
		}
		wire += uint64(n)
		if d, err := strconv.ParseFloat(c[1], 64); err != nil || frames > 1 && d <= 0 {
			t.Errorf("frame %d: time delta %q: timestamps must increase", frames, c[1])
		}
		for i, name := range []string{"ip", "tcp", "udp"} {
			if s := c[11+i]; s != "" && s != "1" {
				t.Errorf("frame %d: %s checksum status %s, want 1 (good)", frames, name, s)
			}
		}
		if c[14] != "" {
			t.Errorf("frame %d: tshark says malformed", frames)
		}
		src, dst := c[3], c[5]
		if src == "" {
			src, dst = c[4], c[6]
			v6Frames++
		}
		var proto uint8 = 6
		sp, dp := c[7], c[8]
		if sp == "" {
			proto, sp, dp = 17, c[9], c[10]
		}
		s, err1 := netip.ParseAddrPort(joinHostPort(src, sp))
		d, err2 := netip.ParseAddrPort(joinHostPort(dst, dp))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("frame %d: %v", frames, err)
		}
		k, dir := convKey{proto, s, d}, ToServer
		if want[k] == nil {
			k, dir = convKey{proto, d, s}, ToClient
		}
		f := want[k]
		if f == nil {
			t.Fatalf("frame %d: %d %v -> %v belongs to no flow the generator wrote", frames, proto, s, d)
		}
		if c[2] != "" {
			vlanFrames++
		}
		if vid := strconv.Itoa(int(f.VLAN)); c[2] != vid && !(f.VLAN == 0 && c[2] == "") {
			t.Errorf("frame %d: VLAN %q, flow has %d", frames, c[2], f.VLAN)
		}
		g := got[k]
		if g == nil {
			g = &counts{}
			got[k] = g
		}
		g.pkts[dir]++
		g.bytes[dir] += uint64(n)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("tshark: %d frames, %d bytes, %d conversations, %d VLAN and %d IPv6 frames", frames, wire, len(got), vlanFrames, v6Frames)
	if frames != truth.Packets || wire != truth.WireBytes {
		t.Errorf("tshark: %d frames, %d bytes; truth: %d, %d", frames, wire, truth.Packets, truth.WireBytes)
	}
	if vlanFrames != truth.VLANPackets || v6Frames != truth.IPv6Packets {
		t.Errorf("tshark: %d VLAN frames, %d IPv6; truth: %d, %d", vlanFrames, v6Frames, truth.VLANPackets, truth.IPv6Packets)
	}
	if len(got) != truth.Flows {
		t.Errorf("tshark sees %d conversations, truth %d", len(got), truth.Flows)
	}
	bad := 0
	for k, f := range want {
		g := got[k]
		if g == nil {
			g = &counts{}
		}
		if g.pkts != f.Packets || g.bytes != f.Bytes {
			if bad++; bad <= 10 {
				t.Errorf("flow %d %v -> %v: tshark packets %v bytes %v; truth %v %v", k.proto, k.client, k.server, g.pkts, g.bytes, f.Packets, f.Bytes)
			}
		}
	}
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func TestDeterministic(t *testing.T) {
	gen := func(seed uint64) ([]byte, *Truth) {
		var b bytes.Buffer
		tr, err := Generate(&b, Config{Packets: 5000, Flows: 400, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), tr
	}
	a, ta := gen(3)
	b, tb := gen(3)
	c, _ := gen(4)
	if !bytes.Equal(a, b) || ta.String() != tb.String() {
		t.Error("the same seed gave different traces")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same trace")
	}
	if int64(len(a)) != ta.FileBytes || uint64(len(a)) != 24+16*uint64(ta.Packets)+ta.WireBytes {
		t.Errorf("file is %d bytes; truth says %d file bytes, %d packets, %d wire bytes", len(a), ta.FileBytes, ta.Packets, ta.WireBytes)
	}
}

// TestShape checks the mix the benchmark relies on at a tenth of its size.
func TestShape(t *testing.T) {
	tr, err := Generate(io.Discard, Config{Packets: 200_000, Flows: 20_000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(tr)
	v6, tag := pct(tr.IPv6Packets, tr.Packets), pct(tr.VLANPackets, tr.Packets)
	if v6 < 12 || v6 > 18 || tag < 8 || tag > 12 {
		t.Errorf("%.1f%% IPv6 and %.1f%% VLAN packets, want about 15 and 10", v6, tag)
	}
	if tr.MinFrame < 60 || tr.MaxFrame > 1518 || tr.MaxFrame < 1514 {
		t.Errorf("frames %d..%d, want within 60..1518 and reaching full size", tr.MinFrame, tr.MaxFrame)
	}
	if tr.RSTFlows == 0 || tr.DNSFlows == 0 || tr.UDPFlows == tr.DNSFlows || tr.TCPFlows+tr.UDPFlows != tr.Flows {
		t.Errorf("flow mix: %v", tr)
	}
	if tr.PeakOpenFlows < 1000 {
		t.Errorf("peak %d open flows, want many interleaved", tr.PeakOpenFlows)
	}
	// Zipf-like: the largest 1 % of flows carry a large share; the median flow is small.
	sizes := make([]int, len(tr.FlowList))
	sum := 0
	for i, f := range tr.FlowList {
		sizes[i] = f.Packets[0] + f.Packets[1]
		sum += sizes[i]
	}
	slices.Sort(sizes)
	slices.Reverse(sizes)
	top := 0
	for _, n := range sizes[:len(sizes)/100] {
		top += n
	}
	if sum != tr.Packets || pct(top, sum) < 20 || sizes[len(sizes)/2] > 12 {
		t.Errorf("sizes: %d packets in flows (truth %d), top 1%% carry %.1f%%, median %d", sum, tr.Packets, pct(top, sum), sizes[len(sizes)/2])
	}
}

func TestTooFewPackets(t *testing.T) {
	_, err := Generate(io.Discard, Config{Packets: 100, Flows: 100})
	if !errors.Is(err, ErrTooFewPackets) {
		t.Fatalf("err = %v, want ErrTooFewPackets", err)
	}
}
