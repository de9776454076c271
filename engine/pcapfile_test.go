package engine

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// The files of these tests are built byte by byte from the format's
// documentation (libpcap's pcap-savefile(5), sf-pcap.c and wiretap's
// libpcap.c for the record-header variants), then read by tshark and by our
// replay; packets and bytes per direction must be equal.

// frame is one link-layer frame and its length on the wire.
type frame struct {
	data []byte
	wire int
}

// ipv4Frame builds Ethernet + IPv4 + TCP (flags != 0xff) or UDP (flags ==
// 0xff) with payload, followed by trailer bytes (an FCS, say).
func ipv4Frame(src, dst [4]byte, sport, dport uint16, flags uint8, seq uint32, payload, trailer []byte) []byte {
	l4 := 20
	proto := byte(6)
	if flags == 0xff {
		l4, proto = 8, 17
	}
	b := make([]byte, 0, 14+20+l4+len(payload)+len(trailer))
	b = append(b, 0x02, 0, 0, 0, 0, dst[3], 0x02, 0, 0, 0, 0, src[3], 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4+len(payload)))
	ip[8], ip[9] = 64, proto
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	b = append(b, ip...)
	h := make([]byte, l4)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	if proto == 6 {
		binary.BigEndian.PutUint32(h[4:], seq)
		h[12], h[13] = 5<<4, flags
		binary.BigEndian.PutUint16(h[14:], 65535)
	} else {
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	}
	b = append(b, h...)
	b = append(b, payload...)
	return append(b, trailer...)
}

// conversation is a TCP handshake, a request and a 1400-byte answer, the
// close, and one UDP exchange, between two hosts; each frame carries fcs
// (nil for none) at its end.
func conversation(fcs []byte) []frame {
	c, s := [4]byte{10, 1, 0, 1}, [4]byte{10, 2, 0, 2}
	const syn, ack, psh, fin = 0x02, 0x10, 0x08, 0x01
	req := []byte("GET / HTTP/1.1\r\nHost: old.example\r\n\r\n")
	resp := bytes.Repeat([]byte("x"), 1400)
	var fs []frame
	add := func(b []byte) { fs = append(fs, frame{b, len(b)}) }
	add(ipv4Frame(c, s, 40000, 80, syn, 1, nil, fcs))
	add(ipv4Frame(s, c, 80, 40000, syn|ack, 7, nil, fcs))
	add(ipv4Frame(c, s, 40000, 80, ack, 2, nil, fcs))
	add(ipv4Frame(c, s, 40000, 80, psh|ack, 2, req, fcs))
	add(ipv4Frame(s, c, 80, 40000, psh|ack, 8, resp, fcs))
	add(ipv4Frame(c, s, 40000, 80, fin|ack, 2+uint32(len(req)), nil, fcs))
	add(ipv4Frame(s, c, 80, 40000, fin|ack, 1408, nil, fcs))
	add(ipv4Frame(c, s, 40000, 80, ack, 3+uint32(len(req)), nil, fcs))
	add(ipv4Frame(c, s, 5353, 53, 0xff, 0, []byte("query"), fcs))
	add(ipv4Frame(s, c, 53, 5353, 0xff, 0, []byte("answer!"), fcs))
	return fs
}

// pcapSpec is how to write one file.
type pcapSpec struct {
	big          bool
	magic        uint32
	major, minor uint16
	snaplen      uint32 // header value; frames longer are cut to it, unless noCut
	noCut        bool
	network      uint32
	hdrExtra     int                   // Ixia: 4 bytes of record-area size after the header
	recExtra     func(i int) []byte    // bytes after the 16-byte record header
	oldOrder     bool                  // original length before captured length (before 2.3)
	frac         func(i int) uint32    // sub-second field of record i
	frames       func() []frame        // default conversation(nil)
	cut          int                   // drop this many bytes off the end of the file
	ends         func(b []byte) []byte // last edit of the whole file
	want         string                // wiretap's name of the variant (capinfos -t)
	extraCheck   func(t *testing.T, path string, rf *File)
	notReadableT bool // tshark refuses the file: so must we
	checker      bool // also run the shared compare_flows.py (slow: it runs tshark again)
	gz           bool // gzip-compress the file (cut then applies to the compressed bytes)
}

