package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/netsentry/netsentry/bench/trafficgen"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want summary
	}{
		{nil, summary{}},
		{[]float64{2}, summary{2, 2, 2, 1}},
		{[]float64{3, 1, 2}, summary{2, 1, 3, 3}},
		{[]float64{4, 1, 3, 2}, summary{2.5, 1, 4, 4}},
	} {
		in := slices.Clone(tc.in)
		if got := summarize(tc.in); got != tc.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("summarize changed its input to %v", tc.in)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"  --detect=false  ", []string{"--detect=false"}, false},
		{"--config 'my file.yaml' --top 3", []string{"--config", "my file.yaml", "--top", "3"}, false},
		{`--x "a \"b\" \c" d\ e`, []string{"--x", `a "b" \c`, "d e"}, false},
		{`a''b ""`, []string{"ab", ""}, false},
		{"'open", nil, true},
		{`"open`, nil, true},
		{`end\`, nil, true},
	} {
		got, err := splitArgs(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseTools(t *testing.T) {
	got, err := parseTools("ndpiReader, netsentry,netsentry")
	if err != nil || !slices.Equal(got, []string{toolNetSentry, toolNDPI}) {
		t.Errorf("parseTools = %q, %v", got, err)
	}
	for _, bad := range []string{"", " , ", "wireshark"} {
		if _, err := parseTools(bad); err == nil {
			t.Errorf("parseTools(%q): no error", bad)
		}
	}
}

func TestParseHWM(t *testing.T) {
	status := "Name:\tcat\nVmPeak:\t  8000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n"
	if got := parseHWM([]byte(status)); got != 1234*1024 {
		t.Errorf("parseHWM = %d, want %d", got, 1234*1024)
	}
	if got := parseHWM([]byte("Name:\tzombie\nState:\tZ (zombie)\n")); got != 0 {
		t.Errorf("parseHWM of a zombie = %d, want 0", got)
	}
}

func TestParseFlags(t *testing.T) {
	var out bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: error %v, want flag.ErrHelp", err)
	}
	if strings.Contains(out.String(), "cpuprofile") || !strings.Contains(out.String(), "-netsentry-args") {
		t.Errorf("usage shows hidden flags or misses visible ones:\n%s", out.String())
	}
	out.Reset()
	if _, err := parseFlags([]string{"-runs", "0"}, &out); err == nil {
		t.Error("-runs 0: no error")
	}
	o, err := parseFlags([]string{"-runs", "5", "-cpuprofile", "x.prof"}, &out)
	if err != nil || o.runs != 5 || o.cpuprofile != "x.prof" || o.packets != trafficgen.DefaultPackets {
		t.Errorf("parseFlags = %+v, %v", o, err)
	}
}

func TestReport(t *testing.T) {
	sec := func(x float64) summary { return summary{x, x * 0.9, x * 1.1, 3} }
	rep := &report{bareAllocs: 0, rows: []row{
		{tool: toolNetSentry, label: "netsentry", packets: 1e6, wall: sec(0.5), cpu: sec(0.4), allocs: -1, maxRSS: summary{48 << 20, 47 << 20, 49 << 20, 3}},
		{tool: toolInProcess, label: "netsentry in-process", packets: 1e6, wall: sec(0.3), cpu: sec(0.3), allocs: 0},
		{tool: toolTcpdump, label: "tcpdump", packets: 1e6, wall: sec(0.5), cpu: sec(0.5), allocs: -1},
		{tool: toolNDPI, label: "ndpiReader", packets: 1e6, wall: sec(5), cpu: sec(5), allocs: -1},
	}}
	var b bytes.Buffer
	if err := rep.write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"0.400 [0.360..0.440]", // median and range
		"2.50",                 // Mpkt per CPU-second
		" 400 ",                // ns/packet
		"48.0",                 // max RSS MB
		"0.80x", "0.08x",       // our ratios to the peers
		"verdict: PASS (netsentry)", "CPU 0.80x tcpdump (target <= 1.00) ok", "CPU 0.08x ndpiReader (target <= 0.20) ok",
		"steady-state allocs/packet 0 (target 0) ok [packet path alone 0]", "400 ns/packet (aim <= 100) missed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	rep.rows[0].cpu = sec(0.6)
	rep.rows[1].allocs = 0.001
	v := rep.verdict()
	for _, want := range []string{"verdict: FAIL", "CPU 1.20x tcpdump (target <= 1.00) FAIL", "allocs/packet 0.001 (target 0) FAIL"} {
		if !strings.Contains(v, want) {
			t.Errorf("verdict %q lacks %q", v, want)
		}
	}
	only := &report{bareAllocs: -1, rows: []row{{tool: toolTcpdump, label: "tcpdump", packets: 10, cpu: sec(1), allocs: -1}}}
	if v := only.verdict(); !strings.Contains(v, "n/a") {
		t.Errorf("verdict without NetSentry = %q", v)
	}
}

// smallTrace writes a small generated trace into a test's temporary directory.
func smallTrace(t *testing.T) (string, *trafficgen.Truth) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trace.pcap")
	truth, err := trafficgen.WriteFile(path, trafficgen.Config{Packets: 20_000, Flows: 1_000, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	return path, truth
}

// TestShiftPcap checks the copy against gopacket's pcap reader: the same
// records, every timestamp moved by the shift.
func TestShiftPcap(t *testing.T) {
	path, truth := smallTrace(t)
	info, err := scanPcap(path)
	if err != nil || info.packets != uint64(truth.Packets) || info.wireBytes != truth.WireBytes {
		t.Fatalf("scanPcap = %+v, %v; truth %d packets, %d bytes", info, err, truth.Packets, truth.WireBytes)
	}
	shifted := filepath.Join(t.TempDir(), "shifted.pcap")
	const by = 48 * time.Hour
	if err := shiftPcap(path, shifted, by); err != nil {
		t.Fatal(err)
	}
	open := func(p string) *pcapgo.Reader {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := open(path), open(shifted)
	n := 0
	for {
		da, ca, erra := a.ReadPacketData()
		db, cb, errb := b.ReadPacketData()
		if erra == io.EOF && errb == io.EOF {
			break
		}
		if erra != nil || errb != nil {
			t.Fatalf("record %d: %v, %v", n+1, erra, errb)
		}
		n++
		if !bytes.Equal(da, db) || ca.Length != cb.Length || cb.Timestamp.Sub(ca.Timestamp) != by {
			t.Fatalf("record %d differs: %v %d / %v %d", n, ca.Timestamp, ca.Length, cb.Timestamp, cb.Length)
		}
	}
	if n != truth.Packets {
		t.Errorf("%d records, want %d", n, truth.Packets)
	}
	if _, err := scanPcap(filepath.Join(t.TempDir(), "missing.pcap")); err == nil {
		t.Error("scanPcap of a missing file: no error")
	}
}

func TestReplayInProcess(t *testing.T) {
	path, truth := smallTrace(t)
	dir := t.TempDir()
	warm, bare := filepath.Join(dir, "warm.pcap"), filepath.Join(dir, "bare.pcap")
	if err := errors.Join(shiftPcap(path, warm, 24*time.Hour), shiftPcap(path, bare, 48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	res, err := replayInProcess(context.Background(), path, warm, bare)
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(truth.Packets)
	if res.cold.packets != n || res.warm.packets != n || res.bare.packets != n || res.flows != uint64(truth.Flows) {
		t.Errorf("packets %d/%d/%d, flows %d; want %d packets a pass and %d flows",
			res.cold.packets, res.warm.packets, res.bare.packets, res.flows, n, truth.Flows)
	}
	if res.cold.cpu <= 0 || res.cold.wall <= 0 {
		t.Errorf("cold pass measured no time: %+v", res.cold)
	}
	// The packet path allocates nothing per packet; each file's pcap reader
	// allocates its buffer once.
	if res.bare.allocs > 8 {
		t.Errorf("bare pass: %d allocations for %d packets", res.bare.allocs, res.bare.packets)
	}
	steady, bareAllocs, notes := inprocNotes([]inprocResult{res}, truth)
	if steady < 0 || bareAllocs < 0 || len(notes) != 4 || !strings.Contains(notes[3], "as the generator wrote") {
		t.Errorf("inprocNotes = %v, %v, %q", steady, bareAllocs, notes)
	}
}

func TestRunChild(t *testing.T) {
	s, err := runChild(context.Background(), []string{"/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"})
	if err != nil {
		t.Fatal(err)
	}
	if s.cpu <= 0 || s.cpu != s.user+s.sys || s.wall <= 0 || s.maxRSS <= 0 {
		t.Errorf("sample %+v", s)
	}
	_, err = runChild(context.Background(), []string{"/bin/sh", "-c", "echo no such capture >&2; exit 3"})
	if err == nil || !strings.Contains(err.Error(), "no such capture") {
		t.Errorf("failing child: error %v, want its stderr in it", err)
	}
}

// TestBenchSmall runs the whole benchmark on a small trace, without the
// child netsentry (building it would make the test slow).
func TestBenchSmall(t *testing.T) {
	tools := "inprocess"
	if _, err := exec.LookPath("tcpdump"); err == nil {
		tools += ",tcpdump"
	}
	o, err := parseFlags([]string{"-packets", "20000", "-flows", "1000", "-runs", "2", "-tools", tools}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", t.TempDir())
	var out, progress bytes.Buffer
	if err := bench(context.Background(), o, &out, &progress); err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	for _, want := range []string{"trace: ", "20000 packets, 1000 flows", "netsentry in-process", "as the generator wrote", "verdict: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(progress.String(), "run 2/2") {
		t.Errorf("progress lacks the runs:\n%s", progress.String())
	}
	if left, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "netsentry-bench-*")); len(left) != 0 {
		t.Errorf("temporary directory left behind: %v", left)
	}
}
