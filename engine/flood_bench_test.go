package engine

import (
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
		src := [4]byte{198, 18, byte(r.Uint32()), byte(r.Uint32())}
		sp, dp := uint16(r.Uint32()), uint16(r.Uint32())
		var tcp uint8
		if i%2 == 0 {
			tcp = decode.TCPSyn
		}
		benchFrame(f, src, sp, dp, tcp)
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
