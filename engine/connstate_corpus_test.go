package engine

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// tsSeg is one TCP segment as tshark decodes it.
type tsSeg struct {
	src, dst           string // "ip:port"
	syn, ack, fin, rst bool
	data               bool
	stream             int
	epochNs            int64
}

// tsharkSegments lists the TCP segments of path with tshark (frames whose
// TCP layer is the one of an ICMP error's quote are left out).
func tsharkSegments(t *testing.T, path string) []tsSeg {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-Y", "tcp && !icmp && !icmpv6", "-T", "fields", "-E", "occurrence=l",
		"-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst",
		"-e", "tcp.dstport", "-e", "tcp.flags", "-e", "tcp.len", "-e", "frame.time_epoch").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	var segs []tsSeg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 10 || f[0] == "" {
			continue
		}
		src, dst := f[1], f[4]
		if src == "" {
			src, dst = "["+f[2]+"]", "["+f[5]+"]"
		}
		fl, err := strconv.ParseUint(strings.TrimPrefix(f[7], "0x"), 16, 16)
		if err != nil {
			t.Fatalf("tshark flags %q: %v", f[7], err)
		}
		stream, _ := strconv.Atoi(f[0])
		sec, frac, _ := strings.Cut(f[9], ".")
		s, _ := strconv.ParseInt(sec, 10, 64)
		frac = (frac + "000000000")[:9]
		ns, _ := strconv.ParseInt(frac, 10, 64)
		segs = append(segs, tsSeg{src: src + ":" + f[3], dst: dst + ":" + f[6], stream: stream,
			syn: fl&0x02 != 0, ack: fl&0x10 != 0, fin: fl&0x01 != 0, rst: fl&0x04 != 0, data: f[8] != "0" && f[8] != "",
			epochNs: s*1e9 + ns})
	}
	return segs
}

// oracleConnState gives Zeek's conn_state for one connection's segments,
// in capture order, from the definitions in Zeek's
// base/protocols/conn/main.zeek; where the words leave a case open, the
// comment says how Zeek's code decides it. It is written from those facts
// alone (who sent a SYN, answered it, closed, reset), not as an endpoint
// state machine, so that it checks the shard's implementation rather than
// repeating it. It also returns the originator: the first SYN's sender,
// else the first SYN-ACK's destination, else the first segment's source.
func oracleConnState(segs []tsSeg) (orig, state string) {
	for _, s := range segs {
		if s.syn && !s.ack {
			orig = s.src
			break
		}
	}
	for _, s := range segs {
		if orig == "" && s.syn && s.ack {
			orig = s.dst
		}
	}
	if orig == "" {
		orig = segs[0].src
	}
	var (
		attempt, answered, respSyn, missed bool // the originator's SYN; answered by a responder's SYN; any responder SYN; an ACK of a SYN-ACK whose SYN was missed
		respSpoke                          bool // the responder sent more than pure ACKs
		origSeen                           bool
		fin, rst, rstAfterFin              [2]bool // 0 originator, 1 responder
		data                               bool
		rstos0                             = !segs[0].syn || segs[0].ack || segs[0].fin || segs[0].rst || segs[0].src != orig
	)
	for _, s := range segs {
		d := 0
		if s.src != orig {
			d = 1
		}
		data = data || s.data
		if d == 0 {
			if !origSeen && !s.syn && !s.fin && !s.rst && s.ack && respSyn {
				missed = true // "we just missed that initial SYN"
			}
			origSeen = true
			if s.syn && !s.ack {
				attempt = true
			}
			// RSTOS0 is "SYN followed by a RST": Zeek's test is the history
			// ^S[^HAFGIQ]*R, so before its RST the originator sent only SYNs
			// and data.
			if !rst[0] && !(s.rst && !s.syn && !s.fin) && (s.fin || s.syn && s.ack || s.syn && s.rst || !s.syn && !s.data && s.ack) {
				rstos0 = false
			}
		} else {
			if s.syn {
				respSyn = true
				if attempt {
					answered = true
				}
			}
			if s.syn || s.fin || s.rst || s.data {
				respSpoke = true
			}
		}
		p := 1 - d
		switch {
		case s.rst:
			// A RST after both sides' FINs changes nothing ("already seen a
			// FIN exchange").
			if !(fin[0] && fin[1]) && !rst[d] {
				rst[d], rstAfterFin[d] = true, fin[d] && !s.fin
			}
		case s.fin && !rst[d]:
			fin[d] = true
			if rst[p] && rstAfterFin[p] { // the peer's FIN then RST, now answered: a normal close
				rst[p] = false
			}
		}
	}
	oInactive := !attempt && !missed // the originator never began a handshake
	rInactive := !respSyn            // the responder never answered one
	switch {
	case rst[1]: // "Responder sent a RST"
		switch {
		case attempt && !answered, rst[0] && !data: // "connection attempt rejected"
			return orig, "REJ"
		case oInactive: // "sent a SYN ACK followed by a RST, we never saw a SYN"
			return orig, "RSTRH"
		}
		return orig, "RSTR"
	case rst[0]:
		if rInactive {
			if rstos0 { // "sent a SYN followed by a RST, we never saw a SYN-ACK"
				return orig, "RSTOS0"
			}
			return orig, "OTH"
		}
		return orig, "RSTO" // "established, originator aborted"
	case fin[0] && fin[1]:
		return orig, "SF"
	case fin[0]:
		if rInactive {
			return orig, "SH" // "SYN followed by a FIN, we never saw a SYN ACK"
		}
		return orig, "S2"
	case fin[1]:
		if oInactive {
			return orig, "SHR"
		}
		return orig, "S3"
	case attempt && !answered && !respSpoke && !respSyn:
		return orig, "S0" // "connection attempt seen, no reply"
	case (attempt && answered || missed) && respSyn:
		return orig, "S1" // "connection established, not terminated"
	}
	return orig, "OTH"
}

