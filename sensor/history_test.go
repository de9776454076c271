package sensor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/flowtable"
	"github.com/netsentry/netsentry/store"
)

func storageConfig(dir string) configs.Storage {
	c := configs.Default().Storage
	c.LocalPath = dir
	return c
}

// TestOpenHistoryCreates: a missing directory (and its parents) is created
// and holds a store that keeps a tick across a reopen.
func TestOpenHistoryCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	h, err := OpenHistory(storageConfig(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Interval != 5*time.Second {
		t.Errorf("interval %v, want the default 5s", h.Interval)
	}
	at := time.Now().Truncate(5 * time.Second)
	if err := h.Store.Append(at, []store.Sample{{Name: "netsentry_x", Value: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h, err = OpenHistory(storageConfig(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ss, err := h.Store.Select([]store.Matcher{{Type: store.MatchEqual, Name: "__name__", Value: "netsentry_x"}}, 0, at.UnixMilli()+1)
	if err != nil || len(ss) != 1 {
		t.Fatalf("select after reopen: %v %v", ss, err)
	}
	pts, err := h.Store.Points(ss[0].Ref, 0, at.UnixMilli()+1, nil)
	if err != nil || len(pts) != 1 || pts[0].V != 3 || pts[0].T != at.UnixMilli() {
		t.Fatalf("points after reopen: %v %v", pts, err)
	}
}

// TestOpenHistoryErrors: a directory that cannot be made, one on a
// read-only filesystem, and one that holds something else are errors that
// name the key and the path.
func TestOpenHistoryErrors(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	ro := filepath.Join(base, "ro")
	os.Mkdir(ro, 0o755)
	if err := unix.Mount("tmpfs", ro, "tmpfs", unix.MS_RDONLY, "size=1m"); err != nil {
		t.Fatalf("mount a read-only tmpfs (tests run as root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ro, 0) })
	foreign := filepath.Join(base, "foreign")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o644)
	for _, c := range []struct{ dir, want string }{
		{filepath.Join(file, "sub"), "create the directory"},
		{ro, "is not writable"},
		{foreign, "not a store"},
	} {
		_, err := OpenHistory(storageConfig(c.dir), nil)
		if err == nil {
			t.Errorf("%s: opened", c.dir)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "storage.local_path \""+c.dir+"\"") || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %v; want it to name storage.local_path, the path and %q", c.dir, err, c.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(foreign, "notes.txt")); string(b) != "mine" {
		t.Error("a foreign directory was changed")
	}
}

// TestFlowSinkGroups: every record handed to the sink, in batches of 256
// as the exporter hands them, is in the flow history after Close, once.
func TestFlowSinkGroups(t *testing.T) {
	dir := t.TempDir()
	h, err := OpenHistory(storageConfig(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := h.FlowSink()
	if g.Name() != "store" {
		t.Errorf("sink name %q", g.Name())
	}
	base := time.Now().Add(-time.Minute).UnixNano()
	const n = 10000
	batch := make([]flowtable.Record, 0, 256)
	for i := 0; i < n; i++ {
		r := flowtable.Record{SrcPort: uint16(i), DstPort: 80, Proto: 6, IPVersion: 4, PacketsTx: uint64(i + 1),
			First: base + int64(i), Last: base + int64(i)}
		r.Src[15], r.Dst[15] = 1, 2
		r.Src[10], r.Src[11], r.Dst[10], r.Dst[11] = 0xff, 0xff, 0xff, 0xff
		batch = append(batch, r)
		if len(batch) == cap(batch) || i == n-1 {
			if err := g.WriteFlows(batch); err != nil {
				t.Fatal(err)
			}
			for j := range batch {
				batch[j] = flowtable.Record{} // the exporter reuses its batches
			}
			batch = batch[:0]
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h, err = OpenHistory(storageConfig(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	seen := map[uint64]bool{}
	cursor := ""
	for {
		recs, next, err := h.Flows.Query(store.FlowQuery{Port: -1, Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if seen[r.PacketsTx] || r.First != base+int64(r.PacketsTx-1) || r.SrcPort != uint16(r.PacketsTx-1) {
				t.Fatalf("record %+v twice or changed", r)
			}
			seen[r.PacketsTx] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != n {
		t.Errorf("%d records stored, want %d", len(seen), n)
	}
}

// TestFlowSinkPacing: a trickle of small batches (128 records every 2 ms,
// a flood of new flows ending 64 k records/s: less than groupMax records
// a groupWait) is committed in groups of groupWait's gathering, not one
// commit per batch or two; a
// lone record is queryable within groupWait and a commit, without Close;
// every record is stored once.
func TestFlowSinkPacing(t *testing.T) {
	h, err := OpenHistory(storageConfig(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := h.FlowSink()
	base := time.Now().Add(-time.Minute).UnixNano()
	mk := func(i int) flowtable.Record {
		r := flowtable.Record{SrcPort: uint16(i), DstPort: 53, Proto: 17, IPVersion: 4, PacketsTx: uint64(i + 1),
			First: base + int64(i), Last: base + int64(i)}
		r.Src[0], r.Src[1], r.Src[2], r.Src[3] = 198, 18, byte(i>>8), byte(i)
		r.Dst[0], r.Dst[1], r.Dst[2], r.Dst[3] = 198, 19, 0, 1
		return r
	}
	batch := make([]flowtable.Record, 128)
	start := time.Now()
	const batches = 50
	for k := range batches {
		for j := range batch {
			batch[j] = mk(k*len(batch) + j)
		}
		if err := g.WriteFlows(batch); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(start)
	// the last group may still be gathering
	deadline := time.Now().Add(5 * time.Second)
	for g.Groups() == 0 || h.Flows.Stats().Records < batches*int64(len(batch)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records stored after 5 s", h.Flows.Stats().Records, batches*len(batch))
		}
		time.Sleep(time.Millisecond)
	}
	groups := g.Groups()
	most := int64(took/groupWait) + 3 // the first batch at once, the last group after took, one of slack
	t.Logf("%d batches of %d in %v: %d groups (at most %d allowed)", batches, len(batch), took.Round(time.Millisecond), groups, most)
	if groups > most {
		t.Errorf("%d groups for %v of batches, want at most %d (one per %v)", groups, took, most, groupWait)
	}
	lone := mk(batches * len(batch))
	t0 := time.Now()
	if err := g.WriteFlows([]flowtable.Record{lone}); err != nil {
		t.Fatal(err)
	}
	for {
		recs, _, err := h.Flows.Query(store.FlowQuery{Port: int(lone.SrcPort), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(recs, func(r flowtable.Record) bool { return r.PacketsTx == lone.PacketsTx }) {
			break
		}
		if time.Since(t0) > 2*time.Second {
			t.Fatal("a lone record not queryable after 2 s")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("a lone record queryable after %v", time.Since(t0).Round(time.Millisecond))
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if st := h.Flows.Stats(); st.Records != batches*int64(len(batch))+1 {
		t.Errorf("%d records stored, want %d", st.Records, batches*len(batch)+1)
	}
}

// TestOpenHistoryIntervalBounds: both ends of the storage.interval that
// configs accepts open a store.
func TestOpenHistoryIntervalBounds(t *testing.T) {
	for _, iv := range []time.Duration{time.Second, 30 * time.Minute} {
		c := storageConfig(t.TempDir())
		c.Interval.Duration = iv
		if err := (&configs.Config{Storage: c}).Validate(); err != nil && strings.Contains(err.Error(), "storage.interval") {
			t.Fatalf("configs refuses %v: %v", iv, err)
		}
		h, err := OpenHistory(c, nil)
		if err != nil {
			t.Fatalf("interval %v: %v", iv, err)
		}
		h.Close()
	}
}

// TestOpenHistoryRemote: a remote type opens the writer on the store's
// database, named by the host name unless sensor_name is set; its queue
// outlives a close and open; storage.local false keeps ticks out of the
// local store.
func TestOpenHistoryRemote(t *testing.T) {
	dir := t.TempDir()
	c := storageConfig(dir)
	c.Type, c.RemoteURL = "victoriametrics", "http://127.0.0.1:1" // nothing listens there
	h, err := OpenHistory(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if h.Remote == nil || !h.Local || h.Remote.Sensor() != host {
		t.Fatalf("remote %v, local %v, sensor %q (host %q)", h.Remote, h.Local, h.Remote.Sensor(), host)
	}
	if err := h.Remote.Append(time.Now(), []store.Sample{{Name: "netsentry_x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("close took %s with the backend down", d)
	}
	c.Local, c.SensorName = false, "tap-1"
	if h, err = OpenHistory(c, nil); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Local || h.Remote.Sensor() != "tap-1" || h.Remote.Stats().Queued != 1 {
		t.Errorf("local %v, sensor %q, queued %d; want false, tap-1, 1", h.Local, h.Remote.Sensor(), h.Remote.Stats().Queued)
	}
}
