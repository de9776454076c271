//go:build linux

package engine

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// flooder sends 64-byte UDP frames on s0 of a test namespace as fast as one
// thread can write them, cycling over 4096 source ports so that every
// queue of the fan-out gets flows.
type flooder struct {
	sent atomic.Uint64
	stop atomic.Bool
	done chan error
}

// flood starts the sender; it stops when stop is called or after d.
func (tn *testNet) flood(t *testing.T, d time.Duration) *flooder {
	t.Helper()
	f := &flooder{done: make(chan error, 1)}
	ns := tn.ns
	go func() {
		// The thread enters the namespace and is never handed back: it
		// ends with the goroutine (the thread stays locked).
		runtime.LockOSThread()
		f.done <- f.run(ns, d)
	}()
	t.Cleanup(func() { f.halt() })
	return f
}

func (f *flooder) run(ns string, d time.Duration) error {
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = unix.Setns(target, unix.CLONE_NEWNET)
	unix.Close(target)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	idx, err := ifIndex(fd, "s0")
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: idx}); err != nil {
		return err
	}
	frame := make([]byte, 64)
	copy(frame[0:6], []byte{0x02, 0, 0, 0, 0, 0x02})
	copy(frame[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	ip := frame[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 64-14)
	copy(ip[12:16], []byte{198, 51, 100, 1})
	copy(ip[16:20], []byte{198, 51, 100, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum = sum>>16 + sum&0xffff
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum+sum>>16))
	udp := frame[34:42]
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], 64-34)
	end := time.Now().Add(d)
	for i := 0; ; i++ {
		if i%1024 == 0 && (f.stop.Load() || time.Now().After(end)) {
			return nil
		}
		binary.BigEndian.PutUint16(udp[0:], uint16(20000+i%4096))
		if _, err := unix.Write(fd, frame); err == nil {
			f.sent.Add(1)
		}
	}
}

// halt stops the sender and waits for it.
func (f *flooder) halt() error {
	if f.stop.Swap(true) {
		return nil
	}
	return <-f.done
}

// TestLiveStopUnderFlood stops a capture while a flood is arriving: after
// Run returned, the kernel's own count for every queue's socket (tp_packets
// of PACKET_STATISTICS) must equal the frames the worker walked plus the
// kernel's drops, exactly, and the flow records exported at the stop must
// hold every walked frame. The flood goes on while the capture stops, so
// frames arrive in the partly filled block and in flight at the stop.
func TestLiveStopUnderFlood(t *testing.T) {
	needLive(t)
	for _, c := range []struct {
		queues  int
		stalled bool // the workers start after the flood filled the rings: the kernel drops
	}{{1, false}, {2, false}, {1, true}, {2, true}} {
		t.Run(fmt.Sprintf("queues=%d,stalled=%v", c.queues, c.stalled), func(t *testing.T) {
			tn := newTestNet(t)
			lr := startLive(t, tn, LiveConfig{Queues: c.queues, RingMB: 1, BatchSize: 256}, !c.stalled)
			fl := tn.flood(t, 20*time.Second)
			if c.stalled {
				for end := time.Now().Add(10 * time.Second); fl.sent.Load() < 50000 && time.Now().Before(end); {
					time.Sleep(5 * time.Millisecond)
				}
				lr.run()
			}
			lr.waitPackets(100000, 10*time.Second)
			before := fl.sent.Load()
			start := time.Now()
			lr.stop(t)
			took := time.Since(start)
			after := fl.sent.Load()
			if err := fl.halt(); err != nil {
				t.Fatalf("flood: %v", err)
			}
			if after <= before {
				t.Fatalf("the sender sent nothing while the capture stopped (%d frames before, %d after): not a stop under traffic", before, after)
			}
			var recPackets uint64
			for _, recs := range lr.recs {
				for i := range recs {
					recPackets += recs[i].PacketsTx + recs[i].PacketsRx
				}
			}
			st := lr.l.Stats()
			tot := TotalStats(st)
			t.Logf("stop took %v; sent %d (%d before the stop); kernel %d = captured %d + dropped %d (freezes %d); in flow records %d",
				took, fl.sent.Load(), before, tot.KernelPackets, tot.Packets, tot.KernelDrops, tot.Freezes, recPackets)
			for _, q := range st {
				if q.Packets == 0 {
					t.Errorf("queue %d captured nothing", q.Queue)
				}
				if q.KernelPackets != q.Packets+q.KernelDrops {
					t.Errorf("queue %d: the kernel counted %d frames, the worker %d and the kernel dropped %d: %d unaccounted",
						q.Queue, q.KernelPackets, q.Packets, q.KernelDrops, int64(q.KernelPackets)-int64(q.Packets+q.KernelDrops))
				}
			}
			if c.stalled && tot.KernelDrops == 0 {
				t.Errorf("no kernel drop although the flood filled the rings before the workers started")
			}
			if tot.KernelPackets > fl.sent.Load() {
				t.Errorf("the kernel counted %d frames, more than the %d sent", tot.KernelPackets, fl.sent.Load())
			}
			if recPackets != tot.Packets {
				t.Errorf("flow records hold %d packets, the workers captured %d", recPackets, tot.Packets)
			}
		})
	}
}
