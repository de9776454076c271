package flowtable

import (
	"strings"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// TestConnState builds each of Zeek's conn_state codes from the packet
// sequence that Zeek's documentation (base/protocols/conn/main.zeek) gives
// for it, and checks our State beside it. Segments are written "o:SA+" —
// o the originator (the client, 10.0.0.1:40000) or r the responder
// (10.0.0.2:80); S SYN, A ACK, F FIN, R RST; "+" a segment with payload.
func TestConnState(t *testing.T) {
	for _, tc := range []struct {
		name, segs string
		want       ConnState
		state      State
	}{
		// S0: connection attempt seen, no reply.
		{"attempt", "o:S", ConnS0, StateSynSent},
		{"attempt retransmitted", "o:S o:S o:S", ConnS0, StateSynSent},
		{"attempt, responder acks the SYN before its SYN-ACK", "o:S r:A", ConnS0, StateSynSent},
		{"SYN after a stray segment", "o:A o:S", ConnS0, StateSynSent}, // Zeek's SYN_after_partial
		// S1: established, not terminated. Zeek counts an endpoint
		// established once the SYN is answered: a SYN-ACK with no final ACK
		// is S1, while our State waits for the initiator's ACK.
		{"half open", "o:S r:SA", ConnS1, StateSynSent},
		{"handshake", "o:S r:SA o:A", ConnS1, StateEstablished},
		{"handshake and data", "o:S r:SA o:A o:A+ r:A+ o:A", ConnS1, StateEstablished},
		{"simultaneous open", "o:S r:S o:SA r:SA", ConnS1, StateEstablished},
		{"SYN missed", "r:SA o:A o:A+ r:A+", ConnS1, StateEstablished},
		// SF: normal establishment and termination.
		{"normal close", "o:S r:SA o:A o:A+ r:A+ o:FA r:FA o:A", ConnSF, StateClosed},
		{"responder closes first", "o:S r:SA o:A r:FA o:FA r:A", ConnSF, StateClosed},
		{"close then reset", "o:S r:SA o:A o:FA r:FA o:R", ConnSF, StateClosed},
		{"FIN, RST, then the peer's FIN", "o:S r:SA o:A r:FA r:R o:FA", ConnSF, StateReset},
		// REJ: connection attempt rejected.
		{"rejected", "o:S r:RA", ConnREJ, StateReset},
		{"rejected after retries", "o:S o:S r:RA", ConnREJ, StateReset},
		// S2 / S3: established, one side's close attempt with no reply.
		{"originator closes", "o:S r:SA o:A o:A+ o:FA", ConnS2, StateFinWait},
		{"responder closes", "o:S r:SA o:A r:A+ r:FA", ConnS3, StateFinWait},
		// RSTO / RSTR: established, then aborted.
		{"originator aborts", "o:S r:SA o:A o:A+ o:RA", ConnRSTO, StateReset},
		{"half open, originator resets", "o:S r:SA o:R", ConnRSTO, StateReset},
		{"responder aborts", "o:S r:SA o:A o:A+ r:RA", ConnRSTR, StateReset},
		{"responder resets after its close", "o:S r:SA o:A r:FA r:R", ConnRSTR, StateReset},
		// RSTOS0: SYN then RST from the originator, no SYN-ACK.
		{"SYN then RST", "o:S o:R", ConnRSTOS0, StateReset},
		{"SYN, data, RST", "o:S o:S+ o:R", ConnRSTOS0, StateReset},
		{"SYN, ACK, RST is no RSTOS0", "o:S o:A o:R", ConnOTH, StateReset},
		// RSTRH: SYN-ACK then RST from the responder, no SYN seen.
		{"SYN-ACK then RST", "r:SA r:R", ConnRSTRH, StateReset},
		// SH: SYN then FIN from the originator, no SYN-ACK.
		{"SYN then FIN", "o:S o:F", ConnSH, StateFinWait},
		// SHR: SYN-ACK then FIN from the responder, no SYN seen.
		{"SYN-ACK then FIN", "r:SA r:FA", ConnSHR, StateFinWait},
		// OTH: no SYN, mid-stream traffic.
		{"mid-stream", "o:A+ r:A o:A+", ConnOTH, StateEstablished},
		{"mid-stream, one side", "o:A+", ConnOTH, StateEstablished},
		{"mid-stream, reset by the originator", "o:A+ r:A o:RA", ConnOTH, StateReset},
		// Zeek's code (conn_state()) is wider than its words: a mid-stream
		// flow whose FINs are seen is SF (no SYN is checked), and one whose
		// responder resets is RSTRH (the originator is "inactive").
		{"mid-stream close", "o:A+ r:A+ o:FA r:FA", ConnSF, StateClosed},
		{"mid-stream, reset by the responder", "o:A+ r:A r:RA", ConnRSTRH, StateReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newShard(t, Config{})
			for i, seg := range strings.Fields(tc.segs) {
				p := segment(t, seg)
				s.Packet(p, nil, int64(i+1)*sec/100)
			}
			s.Flush(EndEndOfCapture)
			if len(out.recs) != 1 {
				t.Fatalf("%d records, want 1", len(out.recs))
			}
			r := out.recs[0]
			if r.SrcPort != 40000 {
				t.Errorf("originator port %d, want the client's 40000", r.SrcPort)
			}
			if r.ConnState != tc.want || r.State != tc.state {
				t.Errorf("%s: conn_state %v state %v, want %v %v", tc.segs, r.ConnState, r.State, tc.want, tc.state)
			}
		})
	}
}

