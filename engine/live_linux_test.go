//go:build linux

package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netsentry/netsentry/internal/testcorpus"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
)

// These tests capture for real: each builds its own network namespace with a
// veth pair (s0 sends, c0 captures), replays captures of the shared corpus
// into s0 with tcpreplay and captures on c0. They need root and skip
// without it.

func needLive(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live capture tests need root (network namespaces, AF_PACKET)")
	}
	for _, tool := range []string{"ip", "tcpreplay"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("live capture tests need %s: %v", tool, err)
		}
	}
}

var netSeq atomic.Int32

// testNet is a namespace holding a veth pair: frames sent on s0 arrive on c0.
type testNet struct{ ns string }

// newTestNet creates the namespace and pair; t.Cleanup removes them, also
// when the test fails. The MTU is the largest veth takes, so the corpus's
// large (offloaded) frames pass; IPv6 is off so the kernel sends nothing of
// its own.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	tn := &testNet{ns: fmt.Sprintf("nslive%d-%d", os.Getpid(), netSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", tn.ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", tn.ns).Run() })
	tn.run(t, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	for _, i := range []string{"s0", "c0"} {
		tn.run(t, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		tn.run(t, "ip", "link", "set", i, "mtu", "65521", "up")
	}
	return tn
}

func (tn *testNet) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", tn.ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// replay sends the captured bytes of every record of file on s0 at a paced
// rate and returns how many frames were sent. Damaged files send their good
// records, as tcpreplay reads them.
func (tn *testNet) replay(t *testing.T, pps int, file string) {
	t.Helper()
	args := []string{"netns", "exec", tn.ns, "tcpreplay", "-q", "-i", "s0"}
	if pps > 0 {
		args = append(args, fmt.Sprintf("--pps=%d", pps))
	} else {
		args = append(args, "--topspeed")
	}
	exec.Command("ip", append(args, file)...).Run() // damaged files end with an error after their good records
}

// inNetns runs f on a thread that is in the namespace, so that the sockets
// f opens live there.
func (tn *testNet) inNetns(t *testing.T, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+tn.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return // leave the thread locked: it dies with the goroutine
	}
	runtime.UnlockOSThread()
}

// liveRun is a Live under test with every ended flow, per shard.
type liveRun struct {
	l      *Live
	recs   [][]flowtable.Record // per queue; written by that queue's worker only
	cancel context.CancelFunc
	done   chan error
}

func startLive(t *testing.T, tn *testNet, cfg LiveConfig, run bool) *liveRun {
	t.Helper()
	lr := &liveRun{done: make(chan error, 1)}
	n := cfg.Queues
	lr.recs = make([][]flowtable.Record, n)
	cfg.NewShard = func(q int) (*flowtable.Shard, error) {
		return flowtable.New(flowtable.DefaultConfig(), func(r []flowtable.Record) { lr.recs[q] = append(lr.recs[q], r...) })
	}
	cfg.Interfaces = []string{"c0"}
	if cfg.Snaplen == 0 {
		cfg.Snaplen = 65535
	}
	if cfg.RingMB == 0 {
		cfg.RingMB = 8
	}
	cfg.Logf = t.Logf
	var err error
	tn.inNetns(t, func() { lr.l, err = NewLive(cfg) })
	if err != nil {
		t.Fatalf("NewLive: %v", err)
	}
	t.Cleanup(func() { lr.l.Close() })
	if run {
		lr.run()
	}
	return lr
}

func (lr *liveRun) run() {
	ctx, cancel := context.WithCancel(context.Background())
	lr.cancel = cancel
	go func() { lr.done <- lr.l.Run(ctx) }()
}

// waitPackets waits until the workers took n frames (or a timeout).
func (lr *liveRun) waitPackets(n uint64, d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) && TotalStats(lr.l.Stats()).Packets < n {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond) // nothing more should come; give it the chance to show
}

func (lr *liveRun) stop(t *testing.T) {
	t.Helper()
	lr.cancel()
	select {
	case err := <-lr.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("live capture did not stop within 5 s")
	}
}

