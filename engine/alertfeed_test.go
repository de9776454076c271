package engine

import (
	"net/netip"
	"testing"

	"github.com/netsentry/netsentry/flowtable"
)

// TestAlertFeed: ndpi-synscan.pcap through a worker with a feed, 64 frames
// a batch: the feed's last report of the scanner 172.16.0.8 has the 1000
// distinct ports (an estimate) and one host tshark shows it reaching, and the cumulative
// totals end at the file's frame count; a full ring drops and counts, the
// worker never waits, and a batch end allocates nothing.
func TestAlertFeed(t *testing.T) {
	data, wire, link, ts := frames(t, "ndpi-synscan.pcap")
	sh, err := flowtable.New(flowtable.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	set := NewFeedSet(1)
	w.SetAlertFeed(set.Ring(0))
	scanner := netip.MustParseAddr("172.16.0.8")
	var items []FeedItem
	var qs []int
	var last *FeedItem
	var lastScan FeedItem
	reports := 0
	for i := 0; i < len(data); i += 64 {
		for j := i; j < min(i+64, len(data)); j++ {
			w.Handle(data[j], wire[j], link[j], ts[j])
		}
		w.EndBatch(ts[min(i+64, len(data))-1])
		items, qs = set.Drain(items[:0], qs[:0])
		for k := range items {
			it := &items[k]
			if qs[k] != 0 {
				t.Fatalf("ring index %d", qs[k])
			}
			switch it.Kind {
			case FeedTotals:
				lt := *it
				last = &lt
			case FeedSource:
				if netip.AddrFrom4([4]byte(it.Addr[:4])) == scanner && it.IPVersion == 4 {
					if reports > 0 && it.N[0] < lastScan.N[0] {
						t.Fatalf("scanner's connections went from %d to %d within the window", lastScan.N[0], it.N[0])
					}
					lastScan = *it
					reports++
				}
			}
		}
	}
	if last == nil || last.N[0] != uint64(len(data)) {
		t.Fatalf("last totals %+v, want %d packets", last, len(data))
	}
	// Past 16 ports the shard counts with HyperLogLog: 99.7 % of estimates
	// lie within 13.8 % (flowtable.ScanTracker).
	if p := lastScan.N[1]; p < 862 || p > 1138 || lastScan.N[3] != 1 || lastScan.N[2] != 1 {
		t.Fatalf("scanner's last report: %d ports (approximate %d), %d hosts; tshark: 1000 ports of 1 host", p, lastScan.N[3], lastScan.N[2])
	}
	if set.Dropped() != 0 {
		t.Fatalf("%d dropped while drained", set.Dropped())
	}
	t.Logf("%d reports of the scanner over %d batches", reports, (len(data)+63)/64)

	// Nobody drains: the ring fills, the rest is dropped and counted.
	sh2, _ := flowtable.New(flowtable.Config{}, nil)
	w2 := NewWorker(sh2)
	set2 := NewFeedSet(1)
	w2.SetAlertFeed(set2.Ring(0))
	for i := range data {
		w2.Handle(data[i], wire[i], link[i], ts[i])
		w2.EndBatch(ts[i])
	}
	items, _ = set2.Drain(items[:0], qs[:0])
	if len(items) != FeedRingSize || set2.Dropped() == 0 {
		t.Fatalf("full ring: %d items, %d dropped; want %d and some", len(items), set2.Dropped(), FeedRingSize)
	}
	if !set2.Sleep() {
		t.Fatal("Sleep with empty rings says stay awake")
	}
	w2.Handle(data[0], wire[0], link[0], ts[len(ts)-1]+1)
	w2.EndBatch(ts[len(ts)-1] + 1)
	select {
	case <-set2.Wake():
	default:
		t.Fatal("a publish after Sleep did not wake")
	}

	allocs := testing.AllocsPerRun(50, func() {
		for i := 0; i < 64; i++ {
			w.Handle(data[i], wire[i], link[i], ts[len(ts)-1])
		}
		w.EndBatch(ts[len(ts)-1])
		items, qs = set.Drain(items[:0], qs[:0])
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per batch with the feed", allocs)
	}
}

// TestAlertFeedConcurrent: a worker goroutine publishing while the consumer
// drains and sleeps (run with -race): the consumer sees the cumulative
// packet count rise and end at the file's frame count.
func TestAlertFeedConcurrent(t *testing.T) {
	data, wire, link, ts := frames(t, "ndpi-synscan.pcap")
	sh, err := flowtable.New(flowtable.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	set := NewFeedSet(1)
	w.SetAlertFeed(set.Ring(0))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(data); i += 8 {
			for j := i; j < min(i+8, len(data)); j++ {
				w.Handle(data[j], wire[j], link[j], ts[j])
			}
			w.EndBatch(ts[min(i+8, len(data))-1])
		}
	}()
	var items []FeedItem
	var qs []int
	var last uint64
	for finished := false; ; {
		items, qs = set.Drain(items[:0], qs[:0])
		for _, it := range items {
			if it.Kind == FeedTotals {
				if it.N[0] < last {
					t.Fatalf("packets went back from %d to %d", last, it.N[0])
				}
				last = it.N[0]
			}
		}
		if finished && len(items) == 0 {
			break
		}
		if len(items) == 0 && set.Sleep() {
			select {
			case <-set.Wake():
			case <-done:
				finished = true
			}
		}
	}
	if last != uint64(len(data)) || set.Dropped() != 0 {
		t.Fatalf("last packet count %d (want %d), %d dropped", last, len(data), set.Dropped())
	}
}

// TestAlertFeedNoSources: with SetSources(false) (no rule uses the scan
// signals) a worker reports no source, and the marks do not pile up.
func TestAlertFeedNoSources(t *testing.T) {
	data, wire, link, ts := frames(t, "ndpi-synscan.pcap")
	sh, err := flowtable.New(flowtable.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	set := NewFeedSet(1)
	set.SetSources(false)
	w.SetAlertFeed(set.Ring(0))
	var items []FeedItem
	var qs []int
	totals := 0
	for i := range data {
		w.Handle(data[i], wire[i], link[i], ts[i])
		w.EndBatch(ts[i])
		items, qs = set.Drain(items[:0], qs[:0])
		for _, it := range items {
			switch it.Kind {
			case FeedSource:
				t.Fatalf("a source reported with SetSources(false): %+v", it)
			case FeedTotals:
				totals++
			}
		}
	}
	if totals == 0 || sh.ScanChangesDropped() != 0 {
		t.Fatalf("%d totals reported, %d marks dropped", totals, sh.ScanChangesDropped())
	}
	// Asked for again, sources are reported from the batch after the first
	// batch end that sees the request (the shard marked nothing before),
	// with the counts the shard's scan snapshot shows.
	set.SetSources(true)
	w.EndBatch(ts[len(ts)-1])
	set.Drain(items[:0], qs[:0])
	sources := 0
	for i := range data {
		w.Handle(data[i], wire[i], link[i], ts[i]+ts[len(ts)-1]-ts[0])
		w.EndBatch(ts[i] + ts[len(ts)-1] - ts[0])
		items, qs = set.Drain(items[:0], qs[:0])
		var snap []flowtable.SourceStats
		for _, it := range items {
			if it.Kind != FeedSource {
				continue
			}
			sources++
			if snap == nil {
				snap = sh.ScanSnapshot(nil)
			}
			found := false
			for _, st := range snap {
				if st.Addr == it.Addr && st.IPVersion == it.IPVersion {
					found = st.Connections == it.N[0] && st.DistinctPorts == it.N[1] && st.DistinctHosts == it.N[2]
				}
			}
			if !found {
				t.Fatalf("reported %+v, the scan snapshot says %+v", it, snap)
			}
		}
	}
	if sources == 0 {
		t.Fatal("no source reported after SetSources(true)")
	}
}

// TestAlertFeedLazy: a lazy feed set wakes its sleeping consumer only once
// a ring is half full (ndpi-synscan.pcap a frame a batch: an item each), and the consumer then drains every item the workers
// wrote (the same as an eager set's: the totals end at the frame count);
// switched back to eager, the next batch end wakes it.
func TestAlertFeedLazy(t *testing.T) {
	data, wire, link, ts := frames(t, "ndpi-synscan.pcap")
	sh, err := flowtable.New(flowtable.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(sh)
	set := NewFeedSet(1)
	set.SetSources(false)
	set.SetLazy(true)
	w.SetAlertFeed(set.Ring(0))
	if !set.Sleep() {
		t.Fatal("Sleep with no items reported items")
	}
	woken := func() bool {
		select {
		case <-set.Wake():
			return true
		default:
			return false
		}
	}
	var items []FeedItem
	var qs []int
	var last uint64
	i, batches, wakes := 0, 0, 0
	for ; i < len(data); i++ {
		w.Handle(data[i], wire[i], link[i], ts[i])
		w.EndBatch(ts[i])
		batches++
		if !woken() {
			continue
		}
		wakes++
		if n := set.Ring(0).tail.Load() - set.Ring(0).head.Load(); n < FeedRingSize/2 {
			t.Fatalf("woken with %d items after %d batch ends, want at least half the ring (%d)", n, batches, FeedRingSize/2)
		}
		items, qs = set.Drain(items[:0], qs[:0])
		for _, it := range items {
			if it.Kind == FeedTotals {
				last = it.N[0]
			}
		}
		if !set.Sleep() {
			t.Fatal("Sleep after a drain reported items")
		}
		break
	}
	if wakes != 1 || batches < FeedRingSize/2 || i >= len(data)-1 {
		t.Fatalf("%d wake-ups in %d batch ends of %d frames, want one at half the ring", wakes, batches, len(data))
	}
	set.SetLazy(false)
	for i++; i < len(data); i++ {
		w.Handle(data[i], wire[i], link[i], ts[i])
		w.EndBatch(ts[i])
		if !woken() {
			t.Fatalf("eager again: frame %d's batch end did not wake the consumer", i)
		}
		items, qs = set.Drain(items[:0], qs[:0])
		for _, it := range items {
			if it.Kind == FeedTotals {
				last = it.N[0]
			}
		}
		set.Sleep()
	}
	if last != uint64(len(data)) || set.Dropped() != 0 {
		t.Fatalf("totals end at %d packets, want %d; %d items dropped", last, len(data), set.Dropped())
	}
}