// segment parses "o:SA+" (see TestConnState) into a decoded packet.
func segment(t *testing.T, seg string) *decode.Packet {
	t.Helper()
	side, fl, ok := strings.Cut(seg, ":")
	if !ok {
		t.Fatalf("segment %q", seg)
	}
	var flags uint8
	var plen uint32
	for _, c := range fl {
		switch c {
		case 'S':
			flags |= decode.TCPSyn
		case 'A':
			flags |= decode.TCPAck
		case 'F':
			flags |= decode.TCPFin
		case 'R':
			flags |= decode.TCPRst
		case '+':
			plen = 100
		default:
			t.Fatalf("segment %q: flag %q", seg, c)
		}
	}
	var p *decode.Packet
	if side == "o" {
		p = pkt(6, "10.0.0.1", 40000, "10.0.0.2", 80, flags, 66+plen)
	} else {
		p = pkt(6, "10.0.0.2", 80, "10.0.0.1", 40000, flags, 66+plen)
	}
	p.PayloadLen = plen
	return p
}

func TestConnStateUDP(t *testing.T) {
	// Zeek: S0 when only the originator sent, SF when both did; every
	// protocol but TCP and UDP is OTH.
	for _, tc := range []struct {
		proto uint8
		both  bool
		want  ConnState
	}{
		{17, false, ConnS0}, {17, true, ConnSF}, {1, false, ConnOTH}, {1, true, ConnOTH}, {132, true, ConnOTH},
	} {
		s, out := newShard(t, Config{})
		s.Packet(pkt(tc.proto, "10.0.0.1", 5000, "10.0.0.2", 53, 0, 80), nil, 1)
		if tc.both {
			s.Packet(pkt(tc.proto, "10.0.0.2", 53, "10.0.0.1", 5000, 0, 120), nil, 2)
		}
		s.Flush(EndEndOfCapture)
		if len(out.recs) != 1 || out.recs[0].ConnState != tc.want {
			t.Errorf("proto %d both %v: %+v, want %v", tc.proto, tc.both, out.recs, tc.want)
		}
	}
}

func TestConnStateNames(t *testing.T) {
	want := "OTH S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR"
	var got []string
	for c := ConnOTH; c <= ConnSHR; c++ {
		got = append(got, c.String())
	}
	if strings.Join(got, " ") != want {
		t.Errorf("names %v, want %s", got, want)
	}
}

// FuzzConnState feeds arbitrary segment sequences (each byte: bit 0 the
// side, bits 1-4 SYN, ACK, FIN, RST, bit 5 payload) through a shard and
// checks that every record has a conn_state code and a State that agree
// where the README ties them: S0 is SYN_SENT; REJ and the RST codes RESET.
func FuzzConnState(f *testing.F) {
	for _, seed := range []string{"\x02\x07\x10", "\x02\x03", "\x02\x09", "\x20\x21", "\x02\x06\x10\x31\x0b\x19", "\x02\x03\x12\x13"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64 {
			b = b[:64]
		}
		s, out := newShard(t, Config{})
		for i, c := range b {
			var flags uint8
			for bit, fl := range []uint8{decode.TCPSyn, decode.TCPAck, decode.TCPFin, decode.TCPRst} {
				if c&(2<<bit) != 0 {
					flags |= fl
				}
			}
			var p *decode.Packet
			if c&1 == 0 {
				p = pkt(6, "10.0.0.1", 40000, "10.0.0.2", 80, flags, 66)
			} else {
				p = pkt(6, "10.0.0.2", 80, "10.0.0.1", 40000, flags, 66)
			}
			if c&0x20 != 0 {
				p.PayloadLen = 10
			}
			s.Packet(p, nil, int64(i+1))
		}
		s.Flush(EndEndOfCapture)
		for _, r := range out.recs {
			if r.ConnState > ConnSHR {
				t.Fatalf("%x: conn_state %d", b, r.ConnState)
			}
			switch r.ConnState {
			case ConnS0:
				if r.State != StateSynSent {
					t.Errorf("%x: S0 with state %v", b, r.State)
				}
			case ConnREJ, ConnRSTO, ConnRSTR, ConnRSTOS0, ConnRSTRH:
				if r.State != StateReset {
					t.Errorf("%x: %v with state %v", b, r.ConnState, r.State)
				}
			}
		}
	})
}