// handshakeDone reports that a connection's handshake completed as the
// README defines it for State: the originator ACKed (without SYN) after
// the responder's SYN-ACK, or both sides sent a SYN-ACK (simultaneous open).
func handshakeDone(segs []tsSeg, orig string) bool {
	var synAck [2]bool
	for _, s := range segs {
		d := 0
		if s.src != orig {
			d = 1
		}
		if s.syn && s.ack {
			synAck[d] = true
		}
		if d == 0 && s.ack && !s.syn && !s.rst && synAck[1] || synAck[0] && synAck[1] {
			return true
		}
	}
	return false
}

// stateFor lists the States that agree with a conn_state (see the README):
// a connection that one side closed is FIN_WAIT, both CLOSED (or RESET if a
// RST came between the FINs), any reset RESET, an attempt SYN_SENT.
var stateFor = map[string][]string{
	"S0": {"SYN_SENT"}, "SF": {"CLOSED", "RESET"}, "REJ": {"RESET"}, "S2": {"FIN_WAIT"}, "S3": {"FIN_WAIT"},
	"RSTO": {"RESET"}, "RSTR": {"RESET"}, "RSTOS0": {"RESET"}, "RSTRH": {"RESET"}, "SH": {"FIN_WAIT"}, "SHR": {"FIN_WAIT"},
}

// TestCorpusConnState compares every TCP record's conn_state with the
// oracle's verdict on tshark's segments of the same connection, and its
// State with what that verdict allows: S1 is ESTABLISHED only once the
// handshake completed (a SYN answered by a SYN-ACK alone stays SYN_SENT).
func TestCorpusConnState(t *testing.T) {
	// Every corpus capture with TCP, except: zeek-erspan.pcap (TCP only
	// inside GRE, whose flows carry a tunnel), zeek-vlan-collisions.pcap
	// (one tshark stream is three VLAN-keyed flows here) and the two damaged
	// files (tshark exits non-zero).
	files := []string{
		"cs-dns_tcp.pcapng",
		"cs-tcp_retransmissions.pcapng",
		"gopacket-test_loopback.pcap",
		"ndpi-1kxun.pcap",
		"ndpi-443-git.pcap",
		"ndpi-chrome.pcap",
		"ndpi-dns_fragmented.pcap",
		"ndpi-http_ipv6.pcap",
		"ndpi-smtp-starttls.pcap",
		"ndpi-synscan.pcap",
		"suri-decode-sll2-01.pcap",
		"suri-pppoe-session-http.pcap",
		"tcpdump-mptcp-v1.pcap",
		"tcpdump-tcp-handshake-nano.pcap",
		"zeek-ftp-ipv4.pcap",
		"zeek-http-bro.org.pcap",
		"zeek-http-pipelined-requests.pcap",
		"zeek-ipv4-fragmented-4.pcap",
		"zeek-nflog-http.pcap",
		"zeek-smtp.pcap",
		"zeek-ssh-single-conn.pcap",
		"zeek-tcp-handshake-reorder.pcap",
		"zeek-tcp-timestamp.pcap",
		"zeek-tls-tls13-ech.pcap",
	}
	cfg := flowtable.Config{IdleTimeout: 100000 * time.Hour, ActiveTimeout: 100000 * time.Hour, Linger: 100000 * time.Hour}
	counts := map[string]int{}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			path := testcorpus.Path(t, name)
			segs := tsharkSegments(t, path)
			streams := map[int][]tsSeg{}
			for _, s := range segs {
				streams[s.stream] = append(streams[s.stream], s)
			}
			// Expected verdicts by unordered 4-tuple, in order of the first segment.
			type verdict struct {
				orig, state string
				states      []string
				first       int64
			}
			want := map[string][]verdict{}
			for _, ss := range streams {
				o, st := oracleConnState(ss)
				states := stateFor[st]
				switch {
				case st == "S1" && handshakeDone(ss, o):
					states = []string{"ESTABLISHED"}
				case st == "S1":
					states = []string{"SYN_SENT"}
				}
				k := connPair(ss[0].src, ss[0].dst)
				want[k] = append(want[k], verdict{o, st, states, ss[0].epochNs})
			}
			res := replayFile(t, path, cfg)
			got := map[string][]flowtable.Record{}
			for _, r := range res.recs {
				if r.Proto != 6 || r.Tunnel != 0 {
					continue
				}
				src := endpointString(r.Src, r.IPVersion, r.SrcPort)
				dst := endpointString(r.Dst, r.IPVersion, r.DstPort)
				k := connPair(src, dst)
				got[k] = append(got[k], r)
			}
			bad := 0
			for k, ws := range want {
				sort.Slice(ws, func(i, j int) bool { return ws[i].first < ws[j].first })
				rs := got[k]
				sort.Slice(rs, func(i, j int) bool { return rs[i].First < rs[j].First })
				if len(rs) != len(ws) {
					t.Errorf("%s: %d records, tshark has %d streams", k, len(rs), len(ws))
					bad++
					continue
				}
				for i, w := range ws {
					r := &rs[i]
					src := endpointString(r.Src, r.IPVersion, r.SrcPort)
					if src != w.orig || r.ConnState.String() != w.state {
						t.Errorf("%s: originator %s conn_state %s (state %s), oracle %s %s", k, src, r.ConnState, r.State, w.orig, w.state)
						bad++
					} else if w.states != nil && !slices.Contains(w.states, r.State.String()) {
						t.Errorf("%s: conn_state %s with state %s, want one of %v", k, r.ConnState, r.State, w.states)
						bad++
					}
					counts[w.state+" "+r.State.String()]++
				}
			}
			if len(want) == 0 {
				t.Errorf("tshark found no TCP stream")
			}
			t.Logf("%d connections, %d differ", len(streams), bad)
		})
	}
	t.Logf("verdicts: %v", counts)
}