// flowKey is a flow's connection, direction-free: what must land in one shard.
type flowKey struct {
	proto      uint8
	vlan, ivl  uint16
	a, b       decode.Addr
	pa, pb     uint16
	ipVersion  uint8
	tunnelKind decode.Tunnel
}

func keyOf(r *flowtable.Record) (k flowKey, srcIsA bool) {
	k = flowKey{proto: r.Proto, vlan: r.VLAN, ivl: r.InnerVLAN, ipVersion: r.IPVersion, tunnelKind: r.Tunnel}
	if string(r.Src[:]) < string(r.Dst[:]) || (r.Src == r.Dst && r.SrcPort <= r.DstPort) {
		k.a, k.pa, k.b, k.pb = r.Src, r.SrcPort, r.Dst, r.DstPort
		return k, true
	}
	k.a, k.pa, k.b, k.pb = r.Dst, r.DstPort, r.Src, r.SrcPort
	return k, false
}

// counts are packets and bytes from a to b and from b to a.
type counts struct{ pAB, bAB, pBA, bBA uint64 }

// sumFlows sums records per connection, VLANs kept apart (so tags must
// come out of the ring as they went in), flows that reuse a tuple merged.
func sumFlows(recs []flowtable.Record) map[flowKey]counts {
	m := map[flowKey]counts{}
	for i := range recs {
		r := &recs[i]
		k, srcIsA := keyOf(r)
		c := m[k]
		if srcIsA {
			c.pAB, c.bAB, c.pBA, c.bBA = c.pAB+r.PacketsTx, c.bAB+r.BytesTx, c.pBA+r.PacketsRx, c.bBA+r.BytesRx
		} else {
			c.pAB, c.bAB, c.pBA, c.bBA = c.pAB+r.PacketsRx, c.bAB+r.BytesRx, c.pBA+r.PacketsTx, c.bBA+r.BytesTx
		}
		m[k] = c
	}
	return m
}

// expected replays the frames a sender puts on the wire for files: each
// record's captured bytes, whose length is the wire length (a record cut by
// the capture's snaplen is sent cut). keep, if not nil, says which frames
// the capture's filter lets through; it is judged on a gopacket decode.
func expected(t *testing.T, files []string, keep func(gopacket.Packet) bool) (recs []flowtable.Record, frames uint64) {
	t.Helper()
	sh, err := flowtable.New(flowtable.DefaultConfig(), func(r []flowtable.Record) { recs = append(recs, r...) })
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	var now int64
	for _, f := range files {
		rf, err := OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for {
			data, ci, link, err := rf.next()
			if err != nil {
				break
			}
			if keep != nil && !keep(gopacket.NewPacket(data, layers.LinkTypeEthernet, gopacket.NoCopy)) {
				continue
			}
			ts := ci.Timestamp.UnixNano()
			now = max(now, ts)
			w.Handle(data, uint32(len(data)), link, ts)
			frames++
		}
		rf.Close()
	}
	w.EndBatch(now)
	sh.Flush(flowtable.EndShutdown)
	return recs, frames
}

// ethernetFiles returns the corpus files whose every record is an Ethernet
// frame; the others (BSD loopback, Linux cooked, raw IP, NFLOG, mixed
// pcapng) have no Ethernet header to put on a veth, and are left out.
func ethernetFiles(t *testing.T) []string {
	files := testcorpus.Files(t, "*.pcap*")
	var out, skipped []string
	for _, f := range files {
		rf, err := OpenFile(f)
		if err != nil {
			skipped = append(skipped, filepath.Base(f)+" (unreadable)")
			continue
		}
		eth, n := true, 0
		for {
			_, _, link, err := rf.next()
			if err != nil {
				break
			}
			n++
			if link != decode.LinkEthernet {
				eth = false
				break
			}
		}
		rf.Close()
		if !eth || n == 0 {
			skipped = append(skipped, filepath.Base(f))
			continue
		}
		out = append(out, f)
	}
	t.Logf("not replayed on a veth (not Ethernet, or empty): %s", strings.Join(skipped, ", "))
	return out
}