func (s pcapSpec) write(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, s.bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bytes is the file.
func (s pcapSpec) bytes() []byte {
	var o order = binary.LittleEndian
	if s.big {
		o = binary.BigEndian
	}
	var b []byte
	b = o.AppendUint32(b, s.magic)
	b = o.AppendUint16(b, s.major)
	b = o.AppendUint16(b, s.minor)
	b = o.AppendUint32(b, 0) // thiszone
	b = o.AppendUint32(b, 0) // sigfigs
	b = o.AppendUint32(b, s.snaplen)
	b = o.AppendUint32(b, s.network)
	if s.hdrExtra > 0 {
		b = append(b, make([]byte, s.hdrExtra)...)
	}
	frames := conversation(nil)
	if s.frames != nil {
		frames = s.frames()
	}
	for i, f := range frames {
		data := append([]byte(nil), f.data...)
		caplen := len(data)
		if !s.noCut && s.snaplen != 0 && uint32(caplen) > s.snaplen {
			caplen = int(s.snaplen)
		}
		frac := uint32(i*1000 + 7)
		if s.frac != nil {
			frac = s.frac(i)
		}
		b = o.AppendUint32(b, uint32(1700000000+i))
		b = o.AppendUint32(b, frac)
		if s.oldOrder {
			b = o.AppendUint32(b, uint32(f.wire))
			b = o.AppendUint32(b, uint32(caplen))
		} else {
			b = o.AppendUint32(b, uint32(caplen))
			b = o.AppendUint32(b, uint32(f.wire))
		}
		if s.recExtra != nil {
			b = append(b, s.recExtra(i)...)
		}
		b = append(b, data[:caplen]...)
	}
	if s.gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(b)
		zw.Close()
		b = z.Bytes()
	}
	b = b[:len(b)-s.cut]
	if s.ends != nil {
		b = s.ends(b)
	}
	return b
}

type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// Record-header tails of the patched formats (wiretap's libpcap.h).
func ss990417Tail(o order) func(int) []byte {
	return func(i int) []byte { // ifindex, protocol, pkt_type, pad
		b := o.AppendUint32(nil, 2)
		b = o.AppendUint16(b, 0x0800)
		return append(b, byte(i%2*4), 0)
	}
}

func ss990915Tail(o order) func(int) []byte {
	return func(i int) []byte { // + cpu1, cpu2, 2 bytes of padding
		return append(ss990417Tail(o)(i), 0, 1, 0, 0)
	}
}