func connPair(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return a + " " + b
}

func endpointString(a decode.Addr, version uint8, port uint16) string {
	ip := flowtable.IP(&a, version)
	if version == 6 {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return netip.AddrPortFrom(ip, port).String()
}

// TestCorpusGuesses: a flow whose TCP segments carry no payload at all
// (tshark's tcp.len) can only be named by its port, so it must be marked as
// a guess; a flow in which tshark decodes a TLS ClientHello must be TLS
// (HTTPS on 443) and not a guess.
func TestCorpusGuesses(t *testing.T) {
	cfg := flowtable.Config{Detect: true, IdleTimeout: 100000 * time.Hour, ActiveTimeout: 100000 * time.Hour, Linger: 100000 * time.Hour}
	total := map[string]int{}
	for _, name := range []string{"ndpi-synscan.pcap", "ndpi-443-git.pcap", "zeek-tls-tls13-ech.pcap", "ndpi-chrome.pcap", "zeek-http-bro.org.pcap"} {
		t.Run(name, func(t *testing.T) {
			path := testcorpus.Path(t, name)
			out, err := exec.Command("tshark", "-r", path, "-Y", "tcp && !icmp && !icmpv6", "-T", "fields", "-E", "occurrence=l",
				"-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst",
				"-e", "tcp.dstport", "-e", "tcp.len", "-e", "tls.handshake.type").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			type stream struct {
				key         string
				payload     int
				clientHello bool
			}
			streams := map[string]*stream{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Split(line, "\t")
				if len(f) != 9 {
					continue
				}
				src, dst := f[1], f[4]
				if src == "" {
					src, dst = "["+f[2]+"]", "["+f[5]+"]"
				}
				k := connPair(src+":"+f[3], dst+":"+f[6])
				s := streams[k]
				if s == nil {
					s = &stream{key: k}
					streams[k] = s
				}
				n, _ := strconv.Atoi(f[7])
				s.payload += n
				for _, ht := range strings.Split(f[8], ",") {
					s.clientHello = s.clientHello || ht == "1"
				}
			}
			res := replayFile(t, path, cfg)
			seen := 0
			for i := range res.recs {
				r := &res.recs[i]
				if r.Proto != 6 {
					continue
				}
				s := streams[connPair(endpointString(r.Src, r.IPVersion, r.SrcPort), endpointString(r.Dst, r.IPVersion, r.DstPort))]
				if s == nil {
					continue
				}
				seen++
				name, guess := r.AppName(), r.AppGuess()
				j := string(r.AppendJSON(nil, nil))
				switch {
				case s.payload == 0 && name != "Unknown":
					if !guess || !strings.Contains(j, `"app":{"guess":true}`) {
						t.Errorf("%s: no payload, yet %s is not marked a guess: %s", s.key, name, j)
					}
					total["guessed "+name]++
				case s.clientHello:
					if guess || (name != "TLS" && name != "HTTPS") || strings.Contains(j, `"guess"`) {
						t.Errorf("%s: tshark sees a ClientHello, we say %s guess %v", s.key, name, guess)
					}
					total["detected "+name]++
				}
			}
			if seen == 0 {
				t.Errorf("no TCP record matched tshark's streams")
			}
		})
	}
	t.Logf("%v", total)
	if total["guessed HTTPS"] == 0 || total["detected HTTPS"] == 0 {
		t.Errorf("the captures should show both guessed and detected HTTPS: %v", total)
	}
}
