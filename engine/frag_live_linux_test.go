//go:build linux

package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/flowtable"
)

// TestLiveFragmentCases sends the byte-built fragment captures through a veth
// pair and captures them with two queues: every frame must land in its
// datagram's flow, as in replay, also when a datagram's fragments come out
// of order or its first fragment is tiny.
func TestLiveFragmentCases(t *testing.T) {
	needLive(t)
	dir := t.TempDir()
	var files []string
	want := conv{}
	for i, encap := range []string{"", "vlan", "qinq", "gre", "vxlan"} {
		for shift := uint16(0); shift < 8; shift++ {
			v6 := shift%2 == 1
			c := buildFragCapture(encap, v6, uint16(i)*100+shift*10)
			f := filepath.Join(dir, fmt.Sprintf("frag-%s-%d.pcap", encap, shift))
			if err := os.WriteFile(f, c.buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
			for k, m := range c.ours {
				for ep, d := range m {
					want.add(k, ep, d.pkts, d.bytes)
				}
			}
		}
	}
	tn := &testNet{ns: fmt.Sprintf("nsfrag%d", os.Getpid())}
	if out, err := exec.Command("ip", "netns", "add", tn.ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", tn.ns).Run() })
	tn.run(t, "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0")
	for _, i := range []string{"s0", "c0"} {
		tn.run(t, "sysctl", "-qw", "net.ipv6.conf."+i+".disable_ipv6=1")
		tn.run(t, "ip", "link", "set", i, "mtu", "9000", "up")
	}
	lr := startLive(t, tn, LiveConfig{Queues: 2, BatchSize: 64}, true)
	for _, f := range files {
		tn.replay(t, 2000, f)
	}
	var sent uint64
	for _, f := range files {
		res := replayFile(t, f, flowtable.Config{})
		sent += res.st.Packets
	}
	lr.waitPackets(sent, 20*time.Second)
	lr.stop(t)
	if st := TotalStats(lr.l.Stats()); st.Packets != sent {
		t.Errorf("captured %d frames, sent %d", st.Packets, sent)
	}
	var recs []flowtable.Record
	for _, r := range lr.recs {
		recs = append(recs, r...)
	}
	// The outer VXLAN flows and the orphans are the same in every file;
	// sums over the files are compared.
	got := ourConv(recs)
	var bad []string
	for k := range want {
		for _, ep := range []endpoint{k.a, k.b} {
			if w, g := want[k][ep], got[k][ep]; w != g {
				bad = append(bad, fmt.Sprintf("%s %v: want %d/%d, got %d/%d", k.proto, ep, w.pkts, w.bytes, g.pkts, g.bytes))
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			bad = append(bad, fmt.Sprintf("unexpected %s %v <-> %v", k.proto, k.a, k.b))
		}
	}
	if len(bad) > 0 {
		t.Errorf("live capture differs from the captures' contents:\n%s", strings.Join(bad, "\n"))
	}
	// The shared checker over the whole live run, against tshark's table
	// of the captures as sent (one after the other).
	all := filepath.Join(dir, "all.pcap")
	if out, err := exec.Command("mergecap", append([]string{"-a", "-F", "pcap", "-w", all}, files...)...).CombinedOutput(); err != nil {
		t.Fatalf("mergecap: %v: %s", err, out)
	}
	_, tsv := tsharkConv(t, all)
	flows := filepath.Join(dir, "flows.jsonl")
	fh, err := os.Create(flows)
	if err != nil {
		t.Fatal(err)
	}
	j := NewJSONLines(fh, fh)
	if err := j.WriteFlows(recs); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", filepath.Join(corpusDir, "..", "check", "compare_flows.py"), strings.Join(files, ","), flows, tsv).CombinedOutput()
	if err != nil {
		t.Errorf("compare_flows.py: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}