func TestPcapVariants(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	fcs := []byte{0xde, 0xad, 0xbe, 0xef}
	cases := map[string]pcapSpec{
		"2.4 µs little-endian":  {magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 1, want: "pcap"},
		"2.4 µs big-endian":     {big: true, magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 1, want: "pcap"},
		"2.4 ns little-endian":  {magic: magicNano, major: 2, minor: 4, snaplen: 65535, network: 1, frac: func(i int) uint32 { return uint32(i*1000000 + 123) }, want: "nsecpcap"},
		"2.4 ns big-endian":     {checker: true, big: true, magic: magicNano, major: 2, minor: 4, snaplen: 65535, network: 1, frac: func(i int) uint32 { return uint32(999999000 + i) }, want: "nsecpcap"},
		"2.0 lengths swapped":   {magic: magicMicro, major: 2, minor: 0, snaplen: 96, network: 1, oldOrder: true, want: "pcap"},
		"2.1 lengths swapped":   {checker: true, magic: magicMicro, major: 2, minor: 1, snaplen: 96, network: 1, oldOrder: true, want: "pcap"},
		"2.1 big-endian":        {big: true, magic: magicMicro, major: 2, minor: 1, snaplen: 200, network: 1, oldOrder: true, want: "pcap"},
		"2.2 lengths swapped":   {magic: magicMicro, major: 2, minor: 2, snaplen: 128, network: 1, oldOrder: true, want: "pcap"},
		"2.3 old order":         {checker: true, magic: magicMicro, major: 2, minor: 3, snaplen: 96, network: 1, oldOrder: true, want: "pcap"},
		"2.3 new order":         {magic: magicMicro, major: 2, minor: 3, snaplen: 96, network: 1, want: "pcap"},
		"2.4 snapped":           {magic: magicMicro, major: 2, minor: 4, snaplen: 68, network: 1, want: "pcap"},
		"543.0 DG/UX":           {checker: true, big: true, magic: magicMicro, major: 543, minor: 0, snaplen: 1514, network: 1, oldOrder: true, want: "pcap"},
		"3.0":                   {magic: magicMicro, major: 3, minor: 0, snaplen: 65535, network: 1, want: "pcap"},
		"2.7":                   {magic: magicMicro, major: 2, minor: 7, snaplen: 65535, network: 1, want: "pcap"},
		"snaplen 0":             {magic: magicMicro, major: 2, minor: 4, snaplen: 0, network: 1, want: "pcap"},
		"snaplen 2^32-1":        {big: true, magic: magicMicro, major: 2, minor: 4, snaplen: math.MaxUint32, network: 1, want: "pcap"},
		"snaplen below records": {magic: magicMicro, major: 2, minor: 4, snaplen: 64, noCut: true, network: 1, want: "pcap"},
		"modified ss991029":     {magic: magicModified, major: 2, minor: 4, snaplen: 65535, network: 1, recExtra: ss990417Tail(le), want: "modpcap"},
		"modified ss991029 big-endian": {checker: true, big: true, magic: magicModified, major: 2, minor: 4, snaplen: 65535, network: 1,
			recExtra: ss990417Tail(be), want: "modpcap"},
		"modified ss990915 (SuSE 6.3)": {checker: true, magic: magicModified, major: 2, minor: 4, snaplen: 65535, network: 1, recExtra: ss990915Tail(le), want: "suse6_3pcap"},
		"modified ss990915 big-endian": {big: true, magic: magicModified, major: 2, minor: 4, snaplen: 65535, network: 1,
			recExtra: ss990915Tail(be), want: "suse6_3pcap"},
		"standard magic ss990417 (Red Hat 6.1)": {checker: true, magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 1, recExtra: ss990417Tail(le), want: "rh6_1pcap"},
		"AIX 2.2 Ethernet": {checker: true, magic: magicMicro, major: 2, minor: 2, snaplen: 1514, network: 6, oldOrder: true,
			frac: func(i int) uint32 { return uint32(i*1000000 + 5) }, want: "aixpcap"},
		"AIX 2.2 big-endian": {big: true, magic: magicMicro, major: 2, minor: 2, snaplen: 1514, network: 6, oldOrder: true,
			frac: func(i int) uint32 { return uint32(999000000 + i) }, want: "aixpcap"},
		"AIX 2.2 loopback": {magic: magicMicro, major: 2, minor: 2, snaplen: 1514, network: 24, oldOrder: true, want: "aixpcap",
			frames: func() []frame {
				fs := conversation(nil)
				for i := range fs { // BSD loopback: the address family, AF_INET
					fs[i].data = append([]byte{2, 0, 0, 0}, fs[i].data[14:]...)
					fs[i].wire = len(fs[i].data)
				}
				return fs
			}},
		"Ixia hardware": {magic: magicIxiaHW, major: 2, minor: 4, snaplen: 65535, network: 1, hdrExtra: 4, want: "pcap"},
		"Ixia software": {checker: true, big: true, magic: magicIxiaSW, major: 2, minor: 4, snaplen: 65535, network: 1, hdrExtra: 4, want: "pcap"},
		"FCS 32 bits": {magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 0x24000001, want: "pcap",
			frames: func() []frame { return conversation(fcs) }, extraCheck: checkFCS},
		"FCS 32 bits, 2.1, some cut": {checker: true, big: true, magic: magicMicro, major: 2, minor: 1, snaplen: 1000, oldOrder: true, network: 0x24000001, want: "pcap",
			frames: func() []frame { return conversation(fcs) }, extraCheck: checkFCS},
		"FCS 32 bits, cut inside the FCS": {magic: magicMicro, major: 2, minor: 4, snaplen: 1456, network: 0x24000001, want: "pcap",
			frames: func() []frame { return conversation(fcs) }, extraCheck: checkFCS},
		"FCS bits on raw IP": {magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 0x24000065, want: "pcap",
			frames: func() []frame {
				fs := conversation(fcs)
				for i := range fs {
					fs[i].data, fs[i].wire = fs[i].data[14:], fs[i].wire-14
				}
				return fs
			}},
		"captured longer than original": {checker: true, magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 1, want: "pcap",
			frames: func() []frame {
				fs := conversation(nil)
				for i := range fs {
					fs[i].wire -= 3 * (i % 3)
				}
				return fs
			}},
		"FCS length 0 present": {magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 0x04000001, want: "pcap"},
		"2.2 cut mid-record":   {magic: magicMicro, major: 2, minor: 2, snaplen: 65535, network: 1, oldOrder: true, cut: 700, want: "pcap"},
		"ss990915 cut mid-header": {magic: magicModified, major: 2, minor: 4, snaplen: 65535, network: 1, recExtra: ss990915Tail(le),
			cut: 49 + 10, want: "suse6_3pcap"},
		"NFLOG big-endian": {checker: true, big: true, magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 239, want: "pcap",
			frames: func() []frame { return nflogFrames(be) }},
		"NFLOG little-endian": {magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 239, want: "pcap",
			frames: func() []frame { return nflogFrames(le) }},
		"gzip 2.1": {checker: true, gz: true, magic: magicMicro, major: 2, minor: 1, snaplen: 96, network: 1, oldOrder: true, want: "pcap"},
		"gzip ss990915 cut": {gz: true, magic: magicModified, major: 2, minor: 4, snaplen: 65535, network: 1, recExtra: ss990915Tail(le),
			cut: 30, want: "suse6_3pcap"},
		"reserved link bits": {magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 0x00010001, notReadableT: true},
		"major 1":            {magic: magicMicro, major: 1, minor: 0, snaplen: 65535, network: 1, notReadableT: true},
	}
	dir := t.TempDir()
	i := 0
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			i++
			path := filepath.Join(dir, "v"+strconv.Itoa(i)+".pcap")
			spec.write(t, path)
			if spec.notReadableT {
				if out, err := exec.Command("tshark", "-n", "-r", path).CombinedOutput(); err == nil {
					t.Fatalf("tshark reads the file, the test expects it not to: %s", out)
				}
				if rf, err := OpenFile(path); err == nil {
					rf.Close()
					t.Fatal("OpenFile accepted a file tshark refuses")
				}
				return
			}
			rf, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rf.Variant, capinfosType(t, path); got != want || got != spec.want {
				t.Errorf("variant %q, captype says %q, test wants %q", got, want, spec.want)
			}
			if spec.extraCheck != nil {
				spec.extraCheck(t, path, rf)
			}
			rf.Close()
			compareWithTshark(t, path, spec.cut > 0, spec.checker)
		})
	}
}

