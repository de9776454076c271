package flowtable

import (
	"fmt"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// TestDegradeOrder walks the degradation levels in their stated order and
// checks, against the packets the test sent, what each level sheds and that
// no packet or byte is lost on the way.
func TestDegradeOrder(t *testing.T) {
	s, out := newShard(t, Config{Detect: true, MaxFlows: 4096})
	http := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	var sent, sentBytes uint64
	send := func(p *decode.Packet, payload []byte, ts int64) {
		frame := make([]byte, 64+len(payload))
		copy(frame[64:], payload)
		p.PayloadOff, p.PayloadLen = 64, uint32(len(payload))
		s.Packet(p, frame, ts)
		sent++
		sentBytes += uint64(p.WireLen)
	}
	ts := sec
	// Normal: a flow's first payload takes a detection state.
	send(pkt(6, "10.0.0.1", 1000, "10.9.0.1", 80, decode.TCPAck|decode.TCPPsh, 100), http, ts)
	s.Pressure(0.1)
	if m := s.Mode(); m != ModeNormal {
		t.Fatalf("mode %v with no pressure", m)
	}
	// A quarter of the ring waiting: no detection for new flows.
	s.Pressure(0.25)
	if m := s.Mode(); m != ModeNoDetect {
		t.Fatalf("mode %v at a quarter of the ring, want no_detect", m)
	}
	send(pkt(6, "10.0.0.2", 1000, "10.9.0.1", 80, decode.TCPAck|decode.TCPPsh, 100), http, ts)
	// ... but the flow that has a state keeps it.
	send(pkt(6, "10.0.0.1", 1000, "10.9.0.1", 80, decode.TCPAck|decode.TCPPsh, 100), http, ts)
	if st := s.Stats(); st.DegradedDetect != 1 {
		t.Errorf("DegradedDetect %d, want 1", st.DegradedDetect)
	}
	// Half the ring: scan signals sampled, one new connection in 8.
	s.Pressure(0.5)
	if m := s.Mode(); m != ModeScanSample {
		t.Fatalf("mode %v at half the ring, want scan_sample", m)
	}
	for i := range 64 {
		send(pkt(6, "10.0.0.3", 2000, "10.9.0.2", uint16(i+1), decode.TCPSyn, 60), nil, ts)
	}
	// Three quarters: emergency timeouts (an eighth of 120 s).
	s.Pressure(0.75)
	if m := s.Mode(); m != ModeEmergency {
		t.Fatalf("mode %v at three quarters of the ring, want emergency", m)
	}
	top := s.ScanTop(1, "connections")
	if len(top) != 1 || top[0].Connections != 64/scanSampleEvery {
		t.Errorf("scan signals while sampled: %+v, want %d connections", top, 64/scanSampleEvery)
	}
	ts += 16 * sec
	send(pkt(17, "10.0.0.4", 53, "10.9.0.3", 53, 0, 80), nil, ts) // still active
	s.Expire(ts)
	st := s.Stats()
	// 65 new connections while sampled (the UDP flow too), 8 of them fed.
	if st.DegradedScan != 65-65/scanSampleEvery {
		t.Errorf("DegradedScan %d, want %d", st.DegradedScan, 65-65/scanSampleEvery)
	}
	if st.Active != 1 || st.DegradedEmergency != 66 {
		t.Errorf("after the emergency timeout: %d active, %d ended early; want 1 and 66", st.Active, st.DegradedEmergency)
	}
	if st.DegradedEntered != [NumModes]uint64{0, 1, 1, 1} {
		t.Errorf("levels entered %v", st.DegradedEntered)
	}
	// Calm: one level back per second of packet time.
	for want := ModeScanSample; ; want-- {
		ts += sec
		send(pkt(17, "10.0.0.4", 53, "10.9.0.3", 53, 0, 80), nil, ts)
		s.Pressure(0)
		if m := s.Mode(); m != want {
			t.Fatalf("mode %v after a calm second, want %v", m, want)
		}
		if want == ModeNormal {
			break
		}
	}
	s.Flush(EndShutdown)
	var pk, by uint64
	apps := map[string]bool{}
	for _, r := range out.recs {
		pk += r.PacketsTx + r.PacketsRx
		by += r.BytesTx + r.BytesRx
		apps[fmt.Sprint(r.Src[3])+" "+r.AppName()+" "+map[bool]string{true: "guess", false: "seen"}[r.AppGuess()]] = true
	}
	if pk != sent || by != sentBytes {
		t.Errorf("records hold %d packets, %d bytes; sent %d, %d", pk, by, sent, sentBytes)
	}
	if !apps["1 HTTP seen"] || !apps["2 HTTP guess"] {
		t.Errorf("detection: %v, want 10.0.0.1 detected and 10.0.0.2 by its port", apps)
	}
}

// TestDegradeFullTable: evictions at the table's bound alone call for
// ModeNoDetect, and the level falls back once they stop.
func TestDegradeFullTable(t *testing.T) {
	s, _ := newShard(t, Config{MaxFlows: 1024})
	ts := sec
	for i := range 1100 {
		s.Packet(pkt(17, "10.0.0.1", uint16(i), "10.9.0.1", 53, 0, 60), nil, ts)
	}
	s.Pressure(0)
	if m := s.Mode(); m != ModeNoDetect {
		t.Fatalf("mode %v with the table evicting, want no_detect", m)
	}
	ts += 2 * sec
	s.Packet(pkt(17, "10.0.0.1", 1099, "10.9.0.1", 53, 0, 60), nil, ts) // in the table
	s.Pressure(0)
	if m := s.Mode(); m != ModeNormal {
		t.Fatalf("mode %v after a calm second, want normal", m)
	}
}
