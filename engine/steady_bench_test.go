package engine

import (
	"context"
	"encoding/binary"
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
		copy(f, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00})
		ip := f[14:34]
		ip[0], ip[8] = 0x45, 64
		binary.BigEndian.PutUint16(ip[2:], 46)
		copy(ip[12:], []byte{198, 18, 0, 1})
		copy(ip[16:], []byte{198, 19, 0, 1})
		l4 := f[34:]
		binary.BigEndian.PutUint16(l4[0:], uint16(i/2))
		if i%2 == 0 {
			ip[9] = 6
			binary.BigEndian.PutUint16(l4[2:], 443)
			l4[12], l4[13] = 5<<4, decode.TCPAck
			binary.BigEndian.PutUint16(l4[14:], 512)
		} else {
			ip[9] = 17
			ip[15] = 2
			binary.BigEndian.PutUint16(l4[2:], 53)
			binary.BigEndian.PutUint16(l4[4:], 26)
			for j := 8; j < 26; j++ {
				l4[j] = 'A'
			}
		}
		frames[i] = f
	}
	return frames
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
	frames := steadyFrames()
	var cfg flowtable.Config
	flowtable.NewBudget(256<<20, 1, true, 0).Apply(&cfg)
	cfg.Detect = true
	sh, err := flowtable.New(cfg, func([]flowtable.Record) {})
	if err != nil {
		b.Fatal(err)
	}
	w := NewWorker(sh)
	feed := NewFeedSet(1)
	w.SetAlertFeed(feed.Ring(0))
	const block, gap = 2048, 3300 // frames per block, ns between frames
	wire := make([]uint32, BatchFrames)
	for i := range wire {
		wire[i] = 60
	}
	tss := make([]int64, BatchFrames)
	ts := int64(1e18)
	var items []FeedItem
	var qs []int
	parts := SnapshotParts{Protocols: true, Scan: true}
	pass := func(n int, snaps bool) {
		nextSnap := ts + 1e9
		for i := 0; i < n; {
			k := i % len(frames)
			m := min(BatchFrames, len(frames)-k, n-i)
			for j := range m {
				ts += gap
				tss[j] = ts
			}
			w.HandleBatch(frames[k:k+m], wire[:m], tss[:m], decode.LinkEthernet)
			i += m
			if i%block == 0 || i == n {
				if snaps && ts >= nextSnap {
					nextSnap += 1e9
					done := make(chan struct{})
					go func() { w.Snapshot(context.Background(), parts); close(done) }()
					for {
						select {
						case <-done:
						default:
							w.answerSnapshot()
							continue
						}
						break
					}
				}
				w.EndBatch(ts)
				items, qs = feed.Drain(items[:0], qs[:0])
			}
		}
	}
	pass(len(frames), false) // the recurring flows are in
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNanos()
	pass(b.N, true)
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