// nflogFrames wraps the conversation's IP packets in NFLOG headers whose TLV
// types and lengths are in byte order o (the writing host's).
func nflogFrames(o order) []frame {
	var out []frame
	for _, f := range conversation(nil) {
		ip := f.data[14:]
		b := []byte{2, 0, 0, 0}                  // AF_INET, version 0, resource id 0 (big-endian)
		b = o.AppendUint16(b, 8)                 // NFULA_PACKET_HDR: length
		b = o.AppendUint16(b, 1)                 // type
		b = append(b, 0x08, 0x00, 3, 0)          // hw_protocol 0x0800, hook 3, pad
		b = o.AppendUint16(b, uint16(4+len(ip))) // NFULA_PAYLOAD: length
		b = o.AppendUint16(b, 9)                 // type
		b = append(b, ip...)                     //
		b = append(b, make([]byte, (4-len(ip)%4)%4)...)
		out = append(out, frame{b, len(b)})
	}
	return out
}

// checkFCS: the frames handed to the decoder end where tshark's Ethernet
// dissector says the FCS begins, and the FCS tshark shows is what we cut.
func checkFCS(t *testing.T, path string, rf *File) {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=,",
		"-e", "frame.cap_len", "-e", "frame.len", "-e", "eth.fcs").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	for n, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		col := strings.Split(line, ",")
		capLen, _ := strconv.Atoi(col[0])
		wire, _ := strconv.Atoi(col[1])
		data, ci, _, err := rf.next()
		if err != nil {
			t.Fatalf("record %d: %v", n+1, err)
		}
		if ci.Length != wire {
			t.Errorf("record %d: wire length %d, tshark frame.len %d", n+1, ci.Length, wire)
		}
		// The FCS is the last 4 bytes on the wire; whatever of it was
		// captured is not the decoder's.
		want := capLen - max(0, capLen-(wire-4))
		if col[2] != "" {
			if got := fmt.Sprintf("0x%08x", binary.BigEndian.Uint32(rf.pcap.rec[want:])); got != col[2] {
				t.Errorf("record %d: the 4 bytes cut are %s, tshark's eth.fcs is %s", n+1, got, col[2])
			}
		} else if want == capLen-4 {
			t.Errorf("record %d: FCS captured whole but tshark shows none", n+1)
		}
		if len(data) != want {
			t.Errorf("record %d: %d bytes to decode, tshark: %d captured, FCS %q", n+1, len(data), capLen, col[2])
		}
	}
}

