package engine

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/internal/testcorpus"

	"github.com/netsentry/netsentry/flowtable"
)

// The shared corpus of real captures and tshark's tables for each.
var corpusDir = testcorpus.PcapsDir()

var update = flag.Bool("update", false, "regenerate testdata/allowance from tshark")

// collect is a Sink keeping every record.
type collect struct{ recs []flowtable.Record }

func (c *collect) WriteFlows(r []flowtable.Record) error { c.recs = append(c.recs, r...); return nil }
func (c *collect) Close() error                          { return nil }

type replayResult struct {
	recs  []flowtable.Record
	hosts []flowtable.HostCounters
	st    ReplayStats
	c     Counters
	fs    flowtable.Stats
	anom  []flowtable.FragAnomalies
	err   error
}

func replayFile(t testing.TB, path string, cfg flowtable.Config) replayResult {
	t.Helper()
	rf, err := OpenFile(path)
	if err != nil {
		return replayResult{err: err}
	}
	defer rf.Close()
	col := &collect{}
	x := NewExporter(4, true, col)
	sh, err := flowtable.New(cfg, x.Send)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	st, err := Replay(context.Background(), rf, w, ReplayOptions{})
	if cerr := x.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	return replayResult{recs: col.recs, hosts: sh.HostSnapshot(nil), st: st, c: w.Counters(), fs: sh.Stats(),
		anom: sh.FragmentAnomalies(nil), err: err}
}

func corpusFiles(t testing.TB) []string {
	return testcorpus.Files(t, "*.pcap*")
}

type endpoint struct {
	ip   netip.Addr
	port uint16
}

type pairKey struct {
	proto string
	a, b  endpoint // a < b
}

func mkPair(proto string, x, y endpoint) pairKey {
	if y.ip.Less(x.ip) || (y.ip == x.ip && y.port < x.port) {
		x, y = y, x
	}
	return pairKey{proto, x, y}
}

// dirCount is packets and bytes sent by one endpoint of a pair.
type dirCount struct{ pkts, bytes int64 }

// conv sums counters per unordered endpoint pair, per sending endpoint.
type conv map[pairKey]map[endpoint]dirCount

func (c conv) add(k pairKey, from endpoint, pkts, bytes int64) {
	m := c[k]
	if m == nil {
		m = map[endpoint]dirCount{}
		c[k] = m
	}
	d := m[from]
	d.pkts += pkts
	d.bytes += bytes
	m[from] = d
}

