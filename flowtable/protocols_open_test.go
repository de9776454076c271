package flowtable

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/internal/testcorpus"
)

// TestOpenProtocolsCorpus: over every classic pcap of the corpus, with a
// small table (evictions), short timeouts (expiry, active-timeout cuts) and
// few detection states (flows that get none), the open-protocol table gives
// the snapshot the walk over every open flow gives (protocolSnapshotWalk,
// the former ProtocolSnapshot), every 37 frames and after the final flush.
func TestOpenProtocolsCorpus(t *testing.T) {
	names := testcorpus.Files(t, "*.pcap")
	if len(names) < 20 {
		t.Fatalf("corpus: %d pcaps, want the shared corpus", len(names))
	}
	for _, name := range names {
		frames, link, err := readPcap(name)
		if err != nil && !errors.Is(err, errTruncatedRecord) {
			t.Fatalf("%s: %v", name, err)
		}
		for _, cfg := range []Config{
			{Detect: true},
			{Detect: true, MaxFlows: 16, MaxDetect: 4, IdleTimeout: time.Second, UDPIdleTimeout: time.Second,
				ActiveTimeout: 2 * time.Second, Linger: 100 * time.Millisecond},
		} {
			s, err := New(cfg, func([]Record) {})
			if err != nil {
				t.Fatal(err)
			}
			var p decode.Packet
			check := func(at string) {
				t.Helper()
				if got, want := s.ProtocolSnapshot(), s.protocolSnapshotWalk(); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s (max flows %d) %s: table %+v, walk %+v", filepath.Base(name), cfg.MaxFlows, at, got, want)
				}
			}
			for i, f := range frames {
				decode.Parse(f.data, f.wireLen, link, &p)
				s.Packet(&p, f.data, f.ts)
				if i%37 == 0 {
					s.Expire(f.ts)
					check("mid-trace")
				}
			}
			check("at the end")
			s.Flush(EndShutdown)
			check("after the flush")
		}
	}
}

// TestOpenProtocolsChurn: synthetic flows on ports that guess protocols,
// with payloads that name them (or name another, or nothing), restarted
// on closed connections, cut by the active timeout, expired and evicted,
// and detection degraded for some: the table matches the walk after every
// packet and every expiry.
func TestOpenProtocolsChurn(t *testing.T) {
	payloads := [][]byte{
		nil,
		[]byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
		[]byte("SSH-2.0-OpenSSH_9.2\r\n"),
		[]byte("220 mail.example.com ESMTP ready\r\n"),
		{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00},                                              // a TLS handshake record
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1}, // a DNS query
		{0, 0, 0, 0, 0, 0},
	}
	ports := []uint16{80, 443, 53, 25, 22, 8080, 123, 5353, 40000}
	rng := rand.New(rand.NewPCG(5, 6))
	s, err := New(Config{Detect: true, MaxFlows: 64, MaxDetect: 24, IdleTimeout: 3 * time.Second, UDPIdleTimeout: 2 * time.Second,
		ActiveTimeout: 4 * time.Second, Linger: 500 * time.Millisecond}, func([]Record) {})
	if err != nil {
		t.Fatal(err)
	}
	ts := int64(1_700_000_000_000_000_000)
	var p decode.Packet
	flagSets := []uint8{decode.TCPSyn, decode.TCPSyn | decode.TCPAck, decode.TCPAck, decode.TCPAck | decode.TCPPsh,
		decode.TCPFin | decode.TCPAck, decode.TCPRst}
	for step := range 400 {
		if step%40 == 20 {
			s.mode = ModeNoDetect // degraded: new flows get no state
		} else if step%40 == 30 {
			s.mode = ModeNormal
		}
		for range 50 {
			a, b := decode.Addr{10, 0, 0, byte(rng.IntN(6))}, decode.Addr{10, 1, 0, byte(rng.IntN(3))}
			sp, dp := uint16(30000+rng.IntN(8)), ports[rng.IntN(len(ports))]
			if rng.IntN(2) == 0 { // a few connections over and over: closed, reset, started again
				a, b, sp, dp = decode.Addr{10, 0, 0, 9}, decode.Addr{10, 1, 0, 9}, 30009, ports[rng.IntN(3)]
			}
			if rng.IntN(2) == 0 {
				a, b, sp, dp = b, a, dp, sp
			}
			pl := payloads[rng.IntN(len(payloads))]
			p = decode.Packet{HasFlow: true, NumIP: 1, WireLen: uint32(54 + len(pl)), PayloadLen: uint32(len(pl))}
			p.IP[0] = decode.IPLayer{Src: a, Dst: b, IPVersion: 4}
			p.Flow = decode.Tuple{Src: a, Dst: b, SrcPort: sp, DstPort: dp, Proto: 6, IPVersion: 4}
			switch rng.IntN(5) {
			case 0:
				p.Flow.Proto = 17
			case 1:
				p.Flow.Proto, p.Flow.SrcPort, p.Flow.DstPort, pl = 1, 0, 0, nil
				p.PayloadLen = 0
			default:
				p.TCPFlags = flagSets[rng.IntN(len(flagSets))]
			}
			s.Packet(&p, pl, ts)
			ts += int64(rng.IntN(40_000_000))
			if got, want := s.ProtocolSnapshot(), s.protocolSnapshotWalk(); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d: table %+v, walk %+v", step, got, want)
			}
		}
		s.Expire(ts)
		if got, want := s.ProtocolSnapshot(), s.protocolSnapshotWalk(); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d, expired: table %+v, walk %+v", step, got, want)
		}
	}
	st := s.Stats()
	if st.FlowsEvicted == 0 || st.DetectSkipped+st.DegradedDetect == 0 || st.FlowsEnded < 1000 {
		t.Fatalf("the churn did not reach evictions, flows without a state and many ends: %+v", st)
	}
	s.Flush(EndShutdown)
	if got, want := s.ProtocolSnapshot(), s.protocolSnapshotWalk(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the flush: table %+v, walk %+v", got, want)
	}
	for k, o := range s.open {
		if o != (openStat{}) {
			t.Fatalf("after the flush, open row %d holds %+v", k, o)
		}
	}
}