func compareFlows(t *testing.T, got, want []flowtable.Record) {
	t.Helper()
	g, w := sumFlows(got), sumFlows(want)
	bad := 0
	for k, wc := range w {
		if gc := g[k]; gc != wc {
			bad++
			if bad <= 10 {
				t.Errorf("flow %v: live %+v, replay %+v", k, gc, wc)
			}
		}
	}
	for k, gc := range g {
		if _, ok := w[k]; !ok {
			bad++
			if bad <= 10 {
				t.Errorf("flow %v only in live capture: %+v", k, gc)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d connections differ", bad, len(w))
	}
}

// TestLiveCorpus replays every Ethernet capture of the corpus through a veth
// and captures it with 2 queues: the flows must equal those of a replay of
// the same frames, no frame may be dropped, and both directions of every
// connection must be in one shard.
func TestLiveCorpus(t *testing.T) {
	needLive(t)
	files := ethernetFiles(t)
	want, frames := expected(t, files, nil)
	// On a busy machine the kernel may drop frames between the veth ends
	// (its per-CPU backlog, counted in /proc/net/softnet_stat) before any
	// capture sees them; such an attempt is repeated at a slower pace.
	var lr *liveRun
	var st QueueStats
	for attempt, pps := 1, 50000; ; attempt, pps = attempt+1, pps/4 {
		tn := newTestNet(t)
		lr = startLive(t, tn, LiveConfig{Queues: 2, BatchSize: 1024}, true)
		t.Logf("fan-out: %s; %s", lr.l.FanoutMode(), lr.l.Geometry())
		if !strings.HasPrefix(lr.l.FanoutMode(), "ebpf") {
			t.Errorf("fan-out mode %q, want ebpf", lr.l.FanoutMode())
		}
		before := softnetDrops(t)
		for _, f := range files {
			tn.replay(t, pps, f)
		}
		lr.waitPackets(frames, 20*time.Second)
		lr.stop(t)
		st = TotalStats(lr.l.Stats())
		lost := softnetDrops(t) - before
		if st.Packets == frames || lost == 0 || attempt == 3 {
			break
		}
		t.Logf("attempt %d: captured %d of %d frames while the kernel's backlog dropped %d before capture; again at %d pps",
			attempt, st.Packets, frames, lost, pps/4)
	}
	if st.Packets != frames || st.KernelDrops != 0 {
		t.Errorf("captured %d frames (kernel: %d, %d dropped), sent %d", st.Packets, st.KernelPackets, st.KernelDrops, frames)
	}
	var all []flowtable.Record
	owner := map[flowKey]int{}
	for q, recs := range lr.recs {
		if len(recs) == 0 {
			t.Errorf("queue %d got no flow: the fan-out does not spread", q)
		}
		for i := range recs {
			k, _ := keyOf(&recs[i])
			if o, ok := owner[k]; ok && o != q {
				t.Errorf("connection %v is in shards %d and %d", k, o, q)
			}
			owner[k] = q
		}
		all = append(all, recs...)
	}
	compareFlows(t, all, want)

	// zeek-vlan-collisions: the same connection untagged, in VLAN 42 and in
	// QinQ 10/20; the kernel takes the outer tag off, the ring must put it back.
	vlans := map[[2]uint16]uint64{}
	for i := range all {
		if r := &all[i]; r.SrcPort == 80 || r.DstPort == 80 {
			if r.VLAN != 0 {
				vlans[[2]uint16{r.VLAN, r.InnerVLAN}] += r.BytesTx + r.BytesRx
			}
		}
	}
	if vlans[[2]uint16{42, 0}] == 0 || vlans[[2]uint16{10, 20}] == 0 {
		t.Errorf("tagged flows after capture: %v; want VLAN 42 and QinQ 10/20", vlans)
	}
}

// TestLiveFilter: with "not port 53" exactly the DNS frames are missing.
func TestLiveFilter(t *testing.T) {
	needLive(t)
	files := []string{filepath.Join(corpusDir, "zeek-smtp.pcap"), filepath.Join(corpusDir, "gopacket-test_dns.pcap"),
		filepath.Join(corpusDir, "cs-dns_tcp.pcapng")}
	isDNS := func(p gopacket.Packet) bool {
		if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			return u.SrcPort == 53 || u.DstPort == 53
		}
		if tc, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			return tc.SrcPort == 53 || tc.DstPort == 53
		}
		return false
	}
	want, frames := expected(t, files, func(p gopacket.Packet) bool { return !isDNS(p) })
	_, all := expected(t, files, nil)
	if frames == all {
		t.Fatal("test captures hold no DNS")
	}
	tn := newTestNet(t)
	lr := startLive(t, tn, LiveConfig{Queues: 2, Filter: "not port 53"}, true)
	for _, f := range files {
		tn.replay(t, 50000, f)
	}
	lr.waitPackets(frames, 5*time.Second)
	lr.stop(t)
	st := TotalStats(lr.l.Stats())
	if st.Packets != frames || st.KernelPackets != frames {
		t.Errorf("captured %d frames (kernel passed %d), want %d of %d", st.Packets, st.KernelPackets, frames, all)
	}
	var got []flowtable.Record
	for _, r := range lr.recs {
		got = append(got, r...)
	}
	compareFlows(t, got, want)
}

