package engine

import (
	"context"
	"encoding/binary"
	"runtime"
	"syscall"
	"testing"

	"github.com/netsentry/netsentry/decode"
	"github.com/netsentry/netsentry/flowtable"
)

// steadyFrames returns the frames of make bench-live's steady shape as
// trafgen sends them: 60-byte Ethernet frames, a TCP ACK from 198.18.0.1
// to 198.19.0.1:443 with 6 zero bytes of payload and a UDP datagram from
// 198.18.0.2 to 198.19.0.1:53 with 18 bytes 'A', alternately, each
// template counting its source port up, 65,536 of each.
func steadyFrames() [][]byte {
	frames := make([][]byte, 2<<16)
	for i := range frames {
		f := make([]byte, 60)
		if i%2 == 0 {
			benchFrame(f, [4]byte{198, 18, 0, 1}, uint16(i/2), 443, decode.TCPAck)
		} else {
			benchFrame(f, [4]byte{198, 18, 0, 2}, uint16(i/2), 53, 0)
		}
		frames[i] = f
	}
	return frames
}

// benchFrame writes into f (60 bytes) an Ethernet frame as bench-live's
// trafgen templates make them, from src:sp to 198.19.0.1:dp: a TCP segment
// with flags tcp and 6 zero bytes of payload, or with tcp 0 a UDP datagram
// of 18 bytes 'A'.
func benchFrame(f []byte, src [4]byte, sp, dp uint16, tcp uint8) {
	copy(f, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00})
	ip := f[14:34]
	ip[0], ip[8] = 0x45, 64
	binary.BigEndian.PutUint16(ip[2:], 46)
	copy(ip[12:], src[:])
	copy(ip[16:], []byte{198, 19, 0, 1})
	l4 := f[34:]
	binary.BigEndian.PutUint16(l4[0:], sp)
	binary.BigEndian.PutUint16(l4[2:], dp)
	if tcp != 0 {
		ip[9] = 6
		l4[12], l4[13] = 5<<4, tcp
		binary.BigEndian.PutUint16(l4[14:], 512)
		return
	}
	ip[9] = 17
	binary.BigEndian.PutUint16(l4[4:], 26)
	for j := 8; j < 26; j++ {
		l4[j] = 'A'
	}
}

// BenchmarkSteadyWorker is the worker's whole share of the steady shape
// (make bench-live -shapes steady) without the ring: the daemon's shard (the
// budget of memory_limit_mb 256, detection and the alert feed on), the
// recurring flows in, frames decoded and accounted BatchFrames at a time,
// EndBatch after every ring block (2,048 frames: 256 KiB of 128-byte
// slots) at ~0.3 M frames/s of packet time, the alert feed drained after
// each, and the sensor's snapshot (protocols and scan signals, as the
// daemon asks for them) once a second of packet time.
func BenchmarkSteadyWorker(b *testing.B) {
	r := newWorkerBench(b, steadyFrames())
	r.pass(len(r.frames), false) // the recurring flows are in
	r.measure(b)
}

// workerBench runs frames through a worker as the daemon's capture does:
// the shard of memory_limit_mb 256 (one worker, detection and the alert
// feed on), BatchFrames at a time, EndBatch after every ring block (2,048
// frames: 256 KiB of 128-byte slots) at ~0.3 M frames/s of packet time,
// the alert feed drained after each, and the sensor's snapshot (protocols
// and scan signals) once a second of packet time. The frames are walked
// in a cycle.
type workerBench struct {
	w      *Worker
	sh     *flowtable.Shard
	cfg    flowtable.Config
	feed   *FeedSet
	frames [][]byte
	k      int   // next frame
	ts     int64 // packet clock
	wire   []uint32
	tss    []int64
	items  []FeedItem
	qs     []int
}

func newWorkerBench(b *testing.B, frames [][]byte) *workerBench {
	r := &workerBench{frames: frames, ts: 1e18, wire: make([]uint32, BatchFrames), tss: make([]int64, BatchFrames)}
	flowtable.NewBudget(256<<20, 1, true, 0).Apply(&r.cfg)
	r.cfg.Detect = true
	var err error
	if r.sh, err = flowtable.New(r.cfg, func([]flowtable.Record) {}); err != nil {
		b.Fatal(err)
	}
	r.w = NewWorker(r.sh)
	r.feed = NewFeedSet(1)
	r.w.SetAlertFeed(r.feed.Ring(0))
	for i := range r.wire {
		r.wire[i] = 60
	}
	return r
}

// pass hands the worker n frames, with the sensor's snapshots when snaps.
func (r *workerBench) pass(n int, snaps bool) {
	const block, gap = 2048, 3300 // frames per block, ns between frames
	parts := SnapshotParts{Protocols: true, Scan: true}
	w := r.w
	nextSnap := r.ts + 1e9
	for i := 0; i < n; {
		m := min(BatchFrames, len(r.frames)-r.k, n-i)
		for j := range m {
			r.ts += gap
			r.tss[j] = r.ts
		}
		w.HandleBatch(r.frames[r.k:r.k+m], r.wire[:m], r.tss[:m], decode.LinkEthernet)
		i += m
		if r.k += m; r.k == len(r.frames) {
			r.k = 0
		}
		if i%block == 0 || i == n {
			if snaps && r.ts >= nextSnap {
				nextSnap += 1e9
				// The request comes from another goroutine, as the
				// sensor's does; the worker answers it when it has arrived
				// (yielding, not spinning, until then: a spin's CPU would
				// count here and not in the daemon) and then waits for the
				// requester to finish with it.
				done := make(chan struct{})
				go func() { w.Snapshot(context.Background(), parts); close(done) }()
				for !w.answerOne() {
					runtime.Gosched()
				}
				<-done
			}
			w.EndBatch(r.ts)
			r.items, r.qs = r.feed.Drain(r.items[:0], r.qs[:0])
		}
	}
}

// measure times b.N frames, reporting the process's CPU per frame too.
func (r *workerBench) measure(b *testing.B) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNanos()
	r.pass(b.N, true)
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNanos returns the process's user and system CPU time.
func cpuNanos() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkProtocolSnapshotSteady: the sensor's per-second protocol
// distribution of the steady shape's 131,072 open flows (each with a
// detection state), as the worker answers it.
func BenchmarkProtocolSnapshotSteady(b *testing.B) {
	frames := steadyFrames()
	var cfg flowtable.Config
	flowtable.NewBudget(256<<20, 1, true, 0).Apply(&cfg)
	cfg.Detect = true
	sh, err := flowtable.New(cfg, func([]flowtable.Record) {})
	if err != nil {
		b.Fatal(err)
	}
	w := NewWorker(sh)
	for i, f := range frames {
		w.Handle(f, 60, decode.LinkEthernet, int64(1e18)+int64(i)*3300)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if ps := sh.ProtocolSnapshot(); len(ps) != 2 {
			b.Fatalf("protocols %+v, want HTTPS (guess) and DNS", ps)
		}
	}
}