// capinfosType is wiretap's name for the file's type (captype, which opens
// the file as tshark does and names the type capinfos -t shows).
func capinfosType(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("captype", path).Output()
	_, typ, ok := strings.Cut(strings.TrimSpace(string(out)), ": ")
	if err != nil || !ok {
		t.Fatalf("captype %s: %v: %s", path, err, out)
	}
	return typ
}

// compareWithTshark replays path and checks it against tshark's reading:
// the conversation table (packets and bytes each way, exactly), the first
// frame's time stamp, the number of frames read, and the shared
// compare_flows.py on a --flows-out file.
func compareWithTshark(t *testing.T, path string, damaged, checker bool) {
	t.Helper()
	res := replayFile(t, path, flowtable.Config{})
	if res.err != nil {
		t.Fatalf("replay: %v", res.err)
	}
	if damaged != (res.st.Stop != nil) {
		t.Errorf("damaged file %v, but reading stopped with %v", damaged, res.st.Stop)
	}
	// One tshark run: the first frame's time stamp per frame, then the
	// conversation table that conv_exact.lua prints at the end.
	lua := filepath.Join(testcorpus.Pcaps(t), "oracle", "conv_exact.lua")
	out, err := exec.Command("tshark", "-n", "-r", path, "-X", "lua_script:"+lua, "-T", "fields", "-e", "frame.time_epoch").Output()
	if err != nil && !damaged {
		t.Fatalf("tshark: %v", err)
	}
	epochs, table, ok := strings.Cut(string(out), "proto\t")
	if !ok {
		t.Fatalf("tshark printed no conversation table: %s", out)
	}
	tsv := path + ".conv_exact.tsv"
	if err := os.WriteFile(tsv, []byte("proto\t"+table), 0o644); err != nil {
		t.Fatal(err)
	}
	want := conv{}
	for _, r := range readTSV(t, tsv) {
		a := endpoint{netip.MustParseAddr(r["addr_a"]), uint16(atoi(t, r["port_a"]))}
		b := endpoint{netip.MustParseAddr(r["addr_b"]), uint16(atoi(t, r["port_b"]))}
		k := mkPair(r["proto"], a, b)
		want.add(k, a, atoi(t, r["frames_a_to_b"]), atoi(t, r["bytes_a_to_b"]))
		want.add(k, b, atoi(t, r["frames_b_to_a"]), atoi(t, r["bytes_b_to_a"]))
	}
	if len(want) == 0 {
		t.Fatal("tshark found no conversation")
	}
	got := ourConv(res.recs)
	for k, w := range want {
		for e, wd := range w {
			if gd := got[k][e]; gd != wd {
				t.Errorf("%s %v from %v: tshark %d packets %d bytes, netsentry %d packets %d bytes", k.proto, k, e, wd.pkts, wd.bytes, gd.pkts, gd.bytes)
			}
		}
	}
	for k := range got {
		if want[k] == nil {
			t.Errorf("%s %v: not in tshark's table", k.proto, k)
		}
	}
	// Frames and the first time stamp, from tshark's own fields.
	lines := strings.Fields(epochs)
	if uint64(len(lines)) != res.st.Packets {
		t.Errorf("tshark read %d frames, netsentry %d", len(lines), res.st.Packets)
	}
	if len(lines) > 0 {
		first := int64(math.MaxInt64)
		for _, r := range res.recs {
			first = min(first, r.First)
		}
		sec, frac, _ := strings.Cut(lines[0], ".")
		frac = (frac + "000000000")[:9]
		s, _ := strconv.ParseInt(sec, 10, 64)
		f, _ := strconv.ParseInt(frac, 10, 64)
		if ts := s*1e9 + f; first != ts {
			t.Errorf("first flow starts at %d ns, tshark's first frame at %d ns (%s)", first, ts, lines[0])
		}
	}
	// The shared checker, on a --flows-out file. It cannot read a damaged
	// file (its tshark call fails); the table above is compared all the same.
	if damaged || !checker {
		return
	}
	jl := path + ".flows.jsonl"
	fw, err := os.Create(jl)
	if err != nil {
		t.Fatal(err)
	}
	j := NewJSONLines(fw, fw)
	if err := j.WriteFlows(res.recs); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(testcorpus.Shared(t), "check", "compare_flows.py")
	if out, err := exec.Command("python3", script, path, jl, tsv).CombinedOutput(); err != nil {
		t.Errorf("compare_flows.py: %v\n%s", err, out)
	}
}