// TestLiveStalled: while nobody reads the ring (Run not started yet), a
// burst overflows it; the kernel's drops are counted, and every frame is
// either captured or counted dropped.
func TestLiveStalled(t *testing.T) {
	needLive(t)
	file := filepath.Join(corpusDir, "ndpi-1kxun.pcap")
	_, frames := expected(t, []string{file}, nil)
	tn := newTestNet(t)
	lr := startLive(t, tn, LiveConfig{Queues: 1, RingMB: 1, BatchSize: 64}, false)
	tn.replay(t, 0, file)
	lr.run()
	lr.waitPackets(1, 2*time.Second)
	lr.stop(t)
	st := TotalStats(lr.l.Stats())
	t.Logf("sent %d, captured %d, kernel %d, dropped %d, freezes %d", frames, st.Packets, st.KernelPackets, st.KernelDrops, st.Freezes)
	if st.KernelDrops == 0 {
		t.Errorf("no kernel drops after a %d-frame burst into a stalled 512 KiB ring", frames)
	}
	if st.Packets+st.KernelDrops != frames || st.KernelPackets != frames {
		t.Errorf("captured %d + dropped %d != sent %d (kernel saw %d)", st.Packets, st.KernelDrops, frames, st.KernelPackets)
	}
}

// TestLiveDownUp: an interface that goes down and comes back is captured
// again.
func TestLiveDownUp(t *testing.T) {
	needLive(t)
	file := filepath.Join(corpusDir, "gopacket-test_dns.pcap")
	tn := newTestNet(t)
	lr := startLive(t, tn, LiveConfig{Queues: 2}, true)
	tn.replay(t, 50000, file)
	lr.waitPackets(10, 2*time.Second)
	tn.run(t, "ip", "link", "set", "c0", "down")
	time.Sleep(300 * time.Millisecond)
	tn.run(t, "ip", "link", "set", "c0", "up")
	time.Sleep(200 * time.Millisecond)
	tn.replay(t, 50000, file)
	lr.waitPackets(20, 3*time.Second)
	lr.stop(t)
	st := TotalStats(lr.l.Stats())
	if st.Packets != 20 || st.LinkDowns == 0 {
		t.Errorf("captured %d frames (want 20), link downs seen %d (want > 0)", st.Packets, st.LinkDowns)
	}
}

var _ = io.Discard

// softnetDrops sums the frames the kernel dropped from its per-CPU input
// backlogs (second column of /proc/net/softnet_stat), on every CPU.
func softnetDrops(t *testing.T) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		d, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			t.Fatalf("softnet_stat: %v", err)
		}
		n += d
	}
	return n
}