func readTSV(t testing.TB, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var head []string
	var rows []map[string]string
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if head == nil {
			head = cols
			continue
		}
		r := map[string]string{}
		for i, h := range head {
			if i < len(cols) {
				r[h] = cols[i]
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func atoi(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("bad number %q: %v", s, err)
	}
	return n
}

func oracleConv(t testing.TB, pcap string) conv {
	c := conv{}
	for _, r := range readTSV(t, filepath.Join(corpusDir, "oracle", filepath.Base(pcap)+".conv_exact.tsv")) {
		a := endpoint{netip.MustParseAddr(r["addr_a"]), uint16(atoi(t, r["port_a"]))}
		b := endpoint{netip.MustParseAddr(r["addr_b"]), uint16(atoi(t, r["port_b"]))}
		k := mkPair(r["proto"], a, b)
		c.add(k, a, atoi(t, r["frames_a_to_b"]), atoi(t, r["bytes_a_to_b"]))
		c.add(k, b, atoi(t, r["frames_b_to_a"]), atoi(t, r["bytes_b_to_a"]))
	}
	return c
}

func ourConv(recs []flowtable.Record) conv {
	c := conv{}
	for i := range recs {
		r := &recs[i]
		var proto string
		switch r.Proto {
		case 6:
			proto = "tcp"
		case 17:
			proto = "udp"
		default:
			continue
		}
		a := endpoint{flowtable.IP(&r.Src, r.IPVersion), r.SrcPort}
		b := endpoint{flowtable.IP(&r.Dst, r.IPVersion), r.DstPort}
		k := mkPair(proto, a, b)
		c.add(k, a, int64(r.PacketsTx), int64(r.BytesTx))
		c.add(k, b, int64(r.PacketsRx), int64(r.BytesRx))
	}
	return c
}

// allowance: frames that tshark keeps out of its conversation tables
// although they belong to one — IP fragments (tshark counts only the frame
// that completes a datagram, and only once it is reassembled, also when the
// fragmented datagram is a tunnel's outer packet) and malformed frames. Keyed
// by every IP address pair in the frame (outer and inner), sender first.
// Generated from tshark into testdata/allowance by -update.
type allowKey struct{ src, dst netip.Addr }

const allowFilter = "ip.flags.mf==1 || ip.frag_offset>0 || ipv6.fraghdr || _ws.malformed || _ws.expert.severity==error || _ws.short"

func allowance(t testing.TB, pcap string) map[allowKey]dirCount {
	golden := filepath.Join("testdata", "allowance", filepath.Base(pcap)+".tsv")
	if *update {
		out, err := exec.Command("tshark", "-n", "-r", pcap, "-Y", allowFilter, "-T", "fields",
			"-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "frame.len").Output()
		if err != nil && len(out) == 0 {
			t.Logf("tshark on %s: %v (the file may be damaged; using what it printed)", pcap, err)
		}
		var b strings.Builder
		b.WriteString("# tshark -Y '" + allowFilter + "' -T fields -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e frame.len\n")
		b.Write(out)
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./engine -run TestCorpusFlows -update with tshark installed)", err)
	}
	allow := map[allowKey]dirCount{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 5 {
			continue
		}
		n := atoi(t, f[4])
		pairs := func(src, dst string) {
			ss, ds := strings.Split(src, ","), strings.Split(dst, ",")
			for i := 0; i < len(ss) && i < len(ds); i++ {
				s, err1 := netip.ParseAddr(ss[i])
				d, err2 := netip.ParseAddr(ds[i])
				if err1 != nil || err2 != nil {
					continue
				}
				a := allow[allowKey{s, d}]
				a.pkts++
				a.bytes += n
				allow[allowKey{s, d}] = a
			}
		}
		pairs(f[0], f[1])
		pairs(f[2], f[3])
	}
	return allow
}

// TestCorpusFlows replays every capture of the corpus and compares the flows
// with tshark's exact conversation table (see COMPARING.md). Rules:
//   - flows are summed per protocol and unordered endpoint pair, over VLANs
//     and over flows that reuse a 4-tuple (tshark's key has neither);
//   - packets and bytes must be equal in each direction, except that we may
//     count more, up to the frames tshark left out of conversations for that
//     IP pair (IP fragments and malformed frames; see allowance), because we
//     attribute every fragment to its flow;
//   - a conversation carried in a tunnel whose outer packets were fragmented
//     may exceed tshark by up to the capture's fragment frames: tshark only
//     sees the inner addresses on the frame that completes the outer
//     datagram, so its per-pair allowance cannot name the other fragments.
func TestCorpusFlows(t *testing.T) {
	for _, pcap := range corpusFiles(t) {
		t.Run(filepath.Base(pcap), func(t *testing.T) {
			res := replayFile(t, pcap, flowtable.Config{})
			if res.err != nil {
				t.Fatalf("replay: %v", res.err)
			}
			want, got := oracleConv(t, pcap), ourConv(res.recs)
			allow := allowance(t, pcap)
			var anyFrag dirCount
			for _, a := range allow {
				anyFrag.pkts += a.pkts
				anyFrag.bytes += a.bytes
			}
			tunnelled := map[pairKey]bool{}
			for k := range ourConv(tunnelRecords(res.recs)) {
				tunnelled[k] = true
			}
			keys := map[pairKey]bool{}
			for k := range want {
				keys[k] = true
			}
			for k := range got {
				keys[k] = true
			}
			bad := 0
			for k := range keys {
				for _, ep := range [2][2]endpoint{{k.a, k.b}, {k.b, k.a}} {
					w, g := want[k][ep[0]], got[k][ep[0]]
					al := allow[allowKey{ep[0].ip, ep[1].ip}]
					if tunnelled[k] {
						al.pkts += anyFrag.pkts
						al.bytes += anyFrag.bytes
					}
					dp, db := g.pkts-w.pkts, g.bytes-w.bytes
					if (dp == 0 && db == 0) || (dp >= 0 && db >= 0 && dp <= al.pkts && db <= al.bytes) {
						continue
					}
					bad++
					t.Errorf("%s %v -> %v: tshark %d pkts %d bytes, netsentry %d pkts %d bytes (fragment/malformed allowance %d/%d)",
						k.proto, ep[0], ep[1], w.pkts, w.bytes, g.pkts, g.bytes, al.pkts, al.bytes)
				}
			}
			if len(want) > 0 && bad == 0 {
				t.Logf("%d/%d conversations match", len(keys), len(keys))
			}
		})
	}
}

func tunnelRecords(recs []flowtable.Record) []flowtable.Record {
	var out []flowtable.Record
	for _, r := range recs {
		if r.Tunnel != 0 {
			out = append(out, r)
		}
	}
	return out
}

// TestCorpusHosts compares the host table with tshark's endpoint table
// (endpoints,ip and endpoints,ipv6: every IP layer of every frame).
func TestCorpusHosts(t *testing.T) {
	for _, pcap := range corpusFiles(t) {
		t.Run(filepath.Base(pcap), func(t *testing.T) {
			res := replayFile(t, pcap, flowtable.Config{})
			if res.err != nil {
				t.Fatalf("replay: %v", res.err)
			}
			got := map[netip.Addr]flowtable.HostCounters{}
			for _, h := range res.hosts {
				got[flowtable.IP(&h.Addr, h.IPVersion)] = h
			}
			rows := readTSV(t, filepath.Join(corpusDir, "oracle", filepath.Base(pcap)+".endpoints_exact.tsv"))
			for _, r := range rows {
				a := netip.MustParseAddr(r["address"])
				h, ok := got[a]
				if !ok {
					t.Errorf("host %v missing (tshark: %s frames)", a, r["frames_total"])
					continue
				}
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
			// The summary's top hosts are tshark's first rows (sorted by total bytes).
			flowtable.SortHosts(res.hosts)
			for i := 0; i < len(rows) && i < 5 && i < len(res.hosts); i++ {
				if rows[i]["bytes_total"] != strconv.FormatUint(res.hosts[i].Bytes(), 10) {
					t.Errorf("top host %d: tshark %s with %s bytes, netsentry %v with %d", i+1, rows[i]["address"], rows[i]["bytes_total"],
						flowtable.IP(&res.hosts[i].Addr, res.hosts[i].IPVersion), res.hosts[i].Bytes())
				}
			}
		})
	}
}

// TestDamagedCaptures: a file cut mid-record or with a corrupt record header
// yields every good packet (the count capinfos reports) and says why it stopped.
func TestDamagedCaptures(t *testing.T) {
	for _, tc := range []struct {
		file    string
		packets uint64
		why     string
	}{
		{"suri-http-mime-truncated.pcap", 2696, "cut short in the middle of a packet record after 2696 good packets"},
		{"suri-smtp-to-comma-corrupt.pcap", 18, "damaged after 18 good packets"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			res := replayFile(t, filepath.Join(corpusDir, tc.file), flowtable.Config{})
			if res.err != nil {
				t.Fatalf("replay returned %v; want the good packets and a stop reason", res.err)
			}
			if res.st.Packets != tc.packets {
				t.Errorf("packets = %d, want %d (capinfos)", res.st.Packets, tc.packets)
			}
			if res.st.Stop == nil || !strings.Contains(res.st.Stop.Error(), tc.why) {
				t.Errorf("stop reason = %v, want it to say %q", res.st.Stop, tc.why)
			}
			var n uint64
			for _, r := range res.recs {
				n += r.PacketsTx + r.PacketsRx
			}
			if n != tc.packets {
				t.Errorf("flows hold %d packets, want all %d", n, tc.packets)
			}
		})
	}
	t.Run("nothing readable", func(t *testing.T) {
		dir := t.TempDir()
		for name, data := range map[string][]byte{"empty": nil, "text": []byte("hello, this is not a capture file\n"), "header-cut": {0xd4, 0xc3, 0xb2, 0xa1, 2, 0}} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenFile(p); err == nil {
				t.Errorf("%s: OpenFile succeeded", name)
			}
		}
	})
}

// TestFragmentsAttributed checks the fragment rule on the captures whose
// contents COMPARING.md spells out: every fragment counts in its flow.
func TestFragmentsAttributed(t *testing.T) {
	res := replayFile(t, filepath.Join(corpusDir, "ndpi-dns_fragmented.pcap"), flowtable.Config{})
	c := ourConv(res.recs)
	k := mkPair("udp", endpoint{netip.MustParseAddr("193.24.227.238"), 53}, endpoint{netip.MustParseAddr("194.247.5.6"), 51791})
	// 2 frames on the wire, 1514 + 292 bytes (COMPARING.md).
	server := endpoint{netip.MustParseAddr("193.24.227.238"), 53}
	if got := c[k][server]; got != (dirCount{2, 1806}) {
		t.Errorf("fragmented DNS answer: got %+v, want 2 packets 1806 bytes", got)
	}
	// zeek-ipv4-fragmented-4: 4 out-of-order fragments of one TCP segment, all in the flow.
	res = replayFile(t, filepath.Join(corpusDir, "zeek-ipv4-fragmented-4.pcap"), flowtable.Config{})
	var total uint64
	for _, r := range res.recs {
		total += r.PacketsTx + r.PacketsRx
	}
	if total != res.st.Packets {
		t.Errorf("flows hold %d of %d packets", total, res.st.Packets)
	}
	if res.fs.FragOrphans != 0 {
		t.Errorf("%d orphan fragments", res.fs.FragOrphans)
	}
}

// TestEveryPacketAccounted: over the whole corpus, each IP packet lands in a
// flow (fragments included) unless it is malformed before its transport
// header; nothing is silently dropped.
func TestEveryPacketAccounted(t *testing.T) {
	for _, pcap := range corpusFiles(t) {
		res := replayFile(t, pcap, flowtable.Config{})
		if res.err != nil {
			continue
		}
		var inFlows uint64
		for _, r := range res.recs {
			inFlows += r.PacketsTx + r.PacketsRx
		}
		// A frame may count in two flows (a UDP tunnel's outer and inner
		// flow) but every well-formed IP frame counts in at least one.
		if inFlows < res.c.Packets-res.c.NonIP-res.c.Malformed() {
			t.Errorf("%s: %d packets, %d non-IP, %d malformed, but flows hold %d", filepath.Base(pcap), res.c.Packets, res.c.NonIP, res.c.Malformed(), inFlows)
		}
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	if _, err := os.Stat(corpusDir); err != nil {
		fmt.Fprintln(os.Stderr, "note: shared corpus not found; corpus tests skip")
	}
	os.Exit(m.Run())
}

func (e endpoint) String() string { return netip.AddrPortFrom(e.ip, e.port).String() }
