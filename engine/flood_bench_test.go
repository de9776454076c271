package engine

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/netsentry/netsentry/decode"
)

// floodFrames returns n frames of make bench-live's flood shape as trafgen
// sends them: 60-byte Ethernet frames from 198.18.0.0/16 (a random 16-bit
// host part) to 198.19.0.1, random source and destination ports, a TCP SYN
// with 6 zero bytes of payload and a UDP datagram with 18 bytes 'A'
// alternately: every frame a new 5-tuple.
func floodFrames(n int) [][]byte {
	r := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, 60*n)
	frames := make([][]byte, n)
	for i := range frames {
		f := buf[60*i : 60*i+60 : 60*i+60]
		copy(f, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00})
		ip := f[14:34]
		ip[0], ip[8] = 0x45, 64
		binary.BigEndian.PutUint16(ip[2:], 46)
		copy(ip[12:], []byte{198, 18, byte(r.Uint32()), byte(r.Uint32())})
		copy(ip[16:], []byte{198, 19, 0, 1})
		l4 := f[34:]
		binary.BigEndian.PutUint16(l4[0:], uint16(r.Uint32()))
		binary.BigEndian.PutUint16(l4[2:], uint16(r.Uint32()))
		if i%2 == 0 {
			ip[9] = 6
			l4[12], l4[13] = 5<<4, decode.TCPSyn
			binary.BigEndian.PutUint16(l4[14:], 512)
		} else {
			ip[9] = 17
			binary.BigEndian.PutUint16(l4[4:], 26)
			for j := 8; j < 26; j++ {
				l4[j] = 'A'
			}
		}
		frames[i] = f
	}
	return frames
}

// BenchmarkFloodWorker is BenchmarkSteadyWorker for the flood shape (make
// bench-live -shapes flood): the daemon's shard (memory_limit_mb 256,
// detection and the alert feed on) full of earlier flood flows, so that
// every frame's new flow evicts one, its source (65,536 of them) churning
// through the scan tracker; frames decoded and accounted BatchFrames at a
// time, EndBatch every 2,048 frames at ~0.3 M frames/s of packet time, the
// alert feed drained after each, the sensor's snapshot (protocols and scan
// signals) once a second of packet time.
func BenchmarkFloodWorker(b *testing.B) {
	r := newWorkerBench(b, floodFrames(1<<20))     // a million frames later, their flows were evicted long ago
	r.pass(r.cfg.MaxFlows+r.cfg.MaxFlows/2, false) // the table full, evicting
	if st := r.sh.Stats(); st.FlowsEvicted == 0 {
		b.Fatalf("no eviction while warming: %+v", st)
	}
	r.measure(b)
}