// TestPcapDamage: a record header claiming more than a record may hold stops
// reading there, keeping the records before it, as tshark does.
func TestPcapDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.pcap")
	spec := pcapSpec{magic: magicMicro, major: 2, minor: 1, snaplen: 65535, network: 1, oldOrder: true}
	spec.ends = func(b []byte) []byte {
		// The fifth record claims 1 GiB captured.
		off := 24
		for i := 0; i < 4; i++ {
			n := binary.LittleEndian.Uint32(b[off+12:])
			off += 16 + int(n)
		}
		binary.LittleEndian.PutUint32(b[off+12:], 1<<30) // its captured length (second before 2.3)
		return b
	}
	spec.write(t, path)
	rf, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	for i := 0; i < 4; i++ {
		if _, _, _, err := rf.next(); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
	}
	if _, _, _, err := rf.next(); !errors.Is(err, errCorrupt) {
		t.Fatalf("fifth record: %v, want errCorrupt", err)
	}
	out, _ := exec.Command("tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.number").Output()
	if n := len(strings.Fields(string(out))); n != 4 {
		t.Errorf("tshark read %d frames, we read 4", n)
	}
}

// TestPcapReadAllocs: reading a record costs no allocation once the buffer
// has grown.
func TestPcapReadAllocs(t *testing.T) {
	for _, gz := range []bool{false, true} {
		spec := pcapSpec{gz: gz, magic: magicModified, major: 2, minor: 3, snaplen: 65535, network: 1, recExtra: ss990417Tail(binary.LittleEndian),
			frames: func() []frame {
				var fs []frame
				for i := 0; i < 20; i++ {
					fs = append(fs, conversation(nil)...)
				}
				return fs
			}}
		raw := spec.bytes()
		rf, err := newFile("a.pcap", bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := rf.next(); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() {
			if _, _, _, err := rf.next(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("gzip %v: %v allocations per record", gz, n)
		}
	}
}

// TestPcapCorpusVariants: every classic pcap of the shared corpus is read as
// the variant wiretap (capinfos -t) identifies.
func TestPcapCorpusVariants(t *testing.T) {
	for _, path := range corpusFiles(t) {
		rf, err := OpenFile(path)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
			continue
		}
		if rf.Format == "pcap" {
			if want := capinfosType(t, path); rf.Variant != want {
				t.Errorf("%s: variant %q, captype says %q", filepath.Base(path), rf.Variant, want)
			}
		}
		rf.Close()
	}
}

// FuzzPcapFile feeds arbitrary bytes to the capture reader (pcap and pcapng,
// read through a buffer and mapped) and the decoder behind it: no panic, no record over the maximum, captured
// lengths as returned.
func FuzzPcapFile(f *testing.F) {
	for _, path := range corpusFiles(f) {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 8192)])
	}
	le, be := binary.LittleEndian, binary.BigEndian
	for _, s := range []pcapSpec{
		{magic: magicMicro, major: 2, minor: 1, snaplen: 96, network: 1, oldOrder: true},
		{gz: true, magic: magicMicro, major: 2, minor: 4, snaplen: 65535, network: 1},
		{magic: magicMicro, major: 2, minor: 3, snaplen: 96, network: 0x24000001, frames: func() []frame { return conversation([]byte{1, 2, 3, 4}) }},
		{big: true, magic: magicModified, major: 2, minor: 4, snaplen: 65535, network: 1, recExtra: ss990915Tail(be)},
		{magic: magicModified, major: 2, minor: 4, snaplen: 65535, network: 1, recExtra: ss990417Tail(le)},
		{magic: magicMicro, major: 2, minor: 2, snaplen: 1514, network: 6, oldOrder: true},
		{big: true, magic: magicIxiaHW, major: 2, minor: 4, snaplen: 65535, network: 239, hdrExtra: 4, frames: func() []frame { return nflogFrames(be) }},
	} {
		f.Add(s.bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The same bytes as a mapped file (records walked in place; the
		// NFLOG swap writes into them, so into a copy of the input).
		if rf, err := newMappedFile("fuzz", append([]byte(nil), b...)); err == nil {
			for i := 0; i < 10000; i++ {
				data, wirelen, _, _, err := rf.frame(true)
				if err != nil {
					break
				}
				if len(data) > maxRecord || rf.Format == "pcap" && len(rf.pcap.rec) > len(b) {
					t.Fatalf("mapped record %d: %d bytes of a %d-byte file, wire %d", i, len(data), len(b), wirelen)
				}
			}
		}
		rf, err := newFile("fuzz", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var p decode.Packet
		for i := 0; i < 10000; i++ {
			data, ci, link, err := rf.next()
			if err != nil {
				return
			}
			if len(data) > maxRecord {
				t.Fatalf("record %d: %d bytes", i, len(data))
			}
			if rf.Format == "pcap" && ci.CaptureLength != len(data) {
				t.Fatalf("record %d: CaptureLength %d, %d bytes", i, ci.CaptureLength, len(data))
			}
			decode.Parse(data, uint32(ci.Length), link, &p)
		}
	})
}

// TestGzipPcapng: a gzip-compressed pcapng of the corpus reads as tshark
// reads it.
func TestGzipPcapng(t *testing.T) {
	raw, err := os.ReadFile(testcorpus.Path(t, "cs-dns_tcp.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	path := filepath.Join(t.TempDir(), "dns_tcp.pcapng.gz")
	if err := os.WriteFile(path, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rf, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if rf.Format != "pcapng" || !rf.Compressed {
		t.Errorf("format %q, compressed %v", rf.Format, rf.Compressed)
	}
	rf.Close()
	compareWithTshark(t, path, false, true)
}
