package store

import (
	"testing"
	"time"
	"unsafe"
)

// flowHeld is the bytes a FlowLog's buffers hold: its open blocks' and
// kept encoders, and its scratch space.
func flowHeld(f *FlowLog) int64 {
	held := func(e *blockEnc) int64 {
		n := int64(cap(e.prevApp)+cap(e.curApp)+cap(e.freshTime)+cap(e.freshApp)) +
			int64(cap(e.recs))*int64(unsafe.Sizeof(sumRec{})) + int64(cap(e.apps))*int64(unsafe.Sizeof(""))
		for i := range e.st {
			n += int64(cap(e.st[i]))
		}
		return n
	}
	var n int64
	for _, t := range f.tails {
		n += held(t.enc)
	}
	for _, e := range f.spare {
		n += held(e)
	}
	sc := &f.sc
	n += int64(cap(sc.raw) + cap(sc.val) + cap(sc.sum) + cap(sc.deltas))
	n += int64(cap(sc.appIdx)+cap(sc.ports))*2 + int64(cap(sc.ip4)+cap(sc.tmp4))*4 + int64(cap(sc.ip16))*16 + int64(unsafe.Sizeof(sc.portSet))
	return n
}

// TestFlowMemoryBound writes a flood's records and real captures' across
// six partitions, in the group sink's batch sizes and in single records,
// and checks that the FlowLog's buffers stay within FlowMemoryBytes (what
// the daemon takes out of memory_limit_mb for it, through MemoryBytes).
func TestFlowMemoryBound(t *testing.T) {
	bound := FlowMemoryBytes(0)
	f := openLog(t, memDB(t), FlowOptions{})
	recs := append(floodRecords(t, 6000), replay(t, "zeek-http-bro.org.pcap")...)
	recs = append(recs, replay(t, "ndpi-1kxun.pcap")...)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range recs {
		recs[i].Last = base + int64(i%6)*int64(time.Hour) + int64(i)
		recs[i].First = recs[i].Last - int64(time.Second)
	}
	peak := int64(0)
	for _, batch := range []int{2048, 256, 1} {
		for i := 0; i < len(recs); i += batch {
			if err := f.WriteFlows(recs[i:min(i+batch, len(recs))]); err != nil {
				t.Fatal(err)
			}
			peak = max(peak, flowHeld(f))
		}
	}
	t.Logf("flow history buffers: peak %d bytes, bound %d (%.1f MiB)", peak, bound, float64(bound)/(1<<20))
	if peak > bound {
		t.Fatalf("flow history buffers reached %d bytes, more than FlowMemoryBytes %d", peak, bound)
	}
}
